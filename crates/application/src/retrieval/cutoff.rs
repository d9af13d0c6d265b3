//! The cut-off: which of a search's candidates a turn uses — the threshold, the margin below the
//! best, hybrid search's allowance for facts found by their words, and no near-duplicates.

use crate::words::{jaccard, words};

use super::fusion::Candidate;

/// Two facts whose words overlap this much (Jaccard) are one: the second never takes a slot.
const NEAR_DUPLICATE: f64 = 0.8;

/// What decides whether a candidate is used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cutoff {
    /// The least score (cosine, or the reranker's relevance when it ranked).
    pub threshold: f32,
    /// Facts after the best must score within this of it (≥ 2: any).
    pub margin: f32,
    /// A fact found by its words is used at this much below the threshold, whatever the margin
    /// (`None`: the vector search alone).
    pub lexical_allowance: Option<f32>,
}

impl Cutoff {
    /// Whether a turn uses `candidate`, when the best score among its candidates is `best`: at or
    /// above the threshold and within the margin of the best (or the last message's own best
    /// match, whatever the margin), or — found by its words, with a lexical allowance — at or
    /// above the threshold less the allowance.
    pub fn admits(&self, candidate: &Candidate, best: f32) -> bool {
        let score = candidate.fact.score;
        let by_vector = score >= self.threshold && (candidate.named || score >= best - self.margin);
        let by_words = candidate.lexical.is_some()
            && self
                .lexical_allowance
                .is_some_and(|a| score >= self.threshold - a);
        by_vector || by_words
    }

    /// The candidates a turn uses ([`Self::admits`]), the last message's own best match first,
    /// the others in their order, without near-duplicates: a fact whose words are nearly those
    /// of an earlier one (Jaccard ≥ 0.8 over lowercase words) never takes a slot too.
    pub fn apply<'a>(&self, candidates: &'a [Candidate]) -> Vec<&'a Candidate> {
        let best = best_score(candidates);
        let mut kept: Vec<(&Candidate, std::collections::BTreeSet<String>)> = Vec::new();
        let named = candidates.iter().filter(|c| c.named);
        let others = candidates.iter().filter(|c| !c.named);
        for candidate in named.chain(others).filter(|c| self.admits(c, best)) {
            let words = words(candidate.fact.fact.text.as_str());
            if kept
                .iter()
                .all(|(_, other)| jaccard(&words, other) < NEAR_DUPLICATE)
            {
                kept.push((candidate, words));
            }
        }
        kept.into_iter().map(|(candidate, _)| candidate).collect()
    }
}

/// The best score among `candidates`.
pub fn best_score(candidates: &[Candidate]) -> f32 {
    candidates
        .iter()
        .map(|c| c.fact.score)
        .fold(f32::NEG_INFINITY, f32::max)
}
