//! Building a turn's model request: the deadline, retrieval, the rendered prompt and the latest
//! messages.

use std::time::Duration;

use ragback_domain::Role;
use tokio::time::Instant;

use super::{ChatService, GenerateCommand, GenerateError};
use crate::ports::{ChatRequest, GenerationParams, PromptContext, PromptMessage, PromptRole};
use crate::retrieval::Retrieval;

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

    /// Retrieval, then the prompt. Retrieval never fails; the prompt may.
    pub(super) async fn prepare(
        &self,
        cmd: GenerateCommand,
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
        } = cmd;

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
        let prompt = match self.renderer.render(&PromptContext {
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
        let defaults = &self.settings.defaults;
        let request = ChatRequest {
            messages: prompt_messages,
            params: GenerationParams {
                model: generation.model.unwrap_or_else(|| defaults.model.clone()),
                temperature: generation.temperature.or(defaults.temperature),
                top_p: generation.top_p.or(defaults.top_p),
                max_tokens: generation.max_tokens.or(defaults.max_tokens),
            },
        };
        tracing::debug!(prompt = ?request.messages, "prompt rendered");
        let prepared = Prepared {
            request,
            render: render_started.elapsed(),
            speaker: character.name.as_str().to_owned(),
            listener: user.name.as_str().to_owned(),
        };
        (retrieval, Ok(prepared))
    }
}
