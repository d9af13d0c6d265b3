//! The error body every route answers with, and the codes it carries.

use serde::{Deserialize, Serialize};

/// Every error code the API answers with. Each code has one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body is not JSON.
    MalformedJson,
    /// 400: a header has a value that cannot be used (`X-Request-Timeout`).
    InvalidHeader,
    /// 400: a path parameter cannot be decoded (not UTF-8 once percent-decoded).
    InvalidPath,
    /// 401: no valid `Authorization: Bearer` key.
    Unauthorized,
    /// 403: a plain key on a route that changes facts, when admin keys are configured.
    Forbidden,
    /// 404: no such route.
    NotFound,
    /// 404: the owner has no fact with this id.
    FactNotFound,
    /// 404: the conversation has no summary (or summaries are off).
    SummaryNotFound,
    /// 405: the route does not take this method.
    MethodNotAllowed,
    /// 408: the request's body did not arrive within `RAGBACK_SERVER__BODY_TIMEOUT_MS`.
    RequestTimeout,
    /// 413: the body is larger than the limit.
    PayloadTooLarge,
    /// 415: the body is not declared as JSON.
    UnsupportedMediaType,
    /// 422: a field is missing, ill-typed or out of range; `field` names it.
    InvalidField,
    /// 409: the store holds vectors of another dimension.
    StoreDimensionMismatch,
    /// 409: the store holds facts of another embedding model.
    StoreModelMismatch,
    /// 409: an owner would hold more facts than `RAGBACK_STORE__MAX_FACTS_PER_OWNER`.
    FactLimitReached,
    /// 502: the model's answer was not the JSON asked for (memory extraction).
    LlmInvalidOutput,
    /// 500: ragback failed; the cause is in its log.
    InternalError,
    /// 500: the store holds data ragback cannot read.
    StoreCorrupted,
    /// 502: the embedder failed after retries.
    EmbedderUnavailable,
    /// 502: the LLM provider refused the request (bad key, unknown model).
    LlmRejected,
    /// 502: the LLM provider kept rate limiting.
    LlmRateLimited,
    /// 502: the LLM provider failed after retries.
    LlmUnavailable,
    /// 502: every attempt gave a reply that is empty once cleaned.
    LlmEmptyReply,
    /// 503: no embedder is configured.
    EmbedderNotConfigured,
    /// 503: the LLM is not configured; the message names the setting.
    LlmNotConfigured,
    /// 503: every generation slot stayed busy; `Retry-After` says when to retry.
    Overloaded,
    /// 503: the store cannot be reached.
    StoreUnavailable,
    /// 504: no reply within the deadline.
    LlmTimeout,
    /// 504: adding or searching facts, or an extraction, passed its deadline.
    UpstreamTimeout,
}

impl ErrorCode {
    /// The HTTP status that goes with the code.
    pub fn status(self) -> u16 {
        match self {
            Self::MalformedJson | Self::InvalidHeader | Self::InvalidPath => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound | Self::FactNotFound | Self::SummaryNotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::InvalidField => 422,
            Self::StoreDimensionMismatch | Self::StoreModelMismatch | Self::FactLimitReached => 409,
            Self::InternalError | Self::StoreCorrupted => 500,
            Self::EmbedderUnavailable
            | Self::LlmRejected
            | Self::LlmRateLimited
            | Self::LlmUnavailable
            | Self::LlmEmptyReply
            | Self::LlmInvalidOutput => 502,
            Self::EmbedderNotConfigured
            | Self::LlmNotConfigured
            | Self::Overloaded
            | Self::StoreUnavailable => 503,
            Self::LlmTimeout | Self::UpstreamTimeout => 504,
        }
    }

    /// The code as it appears in bodies and metrics (`llm_timeout`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::InvalidHeader => "invalid_header",
            Self::InvalidPath => "invalid_path",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::FactNotFound => "fact_not_found",
            Self::SummaryNotFound => "summary_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout => "request_timeout",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::InvalidField => "invalid_field",
            Self::StoreDimensionMismatch => "store_dimension_mismatch",
            Self::StoreModelMismatch => "store_model_mismatch",
            Self::FactLimitReached => "fact_limit_reached",
            Self::InternalError => "internal_error",
            Self::StoreCorrupted => "store_corrupted",
            Self::EmbedderUnavailable => "embedder_unavailable",
            Self::LlmRejected => "llm_rejected",
            Self::LlmRateLimited => "llm_rate_limited",
            Self::LlmUnavailable => "llm_unavailable",
            Self::LlmEmptyReply => "llm_empty_reply",
            Self::LlmInvalidOutput => "llm_invalid_output",
            Self::EmbedderNotConfigured => "embedder_not_configured",
            Self::LlmNotConfigured => "llm_not_configured",
            Self::Overloaded => "overloaded",
            Self::StoreUnavailable => "store_unavailable",
            Self::LlmTimeout => "llm_timeout",
            Self::UpstreamTimeout => "upstream_timeout",
        }
    }
}

/// Every error: `{"error": {"code", "message", "field"?, "request_id"?}, "retrieval"?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
    /// `/generate` only: what retrieval found before the model failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<super::RetrievalReport>,
}

/// The error itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable, one of [`ErrorCode`]'s (read as text, so a client older than the
    /// server still reads a newer code).
    #[schema(value_type = ErrorCode)]
    pub code: String,
    /// For people: what happened and what to do.
    pub message: String,
    /// The offending field's path, for input errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request's `x-request-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialise_as_their_names() {
        for code in [
            ErrorCode::MalformedJson,
            ErrorCode::LlmTimeout,
            ErrorCode::StoreDimensionMismatch,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }
}
