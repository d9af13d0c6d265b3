//! Every error the API returns, and the one place that maps use-case errors to HTTP.
//!
//! The `From` conversions are pure and exhaustive (no `_`), so a new variant forces a decision
//! here. 5xx bodies say what to do, not what broke inside: the cause goes to the log when the
//! response is built ([`ApiError::report`]).

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ragback_application::facts::ChangeError;
use ragback_application::memory::MemoryError;
use ragback_application::ports::{ChatModelError, FactStoreError, SummaryStoreError};
use ragback_application::retrieval::SearchError;
use ragback_application::retry::RetryError;
use ragback_application::{AddFactsError, GenerateError};
use ragback_domain::{FactId, FactOwner, OwnerKind};

use super::auth::Caller;
use super::request_id;
use crate::wire::{ErrorBody, ErrorCode, ErrorDetail, RetrievalReport};

/// An error response: a code (which sets the status), a message, and what the log needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    field: Option<String>,
    /// What retrieval found before a generation failed (`/generate` only).
    retrieval: Option<Box<RetrievalReport>>,
    /// Sent as `Retry-After` (whole seconds).
    retry_after: Option<Duration>,
    /// The request's id; when `None`, the id of the request being handled on this task.
    request_id: Option<Arc<str>>,
    /// What failed inside, for the log only.
    cause: Option<String>,
}

