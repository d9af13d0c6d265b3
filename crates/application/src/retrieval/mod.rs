//! Finding the facts relevant to a chat turn: one pipeline, from the query
//! ([`query`](self::query): the window of the turn, its embedding), through the searches and
//! their fusion ([`fusion`]), the reranker when there is one ([`rerank`](self::rerank)), to the
//! cut-off ([`cutoff`]). [`FactRetriever::rank`] is the pipeline up to the cut-off; replies
//! ([`FactRetriever::retrieve`]) and the evaluation's sweeps both go through it.

mod cutoff;
mod fusion;
mod query;
mod rerank;

use std::sync::Arc;
use std::time::Duration;

use ragback_domain::{FactId, FactOwner, Message, ScoredFact, UserId, ValidationError};
use tokio::time::Instant;

use crate::bounds;
pub use crate::bounds::MAX_TOP_K;
use crate::ports::{Embedder, FactQuery, FactStore, FactStoreError, RerankError, Reranker};
use crate::retry::RetryPolicy;
pub use cutoff::{Cutoff, best_score};
pub use fusion::{Candidate, best_of, fuse};
pub(crate) use query::Query;
pub use query::QueryError;
use query::QueryVectors;

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
    /// The last user message is also searched alone, and each fact keeps the better of its two
    /// scores: a fact the message names is found even when the window is about something else.
    pub query_last_alone: bool,
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
    Embed(#[from] QueryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] FactStoreError),
    /// The reranker failed.
    #[error(transparent)]
    Rerank(RerankError),
}

/// The ranking of a search, with the cut-off its scores call for.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    /// The candidates, in the order a reply uses them.
    pub candidates: Vec<Candidate>,
    /// The cut-off for their scores: the reranker's threshold when it ranked them, else the
    /// configured threshold and hybrid search's allowance.
    pub cutoff: Cutoff,
}

/// What a failing reranker means for the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnRerankFailure {
    /// The search's own order and cut-off are kept (a reply goes on), and the log says so.
    KeepSearchOrder,
    /// The search fails (measurements must not mix rankings).
    Fail,
}

/// Finds the facts relevant to a chat turn.
#[derive(Clone)]
pub struct FactRetriever {
    pub(crate) embedder: Option<Arc<dyn Embedder>>,
    store: Arc<dyn FactStore>,
    reranker: Option<Arc<dyn Reranker>>,
    pub(crate) settings: RetrievalSettings,
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
    fn pool(&self, top_k: usize) -> usize {
        match self.reranker {
            Some(_) => top_k.max(self.settings.rerank_candidates),
            None => top_k.max(CANDIDATE_POOL),
        }
    }

    /// Whether a reranker scores the candidates.
    pub(crate) fn reranks(&self) -> bool {
        self.reranker.is_some()
    }

