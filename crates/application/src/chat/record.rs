//! The record of one turn: its stage timings, its log line, and every generation metric
//! (`ragback_generations_total` by outcome, stage durations, facts per reply, tokens). Retrieval
//! records its own stages.

use std::time::Duration;

use tokio::time::Instant;

use super::{GenerateError, Generation, PromptStats, StageTimings};
use crate::ports::TokenUsage;
use crate::retrieval::Retrieval;

/// A turn under way, from its first instant.
#[derive(Debug, Clone, Copy)]
pub(super) struct TurnRecord {
    started: Instant,
}

/// What the model stage produced.
pub(super) struct Reply {
    /// The clean reply.
    pub(super) text: String,
    /// The model that answered.
    pub(super) model: String,
    /// Tokens of every attempt.
    pub(super) usage: Option<TokenUsage>,
    /// Time spent rendering the prompt.
    pub(super) render: Duration,
    /// Time spent in the model stage.
    pub(super) llm: Duration,
    /// From the start of the model stage to the first token (streaming only).
    pub(super) first_token: Option<Duration>,
    /// What went into the prompt.
    pub(super) prompt: PromptStats,
    /// The variant that wrote it.
    pub(super) variant: String,
    /// The lorebook entries in the prompt.
    pub(super) lore: Vec<crate::lore::LoreUse>,
    /// What the guard found and did (`None` without a guard).
    pub(super) safety: Option<crate::guard::SafetyOutcome>,
    /// The model stopped at its token limit (`finish_reason: length`): the reply may end
    /// mid-sentence.
    pub(super) cut: bool,
}

impl TurnRecord {
    /// A turn starting now.
    pub(super) fn start() -> Self {
        Self {
            started: Instant::now(),
        }
    }

    /// When it started.
    pub(super) fn started(&self) -> Instant {
        self.started
    }

    /// The generation of a turn that succeeded: timings, one log line, the metrics.
    pub(super) fn finish(self, retrieval: Retrieval, reply: Reply) -> Generation {
        let timings = StageTimings {
            embed: retrieval.embed,
            search: retrieval.search,
            render: reply.render,
            llm: reply.llm,
            first_token: reply.first_token,
            total: self.started.elapsed(),
        };
        let variant = reply.variant.clone();
        let stage = |name: &'static str, d: Duration| {
            metrics::histogram!(
                "ragback_stage_duration_seconds", "stage" => name, "variant" => variant.clone()
            )
            .record(d);
        };
        stage("render", timings.render);
        stage("llm", timings.llm);
        if let Some(first_token) = timings.first_token {
            stage("first_token", first_token);
        }
        stage("total", timings.total);
        count("ok", &reply.variant);
        metrics::histogram!("ragback_facts_per_reply", "variant" => variant.clone())
            .record(retrieval.facts.len() as f64);
        for used in &reply.lore {
            metrics::counter!(
                "ragback_lore_entries_total",
                "book" => used.source.as_str(),
                "trigger" => used.trigger.kind(),
            )
            .increment(1);
        }
        if let Some(usage) = reply.usage {
            let tokens = |kind: &'static str, n: u32| {
                metrics::counter!(
                    "ragback_llm_tokens_total", "kind" => kind, "variant" => variant.clone()
                )
                .increment(u64::from(n));
            };
            tokens("prompt", usage.prompt_tokens);
            tokens("completion", usage.completion_tokens);
            tokens("cached", usage.cached_tokens);
        }
        tracing::info!(
            retrieval = retrieval.status.as_str(),
            facts = retrieval.facts.len(),
            variant = %reply.variant,
            model = %reply.model,
            prompt_tokens = reply.prompt.tokens,
            dropped_messages = reply.prompt.dropped_messages,
            embed_ms = ms(timings.embed),
            search_ms = ms(timings.search),
            llm_ms = ms(timings.llm),
            total_ms = ms(timings.total),
            "reply generated"
        );
        Generation {
            text: reply.text,
            facts: retrieval.facts,
            lore: reply.lore,
            model: reply.model,
            variant: reply.variant,
            usage: reply.usage,
            retrieval: retrieval.status,
            prompt: reply.prompt,
            timings,
            safety: reply.safety,
        }
    }

    /// A turn that failed: counted by outcome (the caller reports the error itself).
    pub(super) fn fail(self, error: &GenerateError, variant: &str) {
        count(error.outcome(), variant);
    }
}

fn count(outcome: &'static str, variant: &str) {
    metrics::counter!(
        "ragback_generations_total", "outcome" => outcome, "variant" => variant.to_owned()
    )
    .increment(1);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}
