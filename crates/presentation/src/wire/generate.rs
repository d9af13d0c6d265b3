//! `POST /generate`'s answer, whole or as Server-Sent Events.

use std::time::Duration;

use ragback_application::guard::SafetyOutcome;
use ragback_application::lore::{LoreTrigger, LoreUse};
use ragback_application::{Generation, PromptStats, Retrieval, RetrievalStatus};
use ragback_domain::ScoredFact;
use serde::{Deserialize, Serialize};

use super::OwnerKindDto;

/// How retrieval went: `ok`, `skipped` (disabled, no embedder, nothing to embed) or `degraded`
/// (the embedder or the store failed; the reply goes on without facts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = RetrievalStatus)]
pub enum RetrievalStatusDto {
    /// The store was searched.
    Ok,
    /// Not attempted.
    Skipped,
    /// Failed; no facts.
    Degraded,
}

impl RetrievalStatusDto {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Skipped => "skipped",
            Self::Degraded => "degraded",
        }
    }
}

impl From<RetrievalStatus> for RetrievalStatusDto {
    fn from(status: RetrievalStatus) -> Self {
        match status {
            RetrievalStatus::Ok => Self::Ok,
            RetrievalStatus::Skipped => Self::Skipped,
            RetrievalStatus::Degraded => Self::Degraded,
        }
    }
}

/// A fact given to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = FactUsed)]
pub struct UsedFact {
    /// Its id.
    pub id: String,
    /// Whose fact.
    pub owner: OwnerKindDto,
    /// The fact.
    pub text: String,
    /// Its cosine similarity to the query.
    pub score: f32,
}

impl From<ScoredFact> for UsedFact {
    fn from(found: ScoredFact) -> Self {
        Self {
            id: found.fact.id.to_string(),
            owner: found.fact.owner.kind().into(),
            text: found.fact.text.as_str().to_owned(),
            score: found.score,
        }
    }
}

/// What retrieval found (`/generate` error bodies carry it as `retrieval`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RetrievalReport {
    /// How it went.
    pub status: RetrievalStatusDto,
    /// The facts, best first.
    pub facts: Vec<UsedFact>,
}

impl From<Retrieval> for RetrievalReport {
    fn from(retrieval: Retrieval) -> Self {
        Self {
            status: retrieval.status.into(),
            facts: retrieval.facts.into_iter().map(UsedFact::from).collect(),
        }
    }
}

/// The reply: `text`, the facts used, the model, token usage, retrieval status, stage timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GenerateResponse {
    /// The cleaned reply.
    pub text: String,
    /// The facts given to the model, best first.
    pub facts: Vec<UsedFact>,
    /// The lorebook entries put into the prompt, in their order.
    #[serde(default)]
    pub lore: Vec<UsedLore>,
    /// The model that answered, as the provider names it (with fallbacks, maybe not the one
    /// asked for).
    pub model: String,
    /// The variant that wrote the reply (`default` without an experiment).
    #[serde(default)]
    pub variant: String,
    /// Tokens, when the provider reports them.
    pub usage: Option<UsageDto>,
    /// How retrieval went.
    pub retrieval: RetrievalStatusDto,
    /// What went into the prompt.
    pub prompt: PromptDto,
    /// Stage timings in milliseconds.
    pub timings_ms: TimingsDto,
    /// What the reply guard found and did (absent when the guard is off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety: Option<SafetyDto>,
}

/// A lorebook entry put into the prompt, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsedLore {
    /// `character` (the card's `character_book`) or `scene` (the request's `lorebook`).
    pub book: String,
    /// The entry's id (its `id`, else its index in the book).
    pub id: String,
    /// Its name (`name`, else `comment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `constant`, `key` (a key in the chat) or `recursion` (a key in another entry).
    pub trigger: String,
    /// The key that matched, as the book writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// With `key`: how many messages back it was (1: the last message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_back: Option<usize>,
    /// With `recursion`: the entry whose content held the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Tokens it took.
    pub tokens: usize,
}

impl From<LoreUse> for UsedLore {
    fn from(used: LoreUse) -> Self {
        let (key, messages_back, from) = match used.trigger.clone() {
            LoreTrigger::Constant => (None, None, None),
            LoreTrigger::Key { key, messages_back } => (Some(key), Some(messages_back), None),
            LoreTrigger::Recursion { key, from } => (Some(key), None, Some(from)),
        };
        Self {
            book: used.source.as_str().to_owned(),
            id: used.id,
            name: used.name,
            trigger: used.trigger.kind().to_owned(),
            key,
            messages_back,
            from,
            tokens: used.tokens,
        }
    }
}

