//! Backpressure: at most `max_concurrency` generations at once. Others wait for a slot up to the
//! queue timeout, then get 503 with `Retry-After`, rather than piling up in memory.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;

/// The generation slots.
#[derive(Debug, Clone)]
pub struct Admission {
    slots: Arc<Semaphore>,
    capacity: usize,
    queue_timeout: Duration,
}

impl Admission {
    /// `capacity` slots (at least one); a request waits at most `queue_timeout` for one.
    pub fn new(capacity: usize, queue_timeout: Duration) -> Self {
        let capacity = capacity.max(1);
        Self {
            slots: Arc::new(Semaphore::new(capacity)),
            capacity,
            queue_timeout,
        }
    }

    /// Generations running now.
    pub fn in_flight(&self) -> usize {
        self.capacity - self.slots.available_permits()
    }

    async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        let acquire = Arc::clone(&self.slots).acquire_owned();
        match tokio::time::timeout(self.queue_timeout, acquire).await {
            Ok(Ok(permit)) => Some(permit),
            // Closed never happens (the semaphore is never closed); treat it as full.
            Ok(Err(_)) | Err(_) => None,
        }
    }
}

/// Middleware on the generation routes. The slot is held until the response is complete: for a
/// streamed reply, until its last event is sent or the client leaves.
pub(crate) async fn admit(
    State(admission): State<Admission>,
    request: Request,
    next: Next,
) -> Response {
    let Some(permit) = admission.acquire().await else {
        metrics::counter!("ragback_generations_rejected_total", "reason" => "queue_timeout")
            .increment(1);
        tracing::warn!(
            in_flight = admission.in_flight(),
            "every generation slot is busy; refused after the queue timeout"
        );
        return ApiError::overloaded(admission.queue_timeout).into_response();
    };
    let gauge = metrics::gauge!("ragback_generations_in_flight");
    gauge.increment(1.0);
    let slot = Slot { _permit: permit };
    let response = next.run(request).await;
    let streamed = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !streamed {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _held = &slot;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

/// A held generation slot; the in-flight gauge follows it.
struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        metrics::gauge!("ragback_generations_in_flight").decrement(1.0);
    }
}
