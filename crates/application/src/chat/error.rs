//! Why a generation failed.

use std::time::Duration;

use crate::ports::{ChatModelError, PromptError};
use crate::retrieval::Retrieval;

/// Why no reply could be generated. Retrieval failures never appear here: they degrade.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GenerateError {
    /// The model has no credentials; the message says which setting to provide.
    #[error("{0}")]
    ModelNotConfigured(String),
    /// The model failed permanently or kept failing until retries ran out.
    #[error("the language model failed after {attempts} attempt(s): {source}")]
    ModelFailed {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        source: ChatModelError,
    },
    /// The model did not answer within the deadline.
    #[error("the language model did not answer within {}s ({attempts} attempt(s))", deadline.as_secs_f32())]
    DeadlineExceeded {
        /// The deadline.
        deadline: Duration,
        /// Attempts made.
        attempts: u32,
        /// What to change when the model itself is the slow part (the in-process model's threads).
        hint: Option<String>,
    },
    /// Every attempt gave a reply that is empty once cleaned.
    #[error("the language model returned an empty reply {attempts} time(s)")]
    EmptyReply {
        /// Attempts made.
        attempts: u32,
    },
    /// The prompt template failed.
    #[error(transparent)]
    Prompt(#[from] PromptError),
}

impl GenerateError {
    /// A short, stable name of the failure, the `outcome` label of `ragback_generations_total`
    /// (the API's error codes use the same names).
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::ModelNotConfigured(_) => "llm_not_configured",
            Self::ModelFailed { source, .. } => match source {
                ChatModelError::NotConfigured(_) => "llm_not_configured",
                ChatModelError::Rejected { .. } => "llm_rejected",
                ChatModelError::RateLimited { .. } => "llm_rate_limited",
                ChatModelError::Unavailable { .. } | ChatModelError::InvalidResponse(_) => {
                    "llm_unavailable"
                }
            },
            Self::DeadlineExceeded { .. } => "llm_timeout",
            Self::EmptyReply { .. } => "llm_empty_reply",
            Self::Prompt(_) => "internal_error",
        }
    }
}

/// A failed generation, with what retrieval found before the model failed (so callers can tell
/// a model outage from a retrieval one).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct GenerateFailure {
    /// What failed.
    pub error: GenerateError,
    /// The retrieval that ran before the failure.
    pub retrieval: Option<Retrieval>,
}

impl From<GenerateError> for GenerateFailure {
    fn from(error: GenerateError) -> Self {
        Self {
            error,
            retrieval: None,
        }
    }
}
