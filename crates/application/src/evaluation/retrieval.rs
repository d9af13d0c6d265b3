//! Measuring retrieval against labelled queries: recall@k, MRR and a threshold sweep, so the
//! similarity threshold is chosen from numbers.

use ragback_domain::{FactOwner, Message, ScoredFact, UserId};

use tokio::time::Instant;

use crate::retrieval::{
    CANDIDATE_POOL, Candidate, Cutoff, FactRetriever, OnRerankFailure, SearchError,
};

/// How many of an owner's best facts the gap of a cut-off is measured against.
pub const GAP_DEPTH: usize = CANDIDATE_POOL;

/// A cut-off: which of a query's ranked facts are injected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SweepCutoff {
    /// The least cosine similarity.
    pub threshold: f32,
    /// The best fact must stand this far above the mean of the next ones (up to
    /// [`GAP_DEPTH`]): small talk scores flat, a message about a fact does not.
    pub gap: f32,
    /// Facts after the best must be within this of it.
    pub margin: f32,
    /// Hybrid search's allowance for facts found by their words (`None`: the vector alone).
    pub lexical_allowance: Option<f32>,
}

impl SweepCutoff {
    /// A plain threshold: no gap, any margin.
    pub fn threshold_only(threshold: f32) -> Self {
        Self {
            threshold,
            gap: 0.0,
            margin: 2.0,
            lexical_allowance: None,
        }
    }

    /// The injected facts of `ranked` (in the order a reply uses them), at most `top_k`: what
    /// a reply's [`Cutoff`] keeps, when the best cosine stands the gap above the next ones'.
    pub fn apply<'a>(&self, ranked: &'a [Candidate], top_k: usize) -> Vec<&'a ScoredFact> {
        let mut cosines: Vec<f32> = ranked.iter().map(|c| c.fact.score).collect();
        cosines.sort_by(|a, b| b.total_cmp(a));
        let Some(best) = cosines.first() else {
            return Vec::new();
        };
        let rest = &cosines[1..cosines.len().min(GAP_DEPTH)];
        let mean_rest = if rest.is_empty() {
            0.0
        } else {
            rest.iter().sum::<f32>() / rest.len() as f32
        };
        if best - mean_rest < self.gap {
            return Vec::new();
        }
        Cutoff {
            threshold: self.threshold,
            margin: self.margin,
            lexical_allowance: self.lexical_allowance,
        }
        .apply(ranked)
        .into_iter()
        .take(top_k)
        .map(|c| &c.fact)
        .collect()
    }
}

impl FactRetriever {
    /// Searches the facts for a chat turn as `/generate` does (the query built from the
    /// history, the lexical search when hybrid search is on, the reranker when there is one:
    /// [`FactRetriever::rank`]), but failing loudly and without a cut-off: for measuring
    /// retrieval. Candidates come in the order a reply would use them.
    pub async fn search_turn(
        &self,
        history: &[Message],
        owners: Vec<FactOwner>,
        top_k: usize,
    ) -> Result<Vec<Candidate>, SearchError> {
        let embedder = self.embedder.as_ref().ok_or(SearchError::NoEmbedder)?;
        let query = self
            .turn_query(history)
            .unwrap_or_else(|| Self::text_query(""));
        let deadline = Instant::now() + self.settings.embed_timeout;
        let vector = self.embed(embedder.as_ref(), &query, deadline).await?;
        let reranks = self.reranks();
        let mut ranked = self
            .rank(&query, vector, owners, top_k, None, OnRerankFailure::Fail)
            .await?
            .candidates;
        if reranks {
            ranked.truncate(top_k);
        }
        Ok(ranked)
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
}

/// The ranks at which recall is reported.
pub const RECALL_AT: [usize; 3] = [1, 3, 5];

/// One labelled query: what a user said, and the texts of the facts that should be used.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledQuery {
    /// Whose facts are searched.
    pub user: UserId,
    /// The chat message.
    pub query: String,
    /// The messages before it, oldest first (what "she" or "that trip" refers to); the query
    /// is built from them as `/generate` builds it (`RAGBACK_RETRIEVAL__QUERY_MESSAGES`).
    pub context: Vec<Message>,
    /// Exact texts of the relevant facts; empty when no fact should be used.
    pub relevant: Vec<String>,
}

/// What the store returned for one query, best first, without a threshold.
#[derive(Debug, Clone)]
pub struct QueryOutcome {
    /// The query.
    pub query: LabelledQuery,
    /// The ranked facts, in the order a reply would use them (at least `max(10, top_k)` of
    /// them, and the lexical search's, when the user has that many).
    pub ranked: Vec<Candidate>,
}

