//! Summaries in memory, and a plain summary prompt, for tests.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use ragback_domain::{ConversationId, ConversationSummary, Message, UserId};

use crate::ports::{
    PromptError, PromptMessage, PromptRole, SummaryPrompt, SummaryStore, SummaryStoreError,
};

/// A summary store in a map.
#[derive(Debug, Default)]
pub struct InMemorySummaryStore {
    summaries: Mutex<HashMap<(UserId, ConversationId), ConversationSummary>>,
}

#[async_trait]
impl SummaryStore for InMemorySummaryStore {
    async fn get_summary(
        &self,
        user: &UserId,
        conversation: &ConversationId,
    ) -> Result<Option<ConversationSummary>, SummaryStoreError> {
        let map = self.summaries.lock().map_err(|_| poisoned())?;
        Ok(map.get(&(user.clone(), conversation.clone())).cloned())
    }

    async fn put_summary(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        summary: &ConversationSummary,
    ) -> Result<(), SummaryStoreError> {
        let mut map = self.summaries.lock().map_err(|_| poisoned())?;
        map.insert((user.clone(), conversation.clone()), summary.clone());
        Ok(())
    }

    async fn delete_summary(
        &self,
        user: &UserId,
        conversation: &ConversationId,
    ) -> Result<bool, SummaryStoreError> {
        let mut map = self.summaries.lock().map_err(|_| poisoned())?;
        Ok(map.remove(&(user.clone(), conversation.clone())).is_some())
    }
}

fn poisoned() -> SummaryStoreError {
    SummaryStoreError::Unavailable("poisoned".into())
}

/// A summary prompt listing what it is given, one item per line.
#[derive(Debug, Default)]
pub struct PlainSummaryPrompt;

impl SummaryPrompt for PlainSummaryPrompt {
    fn summarize(
        &self,
        character: &str,
        user: &str,
        previous: Option<&str>,
        messages: &[Message],
    ) -> Result<Vec<PromptMessage>, PromptError> {
        let mut text = format!("summarize {character} and {user}\n");
        if let Some(previous) = previous {
            text.push_str(&format!("previous: {previous}\n"));
        }
        for m in messages {
            text.push_str(&format!("message: {}\n", m.text.as_str()));
        }
        Ok(vec![PromptMessage {
            role: PromptRole::User,
            content: text,
        }])
    }

    fn hash(&self) -> &str {
        "plain"
    }
}

/// The summary-store contract: what every [`SummaryStore`] must do. Panics on the first
/// broken promise.
pub async fn summary_store_contract(store: &dyn SummaryStore) {
    use ragback_domain::{CharacterId, Timestamp};
    let john = UserId::parse("john").unwrap();
    let jane = UserId::parse("jane").unwrap();
    let (c1, c2) = (
        ConversationId::parse("c1").unwrap(),
        ConversationId::parse("c2").unwrap(),
    );
    let summary = |text: &str, covers| ConversationSummary {
        character: Some(CharacterId::parse("mira").unwrap()),
        text: text.to_owned(),
        covers,
        last_hash: "00000000000000ff".into(),
        prompt_hash: "ab".repeat(32),
        model: "test/model".into(),
        updated: Timestamp::from_unix_millis(1_764_979_200_000),
    };
    assert_eq!(
        store.get_summary(&john, &c1).await.unwrap(),
        None,
        "empty at first"
    );
    assert!(
        !store.delete_summary(&john, &c1).await.unwrap(),
        "nothing to delete"
    );

    let first = summary("They met at the harbour.\nThen sailed.", 4);
    store.put_summary(&john, &c1, &first).await.unwrap();
    assert_eq!(store.get_summary(&john, &c1).await.unwrap(), Some(first));
    assert_eq!(
        store.get_summary(&john, &c2).await.unwrap(),
        None,
        "per conversation"
    );
    assert_eq!(
        store.get_summary(&jane, &c1).await.unwrap(),
        None,
        "per user"
    );

    let second = ConversationSummary {
        character: None,
        ..summary("They met, sailed and docked.", 8)
    };
    store.put_summary(&john, &c1, &second).await.unwrap();
    assert_eq!(
        store.get_summary(&john, &c1).await.unwrap(),
        Some(second),
        "replaced whole"
    );
    store
        .put_summary(&jane, &c1, &summary("Jane's.", 2))
        .await
        .unwrap();
    assert!(store.delete_summary(&john, &c1).await.unwrap());
    assert_eq!(store.get_summary(&john, &c1).await.unwrap(), None);
    assert!(!store.delete_summary(&john, &c1).await.unwrap());
    assert_eq!(
        store.get_summary(&jane, &c1).await.unwrap().map(|s| s.text),
        Some("Jane's.".to_owned()),
        "another user's summary stays"
    );
}
