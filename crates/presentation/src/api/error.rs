//! Every error the API returns, and the one place that maps use-case errors to HTTP.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ragback_application::ports::{ChatModelError, FactStoreError};
use ragback_application::retrieval::SearchError;
use ragback_application::{AddFactsError, GenerateError};
use ragback_domain::{FactId, FactOwner};
use serde::Serialize;

use super::request_id;

/// An error response: a status and `{"error": {"code", "message", "field"?}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    /// What retrieval found before a generation failed (`/generate` only).
    retrieval: Option<Box<serde_json::Value>>,
    /// Sent as `Retry-After` (whole seconds).
    retry_after: Option<Duration>,
    /// The request's id; when `None`, the id of the request being handled on this task.
    request_id: Option<Arc<str>>,
}

/// Every error: `{"error": {"code", "message", "field"?, "request_id"?}, "retrieval"?}`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorBody)]
pub(crate) struct Body<'a> {
    error: Detail<'a>,
    /// `/generate` only: what retrieval found before the model failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    retrieval: Option<&'a serde_json::Value>,
}

/// The error itself.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorDetail)]
struct Detail<'a> {
    /// Machine-readable, e.g. `invalid_field`, `llm_timeout`.
    code: &'a str,
    /// For people: what happened and what to do.
    message: &'a str,
    /// The offending field's path, for input errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    /// The request's `x-request-id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    request_id: Option<Arc<str>>,
}

/// The schema name of every error body, for the OpenAPI document.
pub(crate) type ErrorBody = Body<'static>;

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retrieval: None,
            retry_after: None,
            request_id: None,
        }
    }

    /// Names the request in the body (for errors sent outside the request's task, such as a
    /// stream's `error` event).
    pub fn with_request_id(self, request_id: Option<Arc<str>>) -> Self {
        Self { request_id, ..self }
    }

    /// 400: a header has a value that cannot be used.
    pub fn invalid_header(header: &str, message: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_header",
            format!("{header}: {message}"),
        )
    }

    /// 503 with `Retry-After`: every generation slot stayed busy for the whole queue timeout.
    pub fn overloaded(queue_timeout: Duration) -> Self {
        Self {
            retry_after: Some(queue_timeout.max(Duration::from_secs(1))),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!(
                    "ragback is at its limit of concurrent generations and none finished within \
                     {} ms; retry after the time in Retry-After",
                    queue_timeout.as_millis()
                ),
            )
        }
    }

    /// Adds what retrieval found before the failure, so a model outage is told from a retrieval
    /// one.
    pub fn with_retrieval(self, retrieval: serde_json::Value) -> Self {
        Self {
            retrieval: Some(Box::new(retrieval)),
            ..self
        }
    }

    /// 400: the body is not JSON.
    pub fn malformed_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_json", message)
    }

    /// 422: a field is missing, of the wrong type, or has a value that is not allowed.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = format!("{field}: {}", message.into());
        Self {
            field: Some(field),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
        }
    }

    /// 413: the body is larger than the configured limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the request body is larger than {limit} bytes (RAGBACK_SERVER__BODY_LIMIT_BYTES)"
            ),
        )
    }

    /// 415: the body is not declared as JSON.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        )
    }

    /// 401: no bearer token, or not one of the configured keys.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a valid API key as `Authorization: Bearer <key>`",
        )
    }

    /// 403: a valid key that may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 500: something broke inside ragback; details go to the log only.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "ragback failed to handle the request; the cause is in its log",
        )
    }

    /// 404: no such route.
    pub fn not_found_route() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such route; see the README for the API",
        )
    }

    /// 404: the owner has no fact with this id.
    pub fn fact_not_found(owner: &FactOwner, id: &FactId) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "fact_not_found",
            format!("{} has no fact {id}", super::facts::describe(owner)),
        )
    }

    /// 503: no embedder, so facts cannot be embedded.
    fn embedder_not_configured() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "embedder_not_configured",
            "no embedder is configured: set RAGBACK_EMBEDDER__PROVIDER=local (after `make model`) or a Cohere key (COHERE_API_KEY)",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl ApiError {
    fn wire(&self) -> Body<'_> {
        Body {
            error: Detail {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
                request_id: self.request_id.clone().or_else(request_id::current),
            },
            retrieval: self.retrieval.as_deref(),
        }
    }

    /// The JSON body, as sent with the status (streamed replies send it in their `error` event).
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(self.wire()).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.wire())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        if let Some(after) = self.retry_after {
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<GenerateError> for ApiError {
    /// The mapping of generation failures. Exhaustive on purpose: a new variant must be decided
    /// here. 5xx bodies say what to do, not what broke inside; the cause goes to the log.
    fn from(error: GenerateError) -> Self {
        if !matches!(error, GenerateError::ModelNotConfigured(_)) {
            tracing::error!(error = %error, "generation failed");
        }
        let mapped = Self::of_generation(error);
        metrics::counter!("ragback_generations_total", "outcome" => mapped.code).increment(1);
        mapped
    }
}

impl ApiError {
    fn of_generation(error: GenerateError) -> Self {
        match error {
            GenerateError::ModelNotConfigured(hint) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "llm_not_configured", hint)
            }
            GenerateError::ModelFailed { attempts, source } => match source {
                ChatModelError::Rejected { status, message } => Self::new(
                    StatusCode::BAD_GATEWAY,
                    "llm_rejected",
                    format!(
                        "the language model provider refused the request ({status}: {message}); \
                         check RAGBACK_LLM__API_KEY and the model name"
                    ),
                ),
                ChatModelError::RateLimited { .. } => Self::new(
                    StatusCode::BAD_GATEWAY,
                    "llm_rate_limited",
                    format!(
                        "the language model provider kept rate limiting after {attempts} \
                         attempt(s); try again later"
                    ),
                ),
                ChatModelError::NotConfigured(hint) => {
                    Self::new(StatusCode::SERVICE_UNAVAILABLE, "llm_not_configured", hint)
                }
                ChatModelError::Unavailable { .. } | ChatModelError::InvalidResponse(_) => {
                    Self::new(
                        StatusCode::BAD_GATEWAY,
                        "llm_unavailable",
                        format!(
                            "the language model provider failed after {attempts} attempt(s); \
                             try again later"
                        ),
                    )
                }
            },
            GenerateError::DeadlineExceeded { deadline, attempts } => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "llm_timeout",
                format!(
                    "no reply within the deadline of {} ms ({attempts} model attempt(s)); \
                     RAGBACK_LLM__TIMEOUT_SECS, RAGBACK_SERVER__REQUEST_TIMEOUT_MS and the \
                     X-Request-Timeout header set it",
                    deadline.as_millis()
                ),
            ),
            GenerateError::EmptyReply => Self::new(
                StatusCode::BAD_GATEWAY,
                "llm_empty_reply",
                "the language model returned an empty reply twice; try again",
            ),
            GenerateError::Prompt(_) => Self::internal(),
        }
    }
}

