//! The request id (`x-request-id`) of the request being handled, for error bodies.
//!
//! `SetRequestIdLayer` gives every request an id (keeping the caller's); the tracing span carries
//! it into every log line; [`scope`] makes it readable by [`current`] while the request is
//! handled, so that every JSON error names it.

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use super::REQUEST_ID;

tokio::task_local! {
    static CURRENT: Arc<str>;
}

/// Middleware: handles the request with its id readable by [`current`].
pub(crate) async fn scope(request: Request, next: Next) -> Response {
    let id: Option<Arc<str>> = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(Arc::from);
    match id {
        Some(id) => CURRENT.scope(id, next.run(request)).await,
        None => next.run(request).await,
    }
}

/// The id of the request being handled on this task, if any.
pub(crate) fn current() -> Option<Arc<str>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// The id of the request being handled on this task, empty outside one: what extracted facts
/// record.
pub(crate) fn current_text() -> String {
    current().map_or_else(String::new, |id| id.to_string())
}