impl ApiError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
            retrieval: None,
            retry_after: None,
            request_id: None,
            cause: None,
        }
    }

    /// Keeps `cause` for the log (never for the body).
    fn because(self, cause: impl std::fmt::Display) -> Self {
        Self {
            cause: Some(cause.to_string()),
            ..self
        }
    }

    /// Names the request in the body (for errors sent outside the request's task, such as a
    /// stream's `error` event).
    pub fn with_request_id(self, request_id: Option<Arc<str>>) -> Self {
        Self { request_id, ..self }
    }

    /// Adds what retrieval found before the failure, so a model outage is told from a retrieval
    /// one.
    pub fn with_retrieval(self, retrieval: RetrievalReport) -> Self {
        Self {
            retrieval: Some(Box::new(retrieval)),
            ..self
        }
    }

    /// 400: a header has a value that cannot be used.
    pub fn invalid_header(header: &str, message: &str) -> Self {
        Self::new(ErrorCode::InvalidHeader, format!("{header}: {message}"))
    }

    /// 503 with `Retry-After`: every generation slot stayed busy for the whole queue timeout.
    pub fn overloaded(queue_timeout: Duration) -> Self {
        Self {
            retry_after: Some(queue_timeout.max(Duration::from_secs(1))),
            ..Self::new(
                ErrorCode::Overloaded,
                format!(
                    "ragback is at its limit of concurrent generations and none finished within \
                     {} ms; retry after the time in Retry-After",
                    queue_timeout.as_millis()
                ),
            )
        }
    }

    /// 504: a call outside generation (adding or searching facts, extraction) passed its deadline.
    pub fn upstream_timeout(what: &str, deadline: Duration) -> Self {
        Self::new(
            ErrorCode::UpstreamTimeout,
            format!(
                "{what} did not finish within {} ms (RAGBACK_SERVER__REQUEST_TIMEOUT_MS); what \
                 was stored before is kept: send the same call again to finish",
                deadline.as_millis()
            ),
        )
    }

    /// 408: the request's body did not arrive within the body timeout.
    pub fn body_timeout(timeout: Duration) -> Self {
        Self::new(
            ErrorCode::RequestTimeout,
            format!(
                "the request body did not arrive within {} ms \
                 (RAGBACK_SERVER__BODY_TIMEOUT_MS)",
                timeout.as_millis()
            ),
        )
    }

    /// 400: the path's parameters cannot be decoded (not UTF-8 once percent-decoded).
    pub fn invalid_path(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidPath, message)
    }

    /// 400: the body is not JSON.
    pub fn malformed_json(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::MalformedJson, message)
    }

    /// 422: a field is missing, of the wrong type, or has a value that is not allowed.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = format!("{field}: {}", message.into());
        Self {
            field: Some(field),
            ..Self::new(ErrorCode::InvalidField, message)
        }
    }

    /// 413: the body is larger than the configured limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the request body is larger than {limit} bytes (RAGBACK_SERVER__BODY_LIMIT_BYTES)"
            ),
        )
    }

    /// 415: the body is not declared as JSON.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as JSON with `Content-Type: application/json`",
        )
    }

    /// 401: no bearer token, or not one of the configured keys.
    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "send a valid API key as `Authorization: Bearer <key>`",
        )
    }

    /// 403: a valid key that may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// 500: something broke inside ragback; `cause` goes to the log only.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorCode::InternalError,
            "ragback failed to handle the request; the cause is in its log",
        )
        .because(cause)
    }

    /// 404: no such route.
    pub fn not_found_route() -> Self {
        Self::new(
            ErrorCode::NotFound,
            "no such route; /openapi.json lists them",
        )
    }

    /// 405: a known route with a method it does not take.
    pub fn method_not_allowed() -> Self {
        Self::new(
            ErrorCode::MethodNotAllowed,
            "this route does not accept that method",
        )
    }

    /// 404: the owner has no fact with this id.
    pub fn fact_not_found(owner: &FactOwner, id: &FactId) -> Self {
        let owner = match owner.kind() {
            OwnerKind::User => format!("user `{}`", owner.id()),
            OwnerKind::Character => format!("character `{}`", owner.id()),
        };
        Self::new(ErrorCode::FactNotFound, format!("{owner} has no fact {id}"))
    }

    /// 404: the conversation has no summary.
    pub fn summary_not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::SummaryNotFound, message)
    }

    /// 503: no embedder, so facts cannot be embedded.
    fn embedder_not_configured() -> Self {
        Self::new(
            ErrorCode::EmbedderNotConfigured,
            "no embedder is configured: set RAGBACK_EMBEDDER__PROVIDER=local (after `make model`) \
             or a Cohere key (COHERE_API_KEY)",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The machine-readable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// Logs the cause of a failure that is ragback's or an upstream's (the client's own mistakes
    /// are not logged): called wherever the response is built, a stream's `error` event too.
    pub fn report(&self) {
        if let Some(cause) = &self.cause {
            tracing::error!(code = self.code.as_str(), %cause, "request failed");
        }
    }

    /// The JSON body, as sent with the status (streamed replies send it in their `error` event).
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().to_owned(),
                message: self.message.clone(),
                field: self.field.clone(),
                request_id: self
                    .request_id
                    .clone()
                    .or_else(request_id::current)
                    .map(|id| id.to_string()),
            },
            retrieval: self.retrieval.as_deref().cloned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.report();
        let mut response = (self.status(), Json(self.body())).into_response();
        if self.code == ErrorCode::Unauthorized {
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
    /// The mapping of generation failures; the codes are the failures' metric outcomes.
    fn from(error: GenerateError) -> Self {
        let cause = error.to_string();
        let mapped = match error {
            GenerateError::ModelNotConfigured(hint) => {
                return Self::new(ErrorCode::LlmNotConfigured, hint);
            }
            GenerateError::ModelFailed { attempts, source } => match source {
                ChatModelError::Rejected { status, message } => Self::new(
                    ErrorCode::LlmRejected,
                    format!(
                        "the language model provider refused the request ({status}: {message}); \
                         check RAGBACK_LLM__API_KEY and the model name"
                    ),
                ),
                ChatModelError::RateLimited { .. } => Self::new(
                    ErrorCode::LlmRateLimited,
                    format!(
                        "the language model provider kept rate limiting after {attempts} \
                         attempt(s); try again later"
                    ),
                ),
                ChatModelError::NotConfigured(hint) => {
                    return Self::new(ErrorCode::LlmNotConfigured, hint);
                }
                ChatModelError::Unavailable { .. } | ChatModelError::InvalidResponse(_) => {
                    Self::new(
                        ErrorCode::LlmUnavailable,
                        format!(
                            "the language model provider failed after {attempts} attempt(s); \
                             try again later"
                        ),
                    )
                }
            },
            GenerateError::DeadlineExceeded {
                deadline,
                attempts,
                hint,
            } => Self::new(
                ErrorCode::LlmTimeout,
                format!(
                    "no reply within the deadline of {} ms ({attempts} model attempt(s)); \
                     RAGBACK_LLM__TIMEOUT_SECS, RAGBACK_SERVER__REQUEST_TIMEOUT_MS and the \
                     X-Request-Timeout header set it{}",
                    deadline.as_millis(),
                    hint.map(|h| format!("; {h}")).unwrap_or_default()
                ),
            ),
            GenerateError::EmptyReply { attempts } => Self::new(
                ErrorCode::LlmEmptyReply,
                format!("the language model returned an empty reply {attempts} time(s); try again"),
            ),
            GenerateError::Prompt(_) => return Self::internal(cause),
        };
        mapped.because(cause)
    }
}

impl From<FactStoreError> for ApiError {
    /// The mapping of store failures.
    fn from(error: FactStoreError) -> Self {
        let cause = error.to_string();
        match error {
            // A misconfigured store is the operator's to fix (the cause is logged, and /ready
            // says not ready): to a client it is a store that is not there.
            FactStoreError::Unavailable(_)
            | FactStoreError::Locked(_)
            | FactStoreError::Misconfigured(_) => Self::new(
                ErrorCode::StoreUnavailable,
                "the fact store is unavailable; try again later",
            ),
            FactStoreError::ModelMismatch { .. } => {
                Self::new(ErrorCode::StoreModelMismatch, error.to_string())
            }
            FactStoreError::DimensionMismatch { .. } => {
                Self::new(ErrorCode::StoreDimensionMismatch, error.to_string())
            }
            FactStoreError::Corrupted(_) => Self::new(
                ErrorCode::StoreCorrupted,
                "the fact store holds data ragback cannot read; the cause is in its log",
            ),
        }
        .because(cause)
    }
}

impl From<SummaryStoreError> for ApiError {
    /// The mapping of summary store failures.
    fn from(error: SummaryStoreError) -> Self {
        let cause = error.to_string();
        match error {
            SummaryStoreError::Unavailable(_) => Self::new(
                ErrorCode::StoreUnavailable,
                "the fact store is unavailable; try again later",
            ),
            SummaryStoreError::Corrupted(_) => Self::new(
                ErrorCode::StoreCorrupted,
                "the fact store holds a summary ragback cannot read; the cause is in its log",
            ),
        }
        .because(cause)
    }
}

impl From<AddFactsError> for ApiError {
    /// The mapping of failures to add facts.
    fn from(error: AddFactsError) -> Self {
        match error {
            AddFactsError::NoEmbedder => Self::embedder_not_configured(),
            AddFactsError::Embed { done, source } => Self::new(
                ErrorCode::EmbedderUnavailable,
                format!(
                    "the embedder failed after {} of {} new facts were stored; send the same \
                     facts again to finish",
                    done.added, done.to_add
                ),
            )
            .because(source),
            AddFactsError::Interrupted { done } => Self::internal(format!(
                "adding facts was interrupted after {} were stored",
                done.added
            )),
            AddFactsError::OwnerFull { .. } => {
                Self::new(ErrorCode::FactLimitReached, error.to_string())
            }
            AddFactsError::Store { source, .. } => source.into(),
        }
    }
}

impl From<SearchError> for ApiError {
    /// The mapping of failed searches.
    fn from(error: SearchError) -> Self {
        match error {
            SearchError::NoEmbedder => Self::embedder_not_configured(),
            SearchError::Embed(source) => Self::new(
                ErrorCode::EmbedderUnavailable,
                "the embedder failed; try again later",
            )
            .because(source),
            SearchError::Store(source) => source.into(),
            // Only measurement runs rerank a direct search; the API's search does not.
            SearchError::Rerank(source) => Self::new(
                ErrorCode::EmbedderUnavailable,
                "the reranker failed; try again later",
            )
            .because(source),
        }
    }
}

/// `text` with control and invisible formatting characters replaced by `�` and cut to 200
/// characters: safe to echo in a message or a log line.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .take(200)
        .map(|c| {
            if c.is_control() || ragback_domain::is_invisible_format(c) {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// 404 for unknown routes (401 first for a caller without a valid key, when keys are configured:
/// which routes exist is not told to strangers).
pub async fn not_found(caller: Option<Extension<Caller>>) -> ApiError {
    match caller.map(|Extension(c)| c.grant()) {
        Some(None) => ApiError::unauthorized(),
        _ => ApiError::not_found_route(),
    }
}

/// 405 for known routes with the wrong method (401 first, like [`not_found`]).
pub async fn method_not_allowed(caller: Option<Extension<Caller>>) -> ApiError {
    match caller.map(|Extension(c)| c.grant()) {
        Some(None) => ApiError::unauthorized(),
        _ => ApiError::method_not_allowed(),
    }
}

/// The response when a handler panicked: an opaque 500, the panic in the log.
pub fn panicked(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError::internal(format!("a request handler panicked: {detail}")).into_response()
}

impl From<MemoryError> for ApiError {
    /// The mapping of memory extraction failures.
    fn from(error: MemoryError) -> Self {
        let cause = error.to_string();
        let mapped = match error {
            MemoryError::NoModel => {
                return Self::new(
                    ErrorCode::LlmNotConfigured,
                    "no language model is configured for memory extraction",
                );
            }
            MemoryError::NoEmbedder => {
                return Self::new(
                    ErrorCode::EmbedderNotConfigured,
                    "no embedder is configured, so proposed facts cannot be compared",
                );
            }
            MemoryError::Model(RetryError::DeadlineExceeded { attempts }) => Self::new(
                ErrorCode::LlmTimeout,
                format!("the memory model did not answer in time ({attempts} attempt(s))"),
            ),
            MemoryError::Model(RetryError::Failed { attempts, last }) => {
                let code = match last {
                    ChatModelError::Rejected { .. } => ErrorCode::LlmRejected,
                    ChatModelError::RateLimited { .. } => ErrorCode::LlmRateLimited,
                    ChatModelError::NotConfigured(_) => ErrorCode::LlmNotConfigured,
                    ChatModelError::Unavailable { .. } | ChatModelError::InvalidResponse(_) => {
                        ErrorCode::LlmUnavailable
                    }
                };
                Self::new(
                    code,
                    format!("the memory model failed after {attempts} attempt(s); try again later"),
                )
            }
            MemoryError::InvalidOutput(_) => Self::new(
                ErrorCode::LlmInvalidOutput,
                "the memory model did not answer with the JSON asked for; nothing was changed",
            ),
            MemoryError::Embed(_) | MemoryError::NoVector => Self::new(
                ErrorCode::EmbedderUnavailable,
                "embedding a proposed fact failed; nothing was changed",
            ),
            MemoryError::Changes(ChangeError::Partial { applied, total, .. }) => Self::new(
                ErrorCode::StoreUnavailable,
                format!(
                    "the fact store failed after {applied} of {total} changes were made, and \
                     they could not be undone; list the user's facts to see where it stands"
                ),
            ),
            MemoryError::Interrupted(_) | MemoryError::Prompt(_) => return Self::internal(cause),
            MemoryError::Store(e) => return e.into(),
            MemoryError::Add(e) | MemoryError::Changes(ChangeError::Refused(e)) => {
                return e.into();
            }
        };
        mapped.because(cause)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn each_generation_failure_is_answered_with_its_metric_outcome() {
        let failures = [
            GenerateError::ModelNotConfigured("set it".into()),
            GenerateError::ModelFailed {
                attempts: 3,
                source: ChatModelError::unavailable("502"),
            },
            GenerateError::ModelFailed {
                attempts: 1,
                source: ChatModelError::Rejected {
                    status: 401,
                    message: "bad key".into(),
                },
            },
            GenerateError::ModelFailed {
                attempts: 3,
                source: ChatModelError::RateLimited {
                    retry_after: None,
                    message: "slow down".into(),
                },
            },
            GenerateError::ModelFailed {
                attempts: 2,
                source: ChatModelError::InvalidResponse("not JSON".into()),
            },
            GenerateError::DeadlineExceeded {
                deadline: Duration::from_secs(3),
                attempts: 1,
                hint: None,
            },
            GenerateError::EmptyReply { attempts: 3 },
            GenerateError::Prompt(ragback_application::ports::PromptError::Template(
                "broken".into(),
            )),
        ];
        for failure in failures {
            let outcome = failure.outcome();
            assert_eq!(ApiError::from(failure).code().as_str(), outcome);
        }
    }

    #[test]
    fn server_failures_keep_their_cause_out_of_the_body() {
        let error = ApiError::from(FactStoreError::Unavailable("disk on fire".into()));
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = serde_json::to_string(&error.body()).unwrap();
        assert!(!body.contains("disk on fire"), "{body}");
        assert_eq!(
            error.cause.as_deref(),
            Some("fact store unavailable: disk on fire")
        );
        assert!(
            ApiError::unauthorized().cause.is_none(),
            "a client's mistake is not logged"
        );
    }
}