    /// The configured cut-off of the search's own scores.
    fn search_cutoff(&self) -> Cutoff {
        Cutoff {
            threshold: self.settings.threshold,
            margin: self.settings.margin,
            lexical_allowance: self.settings.lexical_allowance,
        }
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
        let skipped = || Retrieval::without_facts(RetrievalStatus::Skipped, zero, zero);
        if !overrides.enabled.unwrap_or(self.settings.enabled) || owners.is_empty() {
            return skipped();
        }
        let (Some(embedder), Some(query)) = (self.embedder.as_ref(), self.turn_query(history))
        else {
            return skipped();
        };
        let top_k = overrides.top_k.unwrap_or(self.settings.top_k);

        let started = Instant::now();
        let embed_deadline = deadline.min(started + self.settings.embed_timeout);
        let vectors = match self.embed(embedder.as_ref(), &query, embed_deadline).await {
            Ok(vectors) => vectors,
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
        let ranked = self
            .rank(
                &query,
                vectors,
                owners,
                top_k,
                Some(deadline),
                OnRerankFailure::KeepSearchOrder,
            )
            .await;
        let search = started.elapsed();
        match ranked {
            Ok(Ranked { candidates, cutoff }) => {
                let cutoff = Cutoff {
                    threshold: overrides.threshold.unwrap_or(cutoff.threshold),
                    margin: overrides.margin.unwrap_or(cutoff.margin),
                    ..cutoff
                };
                let mut facts: Vec<ScoredFact> = cutoff
                    .apply(&candidates)
                    .into_iter()
                    .take(top_k)
                    .map(|c| c.fact.clone())
                    .collect();
                // Chosen in the fused (or reranked) order, listed by the score shown.
                facts.sort_by(|a, b| b.score.total_cmp(&a.score));
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

    /// The pipeline up to the cut-off: the owners' facts for the embedded `query` (`vectors`) —
    /// the vector search (by the window, and by the last message alone when it is searched
    /// apart: each fact at its better score), fused with the lexical search's when the query
    /// has words, reranked
    /// when there is a reranker — each search returning [`Self::pool`] of `top_k`, all before
    /// `deadline` (none: no limit but the searches' own).
    pub(crate) async fn rank(
        &self,
        query: &Query,
        vectors: QueryVectors,
        owners: Vec<FactOwner>,
        top_k: usize,
        deadline: Option<Instant>,
        on_rerank_failure: OnRerankFailure,
    ) -> Result<Ranked, SearchError> {
        let embedder_model = self
            .embedder
            .as_ref()
            .map(|e| e.model_id().to_owned())
            .unwrap_or_default();
        let search = FactQuery {
            vector: vectors.main,
            owners,
            limit: self.pool(top_k),
            model: embedder_model,
        };
        let candidates = within(
            deadline,
            self.search_candidates(search, vectors.alone, query.words.as_deref()),
        )
        .await
        .unwrap_or_else(|| {
            Err(FactStoreError::Unavailable(
                "no answer before the request's deadline".into(),
            ))
        })?;
        let searched = Ranked {
            candidates,
            cutoff: self.search_cutoff(),
        };
        let Some(reranker) = &self.reranker else {
            return Ok(searched);
        };
        let reranked = within(
            deadline,
            rerank::rerank(reranker.as_ref(), &query.text, &searched.candidates),
        )
        .await
        .unwrap_or_else(|| Err(RerankError::Unavailable("ran out of time".into())));
        match (reranked, on_rerank_failure) {
            (Ok(candidates), _) => Ok(Ranked {
                candidates,
                cutoff: Cutoff {
                    threshold: self.settings.rerank_threshold,
                    margin: self.settings.margin,
                    lexical_allowance: None,
                },
            }),
            (Err(error), OnRerankFailure::KeepSearchOrder) => {
                tracing::warn!(%error, "rerank failed: the search's order is kept");
                Ok(searched)
            }
            (Err(error), OnRerankFailure::Fail) => Err(SearchError::Rerank(error)),
        }
    }

    /// The vector search's facts (by `query`'s vector and by `alone`, each fact at its better
    /// score), fused with the lexical search's when there are `words`. A failing lexical search
    /// leaves the vector search's facts, and says so in the log.
    async fn search_candidates(
        &self,
        query: FactQuery,
        alone: Option<Vec<f32>>,
        words: Option<&str>,
    ) -> Result<Vec<Candidate>, FactStoreError> {
        let Some(words) = words else {
            let (facts, named) = self.dense(query, alone).await?;
            return Ok(mark(fuse(facts, Vec::new()), named));
        };
        let (dense, lexical) = tokio::join!(
            self.dense(query.clone(), alone),
            self.store.search_lexical(query, words)
        );
        let lexical = lexical.unwrap_or_else(|error| {
            tracing::warn!(%error, "lexical search failed: the vector search's facts alone");
            Vec::new()
        });
        let (dense, named) = dense?;
        Ok(mark(fuse(dense, lexical), named))
    }

    /// The vector search by `query`'s vector, and the last message's own best match by `alone`
    /// when given (joining the list, or raised to its better score), best first, at most the
    /// query's limit; with that match's id.
    async fn dense(
        &self,
        query: FactQuery,
        alone: Option<Vec<f32>>,
    ) -> Result<(Vec<ScoredFact>, Option<FactId>), FactStoreError> {
        let Some(alone) = alone else {
            return Ok((self.store.search(query).await?, None));
        };
        let limit = query.limit;
        let by_last = FactQuery {
            vector: alone,
            ..query.clone()
        };
        let (window, last) = tokio::join!(self.store.search(query), self.store.search(by_last));
        // Only the last message's best match joins (or is raised): the rest of its ranking
        // would bring back the noise the window keeps out.
        let best: Vec<ScoredFact> = last?.into_iter().take(1).collect();
        let named = best.first().map(|f| f.fact.id);
        Ok((best_of(window?, best, limit), named))
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
        let embedder = self.embedder.as_ref().ok_or(SearchError::NoEmbedder)?;
        let deadline = Instant::now() + self.settings.embed_timeout;
        let vector = self
            .embed(embedder.as_ref(), &Self::text_query(text), deadline)
            .await?
            .main;
        let mut facts = self
            .store
            .search(FactQuery {
                vector,
                owners,
                limit: top_k,
                model: embedder.model_id().to_owned(),
            })
            .await?;
        facts.retain(|f| f.score >= threshold);
        facts.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(facts)
    }
}

/// `work`'s output, or `None` when `deadline` passes first.
async fn within<T>(
    deadline: Option<Instant>,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, work).await.ok(),
        None => Some(work.await),
    }
}

/// `candidates` with `named` marked as the last message's own best match.
fn mark(mut candidates: Vec<Candidate>, named: Option<FactId>) -> Vec<Candidate> {
    if let Some(named) = named
        && let Some(candidate) = candidates.iter_mut().find(|c| c.fact.fact.id == named)
    {
        candidate.named = true;
    }
    candidates
}

#[cfg(test)]
mod tests {
    use ragback_domain::{CharacterId, MessageText, Role};

    use super::*;
    use crate::ports::{LexicalHit, RerankError};
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

    /// What a reply keeps of `candidates` under this cut-off.
    fn keep_above(
        candidates: Vec<Candidate>,
        threshold: f32,
        margin: f32,
        lexical_allowance: Option<f32>,
    ) -> Vec<ScoredFact> {
        let cutoff = Cutoff {
            threshold,
            margin,
            lexical_allowance,
        };
        cutoff
            .apply(&candidates)
            .into_iter()
            .map(|c| c.fact.clone())
            .collect()
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

    #[tokio::test]
    async fn the_fact_the_last_message_names_is_found_after_a_change_of_topic() {
        let history = vec![
            msg(
                Role::User,
                "the london marathon was long, the marathon crowd was loud",
            ),
            msg(
                Role::Character,
                "a whole london marathon, the crowd and the long road",
            ),
            msg(Role::User, "how is my dog Biscuit"),
        ];
        let store = Arc::new(InMemoryFactStore::default());
        let embedder = Arc::new(WordEmbedder::default());
        seed(
            &*embedder,
            &*store,
            &user("john"),
            &["ran the london marathon", "has a dog named Biscuit"],
        )
        .await;
        let retriever = |alone: bool| {
            FactRetriever::new(
                Some(embedder.clone()),
                store.clone(),
                RetrievalSettings {
                    query_messages: 3,
                    query_last_alone: alone,
                    threshold: 0.3,
                    margin: 0.15,
                    ..settings()
                },
            )
        };
        let texts = |r: &Retrieval| -> Vec<String> {
            r.facts
                .iter()
                .map(|f| f.fact.text.as_str().to_owned())
                .collect()
        };
        let window = for_john(&retriever(false), &history).await;
        assert_eq!(
            texts(&window),
            ["ran the london marathon"],
            "drowned: {window:?}"
        );
        let both = for_john(&retriever(true), &history).await;
        assert!(
            texts(&both).contains(&"has a dog named Biscuit".to_owned()),
            "{both:?}"
        );
        assert!(
            both.facts.windows(2).all(|w| w[0].score >= w[1].score),
            "best first: {:?}",
            both.facts
        );
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
