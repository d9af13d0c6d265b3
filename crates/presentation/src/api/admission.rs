//! Backpressure: at most so many calls of a kind run at once. Others wait for a slot up to the
//! queue timeout, then get 503 with `Retry-After`, rather than piling up in memory.
//!
//! Two pools: generations (`/generate`, `/api/v1/chat`), and the other routes that call an
//! upstream (the embedder or the model: adding facts, searching them, memory extraction), so that
//! a flood of those cannot take the generations' slots. A slot is taken by the handler once the
//! request is read and valid — never while a slow sender is still trickling its body.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;

/// Which pool a slot comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// `/generate`, `/api/v1/chat`.
    Generation,
    /// Adding and searching facts, memory extraction.
    Upstream,
}

impl Pool {
    fn label(self) -> &'static str {
        match self {
            Self::Generation => "generation",
            Self::Upstream => "upstream",
        }
    }
}

/// One pool's slots.
#[derive(Debug, Clone)]
pub struct Admission {
    pool: Pool,
    slots: Arc<Semaphore>,
    capacity: usize,
    queue_timeout: Duration,
}

impl Admission {
    /// `capacity` slots (at least one); a call waits at most `queue_timeout` for one.
    pub fn new(pool: Pool, capacity: usize, queue_timeout: Duration) -> Self {
        let capacity = capacity.max(1);
        Self {
            pool,
            slots: Arc::new(Semaphore::new(capacity)),
            capacity,
            queue_timeout,
        }
    }

    /// Calls holding a slot now.
    pub fn in_flight(&self) -> usize {
        self.capacity - self.slots.available_permits()
    }

    /// A slot, held until the [`Slot`] is dropped (for a streamed reply: with the stream); 503
    /// `overloaded` when none frees up within the queue timeout.
    pub async fn admit(&self) -> Result<Slot, ApiError> {
        let acquire = Arc::clone(&self.slots).acquire_owned();
        let permit = match tokio::time::timeout(self.queue_timeout, acquire).await {
            Ok(Ok(permit)) => permit,
            // Closed never happens (the semaphore is never closed); treat it as full.
            Ok(Err(_)) | Err(_) => {
                self.rejected();
                return Err(ApiError::overloaded(self.queue_timeout));
            }
        };
        let slot = Slot {
            pool: self.pool,
            _permit: permit,
        };
        slot.gauge().increment(1.0);
        Ok(slot)
    }

    fn rejected(&self) {
        match self.pool {
            Pool::Generation => {
                metrics::counter!("ragback_generations_rejected_total", "reason" => "queue_timeout")
                    .increment(1);
            }
            Pool::Upstream => {
                metrics::counter!("ragback_upstream_calls_rejected_total", "reason" => "queue_timeout")
                    .increment(1);
            }
        }
        tracing::warn!(
            pool = self.pool.label(),
            in_flight = self.in_flight(),
            "every slot is busy; refused after the queue timeout"
        );
    }
}

/// A held slot; the in-flight gauge follows it.
#[derive(Debug)]
pub struct Slot {
    pool: Pool,
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    fn gauge(&self) -> metrics::Gauge {
        match self.pool {
            Pool::Generation => metrics::gauge!("ragback_generations_in_flight"),
            Pool::Upstream => metrics::gauge!("ragback_upstream_calls_in_flight"),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gauge().decrement(1.0);
    }
}

/// Runs `work` (a call that reaches an upstream outside generation) holding a slot of the
/// upstream pool and within `deadline`: 503 when no slot frees up, 504 `upstream_timeout` when the
/// deadline passes first (the work is dropped, which cancels its requests).
pub(crate) async fn bounded<T, E>(
    pool: &Admission,
    deadline: Duration,
    what: &'static str,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, ApiError>
where
    ApiError: From<E>,
{
    let _slot = pool.admit().await?;
    match tokio::time::timeout(deadline, work).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(_elapsed) => Err(ApiError::upstream_timeout(what, deadline)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_pool_refuses_after_the_queue_timeout_and_a_freed_slot_admits() {
        let pool = Admission::new(Pool::Upstream, 1, Duration::from_millis(300));
        let held = pool.admit().await.unwrap();
        assert_eq!(pool.in_flight(), 1);
        let refused = pool.admit().await.unwrap_err();
        assert_eq!(refused.code().as_str(), "overloaded");
        drop(held);
        assert_eq!(pool.in_flight(), 0);
        assert!(pool.admit().await.is_ok());
    }
}
