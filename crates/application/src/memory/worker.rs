//! Extractions after replies, off their path: a bounded queue drained by one worker task (the
//! shape of zero2prod's `issue_delivery_worker`). Each extraction runs on a task of its own, so
//! one that panics is logged and counted (`ragback_memory_worker_restarts_total`) and the worker
//! goes on with the next: it never dies with the queue still filling.

use super::{ExtractRequest, MemoryExtractor};

/// The handle that queues extractions.
#[derive(Clone)]
pub struct MemoryQueue {
    sender: tokio::sync::mpsc::Sender<ExtractRequest>,
    stopped: tokio::sync::watch::Receiver<()>,
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
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<ExtractRequest>(capacity.max(1));
        let (running, stopped) = tokio::sync::watch::channel(());
        tokio::spawn(async move {
            while let Some(request) = receiver.recv().await {
                run_one(&extractor, request).await;
            }
            // The store is released before anyone is told the worker stopped.
            drop(extractor);
            drop(running);
        });
        Self { sender, stopped }
    }

    /// What resolves when the worker has stopped; holding it does not keep the worker running.
    pub fn stopped(&self) -> MemoryWorkerStopped {
        MemoryWorkerStopped(self.stopped.clone())
    }

    /// Queues an extraction; never waits. A full queue drops it, counted in
    /// `ragback_memory_queue_dropped_total`: `false`.
    pub fn submit(&self, request: ExtractRequest) -> bool {
        match self.sender.try_send(request) {
            Ok(()) => true,
            Err(error) => {
                let request_id = match &error {
                    tokio::sync::mpsc::error::TrySendError::Full(r)
                    | tokio::sync::mpsc::error::TrySendError::Closed(r) => r.request_id.clone(),
                };
                metrics::counter!("ragback_memory_queue_dropped_total").increment(1);
                tracing::warn!(%request_id, "memory queue full: this turn's extraction is dropped");
                false
            }
        }
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
