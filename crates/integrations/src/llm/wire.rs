//! The chat-completion response as providers really send it. Lenient on purpose: OpenRouter,
//! Ollama and vLLM differ in optional fields, and OpenRouter may answer HTTP 200 with an `error`
//! object instead of choices.

use serde::Deserialize;

/// A chat-completion response body.
#[derive(Debug, Deserialize)]
pub(super) struct CompletionBody {
    #[serde(default)]
    pub(super) error: Option<ErrorBody>,
    #[serde(default)]
    pub(super) model: Option<String>,
    #[serde(default)]
    pub(super) choices: Vec<Choice>,
    #[serde(default)]
    pub(super) usage: Option<Usage>,
}

/// An error reported inside a body (`{"error": {"code": 502, "message": "…"}}`).
#[derive(Debug, Deserialize)]
pub(super) struct ErrorBody {
    #[serde(default)]
    pub(super) code: Option<serde_json::Value>,
    #[serde(default)]
    pub(super) message: Option<String>,
}

impl ErrorBody {
    /// The numeric code, when it is one (OpenRouter uses HTTP-like numbers).
    pub(super) fn numeric_code(&self) -> Option<u16> {
        match self.code.as_ref()? {
            serde_json::Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// The code as text, for string codes like `rate_limit_exceeded`.
    pub(super) fn text_code(&self) -> Option<&str> {
        self.code.as_ref()?.as_str()
    }
}

/// One choice.
#[derive(Debug, Deserialize)]
pub(super) struct Choice {
    #[serde(default)]
    pub(super) message: Option<ChoiceMessage>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
    #[serde(default)]
    pub(super) error: Option<ErrorBody>,
}

/// The assistant message of a choice.
#[derive(Debug, Deserialize)]
pub(super) struct ChoiceMessage {
    #[serde(default)]
    pub(super) content: Option<String>,
}

/// Token usage.
#[derive(Debug, Deserialize)]
pub(super) struct Usage {
    #[serde(default)]
    pub(super) prompt_tokens: u32,
    #[serde(default)]
    pub(super) completion_tokens: u32,
    /// OpenAI's and OpenRouter's details: the prompt tokens read from the provider's cache.
    #[serde(default)]
    pub(super) prompt_tokens_details: Option<PromptTokensDetails>,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Deserialize)]
pub(super) struct PromptTokensDetails {
    #[serde(default)]
    pub(super) cached_tokens: Option<u32>,
}

/// One chunk of a streamed completion (`data: {…}` of the event stream). OpenRouter may send an
/// `error` object mid-stream instead of choices.
#[derive(Debug, Deserialize)]
pub(super) struct ChunkBody {
    #[serde(default)]
    pub(super) error: Option<ErrorBody>,
    #[serde(default)]
    pub(super) model: Option<String>,
    #[serde(default)]
    pub(super) choices: Vec<ChunkChoice>,
    #[serde(default)]
    pub(super) usage: Option<Usage>,
}

/// One choice of a chunk.
#[derive(Debug, Deserialize)]
pub(super) struct ChunkChoice {
    #[serde(default)]
    pub(super) delta: Option<ChoiceMessage>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
    #[serde(default)]
    pub(super) error: Option<ErrorBody>,
}
