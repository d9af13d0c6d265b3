//! Two rankings as one: the vector search's and the lexical search's, by reciprocal rank fusion.

use ragback_domain::ScoredFact;

use crate::ports::LexicalHit;

/// A fact a search found: its cosine similarity (in `fact.score`), and its BM25 score when its
/// words matched the last user message's too.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The fact and its cosine similarity to the query.
    pub fact: ScoredFact,
    /// Its lexical score, when the lexical search found it.
    pub lexical: Option<f32>,
    /// The best match of the last user message searched alone: used above the threshold
    /// whatever the margin, and before the others.
    pub named: bool,
}

/// Two vector searches' facts as one list: each fact once, at the better of its two scores,
/// best first, at most `limit`.
pub fn best_of(a: Vec<ScoredFact>, b: Vec<ScoredFact>, limit: usize) -> Vec<ScoredFact> {
    let mut best: Vec<ScoredFact> = Vec::with_capacity(a.len() + b.len());
    for fact in a.into_iter().chain(b) {
        match best.iter_mut().find(|f| f.fact.id == fact.fact.id) {
            Some(found) if found.score < fact.score => *found = fact,
            Some(_) => {}
            None => best.push(fact),
        }
    }
    best.sort_by(|x, y| y.score.total_cmp(&x.score));
    best.truncate(limit);
    best
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
                named: false,
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
                    named: false,
                },
                rrf(rank),
            )),
        }
    }
    fused.sort_by(|(a, x), (b, y)| y.total_cmp(x).then(b.fact.score.total_cmp(&a.fact.score)));
    fused.into_iter().map(|(candidate, _)| candidate).collect()
}
