//! Summaries after replies, off their path: a bounded queue drained by one worker task, like
//! memory extraction's. A full queue drops the job (the next turn queues it again); a job that
//! panics is logged and the worker goes on.

use super::{Summarizer, SummaryJob, SummaryOutcome};
use crate::jobs::{JobJournal, Queued, StoredMessage, enqueue, stop_sweeper};
use crate::ports::JobKind;

/// A queued summary job, and its id in the job store when the queue keeps one.
type Item = (SummaryJob, Option<String>);

/// The handle that queues summary jobs.
#[derive(Clone)]
pub struct SummaryQueue {
    sender: tokio::sync::mpsc::Sender<Item>,
    summarizer: Summarizer,
    journal: Option<JobJournal>,
}

/// A summary job as the job store holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct StoredSummary {
    user: String,
    character: Option<String>,
    conversation: String,
    user_name: String,
    character_name: String,
    messages: Vec<StoredMessage>,
}

fn stored(job: &SummaryJob) -> serde_json::Value {
    serde_json::to_value(StoredSummary {
        user: job.user.as_str().to_owned(),
        character: job.character.as_ref().map(|c| c.as_str().to_owned()),
        conversation: job.conversation.as_str().to_owned(),
        user_name: job.user_name.clone(),
        character_name: job.character_name.clone(),
        messages: job.messages.iter().map(StoredMessage::of).collect(),
    })
    .unwrap_or_default()
}

fn read(payload: &serde_json::Value) -> Option<SummaryJob> {
    let stored: StoredSummary = serde_json::from_value(payload.clone()).ok()?;
    Some(SummaryJob {
        user: ragback_domain::UserId::parse(stored.user).ok()?,
        character: match stored.character {
            Some(c) => Some(ragback_domain::CharacterId::parse(c).ok()?),
            None => None,
        },
        conversation: ragback_domain::ConversationId::parse(stored.conversation).ok()?,
        user_name: stored.user_name,
        character_name: stored.character_name,
        messages: stored
            .messages
            .iter()
            .map(StoredMessage::read)
            .collect::<Option<_>>()?,
    })
}

impl SummaryQueue {
    /// Starts the worker on the current Tokio runtime; it stops when every handle is dropped,
    /// after the jobs already queued.
    pub fn start(summarizer: Summarizer, capacity: usize) -> Self {
        Self::start_with(summarizer, capacity, None)
    }

    /// Starts the worker with its jobs kept in `journal` (stored before they are acknowledged,
    /// removed once done) and a sweeper that takes over the jobs another process left.
    pub fn start_durable(summarizer: Summarizer, capacity: usize, journal: JobJournal) -> Self {
        Self::start_with(summarizer, capacity, Some(journal))
    }

    fn start_with(summarizer: Summarizer, capacity: usize, journal: Option<JobJournal>) -> Self {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Item>(capacity.max(1));
        let worker = summarizer.clone();
        let done = journal.clone();
        let sweeper = journal
            .as_ref()
            .map(|j| j.spawn_sweeper(JobKind::Summary, capacity, sender.downgrade(), read));
        tokio::spawn(async move {
            while let Some((job, id)) = receiver.recv().await {
                run_one(&worker, job).await;
                if let (Some(journal), Some(id)) = (&done, id) {
                    journal.finish(&id).await;
                }
            }
            // Nothing holds the store once the worker is gone.
            stop_sweeper(sweeper).await;
        });
        Self {
            sender,
            summarizer,
            journal,
        }
    }

    /// Queues a job, kept in the job store first when the queue has one (a store that fails is
    /// logged, and the job queued in memory alone). A stored job that finds the queue full waits
    /// in the store for a sweep; one not stored is dropped, counted in
    /// `ragback_summary_queue_dropped_total`: `false` (the next turn queues it again).
    pub async fn queue(&self, job: SummaryJob) -> bool {
        match enqueue(
            self.journal.as_ref(),
            JobKind::Summary,
            &self.sender,
            job,
            stored,
        )
        .await
        {
            Queued::Sent => true,
            Queued::Waiting => {
                tracing::info!("summary queue full: the stored job waits for a sweep");
                true
            }
            Queued::Dropped(_) => {
                metrics::counter!("ragback_summary_queue_dropped_total").increment(1);
                tracing::warn!("summary queue full: this turn's summary is left to the next turn");
                false
            }
        }
    }

    /// The summarizer (turns read the stored summaries through its store).
    pub fn summarizer(&self) -> &Summarizer {
        &self.summarizer
    }
}

/// Runs one job on its own task, so that its panic is caught here.
async fn run_one(summarizer: &Summarizer, job: SummaryJob) {
    let conversation = job.conversation.to_string();
    let task = {
        let summarizer = summarizer.clone();
        tokio::spawn(async move { summarizer.run(&job).await })
    };
    let outcome = match task.await {
        Ok(Ok(done)) => {
            match done {
                SummaryOutcome::UpToDate => {}
                SummaryOutcome::Written { covers } => {
                    tracing::info!(%conversation, covers, "conversation summary written");
                }
                SummaryOutcome::Extended { from, covers } => {
                    tracing::info!(%conversation, from, covers, "conversation summary extended");
                }
            }
            match done {
                SummaryOutcome::UpToDate => "up_to_date",
                SummaryOutcome::Written { .. } => "written",
                SummaryOutcome::Extended { .. } => "extended",
            }
        }
        Ok(Err(error)) => {
            tracing::warn!(%conversation, %error, "the conversation summary was not written");
            error.kind()
        }
        Err(failure) => {
            tracing::error!(
                %conversation,
                panicked = failure.is_panic(),
                "a summary job stopped abnormally; the worker goes on with the next"
            );
            "panicked"
        }
    };
    metrics::counter!("ragback_summaries_total", "outcome" => outcome).increment(1);
}

#[cfg(test)]
mod tests {
    use ragback_domain::{CharacterId, ConversationId, Message, MessageText, Role, UserId};

    use super::*;

    #[test]
    fn a_job_reads_back_from_the_store_as_it_was() {
        let job = SummaryJob {
            user: UserId::parse("john").unwrap(),
            character: Some(CharacterId::parse("mira").unwrap()),
            conversation: ConversationId::parse("c-1").unwrap(),
            user_name: "John".into(),
            character_name: "Mira".into(),
            messages: vec![
                Message::new(Role::User, MessageText::parse("Hi *waves*").unwrap()),
                Message::new(Role::Character, MessageText::parse("*nods* Hey.").unwrap()),
            ],
        };
        assert_eq!(read(&stored(&job)), Some(job));
        assert_eq!(read(&serde_json::json!({"user": ""})), None);
    }
}
