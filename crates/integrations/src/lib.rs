//! Adapters that implement ragback's ports with real vendors. This is the only crate that knows
//! vendor types (Cohere's wire format, async-openai, qdrant-edge, Tera).
//!
//! - [`cohere::CohereEmbedder`]: Cohere `v2/embed` over HTTP.
//! - [`llm::OpenAiChatModel`]: any OpenAI-compatible chat-completions API (OpenRouter by default).
//! - [`edge::EdgeFactStore`]: Qdrant Edge, in-process, on disk.
//! - [`prompt::TeraPromptRenderer`]: the Tera prompt template.

pub mod cohere;
pub mod edge;
mod http;
pub mod llm;
pub mod prompt;
