//! The ports: what the use cases need from the outside world. Each has its own error enum whose
//! variants name the decision the caller must make.

mod chat_model;
mod embedder;
mod fact_store;
mod guard;
mod jobs;
mod memory_prompts;
mod moderation;
mod prompt;
mod reranker;
mod routing;
mod summary;

pub use chat_model::{
    ChatChunk, ChatModel, ChatModelError, ChatRequest, ChatStream, Completion, GenerationParams,
    PromptMessage, PromptRole, TokenUsage, estimate_tokens,
};
pub use embedder::{EmbedError, Embedder, EmbeddingPurpose};
pub use fact_store::{
    EmbeddedFact, FactPage, FactQuery, FactStore, FactStoreError, LexicalHit, StoreStatus,
    StoredFact, UpsertReport, ensure_same_model,
};
pub use guard::{Finding, Guard, GuardError, GuardInput, GuardTag, Speaker};
pub use jobs::{JobKind, JobStore, JobStoreError, QueuedJob};
pub use memory_prompts::MemoryPrompts;
pub use moderation::{Moderation, ModerationError, ModerationResult};
pub use prompt::{PromptContext, PromptError, PromptRenderer, RenderedPrompt};
pub use reranker::{RerankError, Reranker};
pub use routing::{
    DataCollection, ModelRouting, ProviderPreferences, ReasoningBudget, ReasoningEffort,
};
pub use summary::{SummaryPrompt, SummaryStore, SummaryStoreError};
