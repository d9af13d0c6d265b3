//! A conversation's rolling summary on the wire.

use ragback_domain::ConversationSummary;
use serde::{Deserialize, Serialize};

/// `GET /users/{id}/conversations/{conversation_id}/summary`: what was said before the messages
/// the prompt still holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SummaryRecord {
    /// The conversation.
    pub conversation_id: String,
    /// Its character, when the turns named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub character_id: Option<String>,
    /// The summary.
    pub text: String,
    /// It covers the conversation's messages `0..covers` (the first `covers` of `messages`).
    pub covers: usize,
    /// The hash of the last message it covers.
    pub last_message_hash: String,
    /// The SHA-256 of the summary templates that wrote it.
    pub prompt_hash: String,
    /// The model that wrote it.
    pub model: String,
    /// When it was written (RFC 3339).
    pub updated_at: String,
}

impl SummaryRecord {
    /// The record of `summary`, for `conversation_id`.
    pub fn new(conversation_id: &str, summary: ConversationSummary) -> Self {
        Self {
            conversation_id: conversation_id.to_owned(),
            character_id: summary.character.map(|c| c.as_str().to_owned()),
            text: summary.text,
            covers: summary.covers,
            last_message_hash: summary.last_hash,
            prompt_hash: summary.prompt_hash,
            model: summary.model,
            updated_at: summary.updated.to_string(),
        }
    }
}
