//! Finding the facts relevant to a chat turn.

use std::sync::Arc;
use std::time::Duration;

use ragback_domain::{FactOwner, Message, Role, ScoredFact, UserId, ValidationError};
use tokio::time::Instant;

use crate::bounds;
use crate::ports::{
    EmbedError, Embedder, EmbeddingPurpose, FactQuery, FactStore, FactStoreError, LexicalHit,
    RerankError, Reranker,
};
use crate::retry::{RetryError, RetryPolicy, retry};

/// Largest `top_k` a request may ask for.
pub const MAX_TOP_K: usize = 50;

/// Each search of a turn (by vector, by words) returns at least this many facts for the
/// cut-off to choose from: the margin, the fusion and the deduplication see the same pool
/// whatever `top_k` is, and `ragback eval retrieval` measures exactly what a reply gets.
pub const CANDIDATE_POOL: usize = 10;

/// Retrieval defaults, from configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalSettings {
    /// Whether retrieval runs when the request does not say.
    pub enabled: bool,
    /// How many facts at most.
    pub top_k: usize,
    /// Minimum cosine similarity of a fact to be used.
    pub threshold: f32,
    /// Facts after the best one must score within this of it (≥ 1: any): a message about one
    /// fact does not drag in the next-best unrelated ones.
    pub margin: f32,
    /// With a reranker: the least relevance score of a used fact (the reranker's scale, not
    /// cosine).
    pub rerank_threshold: f32,
    /// With a reranker: how many of the vector search's best facts it scores.
    pub rerank_candidates: usize,
    /// How much the messages before the last user message weigh in the query (0 to 1): 0 embeds
    /// the window as one text; above, the last user message and the earlier ones are embedded
    /// apart and their unit vectors mixed `(1 − w)·last + w·earlier`.
    pub query_context_weight: f32,
    /// The query is the last user message plus this many messages before it, minus one
    /// (1 = only the last user message).
    pub query_messages: usize,
    /// Hybrid search: with an allowance, the store is also searched by the last user
    /// message's words (BM25), the two rankings are fused, and a fact found by its words is
    /// used at this much below the threshold (a request's threshold included), whatever the
    /// margin. `None`: the vector search alone.
    pub lexical_allowance: Option<f32>,
    /// Whose facts to search when the request names no user.
    pub default_user: Option<UserId>,
    /// Time allowed for embedding the query, retries included.
    pub embed_timeout: Duration,
    /// Retries of the query embedding.
    pub embed_retry: RetryPolicy,
}

/// Per-request changes to the retrieval defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RetrievalOverrides {
    /// Turn retrieval on or off.
    pub enabled: Option<bool>,
    /// Another `top_k`, 1 to [`MAX_TOP_K`].
    pub top_k: Option<usize>,
    /// Another threshold, -1 to 1.
    pub threshold: Option<f32>,
    /// Another margin, 0 to 2 (2: any).
    pub margin: Option<f32>,
}

impl RetrievalOverrides {
    /// These overrides, each unset one taken from `fallback` (a variant's settings under a
    /// request's).
    pub fn or(self, fallback: &Self) -> Self {
        Self {
            enabled: self.enabled.or(fallback.enabled),
            top_k: self.top_k.or(fallback.top_k),
            threshold: self.threshold.or(fallback.threshold),
            margin: self.margin.or(fallback.margin),
        }
    }

    /// Checks the ranges; on failure returns the offending field's name.
    pub fn validate(&self) -> Result<(), (&'static str, ValidationError)> {
        if let Some(top_k) = self.top_k {
            bounds::TOP_K.check_count(top_k).map_err(|e| ("top_k", e))?;
        }
        if let Some(threshold) = self.threshold {
            bounds::THRESHOLD
                .check(threshold)
                .map_err(|e| ("threshold", e))?;
        }
        if let Some(margin) = self.margin {
            bounds::MARGIN.check(margin).map_err(|e| ("margin", e))?;
        }
        Ok(())
    }
}

/// A fact a search found: its cosine similarity (in `fact.score`), and its BM25 score when its
/// words matched the last user message's too.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The fact and its cosine similarity to the query.
    pub fact: ScoredFact,
    /// Its lexical score, when the lexical search found it.
    pub lexical: Option<f32>,
}

/// Reciprocal rank fusion's constant: a fact's fused score is the sum of `1 / (k + rank)` over
/// the rankings it is in (Cormack et al., 2009, and Qdrant's default).
const RRF_K: f32 = 60.0;

