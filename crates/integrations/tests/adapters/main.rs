//! The adapters against their vendors' wire formats (local fake servers, never the internet), and
//! the stores against the fact-store contract: one test binary for the crate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cohere;
mod edge_store;
mod llm;
mod llm_routing;
mod llm_stream;
#[cfg(feature = "local-embedder")]
mod local_embedder;
#[cfg(feature = "local-llm")]
mod local_llm;
mod moderation;
#[cfg(feature = "qdrant-server")]
mod qdrant_server;
