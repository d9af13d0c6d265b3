//! An in-memory fact store with the port's guarantees, and seeding it.

// Test helpers: failing loudly is their job.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use ragback_domain::{Fact, FactOwner, FactText, ScoredFact};

use crate::ports::{
    EmbeddedFact, Embedder, EmbeddingPurpose, FactPage, FactQuery, FactStore, FactStoreError,
    LexicalHit, StoreStatus, StoredFact, UpsertReport,
};

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