/// The vector search's facts (best first) and the lexical search's (best first) as one
/// ranking, by reciprocal rank fusion; a fact in both appears once, with its lexical score.
/// Ties (and a ranking without lexical hits) keep the cosine order.
pub fn fuse(dense: Vec<ScoredFact>, lexical: Vec<LexicalHit>) -> Vec<Candidate> {
    let rrf = |rank: usize| 1.0 / (RRF_K + rank as f32 + 1.0);
    let mut fused: Vec<(Candidate, f32)> = dense
        .into_iter()
        .enumerate()
        .map(|(rank, fact)| {
            let candidate = Candidate {
                fact,
                lexical: None,
            };
            (candidate, rrf(rank))
        })
        .collect();
    for (rank, hit) in lexical.into_iter().enumerate() {
        match fused
            .iter_mut()
            .find(|(c, _)| c.fact.fact.id == hit.fact.fact.id)
        {
            Some((candidate, score)) => {
                candidate.lexical = Some(hit.lexical);
                *score += rrf(rank);
            }
            None => fused.push((
                Candidate {
                    fact: hit.fact,
                    lexical: Some(hit.lexical),
                },
                rrf(rank),
            )),
        }
    }
    fused.sort_by(|(a, x), (b, y)| y.total_cmp(x).then(b.fact.score.total_cmp(&a.fact.score)));
    fused.into_iter().map(|(candidate, _)| candidate).collect()
}

/// Whether a turn uses `candidate`, when the best cosine among its candidates is `best`: at or
/// above the threshold and within the margin of the best, or — found by its words, with a
/// lexical allowance — at or above the threshold less the allowance.
pub fn admits(
    candidate: &Candidate,
    best: f32,
    threshold: f32,
    margin: f32,
    lexical_allowance: Option<f32>,
) -> bool {
    let cosine = candidate.fact.score;
    let by_vector = cosine >= threshold && cosine >= best - margin;
    let by_words =
        candidate.lexical.is_some() && lexical_allowance.is_some_and(|a| cosine >= threshold - a);
    by_vector || by_words
}

/// The best cosine similarity among `candidates`.
pub fn best_cosine(candidates: &[Candidate]) -> f32 {
    candidates
        .iter()
        .map(|c| c.fact.score)
        .fold(f32::NEG_INFINITY, f32::max)
}

/// How retrieval went for one turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetrievalStatus {
    /// The store was searched; the facts (maybe none) passed the threshold.
    Ok,
    /// Not attempted: disabled, no embedder configured, or nothing to embed.
    Skipped,
    /// The embedder or the store failed: the reply goes on without facts.
    Degraded,
}

impl RetrievalStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Skipped => "skipped",
            Self::Degraded => "degraded",
        }
    }
}

/// The outcome of retrieval for one turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrieval {
    /// How it went.
    pub status: RetrievalStatus,
    /// The facts to use, best first.
    pub facts: Vec<ScoredFact>,
    /// Time spent embedding the query.
    pub embed: Duration,
    /// Time spent searching the store.
    pub search: Duration,
}

impl Retrieval {
    fn without_facts(status: RetrievalStatus, embed: Duration, search: Duration) -> Self {
        Self {
            status,
            facts: Vec::new(),
            embed,
            search,
        }
    }
}

/// Why a direct search failed (operators' searches; chat turns degrade instead).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SearchError {
    /// No embedder is configured.
    #[error("no embedder is configured, so facts cannot be searched")]
    NoEmbedder,
    /// Embedding the query failed.
    #[error("embedding the query failed: {0}")]
    Embed(#[from] RetryError<EmbedError>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] FactStoreError),
    /// The reranker failed.
    #[error(transparent)]
    Rerank(RerankError),
}

/// Finds the facts relevant to a chat turn.
#[derive(Clone)]
pub struct FactRetriever {
    embedder: Option<Arc<dyn Embedder>>,
    store: Arc<dyn FactStore>,
    reranker: Option<Arc<dyn Reranker>>,
    settings: RetrievalSettings,
}

impl FactRetriever {
    /// A retriever over `store`; without an embedder every retrieval is skipped.
    pub fn new(
        embedder: Option<Arc<dyn Embedder>>,
        store: Arc<dyn FactStore>,
        settings: RetrievalSettings,
    ) -> Self {
        Self {
            embedder,
            store,
            reranker: None,
            settings,
        }
    }

    /// The same retriever with a reranking stage after the vector search: it scores the best
    /// `rerank_candidates` facts and those scores decide (with `rerank_threshold`). A failing
    /// reranker keeps the vector search's order, and says so in the log.
    pub fn with_reranker(mut self, reranker: Arc<dyn Reranker>) -> Self {
        self.reranker = Some(reranker);
        self
    }

    /// The defaults in use.
    pub fn settings(&self) -> &RetrievalSettings {
        &self.settings
    }

    /// The owners whose facts a turn may use: the user (or the default user) and the character.
    pub fn owners(
        &self,
        user: Option<&UserId>,
        character: Option<&ragback_domain::CharacterId>,
    ) -> Vec<FactOwner> {
        let user = user.or(self.settings.default_user.as_ref());
        user.cloned()
            .map(FactOwner::User)
            .into_iter()
            .chain(character.cloned().map(FactOwner::Character))
            .collect()
    }

    /// How many facts each search returns for `top_k` injected: at least [`CANDIDATE_POOL`],
    /// more when a reranker picks among them.
    fn candidates(&self, top_k: usize) -> usize {
        match self.reranker {
            Some(_) => top_k.max(self.settings.rerank_candidates),
            None => top_k.max(CANDIDATE_POOL),
        }
    }