impl QueryOutcome {
    /// A fact of the query's user with one of the labelled texts.
    fn is_relevant(&self, fact: &ScoredFact) -> bool {
        matches!(&fact.fact.owner, FactOwner::User(id) if *id == self.query.user)
            && self
                .query
                .relevant
                .iter()
                .any(|r| r == fact.fact.text.as_str())
    }

    /// 1-based rank of the first relevant fact.
    fn first_relevant_rank(&self) -> Option<usize> {
        self.ranked
            .iter()
            .position(|c| self.is_relevant(&c.fact))
            .map(|i| i + 1)
    }

    fn recall_at(&self, k: usize) -> f64 {
        let found = self
            .ranked
            .iter()
            .take(k)
            .filter(|c| self.is_relevant(&c.fact))
            .count();
        found as f64 / self.query.relevant.len() as f64
    }

    /// Facts of anyone but the query's user.
    fn leaks(&self) -> usize {
        let user = FactOwner::User(self.query.user.clone());
        self.ranked
            .iter()
            .filter(|c| c.fact.fact.owner != user)
            .count()
    }
}

/// The facts that would be injected at one threshold (at most `top_k` per query).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SweepRow {
    /// The similarity threshold.
    pub threshold: f32,
    /// The gap the best fact needs over the next ones (0: none).
    pub gap: f32,
    /// How far below the best the others may be (≥ 1: any).
    pub margin: f32,
    /// Hybrid search's allowance for facts found by their words (`None`: the vector alone).
    pub lexical_allowance: Option<f32>,
    /// Share of injected facts that are relevant (1 when nothing is injected).
    pub precision: f64,
    /// Share of relevant facts that are injected.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Share of "nothing relevant" queries that get at least one fact.
    pub false_positive_share: f64,
    /// Share of the queries with a relevant fact that get at least one relevant fact injected.
    pub hit_rate: f64,
    /// Facts injected over all queries.
    pub injected: usize,
}

/// The measured quality of retrieval.
#[derive(Debug, Clone)]
pub struct EvalReport {
    /// Queries run.
    pub queries: usize,
    /// Queries with at least one relevant fact (recall and MRR are over these).
    pub with_relevant: usize,
    /// `top_k` used for the sweep.
    pub top_k: usize,
    /// Mean recall at each of [`RECALL_AT`].
    pub recall_at: Vec<(usize, f64)>,
    /// Mean reciprocal rank of the first relevant fact.
    pub mrr: f64,
    /// One row per threshold, ascending.
    pub sweep: Vec<SweepRow>,
    /// The row with the best F1 (ties: fewer false positives, then the higher threshold).
    pub recommended: SweepRow,
    /// Facts of another user returned for a query (must be 0).
    pub leaks: usize,
    /// The cut-off that best meets the targets (its worst of hit rate, precision and
    /// 1 − small-talk fed is the highest; ties: higher F1, then the simpler cut-off).
    pub best_cutoff: SweepRow,
    /// What the configured cut-off (threshold and margin) injects.
    pub configured: SweepRow,
}

/// Thresholds swept: 0.00 to 0.80 in steps of 0.025.
pub fn thresholds() -> impl Iterator<Item = f32> {
    (0..=32).map(|i| i as f32 * 0.025)
}

/// Why a query set cannot be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// No queries at all.
    #[error("the query set is empty")]
    NoQueries,
    /// Nothing to measure recall on.
    #[error("no query has a relevant fact: recall cannot be measured")]
    NothingRelevant,
    /// A query is not a valid chat message.
    #[error("query {index} is not a valid message: {message}")]
    InvalidQuery {
        /// 1-based position in the set.
        index: usize,
        /// Why.
        message: String,
    },
    /// A search failed.
    #[error("query {index} ({query:?}) failed: {source}")]
    Search {
        /// 1-based position in the set.
        index: usize,
        /// The query text.
        query: String,
        /// The failure.
        source: SearchError,
    },
}

/// Runs every query through `retriever` (the same path as `/facts/search`) and scores them.
pub async fn evaluate(
    retriever: &FactRetriever,
    queries: Vec<LabelledQuery>,
    top_k: usize,
) -> Result<EvalReport, EvalError> {
    let depth = top_k.max(RECALL_AT[RECALL_AT.len() - 1]).max(GAP_DEPTH);
    let mut outcomes = Vec::with_capacity(queries.len());
    for (i, query) in queries.into_iter().enumerate() {
        let owners = vec![FactOwner::User(query.user.clone())];
        let mut turn = query.context.clone();
        let text = ragback_domain::MessageText::parse(query.query.as_str()).map_err(|e| {
            EvalError::InvalidQuery {
                index: i + 1,
                message: e.to_string(),
            }
        })?;
        turn.push(Message::new(ragback_domain::Role::User, text));
        let ranked = retriever
            .search_turn(&turn, owners, depth)
            .await
            .map_err(|source| EvalError::Search {
                index: i + 1,
                query: query.query.clone(),
                source,
            })?;
        outcomes.push(QueryOutcome { query, ranked });
    }
    let settings = retriever.settings();
    let configured = SweepCutoff {
        threshold: settings.threshold,
        gap: 0.0,
        margin: settings.margin,
        lexical_allowance: settings.lexical_allowance,
    };
    score(&outcomes, top_k, configured)
}