impl From<FactStoreError> for ApiError {
    /// The mapping of store failures. Exhaustive on purpose.
    fn from(error: FactStoreError) -> Self {
        tracing::error!(error = %error, "fact store failed");
        match error {
            FactStoreError::Unavailable(_) | FactStoreError::Locked(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the fact store is unavailable; try again later",
            ),
            FactStoreError::ModelMismatch { .. } => Self::new(
                StatusCode::CONFLICT,
                "store_model_mismatch",
                error.to_string(),
            ),
            FactStoreError::DimensionMismatch { .. } => Self::new(
                StatusCode::CONFLICT,
                "store_dimension_mismatch",
                error.to_string(),
            ),
            FactStoreError::Corrupted(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store_corrupted",
                "the fact store holds data ragback cannot read; the cause is in its log",
            ),
        }
    }
}

impl From<AddFactsError> for ApiError {
    fn from(error: AddFactsError) -> Self {
        match error {
            AddFactsError::NoEmbedder => Self::embedder_not_configured(),
            AddFactsError::Embed { done, source } => {
                tracing::error!(error = %source, added = done.added, "embedding facts failed");
                Self::new(
                    StatusCode::BAD_GATEWAY,
                    "embedder_unavailable",
                    format!(
                        "the embedder failed after {} of {} new facts were stored; send the \
                         same facts again to finish",
                        done.added, done.to_add
                    ),
                )
            }
            AddFactsError::Interrupted { done } => {
                tracing::error!(added = done.added, "adding facts was interrupted");
                Self::internal()
            }
            AddFactsError::Store { source, .. } => source.into(),
        }
    }
}

impl From<SearchError> for ApiError {
    fn from(error: SearchError) -> Self {
        match error {
            SearchError::NoEmbedder => Self::embedder_not_configured(),
            SearchError::Embed(source) => {
                tracing::error!(error = %source, "embedding a search failed");
                Self::new(
                    StatusCode::BAD_GATEWAY,
                    "embedder_unavailable",
                    "the embedder failed; try again later",
                )
            }
            SearchError::Store(source) => source.into(),
        }
    }
}

/// 404 for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::not_found_route()
}

/// 405 for known routes with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

/// The response when a handler panicked: logged, and an opaque 500.
pub fn panicked(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "a request handler panicked");
    ApiError::internal().into_response()
}