    /// The query window of a turn: the first index and the last user message's index.
    fn query_window(&self, history: &[Message]) -> Option<(usize, usize)> {
        let last_user = history.iter().rposition(|m| m.role == Role::User)?;
        let first = (last_user + 1).saturating_sub(self.settings.query_messages.max(1));
        Some((first, last_user))
    }

    /// The text to embed for a turn: the last user message, preceded by up to
    /// `query_messages - 1` earlier messages. `None` when no user message exists.
    pub fn query_text(&self, history: &[Message]) -> Option<String> {
        let (first, last_user) = self.query_window(history)?;
        let texts: Vec<&str> = history[first..=last_user]
            .iter()
            .map(|m| m.text.as_str())
            .collect();
        Some(texts.join("\n"))
    }

    /// The texts to embed for a turn: the window as one text, or — with a context weight — the
    /// last user message and the messages before it in the window, apart.
    fn query_texts(&self, history: &[Message]) -> Option<Vec<String>> {
        let (first, last_user) = self.query_window(history)?;
        if self.settings.query_context_weight <= 0.0 || first == last_user {
            return self.query_text(history).map(|joined| vec![joined]);
        }
        let context: Vec<&str> = history[first..last_user]
            .iter()
            .map(|m| m.text.as_str())
            .collect();
        Some(vec![
            history[last_user].text.as_str().to_owned(),
            context.join("\n"),
        ])
    }

    /// Retrieves the facts for a chat turn within the turn's `deadline`: embedding gets its own
    /// timeout or what is left of the turn, whichever is shorter, and the search what is left
    /// after it. Never fails: failures, running out of time included, degrade to no facts and are
    /// logged.
    #[tracing::instrument(skip_all, fields(owners = owners.len()))]
    pub async fn retrieve(
        &self,
        history: &[Message],
        owners: Vec<FactOwner>,
        overrides: &RetrievalOverrides,
        deadline: Instant,
    ) -> Retrieval {
        let retrieval = self.run(history, owners, overrides, deadline).await;
        metrics::counter!("ragback_retrievals_total", "outcome" => retrieval.status.as_str())
            .increment(1);
        if retrieval.status != RetrievalStatus::Skipped {
            metrics::histogram!("ragback_stage_duration_seconds", "stage" => "embed")
                .record(retrieval.embed);
        }
        if retrieval.status == RetrievalStatus::Ok {
            metrics::histogram!("ragback_stage_duration_seconds", "stage" => "search")
                .record(retrieval.search);
        }
        retrieval
    }