/// Scores ranked results against their labels.
pub fn score(
    outcomes: &[QueryOutcome],
    top_k: usize,
    configured: SweepCutoff,
) -> Result<EvalReport, EvalError> {
    if outcomes.is_empty() {
        return Err(EvalError::NoQueries);
    }
    let labelled: Vec<&QueryOutcome> = outcomes
        .iter()
        .filter(|o| !o.query.relevant.is_empty())
        .collect();
    if labelled.is_empty() {
        return Err(EvalError::NothingRelevant);
    }
    let n = labelled.len() as f64;
    let recall_at = RECALL_AT
        .iter()
        .map(|&k| (k, labelled.iter().map(|o| o.recall_at(k)).sum::<f64>() / n))
        .collect();
    let mrr = labelled
        .iter()
        .filter_map(|o| o.first_relevant_rank())
        .map(|rank| 1.0 / rank as f64)
        .sum::<f64>()
        / n;
    let sweep: Vec<SweepRow> = thresholds()
        .map(|t| sweep_row(outcomes, top_k, t))
        .collect();
    let recommended = *sweep
        .iter()
        .max_by(|a, b| {
            a.f1.total_cmp(&b.f1)
                .then(b.false_positive_share.total_cmp(&a.false_positive_share))
                .then(a.threshold.total_cmp(&b.threshold))
        })
        .unwrap_or(&sweep[0]);
    Ok(EvalReport {
        queries: outcomes.len(),
        with_relevant: labelled.len(),
        top_k,
        recall_at,
        mrr,
        sweep,
        recommended,
        leaks: outcomes.iter().map(QueryOutcome::leaks).sum(),
        best_cutoff: cutoffs(
            outcomes
                .iter()
                .any(|o| o.ranked.iter().any(|c| c.lexical.is_some())),
        )
        .map(|c| cutoff_row(outcomes, top_k, c))
        .max_by(|a, b| {
            worst_target(a)
                .total_cmp(&worst_target(b))
                .then(a.f1.total_cmp(&b.f1))
                .then(b.gap.total_cmp(&a.gap))
                .then(a.margin.total_cmp(&b.margin))
        })
        .unwrap_or(recommended),
        configured: cutoff_row(outcomes, top_k, configured),
    })
}

fn sweep_row(outcomes: &[QueryOutcome], top_k: usize, threshold: f32) -> SweepRow {
    cutoff_row(outcomes, top_k, SweepCutoff::threshold_only(threshold))
}

/// The cut-offs compared: thresholds × gaps × margins, × lexical allowances when the searches found
/// facts by their words.
pub fn cutoffs(lexical: bool) -> impl Iterator<Item = SweepCutoff> {
    let allowances: &'static [Option<f32>] = if lexical {
        &[
            None,
            Some(0.025),
            Some(0.05),
            Some(0.075),
            Some(0.1),
            Some(0.125),
        ]
    } else {
        &[None]
    };
    thresholds().flat_map(move |threshold| {
        (0..=10).flat_map(move |g| {
            [2.0f32, 0.15, 0.10, 0.05]
                .into_iter()
                .flat_map(move |margin| {
                    allowances
                        .iter()
                        .map(move |&lexical_allowance| SweepCutoff {
                            threshold,
                            gap: g as f32 * 0.02,
                            margin,
                            lexical_allowance,
                        })
                })
        })
    })
}

/// How a cut-off meets the targets: its worst of hit rate, precision and 1 − small-talk fed.
pub fn worst_target(row: &SweepRow) -> f64 {
    row.hit_rate
        .min(row.precision)
        .min(1.0 - row.false_positive_share)
}

