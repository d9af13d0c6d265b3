//! The main use case: write the character's next line.

mod command;
mod error;
mod generation;
mod service;

pub use command::{GenerateCommand, GenerationOverrides};
pub use error::{GenerateError, GenerateFailure};
pub use generation::{Generation, StageTimings};
pub use service::{ChatService, ChatSettings, ReplyEvent};