    async fn run(
        &self,
        history: &[Message],
        owners: Vec<FactOwner>,
        overrides: &RetrievalOverrides,
        deadline: Instant,
    ) -> Retrieval {
        let zero = Duration::ZERO;
        let enabled = overrides.enabled.unwrap_or(self.settings.enabled);
        let (Some(embedder), true) = (self.embedder.as_ref(), enabled) else {
            return Retrieval::without_facts(RetrievalStatus::Skipped, zero, zero);
        };
        let (Some(query), Some(texts)) = (self.query_text(history), self.query_texts(history))
        else {
            return Retrieval::without_facts(RetrievalStatus::Skipped, zero, zero);
        };
        if owners.is_empty() {
            return Retrieval::without_facts(RetrievalStatus::Skipped, zero, zero);
        }
        let top_k = overrides.top_k.unwrap_or(self.settings.top_k);
        let query_text = query;

        let started = Instant::now();
        let model = embedder.model_id().to_owned();
        let embed_deadline = deadline.min(started + self.settings.embed_timeout);
        let vector = match self
            .embed_query(embedder.as_ref(), texts, embed_deadline)
            .await
        {
            Ok(vector) => vector,
            Err(error) => {
                tracing::warn!(%error, "retrieval degraded: query embedding failed");
                return Retrieval::without_facts(
                    RetrievalStatus::Degraded,
                    started.elapsed(),
                    zero,
                );
            }
        };
        let embed = started.elapsed();

        let started = Instant::now();
        let query = FactQuery {
            vector,
            owners,
            limit: self.candidates(top_k),
            model,
        };
        let words = self.lexical_text(history);
        let found = tokio::time::timeout_at(deadline, self.search_candidates(query, words))
            .await
            .unwrap_or_else(|_elapsed| {
                Err(FactStoreError::Unavailable(
                    "no answer before the request's deadline".into(),
                ))
            });
        let found = match (found, &self.reranker) {
            (Ok(candidates), Some(reranker)) => {
                match tokio::time::timeout_at(
                    deadline,
                    rerank(reranker.as_ref(), &query_text, &candidates),
                )
                .await
                {
                    Ok(Ok(reranked)) => Ok((reranked, self.settings.rerank_threshold, None)),
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "rerank failed: the search's order is kept");
                        Ok((
                            candidates,
                            self.settings.threshold,
                            self.settings.lexical_allowance,
                        ))
                    }
                    Err(_) => {
                        tracing::warn!("rerank ran out of time: the search's order is kept");
                        Ok((
                            candidates,
                            self.settings.threshold,
                            self.settings.lexical_allowance,
                        ))
                    }
                }
            }
            (found, _) => {
                found.map(|c| (c, self.settings.threshold, self.settings.lexical_allowance))
            }
        };
        let search = started.elapsed();
        match found {
            Ok((candidates, default_threshold, lexical_allowance)) => {
                let mut facts = keep_above(
                    candidates,
                    overrides.threshold.unwrap_or(default_threshold),
                    overrides.margin.unwrap_or(self.settings.margin),
                    lexical_allowance,
                );
                facts.truncate(top_k);
                Retrieval {
                    status: RetrievalStatus::Ok,
                    facts,
                    embed,
                    search,
                }
            }
            Err(error) => {
                tracing::warn!(%error, "retrieval degraded: fact search failed");
                Retrieval::without_facts(RetrievalStatus::Degraded, embed, search)
            }
        }
    }

    /// The text the lexical search gets: the last user message, with hybrid search on. Only
    /// the user's words: the character's lines share words with facts they are not about.
    fn lexical_text<'h>(&self, history: &'h [Message]) -> Option<&'h str> {
        self.settings.lexical_allowance?;
        let (_, last_user) = self.query_window(history)?;
        Some(history[last_user].text.as_str())
    }

    /// The vector search's facts, fused with the lexical search's when there are `words`. A
    /// failing lexical search leaves the vector search's facts, and says so in the log.
    async fn search_candidates(
        &self,
        query: FactQuery,
        words: Option<&str>,
    ) -> Result<Vec<Candidate>, FactStoreError> {
        let Some(words) = words else {
            let facts = self.store.search(query).await?;
            return Ok(fuse(facts, Vec::new()));
        };
        let (dense, lexical) = tokio::join!(
            self.store.search(query.clone()),
            self.store.search_lexical(query, words)
        );
        let lexical = lexical.unwrap_or_else(|error| {
            tracing::warn!(%error, "lexical search failed: the vector search's facts alone");
            Vec::new()
        });
        Ok(fuse(dense?, lexical))
    }

    /// Searches the facts for a chat turn as `/generate` does (the query built from the
    /// history by [`Self::query_text`], the lexical search when hybrid search is on, the
    /// reranker when there is one), but failing loudly and without a cut-off: for measuring
    /// retrieval. Candidates come in the order a reply would use them.
    pub async fn search_turn(
        &self,
        history: &[Message],
        owners: Vec<FactOwner>,
        top_k: usize,
    ) -> Result<Vec<Candidate>, SearchError> {
        let embedder = self.embedder.as_ref().ok_or(SearchError::NoEmbedder)?;
        let text = self.query_text(history).unwrap_or_default();
        let texts = self
            .query_texts(history)
            .unwrap_or_else(|| vec![text.clone()]);
        let deadline = Instant::now() + self.settings.embed_timeout;
        let vector = self.embed_query(embedder.as_ref(), texts, deadline).await?;
        let query = FactQuery {
            vector,
            owners,
            limit: self.candidates(top_k),
            model: embedder.model_id().to_owned(),
        };
        let candidates = self
            .search_candidates(query, self.lexical_text(history))
            .await?;
        match &self.reranker {
            None => Ok(candidates),
            Some(reranker) => {
                let mut reranked = rerank(reranker.as_ref(), &text, &candidates)
                    .await
                    .map_err(SearchError::Rerank)?;
                reranked.truncate(top_k);
                Ok(reranked)
            }
        }
    }

    /// The same retriever with hybrid search at another lexical allowance (`None`: off), for
    /// comparing them.
    pub fn with_lexical_allowance(&self, lexical_allowance: Option<f32>) -> Self {
        let mut other = self.clone();
        other.settings.lexical_allowance = lexical_allowance;
        other
    }

    /// The same retriever with another query window (`query_messages`) and context weight,
    /// for comparing them.
    pub fn with_query(&self, query_messages: usize, context_weight: f32) -> Self {
        let mut other = self.clone();
        other.settings.query_messages = query_messages.max(1);
        other.settings.query_context_weight = context_weight.clamp(0.0, 1.0);
        other
    }

    /// Searches facts for an arbitrary text (operators tuning the threshold): every fact at or
    /// above `threshold`, best first — the raw ranking, without the margin and deduplication of
    /// what a reply gets. Fails loudly.
    pub async fn search(
        &self,
        text: &str,
        owners: Vec<FactOwner>,
        top_k: usize,
        threshold: f32,
    ) -> Result<Vec<ScoredFact>, SearchError> {
        self.search_texts(vec![text.to_owned()], owners, top_k, threshold)
            .await
    }

    async fn search_texts(
        &self,
        texts: Vec<String>,
        owners: Vec<FactOwner>,
        top_k: usize,
        threshold: f32,
    ) -> Result<Vec<ScoredFact>, SearchError> {
        let embedder = self.embedder.as_ref().ok_or(SearchError::NoEmbedder)?;
        let deadline = Instant::now() + self.settings.embed_timeout;
        let vector = self.embed_query(embedder.as_ref(), texts, deadline).await?;
        let facts = self
            .store
            .search(FactQuery {
                vector,
                owners,
                limit: top_k,
                model: embedder.model_id().to_owned(),
            })
            .await?;
        let mut facts = facts;
        facts.retain(|f| f.score >= threshold);
        facts.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(facts)
    }

    /// Embeds the query texts in one call: one text is the query; two (the last message and
    /// its context) are mixed by the context weight.
    async fn embed_query(
        &self,
        embedder: &dyn Embedder,
        texts: Vec<String>,
        deadline: Instant,
    ) -> Result<Vec<f32>, RetryError<EmbedError>> {
        let vectors = retry(
            &self.settings.embed_retry,
            deadline,
            "query embedding",
            || embedder.embed(&texts, EmbeddingPurpose::Query),
        )
        .await?;
        match vectors.as_slice() {
            [one] if texts.len() == 1 => Ok(one.clone()),
            [last, context] if texts.len() == 2 && last.len() == context.len() => {
                let w = self.settings.query_context_weight.clamp(0.0, 1.0);
                let mixed: Vec<f32> = unit(last)
                    .iter()
                    .zip(unit(context))
                    .map(|(a, b)| (1.0 - w) * a + w * b)
                    .collect();
                Ok(unit(&mixed))
            }
            _ => Err(RetryError::Failed {
                attempts: 1,
                last: EmbedError::InvalidResponse("expected one vector per query text".into()),
            }),
        }
    }
}

