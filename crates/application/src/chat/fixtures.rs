//! What the chat tests share: settings, a service over the in-memory fakes, a command.

use std::sync::Arc;
use std::time::Duration;

use ragback_domain::{
    Character, CharacterCard, CharacterId, FactOwner, Message, MessageText, Name, Role, User,
    UserId,
};

use super::{ChatService, ChatSettings, GenerateCommand, GenerationOverrides, ReplyEvent};
use crate::ports::{ChatChunk, ChatModel, ChatModelError, GenerationParams, TokenUsage};
use crate::retrieval::{FactRetriever, RetrievalOverrides};
use crate::testing::{
    InMemoryFactStore, PlainRenderer, WordEmbedder, quick_retry, retrieval_settings, seed,
};

/// Three attempts, a 5 s model stage in a 10 s turn, two messages of history.
pub(super) fn settings() -> ChatSettings {
    ChatSettings {
        defaults: GenerationParams {
            model: "default/model".into(),
            temperature: Some(0.8),
            top_p: Some(0.95),
            max_tokens: Some(200),
            seed: None,
            routing: Default::default(),
            cache_control: false,
        },
        history_messages: 2,
        max_prompt_tokens: 4_096,
        retry: quick_retry(3),
        timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        lore: Default::default(),
    }
}

/// A service over `model`, with one fact of john's stored.
pub(super) async fn service_with(model: Arc<dyn ChatModel>, settings: ChatSettings) -> ChatService {
    let store = Arc::new(InMemoryFactStore::default());
    let embedder = Arc::new(WordEmbedder::default());
    let john = FactOwner::User(UserId::parse("john").unwrap());
    seed(&*embedder, &*store, &john, &["ran the london marathon"]).await;
    let retriever = FactRetriever::new(
        Some(embedder),
        store,
        retrieval_settings(None, quick_retry(3)),
    );
    ChatService::new(retriever, Arc::new(PlainRenderer), model, settings)
}

/// [`service_with`] the default [`settings`].
pub(super) async fn service(model: Arc<dyn ChatModel>) -> ChatService {
    service_with(model, settings()).await
}

/// John talking to Blaze (whose card sets a rooftop scene) with these messages.
pub(super) fn command(messages: &[(Role, &str)]) -> GenerateCommand {
    GenerateCommand {
        messages: messages
            .iter()
            .map(|(role, text)| Message::new(*role, MessageText::parse(*text).unwrap()))
            .collect(),
        user: User {
            id: Some(UserId::parse("john").unwrap()),
            name: Name::parse("John").unwrap(),
            age: None,
        },
        character: Character::new(
            Some(CharacterId::parse("blaze").unwrap()),
            Name::parse("Blaze").unwrap(),
            None,
            "Street persona; calls {{user}} bro",
            Some(CharacterCard {
                scenario: Some("A rooftop.".into()),
                ..Default::default()
            }),
        )
        .unwrap(),
        scenario: None,
        generation: GenerationOverrides::default(),
        retrieval: RetrievalOverrides::default(),
        timeout: None,
        variant: None,
        lorebook: None,
        greeting: None,
        conversation: None,
        summarize_first: false,
    }
}

/// Every event of a streamed generation of `cmd`, to its end.
pub(super) async fn stream_events(service: &ChatService, cmd: GenerateCommand) -> Vec<ReplyEvent> {
    let mut events = service.generate_stream(cmd);
    let mut all = Vec::new();
    while let Some(event) = events.recv().await {
        all.push(event);
    }
    all
}

/// The concatenated deltas.
pub(super) fn deltas(events: &[ReplyEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ReplyEvent::Delta(piece) => Some(piece.as_str()),
            _ => None,
        })
        .collect()
}

/// The last chunk of a stream: no text, the served model and the usage.
pub(super) fn done_chunk() -> Result<ChatChunk, ChatModelError> {
    Ok(ChatChunk {
        text: String::new(),
        model: Some("served/model".into()),
        usage: Some(TokenUsage {
            prompt_tokens: 7,
            completion_tokens: 3,
            cached_tokens: 0,
        }),
    })
}
