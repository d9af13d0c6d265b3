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
    },
    /// The model answered, twice, with nothing usable once cleaned.
    #[error("the language model returned an empty reply twice")]
    EmptyReply,
    /// The prompt template failed.
    #[error(transparent)]
    Prompt(#[from] PromptError),
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