/// `v` scaled to length 1 (unchanged when zero).
fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        return v.to_vec();
    }
    v.iter().map(|x| x / norm).collect()
}

/// `candidates` scored by the reranker instead of by cosine, best first (the reranker's score
/// alone decides: none keeps a lexical score).
async fn rerank(
    reranker: &dyn Reranker,
    query: &str,
    candidates: &[Candidate],
) -> Result<Vec<Candidate>, RerankError> {
    let facts: Vec<&ScoredFact> = candidates.iter().map(|c| &c.fact).collect();
    let documents: Vec<String> = facts
        .iter()
        .map(|f| f.fact.text.as_str().to_owned())
        .collect();
    let scores = reranker.rerank(query, &documents).await?;
    if scores.len() != facts.len() {
        return Err(RerankError::InvalidResponse(format!(
            "{} scores for {} facts",
            scores.len(),
            facts.len()
        )));
    }
    let mut reranked: Vec<ScoredFact> = facts
        .iter()
        .zip(scores)
        .map(|(f, score)| ScoredFact {
            fact: f.fact.clone(),
            score,
        })
        .collect();
    reranked.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(fuse(reranked, Vec::new()))
}

/// The candidates a turn uses ([`admits`]), in their order, without near-duplicates: a fact
/// whose words are nearly those of an earlier one (Jaccard ≥ 0.8 over lowercase words) never
/// takes a slot too.
pub fn used(
    candidates: &[Candidate],
    threshold: f32,
    margin: f32,
    lexical_allowance: Option<f32>,
) -> Vec<&Candidate> {
    let best = best_cosine(candidates);
    let mut kept: Vec<(&Candidate, std::collections::BTreeSet<String>)> = Vec::new();
    for candidate in candidates
        .iter()
        .filter(|c| admits(c, best, threshold, margin, lexical_allowance))
    {
        let words = words(candidate.fact.fact.text.as_str());
        if kept.iter().all(|(_, other)| jaccard(&words, other) < 0.8) {
            kept.push((candidate, words));
        }
    }
    kept.into_iter().map(|(candidate, _)| candidate).collect()
}

/// [`used`], as the facts a reply gets.
fn keep_above(
    candidates: Vec<Candidate>,
    threshold: f32,
    margin: f32,
    lexical_allowance: Option<f32>,
) -> Vec<ScoredFact> {
    used(&candidates, threshold, margin, lexical_allowance)
        .into_iter()
        .map(|c| c.fact.clone())
        .collect()
}

/// The lowercase words of `text` (runs of letters and digits).
pub(crate) fn words(text: &str) -> std::collections::BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The share of words two sets have in common (1 for two empty sets).
pub(crate) fn jaccard(
    a: &std::collections::BTreeSet<String>,
    b: &std::collections::BTreeSet<String>,
) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 1.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

#[cfg(test)]
mod tests {
    use ragback_domain::{CharacterId, MessageText};

    use super::*;
    use crate::testing::{
        FailingEmbedder, InMemoryFactStore, WordEmbedder, quick_retry, retrieval_settings, seed,
    };

    fn scored(text: &str, score: f32) -> ScoredFact {
        ScoredFact {
            fact: ragback_domain::Fact::new(
                FactOwner::User(UserId::parse("john").unwrap()),
                ragback_domain::FactText::parse(text).unwrap(),
            ),
            score,
        }
    }