/// What the reply guard found and did: every reply is checked before it is returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SafetyDto {
    /// Tags any attempt raised: `self_harm`, `sexual`, `minor`, `real_meeting`, `hate`,
    /// `violence` (the safety floor), `assistant`, `user_voice`, `meta`, `truncated`, `banned`
    /// (breaking character).
    pub flags: Vec<String>,
    /// `pass` (as written), `regenerated` (written again once), `replaced` (an in-character
    /// deflection instead) or `trimmed` (ended at its last whole sentence).
    pub action: String,
    /// The user's message showed self-harm intent: show `referral` beside the reply.
    pub crisis: bool,
    /// The crisis referral (`RAGBACK_GUARD__REFERRAL`), set with `crisis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<String>,
    /// The guard could not check the reply (the policy decided: replaced when failing closed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unchecked: bool,
    /// Why, with `unchecked`: `unavailable` (down, or failing), `timeout`
    /// (`RAGBACK_GUARD__TIMEOUT_MS`) or `invalid_response`; the details are in the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchecked_reason: Option<String>,
}

impl From<SafetyOutcome> for SafetyDto {
    fn from(outcome: SafetyOutcome) -> Self {
        Self {
            flags: outcome.flags.iter().map(|t| t.key().to_owned()).collect(),
            action: outcome.action.as_str().to_owned(),
            crisis: outcome.crisis,
            referral: outcome.referral,
            unchecked: outcome.guard_error.is_some(),
            unchecked_reason: outcome.guard_error.map(str::to_owned),
        }
    }
}

/// What went into the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PromptDto {
    /// Tokens of the prompt as the model counts them (an estimate for API models).
    pub tokens: usize,
    /// Chat messages it holds.
    pub messages: usize,
    /// Older messages left out to fit `RAGBACK_PROMPT__MAX_PROMPT_TOKENS` (and a local model's
    /// context).
    pub dropped_messages: usize,
    /// Tokens of the stable part (the first system message), byte-identical from turn to turn
    /// for a user and a character: what a provider's prompt cache can hold.
    #[serde(default)]
    pub stable_tokens: usize,
    /// With a `conversation_id`: the conversation's first messages the summary in the prompt
    /// covers (0: no summary in it).
    #[serde(default)]
    pub summarized_messages: usize,
}

impl From<PromptStats> for PromptDto {
    fn from(stats: PromptStats) -> Self {
        Self {
            tokens: stats.tokens,
            messages: stats.messages,
            dropped_messages: stats.dropped_messages,
            stable_tokens: stats.stable_tokens,
            summarized_messages: stats.summarized,
        }
    }
}

/// Tokens used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageDto {
    /// Tokens of the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Prompt tokens the provider read from its prompt cache (OpenAI's and OpenRouter's
    /// `prompt_tokens_details.cached_tokens`; 0 when it does not say).
    #[serde(default)]
    pub cached_tokens: u32,
}

/// Stage timings in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimingsDto {
    /// Embedding the query.
    pub embed: f64,
    /// Searching the store.
    pub search: f64,
    /// Rendering the prompt.
    pub render: f64,
    /// The model, retries included.
    pub llm: f64,
    /// From the start of the model stage to the first token (streamed replies only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token: Option<f64>,
    /// The whole generation.
    pub total: f64,
}

/// Milliseconds, to the microsecond.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1_000.0
}

impl From<Generation> for GenerateResponse {
    fn from(g: Generation) -> Self {
        Self {
            text: g.text,
            facts: g.facts.into_iter().map(UsedFact::from).collect(),
            lore: g.lore.into_iter().map(UsedLore::from).collect(),
            model: g.model,
            variant: g.variant,
            usage: g.usage.map(|u| UsageDto {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                cached_tokens: u.cached_tokens,
            }),
            retrieval: g.retrieval.into(),
            prompt: g.prompt.into(),
            timings_ms: TimingsDto {
                embed: ms(g.timings.embed),
                search: ms(g.timings.search),
                render: ms(g.timings.render),
                llm: ms(g.timings.llm),
                first_token: g.timings.first_token.map(ms),
                total: ms(g.timings.total),
            },
            safety: g.safety.map(SafetyDto::from),
        }
    }
}

/// The stream's first event, `facts`: what retrieval gave the reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FactsEvent {
    /// How retrieval went.
    pub retrieval: RetrievalStatusDto,
    /// The facts, best first.
    pub facts: Vec<UsedFact>,
}

/// A `delta` event: the next piece of the clean reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeltaEvent {
    /// The piece.
    pub text: String,
}
