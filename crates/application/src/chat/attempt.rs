//! One attempt at the model, for both the whole and the streamed reply: what makes it fail, and
//! the generation error once attempts run out. This is the one empty-reply policy: a reply that
//! is empty once cleaned is a failed attempt like a 503, asked for again within the same attempts
//! and deadline.

use std::fmt;
use std::sync::Mutex;

use super::GenerateError;
use super::request::Deadline;
use crate::ports::{ChatModelError, TokenUsage};
use crate::retry::{RetryDecision, RetryError, Retryable};

/// Why one attempt gave no usable reply.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum AttemptError {
    /// The model call failed.
    Model(ChatModelError),
    /// The model answered, but nothing is left once the reply is cleaned.
    Empty,
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Model(error) => error.fmt(f),
            Self::Empty => f.write_str("the reply is empty once cleaned"),
        }
    }
}

impl From<ChatModelError> for AttemptError {
    fn from(error: ChatModelError) -> Self {
        Self::Model(error)
    }
}

impl Retryable for AttemptError {
    fn retry_decision(&self) -> RetryDecision {
        match self {
            Self::Model(error) => error.retry_decision(),
            Self::Empty => RetryDecision::Retry { after: None },
        }
    }

    fn cause(&self) -> &'static str {
        match self {
            Self::Model(error) => error.cause(),
            Self::Empty => "empty_reply",
        }
    }
}

/// The generation error for attempts that did not succeed before `deadline`.
pub(super) fn generation_error(
    error: RetryError<AttemptError>,
    deadline: Deadline,
    hint: Option<String>,
) -> GenerateError {
    match error {
        RetryError::Failed {
            last: AttemptError::Model(ChatModelError::NotConfigured(hint)),
            ..
        } => GenerateError::ModelNotConfigured(hint),
        RetryError::Failed {
            attempts,
            last: AttemptError::Empty,
        } => GenerateError::EmptyReply { attempts },
        RetryError::Failed {
            attempts,
            last: AttemptError::Model(source),
        } => GenerateError::ModelFailed { attempts, source },
        RetryError::DeadlineExceeded { attempts } => GenerateError::DeadlineExceeded {
            deadline: deadline.length,
            attempts,
            hint,
        },
    }
}

/// The tokens of every attempt that reached the model, empty replies included.
#[derive(Debug, Default)]
pub(super) struct UsageTally(Mutex<Option<TokenUsage>>);

impl UsageTally {
    /// Adds one attempt's usage, when reported.
    pub(super) fn add(&self, usage: Option<TokenUsage>) {
        let Some(usage) = usage else { return };
        if let Ok(mut total) = self.0.lock() {
            *total = Some(total.map_or(usage, |t| t.plus(usage)));
        }
    }

    /// The sum, when any attempt reported usage.
    pub(super) fn total(&self) -> Option<TokenUsage> {
        self.0.lock().ok().and_then(|total| *total)
    }
}