    fn texts_of(facts: &[ScoredFact]) -> Vec<&str> {
        facts.iter().map(|f| f.fact.text.as_str()).collect()
    }

    #[test]
    fn the_margin_and_deduplication_shape_what_a_reply_gets() {
        let ranked = fuse(
            vec![
                scored("Has a dog named Biscuit", 0.6),
                scored("Has a dog named Biscuit.", 0.58),
                scored("Likes green tea", 0.5),
                scored("Ran a marathon in 2024", 0.2),
            ],
            Vec::new(),
        );
        let got = keep_above(ranked, 0.1, 0.15, None);
        assert_eq!(
            texts_of(&got),
            ["Has a dog named Biscuit", "Likes green tea"],
            "the near-duplicate and the fact 0.4 below the best are left out"
        );
        let tea = fuse(vec![scored("Likes green tea", 0.5)], Vec::new());
        assert_eq!(keep_above(tea, 0.6, 2.0, None), vec![]);
        assert_eq!(keep_above(vec![], 0.0, 0.0, None), vec![]);
    }

    #[test]
    fn fusion_ranks_by_both_searches_and_the_allowance_admits_facts_found_by_words() {
        let hit = |fact: &ScoredFact, lexical: f32| LexicalHit {
            fact: fact.clone(),
            lexical,
        };
        let (a, b, c, d) = (
            scored("Likes green tea", 0.6),
            scored("Lives in Leeds", 0.5),
            scored("Has a dog named Biscuit", 0.2),
            scored("Bakes biscuits on Sundays", 0.1),
        );
        let ranked = fuse(
            vec![a.clone(), b.clone(), c.clone()],
            vec![hit(&c, 3.0), hit(&d, 2.0)],
        );
        let order: Vec<(&str, Option<f32>)> = ranked
            .iter()
            .map(|r| (r.fact.fact.text.as_str(), r.lexical))
            .collect();
        assert_eq!(
            order,
            [
                ("Has a dog named Biscuit", Some(3.0)),
                ("Likes green tea", None),
                ("Lives in Leeds", None),
                ("Bakes biscuits on Sundays", Some(2.0)),
            ],
            "in both rankings first; a tie of ranks goes to the higher cosine"
        );
        assert_eq!(
            texts_of(&keep_above(ranked.clone(), 0.3, 2.0, Some(0.15))),
            [
                "Has a dog named Biscuit",
                "Likes green tea",
                "Lives in Leeds"
            ],
            "found by its words at 0.15 below the threshold; 0.1 is further"
        );
        assert_eq!(
            texts_of(&keep_above(ranked.clone(), 0.3, 0.05, Some(0.15))),
            ["Has a dog named Biscuit", "Likes green tea"],
            "the margin holds for facts found by the vector alone"
        );
        assert_eq!(
            texts_of(&keep_above(ranked.clone(), 0.99, 2.0, Some(0.15))),
            Vec::<&str>::new(),
            "the allowance is relative to the threshold in use"
        );
        assert_eq!(
            texts_of(&keep_above(ranked, 0.3, 2.0, None)),
            ["Likes green tea", "Lives in Leeds"],
            "no allowance: the threshold decides"
        );
    }

    #[tokio::test]
    async fn hybrid_search_finds_a_name_the_vector_leaves_below_the_threshold() {
        let store = Arc::new(InMemoryFactStore::default());
        let embedder = Arc::new(WordEmbedder::default());
        let long = "owns a cat named Kit, two dogs, a parrot, four goldfish, one old tortoise, \
                    three hamsters, six chickens and a very grumpy goat called Bill";
        seed(&*embedder, &*store, &user("john"), &[long, "likes jazz"]).await;
        let history = [msg(Role::User, "Kit")];
        let strict = RetrievalSettings {
            threshold: 0.35,
            ..settings()
        };
        let vector_only = FactRetriever::new(Some(embedder), store.clone(), strict);
        let got = for_john(&vector_only, &history).await;
        assert_eq!(
            got.facts,
            vec![],
            "one shared word of twenty-three: below the threshold"
        );

        let hybrid = vector_only.with_lexical_allowance(Some(0.15));
        let got = for_john(&hybrid, &history).await;
        assert_eq!(got.status, RetrievalStatus::Ok);
        assert_eq!(texts_of(&got.facts), [long]);
        assert!(
            got.facts[0].score < 0.35 && got.facts[0].score > 0.2,
            "the reply sees the cosine: {}",
            got.facts[0].score
        );
        let turn = hybrid
            .search_turn(&history, vec![user("john")], 3)
            .await
            .unwrap();
        assert!(turn[0].lexical.is_some(), "{turn:?}");

        // The lexical search failing: the vector search's facts, not a degraded turn.
        store.set_lexical_down(true);
        let jazz = [msg(Role::User, "likes jazz")];
        let got = for_john(&hybrid, &jazz).await;
        assert_eq!(got.status, RetrievalStatus::Ok);
        assert_eq!(texts_of(&got.facts), ["likes jazz"]);
        let got = for_john(&hybrid, &history).await;
        assert_eq!(
            got.facts,
            vec![],
            "without the words, Kit stays below the threshold"
        );
    }

