//! Port: turning texts into vectors.

use std::time::Duration;

use async_trait::async_trait;

/// What the texts will be used for; retrieval models embed queries and documents differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingPurpose {
    /// A chat message used to search facts.
    Query,
    /// A fact to be stored.
    Document,
}

/// Why embedding failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmbedError {
    /// Unreachable, timed out or failing (5xx): worth retrying.
    #[error("embedder unavailable: {0}")]
    Unavailable(String),
    /// Too many requests: retry after the given delay, when known.
    #[error("embedder rate limited")]
    RateLimited {
        /// The provider's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The credentials were refused: fix the configuration.
    #[error("embedder refused the credentials: {0}")]
    Unauthorized(String),
    /// The input was refused (too long, empty, unsupported): do not retry.
    #[error("embedder refused the input: {0}")]
    InvalidInput(String),
    /// The provider answered something that is not a valid embedding response.
    #[error("embedder answered with an invalid response: {0}")]
    InvalidResponse(String),
}

/// Turns texts into vectors.
///
/// Implementations must return exactly one vector per input text, in input order, every vector of
/// the same dimension, and must not retry on their own: the use cases own retries and deadlines.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// A stable name of the model (`cohere/embed-multilingual-v3.0`), for logs and stores.
    fn model_id(&self) -> &str;

    /// The most texts one call accepts.
    fn max_batch(&self) -> usize;

    /// Embeds `texts` for `purpose`.
    async fn embed(
        &self,
        texts: &[String],
        purpose: EmbeddingPurpose,
    ) -> Result<Vec<Vec<f32>>, EmbedError>;
}
