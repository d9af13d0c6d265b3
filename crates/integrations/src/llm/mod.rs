//! The language model: any OpenAI-compatible chat-completions API (OpenRouter, OpenAI, Ollama,
//! vLLM), through async-openai.

mod model;
mod provider;
mod transport;
mod wire;

pub use model::OpenAiChatModel;
pub use provider::{DEFAULT_BASE_URL, LlmConfigError, LlmProvider, LlmSettings, Sampling};