    /// A turn of John's with the default overrides.
    async fn for_john(retriever: &FactRetriever, history: &[Message]) -> Retrieval {
        retriever
            .retrieve(
                history,
                vec![user("john")],
                &RetrievalOverrides::default(),
                soon(),
            )
            .await
    }

    fn settings() -> RetrievalSettings {
        retrieval_settings(Some(UserId::parse("john").unwrap()), quick_retry(2))
    }

    /// A deadline no test reaches.
    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn msg(role: Role, text: &str) -> Message {
        Message::new(role, MessageText::parse(text).unwrap())
    }

    fn user(id: &str) -> FactOwner {
        FactOwner::User(UserId::parse(id).unwrap())
    }

    #[test]
    fn query_is_the_last_user_message_or_a_window_ending_there() {
        let history = vec![
            msg(Role::User, "hi"),
            msg(Role::Character, "yo"),
            msg(Role::User, "I ran a marathon"),
            msg(Role::Character, "wow"),
        ];
        let store = Arc::new(InMemoryFactStore::default());
        let one = FactRetriever::new(None, store.clone(), settings());
        assert_eq!(
            one.query_text(&history).as_deref(),
            Some("I ran a marathon")
        );

        let three = FactRetriever::new(
            None,
            store,
            RetrievalSettings {
                query_messages: 3,
                ..settings()
            },
        );
        assert_eq!(
            three.query_text(&history).as_deref(),
            Some("hi\nyo\nI ran a marathon")
        );
        assert_eq!(three.query_text(&[msg(Role::Character, "hello")]), None);
    }

    #[tokio::test]
    async fn with_a_context_weight_the_last_message_and_its_context_are_embedded_apart() {
        let history = vec![
            msg(Role::User, "my sister turns eighteen"),
            msg(Role::Character, "the little one?"),
            msg(Role::User, "yeah she wants a party"),
        ];
        let store = Arc::new(InMemoryFactStore::default());
        let embedder = Arc::new(WordEmbedder::default());
        seed(
            &*embedder,
            &*store,
            &user("john"),
            &["has a sister who turns eighteen"],
        )
        .await;
        let weighted = FactRetriever::new(
            Some(embedder.clone()),
            store,
            RetrievalSettings {
                query_messages: 3,
                query_context_weight: 0.5,
                threshold: 0.1,
                ..settings()
            },
        );
        assert_eq!(
            weighted.query_texts(&history),
            Some(vec![
                "yeah she wants a party".to_owned(),
                "my sister turns eighteen\nthe little one?".to_owned()
            ])
        );
        assert_eq!(
            weighted
                .with_query(3, 0.0)
                .query_texts(&history)
                .map(|t| t.len()),
            Some(1),
            "no weight: the window is one text"
        );
        let found = for_john(&weighted, &history).await;
        assert_eq!(found.status, RetrievalStatus::Ok);
        assert_eq!(found.facts.len(), 1, "the context finds the sister");
    }

    #[test]
    fn owners_fall_back_to_the_default_user_and_add_the_character() {
        let retriever =
            FactRetriever::new(None, Arc::new(InMemoryFactStore::default()), settings());
        let blaze = CharacterId::parse("blaze").unwrap();
        assert_eq!(
            retriever.owners(None, Some(&blaze)),
            vec![user("john"), FactOwner::Character(blaze)]
        );
        assert_eq!(
            retriever.owners(Some(&UserId::parse("jane").unwrap()), None),
            vec![user("jane")]
        );
    }

    #[tokio::test]
    async fn relevant_facts_above_the_threshold_are_returned_best_first() {
        let store = Arc::new(InMemoryFactStore::default());
        let embedder = Arc::new(WordEmbedder::default());
        seed(
            &*embedder,
            &*store,
            &user("john"),
            &["ran the london marathon", "owns a cat named Kit"],
        )
        .await;
        seed(&*embedder, &*store, &user("jane"), &["ran a marathon too"]).await;
        let retriever = FactRetriever::new(Some(embedder), store, settings());

        let found = for_john(&retriever, &[msg(Role::User, "I ran the marathon")]).await;

        assert_eq!(found.status, RetrievalStatus::Ok);
        let texts: Vec<_> = found.facts.iter().map(|f| f.fact.text.as_str()).collect();
        assert_eq!(texts, ["ran the london marathon"]);
    }

