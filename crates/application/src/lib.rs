//! ragback's use cases and the ports they depend on.
//!
//! - [`ChatService`] writes the character's next line: retrieve facts, render the prompt, call the
//!   model with retries, clean the reply.
//! - [`FactRetriever`] finds the facts relevant to a chat turn, degrading to "no facts" on failure.
//! - [`FactLibrary`] embeds and stores facts (seeding).
//! - [`guard`] checks every reply (and the user's message) before anyone reads it.
//! - [`evaluation`] measures retrieval against labelled queries.
//!
//! Ports ([`ports`]) are object-safe traits; adapters live in `ragback-integrations`.

pub mod bounds;
pub mod chat;
pub mod evaluation;
pub mod facts;
pub mod guard;
pub mod jobs;
pub mod lore;
pub mod memory;
pub mod ports;
pub mod retrieval;
pub mod retry;
mod stable_hash;
pub mod summary;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;
pub mod variants;
pub mod words;

pub use chat::{
    ChatService, ChatSettings, GenerateCommand, GenerateError, GenerateFailure, Generation,
    GenerationOverrides, PromptStats, ReplyEvent, StageTimings,
};
pub use facts::{AddFactsError, AddFactsReport, AddPlan, FactLibrary};
pub use retrieval::{
    FactRetriever, Retrieval, RetrievalOverrides, RetrievalSettings, RetrievalStatus,
};
pub use retry::RetryPolicy;
