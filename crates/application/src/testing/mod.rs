//! Deterministic in-process fakes of the ports, for tests (feature `test-utils`).
//!
//! They implement each port's contract honestly (ordering, owner isolation, dimensions) so that
//! use-case tests exercise real behaviour; end-to-end tests use the real adapters instead.

// Test helpers: failing loudly is their job.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod store_contract;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use ragback_domain::{Fact, FactOwner, FactText, ScoredFact};

use crate::ports::{
    ChatChunk, ChatModel, ChatModelError, ChatRequest, ChatStream, Completion, EmbedError,
    EmbeddedFact, Embedder, EmbeddingPurpose, FactPage, FactQuery, FactStore, FactStoreError,
    LexicalHit, PromptContext, PromptError, PromptRenderer, RenderedPrompt, StoreStatus,
    StoredFact, UpsertReport,
};

/// A retry policy with millisecond backoff, for tests.
pub fn quick_retry(max_attempts: u32) -> crate::RetryPolicy {
    crate::RetryPolicy {
        max_attempts,
        initial_backoff: std::time::Duration::from_millis(1),
        max_backoff: std::time::Duration::from_millis(2),
    }
}

/// Retrieval on, top 3 above 0.3, the last user message as query, one second to embed.
pub fn retrieval_settings(
    default_user: Option<ragback_domain::UserId>,
    embed_retry: crate::RetryPolicy,
) -> crate::RetrievalSettings {
    crate::RetrievalSettings {
        enabled: true,
        top_k: 3,
        threshold: 0.3,
        margin: 2.0,
        rerank_threshold: 0.3,
        rerank_candidates: 10,
        query_context_weight: 0.0,
        query_messages: 1,
        lexical_allowance: None,
        default_user,
        embed_timeout: std::time::Duration::from_secs(1),
        embed_retry,
    }
}

/// Dimension of [`WordEmbedder`] vectors.
pub const WORD_DIMENSION: usize = 64;

/// Embeds a text as its normalised bag of lower-cased words hashed into 64 buckets: texts that
/// share words are similar, texts that share none are orthogonal.
#[derive(Debug, Default)]
pub struct WordEmbedder {
    calls: AtomicUsize,
}

impl WordEmbedder {
    /// How many `embed` calls were made.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The vector of one text.
    pub fn vector(text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; WORD_DIMENSION];
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let bucket = word.to_lowercase().bytes().fold(17usize, |h, b| {
                h.wrapping_mul(31).wrapping_add(usize::from(b))
            });
            v[bucket % WORD_DIMENSION] += 1.0;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

#[async_trait]
impl Embedder for WordEmbedder {
    fn model_id(&self) -> &str {
        "test/words"
    }

    fn max_batch(&self) -> usize {
        4
    }

    async fn embed(
        &self,
        texts: &[String],
        _purpose: EmbeddingPurpose,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(texts.iter().map(|t| Self::vector(t)).collect())
    }
}

/// An embedder whose provider is down.
#[derive(Debug, Default)]
pub struct FailingEmbedder {
    calls: AtomicUsize,
}

impl FailingEmbedder {
    /// How many `embed` calls were made.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Embedder for FailingEmbedder {
    fn model_id(&self) -> &str {
        "test/failing"
    }

    fn max_batch(&self) -> usize {
        4
    }

    async fn embed(&self, _: &[String], _: EmbeddingPurpose) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(EmbedError::Unavailable("connection refused".into()))
    }
}

/// A brute-force, in-memory fact store with the port's guarantees.
#[derive(Debug, Default)]
pub struct InMemoryFactStore {
    facts: Mutex<BTreeMap<ragback_domain::FactId, EmbeddedFact>>,
    lexical_down: AtomicBool,
    failing_deletes: std::sync::atomic::AtomicUsize,
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

impl InMemoryFactStore {
    /// Makes the lexical search fail (`true`) or work again, the rest working.
    pub fn set_lexical_down(&self, down: bool) {
        self.lexical_down.store(down, Ordering::SeqCst);
    }

    /// Makes the next `calls` deletions by id fail, the rest working.
    pub fn fail_next_deletes(&self, calls: usize) {
        self.failing_deletes.store(calls, Ordering::SeqCst);
    }

    fn facts(
        &self,
    ) -> Result<
        std::sync::MutexGuard<'_, BTreeMap<ragback_domain::FactId, EmbeddedFact>>,
        FactStoreError,
    > {
        self.facts
            .lock()
            .map_err(|_| FactStoreError::Unavailable("poisoned".into()))
    }

