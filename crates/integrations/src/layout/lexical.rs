//! The lexical signal of both Qdrant stores: each fact's text as a BM25 sparse vector, scored
//! with Qdrant's inverse-document-frequency modifier, so a rare word the query shares with a
//! fact (a name: "Biscuit", "Lisbon") counts for more than a common one.
//!
//! The tokenizer is Qdrant's own (the one `qdrant/bm25` inference uses on a server): lowercase,
//! English stop words removed, Snowball-stemmed. The vectors are computed here, in process, for
//! both adapters, so the Edge store and a server hold the same ones.

use std::sync::LazyLock;

use qdrant_edge::SparseVector;
use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use ragback_application::ports::LexicalHit;
use ragback_domain::ScoredFact;

/// The name of the sparse vector of each point.
pub(crate) const LEXICAL: &str = "lexical";

/// Facts are a sentence: BM25's length normalisation is relative to this many tokens (Qdrant's
/// default, 256, is for documents; with it every fact would count as very short).
const AVERAGE_FACT_TOKENS: f64 = 8.0;

static BM25: LazyLock<Option<EdgeBm25>> = LazyLock::new(|| {
    let config: EdgeBm25Config =
        serde_json::from_value(serde_json::json!({ "avg_len": AVERAGE_FACT_TOKENS }))
            .inspect_err(|e| tracing::error!(error = %e, "the BM25 configuration is invalid"))
            .ok()?;
    EdgeBm25::new(config)
        .inspect_err(|e| tracing::error!(error = %e, "the BM25 model cannot be built"))
        .ok()
});

/// A fact's text as stored: BM25 term weights (term frequency and length normalisation; the
/// store multiplies in the inverse document frequency at query time). Empty when the text has
/// only stop words.
pub(crate) fn document(text: &str) -> SparseVector {
    BM25.as_ref()
        .map_or_else(SparseVector::default, |bm25| bm25.embed_document(text))
}

/// A query's words, each of weight 1. Empty when it has only stop words: nothing to search.
pub(crate) fn query(text: &str) -> SparseVector {
    BM25.as_ref()
        .map_or_else(SparseVector::default, |bm25| bm25.embed_query(text))
}

/// A fact the lexical search found (`found.score` is its BM25 score), scored by cosine
/// similarity of its dense vector (`None`: not returned, 0) to the query's.
pub(crate) fn hit(found: ScoredFact, dense: Option<&[f32]>, query: &[f32]) -> LexicalHit {
    LexicalHit {
        lexical: found.score,
        fact: ScoredFact {
            fact: found.fact,
            score: dense.map_or(0.0, |v| cosine(v, query)),
        },
    }
}

/// Cosine similarity; 0 when either vector is zero or their lengths differ.
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norms =
        a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norms == 0.0 { 0.0 } else { dot / norms }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_words_share_indices_after_stemming_and_stop_words_go() {
        let fact = document("Has a dog named Biscuit");
        let asked = query("biscuit chewed my dogs' toys");
        let shared: Vec<u32> = asked
            .indices
            .iter()
            .copied()
            .filter(|i| fact.indices.contains(i))
            .collect();
        assert_eq!(
            shared.len(),
            2,
            "biscuit and dog(s) match: {fact:?} {asked:?}"
        );
        assert!(query("the and a of").indices.is_empty());
        assert!(asked.values.iter().all(|v| *v == 1.0));
    }

    #[test]
    fn cosine_handles_zero_and_mismatched_vectors() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert_eq!(cosine(&[1.0], &[1.0, 0.0]), 0.0);
    }
}
