//! [`ChatService`]: the use case that writes the character's next line, and its settings. A turn
//! is built in `request`, run whole in `turn` or streamed in `stream`, and recorded in `record`.

use std::sync::Arc;
use std::time::Duration;

use crate::ports::{ChatModel, GenerationParams, PromptRenderer};
use crate::retrieval::FactRetriever;
use crate::retry::RetryPolicy;

/// Generation defaults, from configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatSettings {
    /// Model and sampling when the request does not override them.
    pub defaults: GenerationParams,
    /// How many of the latest messages go into the prompt, at most.
    pub history_messages: usize,
    /// The most tokens the prompt may take (for a model with a fixed context, never more than it
    /// holds beside the reply): older messages are left out until it fits.
    pub max_prompt_tokens: usize,
    /// Attempts at the model, backoff between them. A failed call and a reply that is empty once
    /// cleaned both use up an attempt, streamed or not.
    pub retry: RetryPolicy,
    /// Deadline of the model stage, retries included.
    pub timeout: Duration,
    /// Deadline of a whole turn (retrieval and model); a command may ask for a shorter one.
    pub request_timeout: Duration,
}

/// Writes the character's next line: retrieve → render → complete → clean.
#[derive(Clone)]
pub struct ChatService {
    pub(super) retriever: FactRetriever,
    pub(super) renderer: Arc<dyn PromptRenderer>,
    pub(super) model: Arc<dyn ChatModel>,
    pub(super) settings: ChatSettings,
}

impl ChatService {
    /// Wires the use case to its ports.
    pub fn new(
        retriever: FactRetriever,
        renderer: Arc<dyn PromptRenderer>,
        model: Arc<dyn ChatModel>,
        settings: ChatSettings,
    ) -> Self {
        Self {
            retriever,
            renderer,
            model,
            settings,
        }
    }

    /// The retriever, for callers that search facts directly.
    pub fn retriever(&self) -> &FactRetriever {
        &self.retriever
    }

    /// Whether the model can be called at all.
    pub fn model_configured(&self) -> bool {
        self.model.is_configured()
    }

    /// What answers (`local/SmolLM2-135M-Instruct-Q4_1 (in-process)`, an API's URL).
    pub fn model_description(&self) -> String {
        self.model.describe()
    }
}
