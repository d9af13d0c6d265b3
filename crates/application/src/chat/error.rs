//! Why a generation failed.

use std::time::Duration;

use crate::ports::{ChatModelError, PromptError};

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
