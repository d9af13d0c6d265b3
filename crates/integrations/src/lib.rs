//! Adapters that implement ragback's ports with real vendors. This is the only crate that knows
//! vendor types (Cohere's wire format, async-openai, qdrant-edge, Tera).
//!
//! - [`cohere::CohereEmbedder`]: Cohere `v2/embed` over HTTP.
//! - `local::LocalEmbedder` (feature `local-embedder`, on by default): all-MiniLM-L6-v2 in-process.
//! - [`llm::OpenAiChatModel`]: any OpenAI-compatible chat-completions API (OpenRouter by default).
//! - `local_llm::LocalChatModel` (feature `local-llm`, on by default): a GGUF chat model in-process
//!   (llama.cpp).
//! - [`edge::EdgeFactStore`]: Qdrant Edge, in-process, on disk.
//! - `qdrant::QdrantFactStore` (feature `qdrant-server`, on by default): a Qdrant server over gRPC.
//! - [`prompt::TeraPromptRenderer`]: the Tera prompt template.

pub mod cohere;
pub mod config;
pub mod digest;
pub mod edge;
pub mod errors;
pub mod eval_prompts;
pub mod guard;
pub mod http;
mod layout;
pub mod llm;
#[cfg(feature = "local-embedder")]
pub mod local;
#[cfg(feature = "local-llm")]
pub mod local_llm;
pub mod local_llm_settings;
pub mod local_settings;
pub mod memory_prompts;
#[cfg(feature = "model-files")]
pub mod models;
pub mod moderation;
pub mod prompt;
pub mod prompt_data;
#[cfg(feature = "qdrant-server")]
pub mod qdrant;
pub mod summary_prompt;
pub mod templates;
