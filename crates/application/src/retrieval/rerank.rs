//! The reranking stage: a cross-encoder scores the search's best candidates against the query,
//! and its scores decide instead of cosine.

use ragback_domain::ScoredFact;

use super::fusion::{Candidate, fuse};
use crate::ports::{RerankError, Reranker};

/// `candidates` scored by the reranker instead of by cosine, best first (the reranker's score
/// alone decides: none keeps a lexical score).
pub(super) async fn rerank(
    reranker: &dyn Reranker,
    query: &str,
    candidates: &[Candidate],
) -> Result<Vec<Candidate>, RerankError> {
    let documents: Vec<String> = candidates
        .iter()
        .map(|c| c.fact.fact.text.as_str().to_owned())
        .collect();
    let scores = reranker.rerank(query, &documents).await?;
    if scores.len() != candidates.len() {
        return Err(RerankError::InvalidResponse(format!(
            "{} scores for {} facts",
            scores.len(),
            candidates.len()
        )));
    }
    let mut reranked: Vec<ScoredFact> = candidates
        .iter()
        .zip(scores)
        .map(|(c, score)| ScoredFact {
            fact: c.fact.fact.clone(),
            score,
        })
        .collect();
    reranked.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(fuse(reranked, Vec::new()))
}
