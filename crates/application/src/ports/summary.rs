//! Ports of the rolling summary: where summaries live, and the prompt that writes them.

use async_trait::async_trait;
use ragback_domain::{ConversationId, ConversationSummary, Message, UserId};

use super::{PromptError, PromptMessage};

/// Why a summary could not be read or written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SummaryStoreError {
    /// The store cannot be reached or read.
    #[error("summary store unavailable: {0}")]
    Unavailable(String),
    /// A stored summary could not be understood.
    #[error("summary store holds invalid data: {0}")]
    Corrupted(String),
}

/// Summaries, one per user and conversation, kept in the fact store beside the facts.
///
/// Implementations must make a write durable before it returns, and replace the previous
/// summary of the conversation whole.
#[async_trait]
pub trait SummaryStore: Send + Sync {
    /// The conversation's summary, if one was written.
    async fn get_summary(
        &self,
        user: &UserId,
        conversation: &ConversationId,
    ) -> Result<Option<ConversationSummary>, SummaryStoreError>;

    /// Writes the conversation's summary, replacing the one before.
    async fn put_summary(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        summary: &ConversationSummary,
    ) -> Result<(), SummaryStoreError>;

    /// Deletes the conversation's summary; whether there was one.
    async fn delete_summary(
        &self,
        user: &UserId,
        conversation: &ConversationId,
    ) -> Result<bool, SummaryStoreError>;
}

/// The prompt that writes a summary.
///
/// Implementations must render every text as data (a message cannot change the instructions).
pub trait SummaryPrompt: Send + Sync {
    /// Asks for the summary of `messages`, extending `previous` (the summary of the messages
    /// before them) when there is one.
    fn summarize(
        &self,
        character: &str,
        user: &str,
        previous: Option<&str>,
        messages: &[Message],
    ) -> Result<Vec<PromptMessage>, PromptError>;

    /// A hash of the prompt's template, recorded with every summary it writes.
    fn hash(&self) -> &str;
}
