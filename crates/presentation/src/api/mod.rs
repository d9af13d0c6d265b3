//! The HTTP API.
//!
//! - `POST /generate`: the character's next line, with the facts used.
//! - `POST /api/v1/chat`: the contract of the Python service ragback replaces, unchanged.
//! - `/users/{id}/facts`, `/characters/{id}/facts`: add, list, delete facts;
//!   `POST /facts/search`: scored search.
//! - `GET /health`: liveness. `GET /ready`: store open and LLM configured.
//! - `GET /metrics`: Prometheus metrics.
//! - `GET /openapi.json`: the OpenAPI 3.1 document of all of these; `GET /docs`: a UI over it.
//!
//! Every error is `{"error": {"code", "message", "request_id"}}` with a 4xx or 5xx status. With
//! API keys configured, every route but `/health`, `/ready`, `/openapi.json` and `/docs` needs
//! `Authorization: Bearer <key>`; [`access`] says which key each route needs.

mod access;
mod admission;
mod auth;
mod deadline;
mod docs_page;
mod dto;
mod error;
mod facts;
mod generate;
mod health;
mod json;
mod legacy;
mod lore_dto;
mod memory;
mod observe;
mod openapi;
mod path;
mod query;
mod request_id;
mod serve;
mod state;
mod summary;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderName, HeaderValue, Method, Request};
use axum::middleware;
use axum::{Extension, Router};
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use admission::{Admission, Pool, Slot};
pub use auth::{Auth, Caller, Grant, KeyLists};
pub use error::ApiError;
pub use serve::{Connections, serve, shutdown_signal};
pub use state::{Admissions, AppState, Limits};

/// The request-id header, set when the caller did not send one, and echoed in the response.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every route and what it needs, as (method, path template, need): `open`, `read`, `learn`,
/// `write` — the whole authorization policy, for tests and docs that must match it.
pub fn route_policy() -> Vec<(&'static str, &'static str, &'static str)> {
    access::ROUTES
        .iter()
        .map(|(method, template, need)| {
            let need = match need {
                access::Need::Nothing => "open",
                access::Need::Grant(Grant::Read) => "read",
                access::Need::Grant(Grant::Learn) => "learn",
                access::Need::Grant(Grant::Write) => "write",
            };
            (method.as_str(), *template, need)
        })
        .collect()
}

/// All routes, with body limit, request ids, tracing, metrics, CORS when configured, and panic
/// safety.
pub fn router(state: AppState) -> Router {
    let limits = state.limits;
    let auth = state.auth.clone();
    let cors = cors(&state.cors_origins);
    let (routes, document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(generate::generate))
        .routes(routes!(legacy::chat))
        .routes(routes!(facts::add, facts::list, facts::delete_all))
        .routes(routes!(facts::delete_one))
        .routes(routes!(facts::search))
        .routes(routes!(memory::extract))
        .routes(routes!(summary::get, summary::delete))
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
        .routes(routes!(observe::metrics))
        .routes(routes!(openapi::document))
        .routes(routes!(openapi::docs))
        .split_for_parts();
    let spec = openapi::Spec::new(document);
    let router = routes
        // After routing: the decision is on the route the router matched, never the raw path.
        .route_layer(middleware::from_fn(access::authorize))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(Extension(spec))
        .with_state(Arc::new(state))
        .layer(middleware::from_fn_with_state(auth, auth::identify));
    // Outside authentication: preflight requests carry no key, and refusals need CORS headers
    // for the browser to show them.
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router
        .layer(middleware::from_fn(observe::track))
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(CatchPanicLayer::custom(error::panicked))
        .layer(middleware::from_fn(request_id::scope))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let id = request
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!(
                        "request",
                        request_id = %id,
                        method = %request.method(),
                        path = %request.uri().path(),
                    )
                })
                .on_request(())
                .on_response(
                    DefaultOnResponse::new()
                        .level(Level::INFO)
                        .latency_unit(LatencyUnit::Micros),
                )
                // 5xx causes are logged where they are mapped; this line only marks the request.
                .on_failure(
                    DefaultOnFailure::new()
                        .level(Level::WARN)
                        .latency_unit(LatencyUnit::Micros),
                ),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(middleware::from_fn(request_id::sanitize))
}

/// The CORS policy for `origins` (`*` for any); `None` without origins: no CORS headers at all.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| {
            HeaderValue::from_str(o.trim_end_matches('/'))
                .inspect_err(|_| tracing::warn!(origin = %o, "not a valid CORS origin; ignored"))
                .ok()
        }))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                AUTHORIZATION,
                CONTENT_TYPE,
                REQUEST_ID,
                HeaderName::from_static(deadline::HEADER),
            ])
            .expose_headers([REQUEST_ID, RETRY_AFTER])
            .max_age(Duration::from_secs(3600)),
    )
}
