//! [`ChatService`]: the use case that writes the character's next line, and its settings. A turn
//! is built in `request`, run whole in `turn` or streamed in `stream`, and recorded in `record`.

use std::sync::Arc;
use std::time::Duration;

use crate::ports::{ChatModel, GenerationParams, PromptRenderer};
use crate::retrieval::{FactRetriever, RetrievalOverrides};
use crate::retry::RetryPolicy;
use crate::variants::{DEFAULT_VARIANT, Variant, VariantSet, Variants};

/// Generation defaults, from configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatSettings {
    /// Model and sampling of the default variant (the only one, unless
    /// [`ChatService::with_variants`] gives others).
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
    /// Lorebooks: scan depth, token budget, recursion.
    pub lore: crate::lore::LoreSettings,
}

/// Writes the character's next line: retrieve → render → complete → clean, the way the user's
/// variant says.
#[derive(Clone)]
pub struct ChatService {
    pub(super) retriever: FactRetriever,
    pub(super) model: Arc<dyn ChatModel>,
    pub(super) settings: ChatSettings,
    pub(super) variants: Variants,
    pub(super) guard: Option<crate::guard::ReplyGuard>,
    pub(super) summaries: Option<crate::summary::SummaryQueue>,
}

impl ChatService {
    /// Wires the use case to its ports, with one variant for everyone: `renderer` and
    /// `settings.defaults`.
    pub fn new(
        retriever: FactRetriever,
        renderer: Arc<dyn PromptRenderer>,
        model: Arc<dyn ChatModel>,
        settings: ChatSettings,
    ) -> Self {
        let default = Variant {
            name: DEFAULT_VARIANT.to_owned(),
            params: settings.defaults.clone(),
            renderer,
            retrieval: RetrievalOverrides::default(),
            guard: None,
        };
        Self {
            retriever,
            model,
            settings,
            variants: Variants::new(VariantSet::single(default)),
            guard: None,
            summaries: None,
        }
    }

    /// The same service with rolling summaries: turns with a conversation id read them, and
    /// queue their extension on `queue` after the reply.
    pub fn with_summaries(self, queue: crate::summary::SummaryQueue) -> Self {
        Self {
            summaries: Some(queue),
            ..self
        }
    }

    /// The same service with these variants (they replace the single default one).
    pub fn with_variants(self, variants: Variants) -> Self {
        Self { variants, ..self }
    }

    /// Queues the extension of a conversation's summary, after a reply and before it is
    /// returned (stored first when the queue keeps its jobs).
    pub(super) async fn queue_summary(&self, job: Option<crate::summary::SummaryJob>) {
        if let (Some(queue), Some(job)) = (&self.summaries, job) {
            queue.queue(job).await;
        }
    }

    /// The variants in force; replacing them changes the requests that start afterwards.
    pub fn variants(&self) -> &Variants {
        &self.variants
    }

    /// The variant of a turn: the one asked for, else the user's by the split.
    pub(super) fn variant_of(&self, cmd: &super::GenerateCommand) -> Arc<Variant> {
        let variant = match &cmd.variant {
            Some(asked) => Arc::clone(asked),
            None => self.variants.current().assign(cmd.user.id.as_ref()),
        };
        tracing::Span::current().record("variant", variant.name.as_str());
        variant
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
