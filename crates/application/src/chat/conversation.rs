//! A turn's conversation: its stored summary, read under the turn's deadline, and the job that
//! extends it once the reply is done.

use ragback_domain::{Character, ConversationId, ConversationSummary, Message, User, UserId};
use tokio::time::Instant;

use crate::summary::{SummaryJob, SummaryQueue, matches};

/// The conversation of a turn with a `conversation_id`.
pub(super) struct Conversation {
    id: ConversationId,
    /// The stored summary, when it belongs with this history and covers only messages before
    /// the prompt's window.
    summary: Option<ConversationSummary>,
}

impl Conversation {
    /// Reads the conversation's summary; a store that fails or is late means no summary this
    /// turn (logged and counted), never a failed turn.
    pub(super) async fn read(
        queue: &SummaryQueue,
        user: &UserId,
        id: ConversationId,
        messages: &[Message],
        character: &Character,
        window_start: usize,
        deadline: Instant,
    ) -> Self {
        let store = queue.summarizer().store();
        let read = tokio::time::timeout_at(deadline, store.get_summary(user, &id)).await;
        let summary = match read {
            Ok(Ok(summary)) => summary.filter(|s| {
                matches(s, messages, character.id.as_ref()) && s.covers <= window_start
            }),
            Ok(Err(error)) => {
                metrics::counter!("ragback_summary_read_failures_total").increment(1);
                tracing::warn!(%error, "the conversation summary could not be read: none this turn");
                None
            }
            Err(_) => {
                metrics::counter!("ragback_summary_read_failures_total").increment(1);
                tracing::warn!("the conversation summary was not read in time: none this turn");
                None
            }
        };
        Self { id, summary }
    }

    /// Makes the summary cover the messages before the window (`0..window_start`) now, on the
    /// reply's path; a failure is logged and the turn goes on with what is stored.
    pub(super) async fn bring_up_to_date(
        queue: &SummaryQueue,
        user: &User,
        id: &ConversationId,
        messages: &[Message],
        character: &Character,
        window_start: usize,
        deadline: Instant,
    ) {
        let Some(job) = (Self {
            id: id.clone(),
            summary: None,
        })
        .job(messages, user, character, window_start) else {
            return;
        };
        match tokio::time::timeout_at(deadline, queue.summarizer().run(&job)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "the conversation summary could not be brought up to date");
            }
            Err(_) => tracing::warn!("the conversation summary was not brought up to date in time"),
        }
    }

    /// The summary's text, for the prompt.
    pub(super) fn summary_text(&self) -> Option<&str> {
        self.summary.as_ref().map(|s| s.text.as_str())
    }

    /// The messages the summary in the prompt covers.
    pub(super) fn covers(&self) -> usize {
        self.summary.as_ref().map_or(0, |s| s.covers)
    }

    /// The job that makes the summary cover every message before `history_from` (the first
    /// message the prompt held), when it does not yet.
    pub(super) fn job(
        self,
        messages: &[Message],
        user: &User,
        character: &Character,
        history_from: usize,
    ) -> Option<SummaryJob> {
        if history_from == 0 || self.covers() >= history_from {
            return None;
        }
        Some(SummaryJob {
            user: user.id.clone()?,
            character: character.id.clone(),
            conversation: self.id,
            user_name: user.name.as_str().to_owned(),
            character_name: character.name.as_str().to_owned(),
            messages: messages.get(..history_from)?.to_vec(),
        })
    }
}
