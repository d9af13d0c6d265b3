//! Summaries after replies, off their path: a bounded queue drained by one worker task, like
//! memory extraction's. A full queue drops the job (the next turn queues it again); a job that
//! panics is logged and the worker goes on.

use super::{Summarizer, SummaryJob, SummaryOutcome};

/// The handle that queues summary jobs.
#[derive(Clone)]
pub struct SummaryQueue {
    sender: tokio::sync::mpsc::Sender<SummaryJob>,
    summarizer: Summarizer,
}

impl SummaryQueue {
    /// Starts the worker on the current Tokio runtime; it stops when every handle is dropped,
    /// after the jobs already queued.
    pub fn start(summarizer: Summarizer, capacity: usize) -> Self {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<SummaryJob>(capacity.max(1));
        let worker = summarizer.clone();
        tokio::spawn(async move {
            while let Some(job) = receiver.recv().await {
                run_one(&worker, job).await;
            }
        });
        Self { sender, summarizer }
    }

    /// The summarizer (turns read the stored summaries through its store).
    pub fn summarizer(&self) -> &Summarizer {
        &self.summarizer
    }

    /// Queues a job; never waits. A full queue drops it, counted in
    /// `ragback_summary_queue_dropped_total`.
    pub fn submit(&self, job: SummaryJob) -> bool {
        match self.sender.try_send(job) {
            Ok(()) => true,
            Err(_) => {
                metrics::counter!("ragback_summary_queue_dropped_total").increment(1);
                tracing::warn!("summary queue full: this turn's summary is left to the next turn");
                false
            }
        }
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
