//! Authorization: what each route needs, decided once, after routing, on the route the router
//! matched (its template, after percent-decoding) and the method — never on the raw path, whose
//! spelling a caller controls (`/%75sers/…` is `/users/…` to the router).
//!
//! [`ROUTES`] is the whole policy; a route missing from it needs [`Grant::Write`], so a route
//! added without a decision is closed rather than open. Handlers that do more than their route
//! says (a `/generate` that asks for memory extraction) check [`Caller::may`] themselves.

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::{Caller, Grant};
use super::error::ApiError;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Nothing: open even with keys configured.
    Nothing,
    /// A key holding at least this grant.
    Grant(Grant),
}

/// Every route: method, template (as the router matches it), what it needs.
pub(crate) const ROUTES: &[(Method, &str, Need)] = &[
    (Method::GET, "/health", Need::Nothing),
    (Method::GET, "/ready", Need::Nothing),
    (Method::GET, "/openapi.json", Need::Nothing),
    (Method::GET, "/docs", Need::Nothing),
    (Method::GET, "/metrics", Need::Grant(Grant::Read)),
    (Method::POST, "/generate", Need::Grant(Grant::Read)),
    (Method::POST, "/api/v1/chat", Need::Grant(Grant::Read)),
    (Method::POST, "/facts/search", Need::Grant(Grant::Read)),
    (Method::GET, "/{kind}/{id}/facts", Need::Grant(Grant::Read)),
    (
        Method::POST,
        "/{kind}/{id}/facts",
        Need::Grant(Grant::Write),
    ),
    (
        Method::DELETE,
        "/{kind}/{id}/facts",
        Need::Grant(Grant::Write),
    ),
    (
        Method::DELETE,
        "/{kind}/{id}/facts/{fact_id}",
        Need::Grant(Grant::Write),
    ),
    (
        Method::POST,
        "/users/{id}/memories:extract",
        Need::Grant(Grant::Learn),
    ),
    (
        Method::GET,
        "/users/{id}/conversations/{conversation_id}/summary",
        Need::Grant(Grant::Read),
    ),
    (
        Method::DELETE,
        "/users/{id}/conversations/{conversation_id}/summary",
        Need::Grant(Grant::Write),
    ),
];

/// What `method` on the route `template` needs (`HEAD` as `GET`); unlisted: [`Grant::Write`].
pub(crate) fn need(method: &Method, template: &str) -> Need {
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    ROUTES
        .iter()
        .find(|(m, t, _)| m == method && *t == template)
        .map_or(Need::Grant(Grant::Write), |(_, _, need)| *need)
}

/// Whether `caller` may call `method` on the route `template`; `Err` is the response to send.
pub(crate) fn decide(method: &Method, template: &str, caller: Caller) -> Result<(), ApiError> {
    match need(method, template) {
        Need::Nothing => Ok(()),
        Need::Grant(grant) => require(caller, grant),
    }
}

/// `Ok` when `caller` holds `grant`: 401 without a valid key, 403 with a key that may not.
pub(crate) fn require(caller: Caller, grant: Grant) -> Result<(), ApiError> {
    match caller.grant() {
        None => Err(ApiError::unauthorized()),
        Some(held) if held >= grant => Ok(()),
        Some(_) => Err(ApiError::forbidden(match grant {
            Grant::Write => {
                "this key may read facts but not change them; use an admin key \
                 (RAGBACK_SERVER__ADMIN_API_KEYS)"
            }
            Grant::Learn => {
                "this key may not have facts learned from the dialogue (memory extraction); use \
                 a memory key (RAGBACK_SERVER__MEMORY_API_KEYS) or an admin key"
            }
            Grant::Read => "this key may not call this route",
        })),
    }
}

/// The caller [`identify`](super::auth::identify) recorded (anonymous when it did not run).
pub(crate) fn caller(request: &Request) -> Caller {
    request
        .extensions()
        .get::<Caller>()
        .copied()
        .unwrap_or(Caller::Anonymous)
}

/// The middleware, on every route (after routing, so the matched template is known).
pub(crate) async fn authorize(request: Request, next: Next) -> Response {
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    match decide(request.method(), &template, caller(&request)) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLERS: [Caller; 6] = [
        Caller::Open,
        Caller::Anonymous,
        Caller::UnknownKey,
        Caller::Key(Grant::Read),
        Caller::Key(Grant::Learn),
        Caller::Key(Grant::Write),
    ];

    fn status(method: &Method, template: &str, caller: Caller) -> u16 {
        decide(method, template, caller).map_or_else(|e| e.status().as_u16(), |()| 200)
    }

    #[test]
    fn every_route_and_caller_gets_the_decision_of_the_table() {
        for (method, template, need) in ROUTES {
            for caller in CALLERS {
                let expected = match (need, caller.grant()) {
                    (Need::Nothing, _) => 200,
                    (Need::Grant(_), None) => 401,
                    (Need::Grant(grant), Some(held)) if held >= *grant => 200,
                    (Need::Grant(_), Some(_)) => 403,
                };
                assert_eq!(
                    status(method, template, caller),
                    expected,
                    "{method} {template} by {caller:?}"
                );
            }
        }
    }

    #[test]
    fn fact_writes_need_write_and_extraction_needs_learn() {
        let reader = Caller::Key(Grant::Read);
        let learner = Caller::Key(Grant::Learn);
        assert_eq!(status(&Method::POST, "/{kind}/{id}/facts", reader), 403);
        assert_eq!(status(&Method::POST, "/{kind}/{id}/facts", learner), 403);
        assert_eq!(
            status(&Method::POST, "/users/{id}/memories:extract", reader),
            403
        );
        assert_eq!(
            status(&Method::POST, "/users/{id}/memories:extract", learner),
            200
        );
        assert_eq!(status(&Method::HEAD, "/{kind}/{id}/facts", reader), 200);
    }

    #[test]
    fn a_route_missing_from_the_table_needs_the_most() {
        assert_eq!(
            need(&Method::PUT, "/{kind}/{id}/facts"),
            Need::Grant(Grant::Write)
        );
        assert_eq!(
            status(&Method::GET, "/new-route", Caller::Key(Grant::Learn)),
            403
        );
        assert_eq!(status(&Method::GET, "/new-route", Caller::Open), 200);
    }
}
