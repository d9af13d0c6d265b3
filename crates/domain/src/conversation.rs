//! A conversation's rolling summary: what was said before the messages a prompt still holds.

use crate::text::label_id;
use crate::{CharacterId, Timestamp};

label_id!(
    /// The upstream's id of one conversation between a user and a character; its summary is
    /// stored under the user and it.
    ConversationId
);

/// The longest summary kept, in characters.
pub const SUMMARY_CHARS: usize = 8_000;

/// The summary of a conversation's first messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSummary {
    /// The character of the conversation (a summary is used with no other).
    pub character: Option<CharacterId>,
    /// The summary.
    pub text: String,
    /// It covers the conversation's messages `0..covers`.
    pub covers: usize,
    /// The hash of the last message it covers: a history whose message at `covers - 1` hashes
    /// otherwise is another history (edited, or another conversation), and the summary is not
    /// used with it.
    pub last_hash: String,
    /// The hash of the summary prompt (template) that wrote it.
    pub prompt_hash: String,
    /// The model that wrote it.
    pub model: String,
    /// When it was written.
    pub updated: Timestamp,
}
