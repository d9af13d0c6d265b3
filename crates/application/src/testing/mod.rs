//! Deterministic in-process fakes of the ports, for tests (feature `test-utils`).
//!
//! They implement each port's contract honestly (ordering, owner isolation, dimensions) so that
//! use-case tests exercise real behaviour; end-to-end tests use the real adapters instead.

// Test helpers: failing loudly is their job.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod embedders;
mod jobs;
mod models;
mod renderer;
mod store;
pub mod store_contract;
mod summaries;

pub use embedders::{FailingEmbedder, WORD_DIMENSION, WordEmbedder};
pub use jobs::{InMemoryJobStore, job_store_contract};
pub use models::{EndlessChatModel, ScriptedChatModel, SilentChatModel, StallingChatModel};
pub use renderer::PlainRenderer;
pub use store::{InMemoryFactStore, seed};
pub use summaries::{InMemorySummaryStore, PlainSummaryPrompt, summary_store_contract};

/// A retry policy with millisecond backoff, for tests.
pub fn quick_retry(max_attempts: u32) -> crate::RetryPolicy {
    crate::RetryPolicy {
        max_attempts,
        initial_backoff: std::time::Duration::from_millis(1),
        max_backoff: std::time::Duration::from_millis(2),
    }
}

/// Retrieval on, top 3 above 0.3, the last user message as query, one second to embed.
pub fn retrieval_settings(
    default_user: Option<ragback_domain::UserId>,
    embed_retry: crate::RetryPolicy,
) -> crate::RetrievalSettings {
    crate::RetrievalSettings {
        enabled: true,
        top_k: 3,
        threshold: 0.3,
        margin: 2.0,
        rerank_threshold: 0.3,
        rerank_candidates: 10,
        query_context_weight: 0.0,
        query_messages: 1,
        query_last_alone: false,
        lexical_allowance: None,
        default_user,
        embed_timeout: std::time::Duration::from_secs(1),
        embed_retry,
    }
}
