//! The request id (`x-request-id`) of the request being handled, for error bodies.
//!
//! [`sanitize`] drops a caller's id that is too long or holds characters outside a safe set;
//! `SetRequestIdLayer` then gives every request an id (keeping a valid one of the caller's); the
//! tracing span carries it into every log line; [`scope`] makes it readable by [`current`] while
//! the request is handled, so that every JSON error names it. Extracted facts record it.

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use super::REQUEST_ID;

/// The longest request id kept from a caller.
pub(crate) const MAX_ID_CHARS: usize = 128;

/// Whether a caller's request id is kept: 1 to [`MAX_ID_CHARS`] characters of letters, digits and
/// `-_.:/+=@` (what UUIDs, ULIDs, trace ids and most gateways' ids are made of).
pub(crate) fn acceptable(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_CHARS
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(b))
}

/// Middleware, before the id is set: a caller's `x-request-id` that is not [`acceptable`] is
/// dropped (a fresh one is generated), so that no log line or stored fact carries it.
pub(crate) async fn sanitize(mut request: Request, next: Next) -> Response {
    let refused = request
        .headers()
        .get_all(REQUEST_ID)
        .iter()
        .any(|v| !acceptable(v.as_bytes()))
        || request.headers().get_all(REQUEST_ID).iter().count() > 1;
    if refused {
        request.headers_mut().remove(REQUEST_ID);
        tracing::debug!("a caller's x-request-id was not acceptable; a new one is generated");
    }
    next.run(request).await
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_and_plain() {
        for good in [
            "3f2c9e1a-0b7d-4c1e-9a55-1234567890ab",
            "req_01HZX:abc/2+x=y@gw",
        ] {
            assert!(acceptable(good.as_bytes()), "{good}");
        }
        let long = "a".repeat(MAX_ID_CHARS + 1);
        for bad in [
            "",
            "has space",
            "new\nline",
            "quote\"",
            "bidi\u{202e}",
            long.as_str(),
        ] {
            assert!(!acceptable(bad.as_bytes()), "{bad:?}");
        }
    }
}
