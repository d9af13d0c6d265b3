//! HTTP metrics for every request, and `GET /metrics`.

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use super::state::SharedState;

/// Middleware: counts requests and times them to the response head, by route template (never
/// the raw path: ids would make the label set unbounded), method and status.
pub(crate) async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let in_flight = metrics::gauge!("ragback_http_requests_in_flight");
    in_flight.increment(1.0);
    let response = next.run(request).await;
    in_flight.decrement(1.0);
    let labels = [
        ("route", route),
        ("method", method),
        ("status", response.status().as_str().to_owned()),
    ];
    metrics::counter!("ragback_http_requests_total", &labels).increment(1);
    metrics::histogram!("ragback_http_request_duration_seconds", &labels).record(started.elapsed());
    response
}

/// `GET /metrics`: the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
pub(crate) async fn metrics(State(state): State<SharedState>) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
