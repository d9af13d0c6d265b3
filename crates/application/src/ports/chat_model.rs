//! Port: the language model that writes the reply.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use futures::Stream;

/// Who a prompt message is from, in chat-completion terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptRole {
    /// Instructions.
    System,
    /// The human side of the chat.
    User,
    /// The character's side of the chat.
    Assistant,
}

/// One message sent to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptMessage {
    /// Its role.
    pub role: PromptRole,
    /// Its text.
    pub content: String,
}

/// Which model to call, how to sample and how the provider may route the call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationParams {
    /// Model name as the provider knows it.
    pub model: String,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Upper bound on generated tokens.
    pub max_tokens: Option<u32>,
    /// Seed of the sampler, for replies that can be repeated (with temperature 0, every reply of
    /// a local model is the same anyway).
    pub seed: Option<u64>,
    /// Fallback models, provider preferences, reasoning budget (where the provider has them).
    pub routing: super::ModelRouting,
    /// Mark the end of the prompt's stable part (its first message) with `cache_control`, for
    /// providers that cache only at explicit breakpoints (Anthropic and Gemini models through
    /// OpenRouter).
    pub cache_control: bool,
}

/// One chat-completion call.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The prompt: system message first, then the chat turns. For a chat turn the first
    /// message is the prompt's stable part, the same from turn to turn (cached by providers).
    pub messages: Vec<PromptMessage>,
    /// Model and sampling.
    pub params: GenerationParams,
    /// The answer must be one JSON value of this schema (the prompt says so too): the in-process
    /// model samples under a grammar made from it, so it cannot answer anything else; an API
    /// model gets the prompt's instruction alone.
    pub json_schema: Option<serde_json::Value>,
}

/// Tokens used by a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Tokens of the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Prompt tokens the provider read from its cache (`prompt_tokens_details.cached_tokens`;
    /// 0 when it does not say). For the in-process model: prompt tokens whose KV cache was
    /// kept from the previous turn.
    pub cached_tokens: u32,
}

impl ChatModelError {
    /// An `Unavailable` error without `Retry-After`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
            retry_after: None,
        }
    }
}

impl TokenUsage {
    /// The sum of two calls' usage.
    pub fn plus(self, other: Self) -> Self {
        Self {
            prompt_tokens: self.prompt_tokens.saturating_add(other.prompt_tokens),
            completion_tokens: self
                .completion_tokens
                .saturating_add(other.completion_tokens),
            cached_tokens: self.cached_tokens.saturating_add(other.cached_tokens),
        }
    }
}

/// The model's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The raw text, before cleaning.
    pub text: String,
    /// The model that actually answered (providers may route to another).
    pub model: String,
    /// Token usage, when the provider reports it.
    pub usage: Option<TokenUsage>,
    /// Why the model stopped (`stop`, `length`, `content_filter`, …), when it says.
    pub finish_reason: Option<String>,
}

/// One piece of a streamed answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatChunk {
    /// Raw text generated since the previous piece (may be empty).
    pub text: String,
    /// The model that answers, once the provider says.
    pub model: Option<String>,
    /// Token usage, usually on the last piece only.
    pub usage: Option<TokenUsage>,
}

/// A streamed answer: pieces until the provider ends the reply, or an error. Dropping it closes
/// the upstream request.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, ChatModelError>> + Send>>;

/// Why a chat completion failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChatModelError {
    /// No credentials: the message says what to set. Do not retry.
    #[error("the language model is not configured: {0}")]
    NotConfigured(String),
    /// Too many requests: retry after the given delay, when known.
    #[error("the language model provider is rate limiting: {message}")]
    RateLimited {
        /// The provider's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
        /// The provider's message.
        message: String,
    },
    /// Unreachable, reset, or failing (5xx, or an error reported in a 200 body): worth retrying,
    /// after the given delay when the provider sent `Retry-After` (a 503 may).
    #[error("the language model provider is unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The provider's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The request was refused (4xx other than 429: bad key, unknown model, bad parameters).
    #[error("the language model provider refused the request ({status}): {message}")]
    Rejected {
        /// HTTP status, or the error code of the body.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The provider answered something that is not a chat completion: worth one more try.
    #[error("the language model provider answered with an invalid response: {0}")]
    InvalidResponse(String),
}

/// A rough count of the tokens of `text` for models whose tokenizer is not at hand: a token per
/// four bytes (English averages more, other scripts fewer bytes per token), plus the framing of
/// one chat message.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(4) + 4
}

/// A chat-completion language model.
///
/// Implementations must classify every failure into a [`ChatModelError`] variant and must not
/// retry on their own: the use case owns retries, backoff and the deadline. Dropping a pending
/// call or an open stream must stop the work behind it.
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// What to change when this model is too slow for the deadline, for the 504's message
    /// (`None`: the deadlines alone).
    fn slow_hint(&self) -> Option<String> {
        None
    }

    /// Whether calls can be made at all (credentials present). Readiness checks use it.
    fn is_configured(&self) -> bool;

    /// What answers, for readiness and the start-up log (`local/SmolLM2-135M-Instruct-Q4_1`,
    /// or an API's URL). Never a secret.
    fn describe(&self) -> String;

    /// The tokens `message` takes in a prompt, its framing included, for fitting the history to
    /// a budget. Exact where the model's tokenizer is at hand, else [`estimate_tokens`].
    fn count_tokens(&self, message: &PromptMessage) -> usize {
        estimate_tokens(&message.content)
    }

    /// The most tokens one generation holds, prompt and reply together, when the model has a
    /// fixed context (a local model); `None` when the provider decides.
    fn context_tokens(&self) -> Option<usize> {
        None
    }

    /// Completes the chat.
    async fn complete(&self, request: &ChatRequest) -> Result<Completion, ChatModelError>;

    /// Completes the chat as a stream of pieces. The error, if any, is for opening the stream
    /// (before any piece); errors after that come through the stream.
    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ChatModelError>;
}