fn cutoff_row(outcomes: &[QueryOutcome], top_k: usize, cutoff: SweepCutoff) -> SweepRow {
    let threshold = cutoff.threshold;
    let (mut injected, mut hits, mut relevant) = (0, 0, 0);
    let (mut empty, mut wrongly_fed, mut hit_queries) = (0, 0, 0);
    for outcome in outcomes {
        let used: Vec<&ScoredFact> = cutoff.apply(&outcome.ranked, top_k);
        injected += used.len();
        let relevant_used = used.iter().filter(|f| outcome.is_relevant(f)).count();
        hits += relevant_used;
        hit_queries += usize::from(relevant_used > 0);
        relevant += outcome.query.relevant.len();
        if outcome.query.relevant.is_empty() {
            empty += 1;
            wrongly_fed += usize::from(!used.is_empty());
        }
    }
    let precision = if injected == 0 {
        1.0
    } else {
        hits as f64 / injected as f64
    };
    let recall = if relevant == 0 {
        0.0
    } else {
        hits as f64 / relevant as f64
    };
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    SweepRow {
        threshold,
        gap: cutoff.gap,
        margin: cutoff.margin,
        lexical_allowance: cutoff.lexical_allowance,
        precision,
        recall,
        f1,
        false_positive_share: if empty == 0 {
            0.0
        } else {
            wrongly_fed as f64 / empty as f64
        },
        hit_rate: match outcomes.len() - empty {
            0 => 0.0,
            labelled => hit_queries as f64 / labelled as f64,
        },
        injected,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::float_cmp)]

    use ragback_domain::{Fact, FactText};

    use super::*;

    fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    fn scored(owner: &str, text: &str, score: f32) -> ScoredFact {
        ScoredFact {
            fact: Fact::new(FactOwner::User(user(owner)), FactText::parse(text).unwrap()),
            score,
        }
    }

    fn outcome(relevant: &[&str], ranked: Vec<ScoredFact>) -> QueryOutcome {
        let ranked = crate::retrieval::fuse(ranked, Vec::new());
        QueryOutcome {
            query: LabelledQuery {
                context: Vec::new(),
                user: user("john"),
                query: "q".into(),
                relevant: relevant.iter().map(|s| (*s).to_owned()).collect(),
            },
            ranked,
        }
    }

    #[test]
    fn recall_mrr_and_sweep_follow_the_ranks() {
        let outcomes = [
            // Relevant fact at rank 2.
            outcome(
                &["b"],
                vec![scored("john", "a", 0.5), scored("john", "b", 0.4)],
            ),
            // Relevant fact at rank 1.
            outcome(&["c"], vec![scored("john", "c", 0.7)]),
            // Small talk: one weak fact.
            outcome(&[], vec![scored("john", "a", 0.2)]),
        ];

        let report = score(&outcomes, 3, SweepCutoff::threshold_only(0.3)).unwrap();

        assert_eq!(report.queries, 3);
        assert_eq!(report.with_relevant, 2);
        assert_eq!(report.recall_at, vec![(1, 0.5), (3, 1.0), (5, 1.0)]);
        assert_eq!(report.mrr, 0.75);
        assert_eq!(report.leaks, 0);
        let at = |t: f32| {
            *report
                .sweep
                .iter()
                .find(|r| (r.threshold - t).abs() < 1e-6)
                .unwrap()
        };
        // Everything injected at 0: 4 facts, 2 relevant, the small-talk query is fed.
        let zero = at(0.0);
        assert_eq!(zero.injected, 4);
        assert_eq!(zero.precision, 0.5);
        assert_eq!(zero.recall, 1.0);
        assert_eq!(zero.false_positive_share, 1.0);
        // At 0.4 the small talk gets nothing and both relevant facts stay.
        let mid = at(0.4);
        assert_eq!((mid.injected, mid.recall), (3, 1.0));
        assert_eq!(mid.false_positive_share, 0.0);
        // Above 0.7 nothing is injected: precision is vacuous, recall and F1 are 0.
        assert_eq!(at(0.75).f1, 0.0);
        // F1 peaks (0.8) from 0.225 to 0.4; ties go to the highest threshold.
        assert!((report.recommended.threshold - 0.4).abs() < 1e-6);
        assert!((report.recommended.f1 - 0.8).abs() < 1e-9);
    }

    #[test]
    fn top_k_caps_what_is_injected() {
        let outcomes = [outcome(
            &["c"],
            vec![
                scored("john", "a", 0.9),
                scored("john", "b", 0.8),
                scored("john", "c", 0.7),
            ],
        )];
        let report = score(&outcomes, 2, SweepCutoff::threshold_only(0.3)).unwrap();
        assert_eq!(report.sweep[0].injected, 2);
        assert_eq!(report.sweep[0].recall, 0.0);
        assert_eq!(report.recall_at[1], (3, 1.0));
    }

    #[test]
    fn another_users_fact_is_a_leak() {
        let outcomes = [outcome(&["a"], vec![scored("jane", "a", 0.9)])];
        let report = score(&outcomes, 3, SweepCutoff::threshold_only(0.3)).unwrap();
        assert_eq!(report.leaks, 1);
        // Jane's fact does not count for John even with the same text.
        assert_eq!(report.recall_at[0], (1, 0.0));
    }

    #[test]
    fn empty_sets_are_refused() {
        assert!(matches!(
            score(&[], 3, SweepCutoff::threshold_only(0.3)),
            Err(EvalError::NoQueries)
        ));
        assert!(matches!(
            score(&[outcome(&[], vec![])], 3, SweepCutoff::threshold_only(0.3)),
            Err(EvalError::NothingRelevant)
        ));
    }
}
