//! The HTTP API.
//!
//! - `POST /generate`: the character's next line, with the facts used.
//! - `POST /api/v1/chat`: the contract of the Python service ragback replaces, unchanged.
//! - `/users/{id}/facts`, `/characters/{id}/facts`: add, list, delete facts;
//!   `POST /facts/search`: scored search.
//! - `GET /health`: liveness. `GET /ready`: store open and LLM configured.
//!
//! Every error is `{"error": {"code", "message"}}` with a 4xx or 5xx status. With API keys
//! configured, every route but `/health` and `/ready` needs `Authorization: Bearer <key>`.

mod auth;
mod dto;
mod error;
mod facts;
mod generate;
mod health;
mod json;
mod legacy;
mod state;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::middleware;
use axum::routing::{delete, get, post};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use auth::Auth;
pub use error::ApiError;
pub use facts::MAX_FACTS_PER_CALL;
pub use state::{AppState, Limits};

/// The request-id header, set when the caller did not send one, and echoed in the response.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// All routes, with body limit, request ids, tracing and panic safety.
pub fn router(state: AppState) -> Router {
    let body_limit = state.limits.body_bytes;
    let auth = state.auth.clone();
    Router::new()
        .route("/generate", post(generate::generate))
        .route("/api/v1/chat", post(legacy::chat))
        .route(
            "/{kind}/{id}/facts",
            post(facts::add).get(facts::list).delete(facts::delete_all),
        )
        .route("/{kind}/{id}/facts/{fact_id}", delete(facts::delete_one))
        .route("/facts/search", post(facts::search))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
        .layer(middleware::from_fn_with_state(auth, auth::require_key))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(error::panicked))
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
}

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight requests finish.
///
/// Connections get `TCP_NODELAY`: a streamed reply is a run of small writes, and with Nagle's
/// algorithm each one after the first waits for the client's delayed ACK (40 ms on Linux).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
    // Give log lines a moment to flush before the runtime winds down.
    tokio::time::sleep(Duration::from_millis(10)).await;
}
