//! Building a turn's model request: the deadline, retrieval, the rendered prompt and the latest
//! messages that fit the token budget.

use std::time::Duration;

use ragback_domain::Role;
use tokio::time::Instant;

use super::{ChatService, GenerateCommand, GenerateError, PromptStats};
use crate::ports::{
    ChatModel, ChatRequest, GenerationParams, PromptContext, PromptMessage, PromptRole,
};
use crate::retrieval::Retrieval;
use crate::variants::Variant;

/// When a stage must be done, and the length of the limit that set it (for error messages).
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    pub(super) at: Instant,
    pub(super) length: Duration,
}

impl Deadline {
    pub(super) fn after(start: Instant, length: Duration) -> Self {
        Self {
            at: start + length,
            length,
        }
    }

    /// The earlier of the two.
    pub(super) fn min(self, other: Self) -> Self {
        if other.at < self.at { other } else { self }
    }
}

/// A rendered prompt, ready for the model.
pub(super) struct Prepared {
    pub(super) request: ChatRequest,
    /// Time spent rendering.
    pub(super) render: Duration,
    /// The character's name, for cleaning the reply.
    pub(super) speaker: String,
    /// The user's name, for cleaning the reply.
    pub(super) listener: String,
    /// What went into the prompt.
    pub(super) stats: PromptStats,
    /// The variant that wrote it.
    pub(super) variant: String,
    /// The guard of its replies, as the variant changes it (`None`: unchecked).
    pub(super) guard: Option<crate::guard::ReplyGuard>,
}

impl ChatService {
    /// The deadline of a turn starting at `started`: the configured one, or the command's when
    /// shorter.
    pub(super) fn turn_deadline(&self, started: Instant, asked: Option<Duration>) -> Deadline {
        let configured = self.settings.request_timeout;
        Deadline::after(started, asked.map_or(configured, |t| t.min(configured)))
    }

    /// The deadline of the model stage starting now: the stage's own limit or what is left of
    /// the turn, whichever ends first.
    pub(super) fn model_deadline(&self, turn: Deadline) -> Deadline {
        turn.min(Deadline::after(Instant::now(), self.settings.timeout))
    }

    /// Retrieval, then the prompt, as `variant` says; its replies checked by `guard` (the
    /// variant's, [`ChatService::guard_for`]). Retrieval never fails; the prompt may.
    pub(super) async fn prepare(
        &self,
        cmd: GenerateCommand,
        variant: &Variant,
        guard: Option<crate::guard::ReplyGuard>,
        deadline: Instant,
    ) -> (Retrieval, Result<Prepared, GenerateError>) {
        let GenerateCommand {
            messages,
            user,
            mut character,
            scenario,
            generation,
            retrieval: retrieval_overrides,
            timeout: _,
            variant: _,
        } = cmd;
        let retrieval_overrides = retrieval_overrides.or(&variant.retrieval);

        let owners = self
            .retriever
            .owners(user.id.as_ref(), character.id.as_ref());
        let retrieval = self
            .retriever
            .retrieve(&messages, owners, &retrieval_overrides, deadline)
            .await;

        let render_started = Instant::now();
        character.resolve_macros(user.name.as_str());
        let scenario = scenario
            .as_ref()
            .map(|s| s.as_str())
            .or_else(|| character.card.as_ref().and_then(|c| c.scenario.as_deref()));
        let prompt = match variant.renderer.render(&PromptContext {
            character: &character,
            user: &user,
            scenario,
            facts: &retrieval.facts,
            greeting: messages.is_empty(),
        }) {
            Ok(prompt) => prompt,
            Err(error) => return (retrieval, Err(error.into())),
        };
        let history = &messages[messages
            .len()
            .saturating_sub(self.settings.history_messages)..];
        let mut prompt_messages = Vec::with_capacity(history.len() + 2);
        prompt_messages.push(PromptMessage {
            role: PromptRole::System,
            content: prompt.system,
        });
        prompt_messages.extend(history.iter().map(|m| PromptMessage {
            role: match m.role {
                Role::User => PromptRole::User,
                Role::Character => PromptRole::Assistant,
            },
            content: m.text.as_str().to_owned(),
        }));
        if let Some(cue) = prompt.opening_cue.filter(|_| history.is_empty()) {
            prompt_messages.push(PromptMessage {
                role: PromptRole::User,
                content: cue,
            });
        }
        if let Some(after) = prompt.after_history {
            prompt_messages.push(PromptMessage {
                role: PromptRole::System,
                content: after,
            });
        }
        let defaults = &variant.params;
        let params = GenerationParams {
            model: generation.model.unwrap_or_else(|| defaults.model.clone()),
            temperature: generation.temperature.or(defaults.temperature),
            top_p: generation.top_p.or(defaults.top_p),
            max_tokens: generation.max_tokens.or(defaults.max_tokens),
            seed: generation.seed.or(defaults.seed),
            routing: defaults.routing.clone(),
        };
        let budget = prompt_budget(
            self.settings.max_prompt_tokens,
            self.model.context_tokens(),
            params.max_tokens,
        );
        let (messages, stats) = fit_to_budget(prompt_messages, self.model.as_ref(), budget);
        if stats.dropped_messages > 0 {
            tracing::info!(
                dropped = stats.dropped_messages,
                kept = stats.messages,
                tokens = stats.tokens,
                budget,
                "older messages left out of the prompt to fit its token budget"
            );
        }
        let request = ChatRequest {
            messages,
            params,
            json_schema: None,
        };
        tracing::debug!(prompt = ?request.messages, "prompt rendered");
        let prepared = Prepared {
            request,
            render: render_started.elapsed(),
            speaker: character.name.as_str().to_owned(),
            listener: user.name.as_str().to_owned(),
            stats,
            variant: variant.name.clone(),
            guard,
        };
        (retrieval, Ok(prepared))
    }
}

