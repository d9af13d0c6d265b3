//! Port: a reranker that scores how relevant each candidate fact is to the query (Cohere's
//! rerank), as an optional stage after the vector search.

use std::time::Duration;

use async_trait::async_trait;

/// Why a rerank failed. Retrieval never fails because of it: it keeps the vector search's
/// order and says so in the log.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RerankError {
    /// Too many requests.
    #[error("the reranker is rate limiting: {message}")]
    RateLimited {
        /// `Retry-After`.
        retry_after: Option<Duration>,
        /// The API's message.
        message: String,
    },
    /// Unreachable or failing.
    #[error("the reranker is unavailable: {0}")]
    Unavailable(String),
    /// The request was refused (bad key, unknown model).
    #[error("the reranker refused the request ({status}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The API's message.
        message: String,
    },
    /// The answer does not score the documents sent.
    #[error("the reranker answered with an invalid response: {0}")]
    InvalidResponse(String),
}

/// A reranker: one relevance score per document, in the documents' order.
#[async_trait]
pub trait Reranker: Send + Sync {
    /// Its model, for logs.
    fn model(&self) -> &str;

    /// Scores `documents` against `query` (higher is more relevant).
    async fn rerank(&self, query: &str, documents: &[String]) -> Result<Vec<f32>, RerankError>;
}
