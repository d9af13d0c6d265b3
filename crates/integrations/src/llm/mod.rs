//! The language model: any OpenAI-compatible chat-completions API (OpenRouter, OpenAI, Ollama,
//! vLLM), through async-openai, with OpenRouter's routing fields where the provider is OpenRouter.

mod model;
mod provider;
mod routing;
mod transport;
mod wire;

pub use model::OpenAiChatModel;
pub use provider::{DEFAULT_BASE_URL, Dialect, LlmConfigError, LlmProvider, LlmSettings, Sampling};
pub use routing::{
    DataCollectionSetting, EffortSetting, RoutingSettings, unsupported_outside_openrouter,
};
