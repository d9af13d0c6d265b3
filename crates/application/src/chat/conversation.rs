//! A turn's conversation: its stored summary, read under the turn's deadline, and the job that
//! extends it once the reply is done.

use ragback_domain::{Character, ConversationId, ConversationSummary, Message, User};
use tokio::time::Instant;

use super::ChatService;
use crate::summary::{SummaryJob, SummaryQueue, matches};

/// The chat of a turn, as the summary sees it.
#[derive(Clone, Copy)]
pub(super) struct Chat<'a> {
    pub(super) user: &'a User,
    pub(super) character: &'a Character,
    /// Every message, oldest first.
    pub(super) messages: &'a [Message],
    /// The first message of the prompt's window: the summary covers those before it.
    pub(super) window_start: usize,
}

impl ChatService {
    /// The turn's conversation, with its summary (brought up to date first when asked), when
    /// the turn names one, has a user id, and summaries are on.
    pub(super) async fn conversation(
        &self,
        id: Option<ConversationId>,
        summarize_first: bool,
        chat: Chat<'_>,
        deadline: Instant,
    ) -> Option<Conversation> {
        let (id, _, queue) = (id?, chat.user.id.as_ref()?, self.summaries.as_ref()?);
        if summarize_first {
            Conversation::bring_up_to_date(queue, &id, chat, deadline).await;
        }
        Some(Conversation::read(queue, id, chat, deadline).await)
    }
}

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
    async fn read(
        queue: &SummaryQueue,
        id: ConversationId,
        chat: Chat<'_>,
        deadline: Instant,
    ) -> Self {
        let Some(user) = chat.user.id.as_ref() else {
            return Self { id, summary: None };
        };
        let store = queue.summarizer().store();
        let read = tokio::time::timeout_at(deadline, store.get_summary(user, &id)).await;
        let summary = match read {
            Ok(Ok(summary)) => summary.filter(|s| {
                matches(s, chat.messages, chat.character.id.as_ref())
                    && s.covers <= chat.window_start
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

    /// Makes the summary cover the messages before the window now, on the reply's path; a
    /// failure is logged and the turn goes on with what is stored.
    async fn bring_up_to_date(
        queue: &SummaryQueue,
        id: &ConversationId,
        chat: Chat<'_>,
        deadline: Instant,
    ) {
        let empty = Self {
            id: id.clone(),
            summary: None,
        };
        let Some(job) = empty.job(chat, chat.window_start) else {
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
    pub(super) fn job(self, chat: Chat<'_>, history_from: usize) -> Option<SummaryJob> {
        if history_from == 0 || self.covers() >= history_from {
            return None;
        }
        Some(SummaryJob {
            user: chat.user.id.clone()?,
            character: chat.character.id.clone(),
            conversation: self.id,
            user_name: chat.user.name.as_str().to_owned(),
            character_name: chat.character.name.as_str().to_owned(),
            messages: chat.messages.get(..history_from)?.to_vec(),
        })
    }
}