/// The tokens a prompt may take: the configured budget, and for a model with a fixed context no
/// more than what leaves room for the reply.
fn prompt_budget(configured: usize, context: Option<usize>, max_tokens: Option<u32>) -> usize {
    let reply = max_tokens.map_or(0, |n| n as usize);
    context.map_or(configured, |context| {
        configured.min(context.saturating_sub(reply))
    })
}

/// Leaves out the oldest chat messages until the prompt fits `budget` tokens. The system prompt
/// (first) and the last user message, with what follows it, always stay, even when they alone
/// do not fit: the model then says so.
fn fit_to_budget(
    mut messages: Vec<PromptMessage>,
    model: &dyn ChatModel,
    budget: usize,
) -> (Vec<PromptMessage>, PromptStats) {
    let counts: Vec<usize> = messages.iter().map(|m| model.count_tokens(m)).collect();
    let mut tokens: usize = counts.iter().sum();
    let keep_from = messages
        .iter()
        .rposition(|m| m.role == PromptRole::User)
        .unwrap_or(messages.len());
    let mut first = 1;
    while tokens > budget && first < keep_from {
        tokens -= counts[first];
        first += 1;
    }
    let dropped_messages = first - 1;
    messages.drain(1..first);
    let stats = PromptStats {
        tokens,
        // The chat's messages: not the system prompt, nor instructions after the history.
        messages: messages
            .iter()
            .skip(1)
            .filter(|m| m.role != PromptRole::System)
            .count(),
        dropped_messages,
    };
    (messages, stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ScriptedChatModel;

    fn message(role: PromptRole, words: usize) -> PromptMessage {
        PromptMessage {
            role,
            content: "word ".repeat(words).trim_end().to_owned(),
        }
    }

    #[test]
    fn the_budget_leaves_room_for_the_reply_within_a_fixed_context() {
        assert_eq!(prompt_budget(4_096, None, Some(200)), 4_096);
        assert_eq!(prompt_budget(4_096, Some(2_048), Some(200)), 1_848);
        assert_eq!(prompt_budget(1_000, Some(2_048), Some(200)), 1_000);
        assert_eq!(prompt_budget(1_000, Some(100), Some(200)), 0);
    }

    #[test]
    fn the_oldest_messages_go_first_and_the_system_prompt_and_last_user_message_stay() {
        let model = ScriptedChatModel::default();
        // 100 words = 500 bytes ≈ 129 tokens estimated (bytes / 4 + 4).
        let prompt = vec![
            message(PromptRole::System, 100),
            message(PromptRole::User, 100),
            message(PromptRole::Assistant, 100),
            message(PromptRole::User, 100),
            message(PromptRole::Assistant, 100),
            message(PromptRole::User, 100),
        ];
        let each = model.count_tokens(&prompt[0]);

        let (all, stats) = fit_to_budget(prompt.clone(), &model, 10_000);
        assert_eq!(all, prompt);
        assert_eq!(
            stats,
            PromptStats {
                tokens: 6 * each,
                messages: 5,
                dropped_messages: 0
            }
        );

        let (fitted, stats) = fit_to_budget(prompt.clone(), &model, 4 * each);
        assert_eq!(stats.dropped_messages, 2);
        assert_eq!(stats.tokens, 4 * each);
        assert_eq!(fitted[0], prompt[0], "the system prompt stays");
        assert_eq!(fitted[1..], prompt[3..], "the oldest two went, in order");

        let (least, stats) = fit_to_budget(prompt.clone(), &model, 1);
        assert_eq!(stats.dropped_messages, 4);
        assert_eq!(least, [prompt[0].clone(), prompt[5].clone()]);
    }

    #[test]
    fn what_follows_the_last_user_message_stays_with_it() {
        let model = ScriptedChatModel::default();
        let prompt = vec![
            message(PromptRole::System, 10),
            message(PromptRole::Assistant, 10),
            message(PromptRole::User, 10),
            message(PromptRole::Assistant, 10),
        ];
        let (fitted, stats) = fit_to_budget(prompt.clone(), &model, 1);
        assert_eq!(stats.dropped_messages, 1);
        assert_eq!(
            fitted,
            [prompt[0].clone(), prompt[2].clone(), prompt[3].clone()]
        );
    }
}