    fn dimension(facts: &BTreeMap<ragback_domain::FactId, EmbeddedFact>) -> Option<usize> {
        facts.values().next().map(|f| f.vector.len())
    }

    fn check_dimension(
        facts: &BTreeMap<ragback_domain::FactId, EmbeddedFact>,
        given: usize,
    ) -> Result<(), FactStoreError> {
        match Self::dimension(facts) {
            Some(store) if store != given => {
                Err(FactStoreError::DimensionMismatch { store, given })
            }
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl FactStore for InMemoryFactStore {
    async fn upsert(&self, facts: Vec<EmbeddedFact>) -> Result<UpsertReport, FactStoreError> {
        let mut stored = self.facts()?;
        let mut report = UpsertReport::default();
        for fact in facts {
            Self::check_dimension(&stored, fact.vector.len())?;
            crate::ports::ensure_same_model(
                stored.values().next().map(|f| f.model.as_str()),
                &fact.model,
            )?;
            match stored.entry(fact.fact.id) {
                std::collections::btree_map::Entry::Occupied(_) => report.unchanged += 1,
                std::collections::btree_map::Entry::Vacant(slot) => {
                    report.added += 1;
                    slot.insert(fact);
                }
            }
        }
        Ok(report)
    }

    async fn search(&self, query: FactQuery) -> Result<Vec<ScoredFact>, FactStoreError> {
        let stored = self.facts()?;
        Self::check_dimension(&stored, query.vector.len())?;
        let mut found: Vec<ScoredFact> = stored
            .values()
            .filter(|f| query.owners.contains(&f.fact.owner))
            .map(|f| crate::ports::ensure_same_model(Some(&f.model), &query.model).map(|()| f))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(|f| ScoredFact {
                fact: f.fact.clone(),
                score: cosine(&f.vector, &query.vector),
            })
            .collect();
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        found.truncate(query.limit);
        Ok(found)
    }

    /// Scores shared words by `ln(1 + N / df)` over the whole store: BM25's inverse document
    /// frequency without its length normalisation.
    async fn search_lexical(
        &self,
        query: FactQuery,
        text: &str,
    ) -> Result<Vec<LexicalHit>, FactStoreError> {
        if self.lexical_down.load(Ordering::SeqCst) {
            return Err(FactStoreError::Unavailable(
                "the lexical index is down".into(),
            ));
        }
        let stored = self.facts()?;
        Self::check_dimension(&stored, query.vector.len())?;
        // Lowercase words of three letters or more, a plural's `s` cut: a crude stemmer.
        let words = |t: &str| -> BTreeSet<String> {
            t.split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.chars().count() >= 3)
                .map(|w| {
                    let w = w.to_lowercase();
                    match w.strip_suffix('s') {
                        Some(stem) if stem.chars().count() >= 3 => stem.to_owned(),
                        _ => w,
                    }
                })
                .collect()
        };
        let asked = words(text);
        let documents: Vec<(&EmbeddedFact, BTreeSet<String>)> = stored
            .values()
            .map(|f| (f, words(f.fact.text.as_str())))
            .collect();
        let total = documents.len() as f32;
        let idf = |word: &String| {
            let df = documents.iter().filter(|(_, w)| w.contains(word)).count() as f32;
            (1.0 + total / df.max(1.0)).ln()
        };
        let mut found = Vec::new();
        for (f, words) in &documents {
            if !query.owners.contains(&f.fact.owner) {
                continue;
            }
            crate::ports::ensure_same_model(Some(&f.model), &query.model)?;
            let lexical: f32 = words.intersection(&asked).map(idf).sum();
            if lexical > 0.0 {
                found.push(LexicalHit {
                    fact: ScoredFact {
                        fact: f.fact.clone(),
                        score: cosine(&f.vector, &query.vector),
                    },
                    lexical,
                });
            }
        }
        found.sort_by(|a, b| b.lexical.total_cmp(&a.lexical));
        found.truncate(query.limit);
        Ok(found)
    }

    async fn known(
        &self,
        ids: &[ragback_domain::FactId],
    ) -> Result<Vec<ragback_domain::FactId>, FactStoreError> {
        let stored = self.facts()?;
        Ok(ids
            .iter()
            .filter(|id| stored.contains_key(id))
            .copied()
            .collect())
    }

    async fn list(
        &self,
        owner: Option<&FactOwner>,
        start: Option<ragback_domain::FactId>,
        limit: usize,
        with_vectors: bool,
    ) -> Result<FactPage, FactStoreError> {
        let stored = self.facts()?;
        let mut matching = stored
            .range(start.unwrap_or(ragback_domain::FactId::from_uuid(Default::default()))..)
            .map(|(_, f)| f)
            .filter(|f| owner.is_none_or(|o| &f.fact.owner == o));
        let facts: Vec<StoredFact> = matching
            .by_ref()
            .take(limit.max(1))
            .map(|f| StoredFact {
                fact: f.fact.clone(),
                vector: with_vectors.then(|| f.vector.clone()),
                model: Some(f.model.clone()),
            })
            .collect();
        Ok(FactPage {
            facts,
            next: matching.next().map(|f| f.fact.id),
        })
    }

    async fn has_message(
        &self,
        owner: &FactOwner,
        message_hash: &str,
    ) -> Result<bool, FactStoreError> {
        Ok(self.facts()?.values().any(|f| {
            &f.fact.owner == owner
                && f.fact
                    .provenance
                    .as_ref()
                    .and_then(|p| p.message_hash.as_deref())
                    == Some(message_hash)
        }))
    }

    async fn delete(
        &self,
        owner: &FactOwner,
        ids: &[ragback_domain::FactId],
    ) -> Result<usize, FactStoreError> {
        let failing = self.failing_deletes.load(Ordering::SeqCst);
        if failing > 0 {
            self.failing_deletes.store(failing - 1, Ordering::SeqCst);
            return Err(FactStoreError::Unavailable("deleting failed".into()));
        }
        let mut stored = self.facts()?;
        let mut deleted = 0;
        for id in ids {
            if stored.get(id).is_some_and(|f| &f.fact.owner == owner) {
                stored.remove(id);
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    async fn delete_owner(&self, owner: &FactOwner) -> Result<usize, FactStoreError> {
        let mut stored = self.facts()?;
        let before = stored.len();
        stored.retain(|_, f| &f.fact.owner != owner);
        Ok(before - stored.len())
    }

    async fn count(&self, owner: Option<&FactOwner>) -> Result<usize, FactStoreError> {
        let stored = self.facts()?;
        Ok(stored
            .values()
            .filter(|f| owner.is_none_or(|o| &f.fact.owner == o))
            .count())
    }

    async fn status(&self) -> Result<StoreStatus, FactStoreError> {
        let stored = self.facts()?;
        Ok(StoreStatus {
            facts: stored.len(),
            dimension: Self::dimension(&stored),
        })
    }
}

/// Stores `texts` as facts of `owner`, embedded by `embedder`.
pub async fn seed(
    embedder: &dyn Embedder,
    store: &dyn FactStore,
    owner: &FactOwner,
    texts: &[&str],
) {
    let facts: Vec<Fact> = texts
        .iter()
        .filter_map(|t| FactText::parse(*t).ok())
        .map(|t| Fact::new(owner.clone(), t))
        .collect();
    let inputs: Vec<String> = facts.iter().map(|f| f.text.as_str().to_owned()).collect();
    let vectors = embedder
        .embed(&inputs, EmbeddingPurpose::Document)
        .await
        .unwrap_or_default();
    let embedded = facts
        .into_iter()
        .zip(vectors)
        .map(|(fact, vector)| EmbeddedFact {
            fact,
            vector,
            model: embedder.model_id().to_owned(),
        })
        .collect();
    let _ = store.upsert(embedded).await;
}

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

/// Renders a plain-text system prompt listing the context, one item per line.
#[derive(Debug, Default)]
pub struct PlainRenderer;

impl PromptRenderer for PlainRenderer {
    fn render(&self, ctx: &PromptContext<'_>) -> Result<RenderedPrompt, PromptError> {
        let mut system = format!(
            "character: {}\ndescription: {}\nuser: {}\n",
            ctx.character.name, ctx.character.description, ctx.user.name
        );
        if let Some(scenario) = ctx.scenario {
            system.push_str(&format!("scenario: {scenario}\n"));
        }
        for fact in ctx.facts {
            system.push_str(&format!("fact: {}\n", fact.fact.text.as_str()));
        }
        Ok(RenderedPrompt {
            system,
            opening_cue: ctx.greeting.then(|| "open the chat".to_owned()),
        })
    }
}