    /// Scores a fact by whether its text holds the word it is told, ignoring the query; fails
    /// when told to.
    struct WordReranker(&'static str, bool);

    #[async_trait::async_trait]
    impl Reranker for WordReranker {
        fn model(&self) -> &str {
            "test/rerank"
        }

        async fn rerank(
            &self,
            _query: &str,
            documents: &[String],
        ) -> Result<Vec<f32>, RerankError> {
            if self.1 {
                return Err(RerankError::Unavailable("down".into()));
            }
            Ok(documents
                .iter()
                .map(|d| if d.contains(self.0) { 0.9 } else { 0.05 })
                .collect())
        }
    }

    #[tokio::test]
    async fn a_reranker_decides_and_a_failing_one_leaves_the_vector_order() {
        let store = Arc::new(InMemoryFactStore::default());
        let embedder = Arc::new(WordEmbedder::default());
        seed(
            &*embedder,
            &*store,
            &user("john"),
            &[
                "ran the london marathon",
                "ran a relay in the park",
                "owns a cat named Kit",
            ],
        )
        .await;
        let lenient = RetrievalSettings {
            threshold: -1.0,
            ..settings()
        };
        let history = [msg(Role::User, "I ran the marathon")];
        let texts = |r: &Retrieval| {
            r.facts
                .iter()
                .map(|f| f.fact.text.as_str().to_owned())
                .collect::<Vec<_>>()
        };

        // The reranker favours the cat: it comes first, alone above the rerank threshold.
        let reranked = FactRetriever::new(Some(embedder.clone()), store.clone(), lenient.clone())
            .with_reranker(Arc::new(WordReranker("cat", false)));
        let got = for_john(&reranked, &history).await;
        assert_eq!(got.status, RetrievalStatus::Ok);
        assert_eq!(texts(&got), ["owns a cat named Kit"]);
        assert!(
            (got.facts[0].score - 0.9).abs() < 1e-6,
            "the reranker's score is reported"
        );

        // A failing reranker: the vector search's order and threshold.
        let failing = FactRetriever::new(Some(embedder), store, lenient)
            .with_reranker(Arc::new(WordReranker("cat", true)));
        let got = for_john(&failing, &history).await;
        assert_eq!(got.status, RetrievalStatus::Ok);
        assert_eq!(texts(&got)[0], "ran the london marathon");
    }

    #[tokio::test]
    async fn overrides_change_threshold_and_top_k() {
        let store = Arc::new(InMemoryFactStore::default());
        let embedder = Arc::new(WordEmbedder::default());
        seed(
            &*embedder,
            &*store,
            &user("john"),
            &["likes cats", "likes dogs", "likes jazz"],
        )
        .await;
        let retriever = FactRetriever::new(Some(embedder), store, settings());
        let history = [msg(Role::User, "likes")];

        let all = RetrievalOverrides {
            threshold: Some(-1.0),
            top_k: Some(2),
            ..Default::default()
        };
        let found = retriever
            .retrieve(&history, vec![user("john")], &all, soon())
            .await;
        assert_eq!(found.facts.len(), 2);

        let none = RetrievalOverrides {
            threshold: Some(0.99),
            ..Default::default()
        };
        let found = retriever
            .retrieve(&history, vec![user("john")], &none, soon())
            .await;
        assert_eq!(found.status, RetrievalStatus::Ok);
        assert!(found.facts.is_empty());
    }

    #[tokio::test]
    async fn retrieval_is_skipped_when_disabled_or_without_embedder_or_user_message() {
        let store = Arc::new(InMemoryFactStore::default());
        let history = [msg(Role::User, "hey")];
        let no_embedder = FactRetriever::new(None, store.clone(), settings());
        let r = no_embedder
            .retrieve(&history, vec![user("john")], &Default::default(), soon())
            .await;
        assert_eq!(r.status, RetrievalStatus::Skipped);

        let retriever =
            FactRetriever::new(Some(Arc::new(WordEmbedder::default())), store, settings());
        let disabled = RetrievalOverrides {
            enabled: Some(false),
            ..Default::default()
        };
        let r = retriever
            .retrieve(&history, vec![user("john")], &disabled, soon())
            .await;
        assert_eq!(r.status, RetrievalStatus::Skipped);
        let r = retriever
            .retrieve(&[], vec![user("john")], &Default::default(), soon())
            .await;
        assert_eq!(r.status, RetrievalStatus::Skipped);
    }

    #[tokio::test]
    async fn a_failing_embedder_degrades_after_retrying() {
        let embedder = Arc::new(FailingEmbedder::default());
        let retriever = FactRetriever::new(
            Some(embedder.clone()),
            Arc::new(InMemoryFactStore::default()),
            settings(),
        );

        let r = retriever
            .retrieve(
                &[msg(Role::User, "hey")],
                vec![user("john")],
                &Default::default(),
                soon(),
            )
            .await;

        assert_eq!(r.status, RetrievalStatus::Degraded);
        assert!(r.facts.is_empty());
        assert_eq!(embedder.calls(), 2);
    }

    #[test]
    fn overrides_are_range_checked() {
        let bad_k = RetrievalOverrides {
            top_k: Some(0),
            ..Default::default()
        };
        assert_eq!(bad_k.validate().unwrap_err().0, "top_k");
        let bad_threshold = RetrievalOverrides {
            threshold: Some(1.5),
            ..Default::default()
        };
        assert_eq!(bad_threshold.validate().unwrap_err().0, "threshold");
        assert!(RetrievalOverrides::default().validate().is_ok());
    }
}
