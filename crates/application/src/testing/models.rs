//! Chat models for tests: scripted, stalling, silent, endless.

// Test helpers: failing loudly is their job.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use futures::StreamExt;

use crate::ports::{ChatChunk, ChatModel, ChatModelError, ChatRequest, ChatStream, Completion};

/// A chat model that answers from a script and records every request.
#[derive(Debug, Default)]
pub struct ScriptedChatModel {
    script: Mutex<VecDeque<Result<Completion, ChatModelError>>>,
    streams: Mutex<VecDeque<StreamScript>>,
    requests: Mutex<Vec<ChatRequest>>,
}

/// What one `stream` call does: fail to open, or yield these pieces.
pub type StreamScript = Result<Vec<Result<ChatChunk, ChatModelError>>, ChatModelError>;

impl ScriptedChatModel {
    /// A model that will answer with these outcomes, in order, then fail with `Unavailable`.
    pub fn new(script: impl IntoIterator<Item = Result<Completion, ChatModelError>>) -> Self {
        Self {
            script: Mutex::new(script.into_iter().collect()),
            streams: Mutex::default(),
            requests: Mutex::default(),
        }
    }

    /// A model whose `stream` calls follow these scripts, in order (then the completion script,
    /// cut into pieces of three characters).
    pub fn streaming(streams: impl IntoIterator<Item = StreamScript>) -> Self {
        Self {
            streams: Mutex::new(streams.into_iter().collect()),
            ..Self::default()
        }
    }

    /// A piece of streamed text.
    pub fn piece(text: &str) -> Result<ChatChunk, ChatModelError> {
        Ok(ChatChunk {
            text: text.to_owned(),
            ..ChatChunk::default()
        })
    }

    /// A successful completion with this text.
    pub fn reply(text: &str) -> Result<Completion, ChatModelError> {
        Ok(Completion {
            text: text.to_owned(),
            model: "test/model".to_owned(),
            usage: Some(crate::ports::TokenUsage {
                prompt_tokens: 10,
                completion_tokens: 5,
                cached_tokens: 0,
            }),
            finish_reason: Some("stop".to_owned()),
        })
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<ChatRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl ChatModel for ScriptedChatModel {
    fn is_configured(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        "a scripted test model".into()
    }

    async fn complete(&self, request: &ChatRequest) -> Result<Completion, ChatModelError> {
        if let Ok(mut requests) = self.requests.lock() {
            requests.push(request.clone());
        }
        self.script
            .lock()
            .ok()
            .and_then(|mut s| s.pop_front())
            .unwrap_or_else(|| Err(ChatModelError::unavailable("script exhausted")))
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ChatModelError> {
        let scripted = self.streams.lock().ok().and_then(|mut s| s.pop_front());
        let pieces = match scripted {
            Some(script) => {
                if let Ok(mut requests) = self.requests.lock() {
                    requests.push(request.clone());
                }
                script?
            }
            None => {
                let completion = self.complete(request).await?;
                let chars: Vec<char> = completion.text.chars().collect();
                let mut pieces: Vec<_> = chars
                    .chunks(3)
                    .map(|c| Self::piece(&c.iter().collect::<String>()))
                    .collect();
                pieces.push(Ok(ChatChunk {
                    text: String::new(),
                    model: Some(completion.model),
                    usage: completion.usage,
                }));
                pieces
            }
        };
        Ok(Box::pin(futures::stream::iter(pieces)))
    }
}

/// A chat model whose stream sends one piece, `Yo`, then nothing more while staying open (a
/// stalled upstream); `complete` fails.
#[derive(Debug, Default)]
pub struct StallingChatModel;

#[async_trait]
impl ChatModel for StallingChatModel {
    fn is_configured(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        "a stalling test model".into()
    }

    async fn complete(&self, _: &ChatRequest) -> Result<Completion, ChatModelError> {
        Err(ChatModelError::unavailable("a stalling model only streams"))
    }

    async fn stream(&self, _: &ChatRequest) -> Result<ChatStream, ChatModelError> {
        let first = futures::stream::iter([ScriptedChatModel::piece("Yo")]);
        Ok(Box::pin(first.chain(futures::stream::pending())))
    }
}

/// A chat model that never answers, whole or streamed.
#[derive(Debug, Default)]
pub struct SilentChatModel;

#[async_trait]
impl ChatModel for SilentChatModel {
    fn is_configured(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        "a silent test model".into()
    }

    async fn complete(&self, _: &ChatRequest) -> Result<Completion, ChatModelError> {
        std::future::pending().await
    }

    async fn stream(&self, _: &ChatRequest) -> Result<ChatStream, ChatModelError> {
        std::future::pending().await
    }
}

/// A chat model whose stream writes `la ` every millisecond without end, and which tells when
/// that stream was dropped (the upstream request closed); `complete` fails.
#[derive(Debug, Default)]
pub struct EndlessChatModel {
    dropped: std::sync::Arc<AtomicBool>,
}

impl EndlessChatModel {
    /// Whether a stream it opened has been dropped.
    pub fn stream_dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }
}

/// Sets its flag when dropped.
struct DropFlag(std::sync::Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl ChatModel for EndlessChatModel {
    fn is_configured(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        "an endless test model".into()
    }

    async fn complete(&self, _: &ChatRequest) -> Result<Completion, ChatModelError> {
        Err(ChatModelError::unavailable("an endless model only streams"))
    }

    async fn stream(&self, _: &ChatRequest) -> Result<ChatStream, ChatModelError> {
        let flag = DropFlag(self.dropped.clone());
        let pieces = futures::stream::repeat_with(move || {
            let _alive = &flag;
            ScriptedChatModel::piece("la ")
        })
        .then(|piece| async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            piece
        });
        Ok(Box::pin(pieces))
    }
}
