//! Extractions after replies, off their path: a bounded queue drained by one worker task (the
//! shape of zero2prod's `issue_delivery_worker`). Each extraction runs on a task of its own, so
//! one that panics is logged and counted (`ragback_memory_worker_restarts_total`) and the worker
//! goes on with the next: it never dies with the queue still filling.

use super::{ExtractRequest, MemoryExtractor};
use crate::jobs::{JobJournal, Queued, StoredMessage, enqueue, stop_sweeper};
use crate::ports::JobKind;

/// A queued extraction, and its job in the store when the queue keeps one.
type Item = (ExtractRequest, Option<String>);

/// The handle that queues extractions.
#[derive(Clone)]
pub struct MemoryQueue {
    sender: tokio::sync::mpsc::Sender<Item>,
    stopped: tokio::sync::watch::Receiver<()>,
    journal: Option<JobJournal>,
}

/// An extraction as a stored job holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct StoredExtraction {
    user: String,
    character: Option<String>,
    messages: Vec<StoredMessage>,
    request_id: String,
}

/// An extraction's payload in the job store.
pub(super) fn stored(request: &ExtractRequest) -> serde_json::Value {
    serde_json::to_value(StoredExtraction {
        user: request.user.as_str().to_owned(),
        character: request.character.as_ref().map(|c| c.as_str().to_owned()),
        messages: request.messages.iter().map(StoredMessage::of).collect(),
        request_id: request.request_id.clone(),
    })
    .unwrap_or_default()
}

fn read(payload: &serde_json::Value) -> Option<ExtractRequest> {
    let stored: StoredExtraction = serde_json::from_value(payload.clone()).ok()?;
    Some(ExtractRequest {
        user: ragback_domain::UserId::parse(stored.user).ok()?,
        character: match stored.character {
            Some(c) => Some(ragback_domain::CharacterId::parse(c).ok()?),
            None => None,
        },
        messages: stored
            .messages
            .iter()
            .map(StoredMessage::read)
            .collect::<Option<_>>()?,
        request_id: stored.request_id,
        dry_run: false,
    })
}

/// Resolves when the memory worker has stopped: every queued extraction done, and its hold on the
/// store released.
pub struct MemoryWorkerStopped(tokio::sync::watch::Receiver<()>);

impl MemoryWorkerStopped {
    /// Waits for the worker to stop (it stops once every [`MemoryQueue`] handle is dropped).
    pub async fn wait(mut self) {
        while self.0.changed().await.is_ok() {}
    }
}

impl MemoryQueue {
    /// Starts the worker on the current Tokio runtime; it stops when every handle is dropped,
    /// after the extractions already queued.
    pub fn start(extractor: MemoryExtractor, capacity: usize) -> Self {
        Self::start_with(extractor, capacity, None)
    }

    /// Starts the worker with its jobs kept in `journal` ([`Self::queue`] stores each before it
    /// is acknowledged, the worker removes it once done) and a sweeper that takes over the jobs
    /// another process left (at once, then every sweep).
    pub fn start_durable(extractor: MemoryExtractor, capacity: usize, journal: JobJournal) -> Self {
        Self::start_with(extractor, capacity, Some(journal))
    }

    fn start_with(
        extractor: MemoryExtractor,
        capacity: usize,
        journal: Option<JobJournal>,
    ) -> Self {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Item>(capacity.max(1));
        let (running, stopped) = tokio::sync::watch::channel(());
        let done = journal.clone();
        let sweeper = journal
            .as_ref()
            .map(|j| j.spawn_sweeper(JobKind::Memory, capacity, sender.downgrade(), read));
        tokio::spawn(async move {
            while let Some((request, job)) = receiver.recv().await {
                run_one(&extractor, request).await;
                if let (Some(journal), Some(job)) = (&done, job) {
                    journal.finish(&job).await;
                }
            }
            // The store is released before anyone is told the worker stopped.
            stop_sweeper(sweeper).await;
            drop(done);
            drop(extractor);
            drop(running);
        });
        Self {
            sender,
            stopped,
            journal,
        }
    }

    /// Queues an extraction, kept in the queue's job store first when it has one: once this
    /// returns, a crash of this process loses nothing (another takes the job over). A store that
    /// fails is logged and counted, and the extraction is queued in memory alone. A stored
    /// extraction that finds the queue full waits in the store for a sweep; one not stored is
    /// dropped, counted in `ragback_memory_queue_dropped_total`: `false`. Only the store's write
    /// is waited for.
    pub async fn queue(&self, request: ExtractRequest) -> bool {
        match enqueue(
            self.journal.as_ref(),
            JobKind::Memory,
            &self.sender,
            request,
            stored,
        )
        .await
        {
            Queued::Sent => true,
            Queued::Waiting => {
                tracing::info!("memory queue full: the stored extraction waits for a sweep");
                true
            }
            Queued::Dropped(request) => {
                metrics::counter!("ragback_memory_queue_dropped_total").increment(1);
                tracing::warn!(request_id = %request.request_id, "memory queue full: this turn's extraction is dropped");
                false
            }
        }
    }

    /// What resolves when the worker has stopped; holding it does not keep the worker running.
    pub fn stopped(&self) -> MemoryWorkerStopped {
        MemoryWorkerStopped(self.stopped.clone())
    }
}

/// Runs one extraction on its own task, so that its panic is caught here.
async fn run_one(extractor: &MemoryExtractor, request: ExtractRequest) {
    let request_id = request.request_id.clone();
    let job = {
        let extractor = extractor.clone();
        tokio::spawn(async move { extractor.extract(request).await })
    };
    match job.await {
        Ok(Ok(extraction)) => tracing::info!(
            %request_id,
            decisions = extraction.decisions.len(),
            already_extracted = extraction.already_extracted,
            "memory extracted after the reply"
        ),
        Ok(Err(error)) => {
            tracing::warn!(%request_id, %error, "memory extraction after the reply failed");
        }
        Err(failure) => {
            metrics::counter!("ragback_memory_worker_restarts_total").increment(1);
            tracing::error!(
                %request_id,
                panicked = failure.is_panic(),
                "a memory extraction stopped abnormally; the worker goes on with the next"
            );
        }
    }
}
