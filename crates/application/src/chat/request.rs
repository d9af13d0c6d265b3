//! Building a turn's model request: the deadline, retrieval, the rendered prompt and the latest
//! messages that fit the token budget.

use std::time::Duration;

use ragback_domain::{CharacterCard, Lorebook};
use tokio::time::Instant;

use super::conversation::{Chat, Conversation};
use super::layout::{Layout, window_start};
use super::{ChatService, GenerateCommand, GenerateError, PromptStats};
use crate::ports::{ChatRequest, GenerationParams, PromptContext, PromptMessage, PromptRole};
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
    /// The lorebook entries in the prompt.
    pub(super) lore: Vec<crate::lore::LoreUse>,
    /// The conversation's summary to extend once the reply is done.
    pub(super) summary_job: Option<crate::summary::SummaryJob>,
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
            mut lorebook,
            greeting,
            conversation,
            summarize_first,
        } = cmd;
        let retrieval_overrides = retrieval_overrides.or(&variant.retrieval);

        let owners = self
            .retriever
            .owners(user.id.as_ref(), character.id.as_ref());
        let retrieval = self
            .retriever
            .retrieve(&messages, owners, &retrieval_overrides, deadline)
            .await;

        let start = window_start(messages.len(), self.settings.history_messages);
        let chat = Chat {
            user: &user,
            character: &character,
            messages: &messages,
            window_start: start,
        };
        let conversation = self
            .conversation(conversation, summarize_first, chat, deadline)
            .await;

        let render_started = Instant::now();
        character.resolve_macros(user.name.as_str());
        if let Some(book) = &mut lorebook {
            book.resolve_macros(character.name.as_str(), user.name.as_str());
        }
        let defaults = &variant.params;
        let params = GenerationParams {
            model: generation.model.unwrap_or_else(|| defaults.model.clone()),
            temperature: generation.temperature.or(defaults.temperature),
            top_p: generation.top_p.or(defaults.top_p),
            max_tokens: generation.max_tokens.or(defaults.max_tokens),
            seed: generation.seed.or(defaults.seed),
            routing: defaults.routing.clone(),
            cache_control: defaults.cache_control,
        };
        let card = character.card.as_ref();
        let scenario = scenario
            .as_ref()
            .map(|s| s.as_str())
            .or_else(|| card.and_then(|c| c.scenario.as_deref()));
        let books: Vec<&Lorebook> = card
            .and_then(|c| c.character_book.as_ref())
            .into_iter()
            .chain(lorebook.as_ref())
            .collect();
        let count = |text: &str| {
            self.model.count_tokens(&PromptMessage {
                role: PromptRole::System,
                content: text.to_owned(),
            })
        };
        let lore = crate::lore::select(&books, &messages, &self.settings.lore, &count);
        let greeting_text = card.and_then(|c| greeting_of(c, greeting, params.seed));
        let render = |examples: bool| {
            variant.renderer.render(&PromptContext {
                character: &character,
                user: &user,
                scenario,
                facts: &retrieval.facts,
                greeting: messages.is_empty(),
                greeting_text,
                lore: &lore,
                summary: conversation.as_ref().and_then(Conversation::summary_text),
                examples,
            })
        };
        let budget = prompt_budget(
            self.settings.max_prompt_tokens,
            self.model.context_tokens(),
            params.max_tokens,
        );
        let model = self.model.as_ref();
        let window = self.settings.history_messages;
        let layout = match render(true) {
            Ok(prompt) => Layout::new(model, prompt, &messages, start, window),
            Err(error) => return (retrieval, Err(error.into())),
        };
        // Over budget with the card's example dialogue: it goes first, before any history.
        let has_examples = card.is_some_and(|c| c.mes_example.is_some());
        let layout = if has_examples && layout.tokens() > budget {
            tracing::debug!("the card's example dialogue left out to fit the token budget");
            match render(false) {
                Ok(prompt) => layout.with_prompt(model, prompt),
                Err(error) => return (retrieval, Err(error.into())),
            }
        } else {
            layout
        };
        let (prompt_messages, mut stats) = layout.fit(budget);
        let summary_job = conversation.and_then(|c| {
            stats.summarized = c.covers();
            let chat = Chat {
                user: &user,
                character: &character,
                messages: &messages,
                window_start: start,
            };
            c.job(chat, stats.history_from)
        });
        if stats.dropped_messages > 0 {
            tracing::info!(
                dropped = stats.dropped_messages,
                kept = stats.messages,
                tokens = stats.tokens,
                budget,
                "older messages left out of the prompt to fit its token budget"
            );
        }
        if lore.over_budget > 0 {
            tracing::debug!(
                left_out = lore.over_budget,
                "lorebook entries left out over the lore token budget"
            );
        }
        let request = ChatRequest {
            messages: prompt_messages,
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
            lore: lore.entries,
            summary_job,
        };
        (retrieval, Ok(prepared))
    }
}

/// The greeting shown as the example of the opening line: the one asked for, else picked by the
/// seed, else `first_mes`.
fn greeting_of(card: &CharacterCard, asked: Option<usize>, seed: Option<u64>) -> Option<&str> {
    let index =
        asked.unwrap_or_else(|| seed.map_or(0, |seed| (seed % card.greetings() as u64) as usize));
    card.greeting(index)
}

/// The tokens a prompt may take: the configured budget, and for a model with a fixed context no
/// more than what leaves room for the reply.
fn prompt_budget(configured: usize, context: Option<usize>, max_tokens: Option<u32>) -> usize {
    let reply = max_tokens.map_or(0, |n| n as usize);
    context.map_or(configured, |context| {
        configured.min(context.saturating_sub(reply))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_leaves_room_for_the_reply_within_a_fixed_context() {
        assert_eq!(prompt_budget(4_096, None, Some(200)), 4_096);
        assert_eq!(prompt_budget(4_096, Some(2_048), Some(200)), 1_848);
        assert_eq!(prompt_budget(1_000, Some(2_048), Some(200)), 1_000);
        assert_eq!(prompt_budget(1_000, Some(100), Some(200)), 0);
    }
}
