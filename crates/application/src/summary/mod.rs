//! The rolling summary of a conversation: what fell out of the prompt's window, summarized by the
//! model off the reply's path and put into the next turns' prompts ("Earlier in this
//! conversation: …").
//!
//! A turn with a `conversation_id` reads the stored summary and uses it when it covers messages
//! the prompt no longer holds, and only those (and the history is the same one: the last message
//! it covers hashes the same). When messages beyond the summary were left out, the turn queues
//! a job after its reply: the worker extends the summary with the newly dropped messages (the
//! last summary and them, never the whole history again), or writes it from the start when
//! there is none it can extend. A failed or malformed summary changes nothing.

mod worker;

use std::sync::Arc;

use ragback_domain::{
    CharacterId, ConversationId, ConversationSummary, Message, SUMMARY_CHARS, UserId,
};

use crate::ports::{
    ChatModel, ChatModelError, ChatRequest, GenerationParams, PromptError, SummaryPrompt,
    SummaryStore, SummaryStoreError,
};

pub use worker::SummaryQueue;

/// Summary settings (`RAGBACK_SUMMARY__*`).
#[derive(Debug, Clone, PartialEq)]
pub struct SummarySettings {
    /// The model and sampling that write summaries.
    pub params: GenerationParams,
}

/// The hash of a message, as a summary records its last one.
pub fn message_hash(message: &Message) -> String {
    let role: &[u8] = match message.role {
        ragback_domain::Role::User => b"user",
        ragback_domain::Role::Character => b"character",
    };
    let hash = crate::stable_hash::fnv1a(&[role, message.text.as_str().as_bytes()]);
    format!("{hash:016x}")
}

/// Whether `summary` belongs with `messages` of a conversation with `character`: the same
/// character, and the last message it covers is there and the same.
pub fn matches(
    summary: &ConversationSummary,
    messages: &[Message],
    character: Option<&CharacterId>,
) -> bool {
    summary.character.as_ref() == character
        && summary.covers > 0
        && messages
            .get(summary.covers - 1)
            .is_some_and(|m| message_hash(m) == summary.last_hash)
}

/// A summary to write or extend: the conversation's messages up to the first one the prompt
/// still held.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryJob {
    /// Whose conversation.
    pub user: UserId,
    /// With whom.
    pub character: Option<CharacterId>,
    /// Which one.
    pub conversation: ConversationId,
    /// The names the summary uses.
    pub user_name: String,
    /// The character's name.
    pub character_name: String,
    /// The conversation's messages `0..n`: the summary is to cover them all.
    pub messages: Vec<Message>,
}

/// What a job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SummaryOutcome {
    /// The stored summary already covers the messages.
    UpToDate,
    /// Written from the first message.
    Written {
        /// Messages it covers.
        covers: usize,
    },
    /// The stored summary extended with the messages after it.
    Extended {
        /// Messages it covered before.
        from: usize,
        /// Messages it covers now.
        covers: usize,
    },
}

/// Why a summary was not written; the stored one (if any) is as it was.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] SummaryStoreError),
    /// The prompt could not be rendered.
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// The model failed.
    #[error("the model failed: {0}")]
    Model(#[from] ChatModelError),
    /// The model's answer is not a summary.
    #[error("the model's summary is unusable: {0}")]
    Malformed(&'static str),
}

impl SummaryError {
    /// For metrics: `store`, `prompt`, `model` or `malformed`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Store(_) => "store",
            Self::Prompt(_) => "prompt",
            Self::Model(_) => "model",
            Self::Malformed(_) => "malformed",
        }
    }
}

/// Writes and extends summaries.
#[derive(Clone)]
pub struct Summarizer {
    store: Arc<dyn SummaryStore>,
    model: Arc<dyn ChatModel>,
    prompt: Arc<dyn SummaryPrompt>,
    settings: SummarySettings,
}

impl Summarizer {
    /// A summarizer writing to `store` with `model`.
    pub fn new(
        store: Arc<dyn SummaryStore>,
        model: Arc<dyn ChatModel>,
        prompt: Arc<dyn SummaryPrompt>,
        settings: SummarySettings,
    ) -> Self {
        Self {
            store,
            model,
            prompt,
            settings,
        }
    }

    /// The store it writes to (turns read summaries from it).
    pub fn store(&self) -> &Arc<dyn SummaryStore> {
        &self.store
    }

    /// Runs one job: extends the stored summary to cover `job.messages`, or writes it anew.
    pub async fn run(&self, job: &SummaryJob) -> Result<SummaryOutcome, SummaryError> {
        let Some(last) = job.messages.last() else {
            return Ok(SummaryOutcome::UpToDate);
        };
        let target = job.messages.len();
        let stored = self
            .store
            .get_summary(&job.user, &job.conversation)
            .await?
            .filter(|s| matches(s, &job.messages, job.character.as_ref()));
        if stored.as_ref().is_some_and(|s| s.covers >= target) {
            return Ok(SummaryOutcome::UpToDate);
        }
        let from = stored.as_ref().map_or(0, |s| s.covers);
        let prompt = self.prompt.summarize(
            &job.character_name,
            &job.user_name,
            stored.as_ref().map(|s| s.text.as_str()),
            &job.messages[from..target],
        )?;
        let completion = self
            .model
            .complete(&ChatRequest {
                messages: prompt,
                params: self.settings.params.clone(),
                json_schema: None,
            })
            .await?;
        let text = usable(&completion.text)?;
        let summary = ConversationSummary {
            character: job.character.clone(),
            text,
            covers: target,
            last_hash: message_hash(last),
            prompt_hash: self.prompt.hash().to_owned(),
            model: completion.model,
            updated: crate::facts::now(),
        };
        self.store
            .put_summary(&job.user, &job.conversation, &summary)
            .await?;
        Ok(if from == 0 {
            SummaryOutcome::Written { covers: target }
        } else {
            SummaryOutcome::Extended {
                from,
                covers: target,
            }
        })
    }
}

/// The model's answer as a summary: trimmed, not empty, not too long, plain text.
fn usable(answer: &str) -> Result<String, SummaryError> {
    let text = answer.trim();
    if text.is_empty() {
        return Err(SummaryError::Malformed("empty"));
    }
    if text.chars().count() > SUMMARY_CHARS {
        return Err(SummaryError::Malformed("too long"));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t'))
    {
        return Err(SummaryError::Malformed("control characters"));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests;
