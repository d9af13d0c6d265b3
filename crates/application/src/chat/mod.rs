//! The main use case: write the character's next line.
//!
//! [`ChatService`] builds the model request (`request`), asks the model for the whole reply
//! (`turn`) or streams it (`stream`) with one policy for failed and empty attempts
//! (`attempt`), and records the turn's timings and metrics (`record`).

mod attempt;
mod command;
mod conversation;
mod error;
#[cfg(test)]
mod fixtures;
mod generation;
mod guarded;
mod layout;
mod record;
mod request;
mod service;
mod stream;
mod turn;

pub use command::{GenerateCommand, GenerationOverrides, MAX_TOKENS_LIMIT};
pub use error::{GenerateError, GenerateFailure};
pub use generation::{Generation, PromptStats, StageTimings};
pub use service::{ChatService, ChatSettings};
pub use stream::ReplyEvent;
