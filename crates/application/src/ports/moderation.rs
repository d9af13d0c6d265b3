//! Port: a moderation classifier (OpenAI's `/moderations`), for the evaluation's floor.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

/// The classifier's answer for one text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModerationResult {
    /// Whether the classifier flags the text at all.
    pub flagged: bool,
    /// Its categories (`sexual/minors`, …) and whether each is flagged.
    pub categories: BTreeMap<String, bool>,
    /// The raw score of each category.
    pub scores: BTreeMap<String, f64>,
}

/// Why a moderation call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModerationError {
    /// Too many requests: retry after the given delay, when known.
    #[error("the moderation API is rate limiting: {message}")]
    RateLimited {
        /// `Retry-After`.
        retry_after: Option<Duration>,
        /// The API's message.
        message: String,
    },
    /// Unreachable or failing (5xx): worth retrying.
    #[error("the moderation API is unavailable: {0}")]
    Unavailable(String),
    /// The request was refused (bad key, bad model): do not retry.
    #[error("the moderation API refused the request ({status}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The API's message.
        message: String,
    },
    /// The answer is not a moderation result (or not one per text): worth one more try.
    #[error("the moderation API answered with an invalid response: {0}")]
    InvalidResponse(String),
}

/// A moderation classifier: one result per text, in order. Implementations do not retry.
#[async_trait]
pub trait Moderation: Send + Sync {
    /// The model it runs, for the records.
    fn model(&self) -> &str;

    /// Classifies `texts` (one batch).
    async fn moderate(&self, texts: &[String]) -> Result<Vec<ModerationResult>, ModerationError>;
}
