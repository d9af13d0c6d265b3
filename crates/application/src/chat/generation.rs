//! The output of [`ChatService::generate`](super::ChatService::generate).

use std::time::Duration;

use ragback_domain::ScoredFact;

use crate::ports::TokenUsage;
use crate::retrieval::RetrievalStatus;

/// Time spent in each stage of one generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimings {
    /// Embedding the retrieval query.
    pub embed: Duration,
    /// Searching the fact store.
    pub search: Duration,
    /// Rendering the prompt.
    pub render: Duration,
    /// Calling the model, retries included.
    pub llm: Duration,
    /// From the start of the model stage to the first generated token (streaming only).
    pub first_token: Option<Duration>,
    /// The whole generation; at least the sum of the stages.
    pub total: Duration,
}

/// What went into the prompt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PromptStats {
    /// Tokens of the prompt as the model counts them (an estimate for API models).
    pub tokens: usize,
    /// Chat messages it holds.
    pub messages: usize,
    /// Older messages left out to fit the token budget.
    pub dropped_messages: usize,
    /// The chat's first message in the prompt (those before it are left out: by the window,
    /// or the budget).
    pub history_from: usize,
    /// Tokens of the stable part (the first system message), the same from turn to turn.
    pub stable_tokens: usize,
    /// The messages the conversation's summary in the prompt covers (0: no summary).
    pub summarized: usize,
}

/// The character's next line, and how it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The cleaned reply.
    pub text: String,
    /// The facts given to the model, best first.
    pub facts: Vec<ScoredFact>,
    /// The lorebook entries put into the prompt, in their order.
    pub lore: Vec<crate::lore::LoreUse>,
    /// The model that answered (the provider's name for it, which may differ from the one asked
    /// for when it routes).
    pub model: String,
    /// The variant that wrote it.
    pub variant: String,
    /// Tokens used, summed over calls, when reported.
    pub usage: Option<TokenUsage>,
    /// How retrieval went.
    pub retrieval: RetrievalStatus,
    /// What went into the prompt.
    pub prompt: PromptStats,
    /// Stage timings.
    pub timings: StageTimings,
    /// What the guard found and did (`None` without a guard).
    pub safety: Option<crate::guard::SafetyOutcome>,
}
