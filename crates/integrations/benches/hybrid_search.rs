//! What hybrid search adds to a turn's retrieval: `FactRetriever::retrieve` on Qdrant Edge with
//! the vector search alone and with the lexical search beside it (run concurrently, fused, cut
//! off), side by side in one run, queries alternating between the two.
//!
//! Three users with `FACTS` facts each (2,000 by default), texts of 6 to 12 words drawn from a
//! 3,000-word vocabulary with Zipf-like frequencies (so the lexical index has long and short
//! posting lists), 384-dimensional vectors. The query embedder hashes words into a vector: its
//! time (a few µs) is in both columns alike.
//!
//! `cargo bench -p ragback-integrations --bench hybrid_search` (`FACTS=…`, `QUERIES=…`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ragback_application::ports::{EmbedError, EmbeddedFact, Embedder, EmbeddingPurpose, FactStore};
use ragback_application::retrieval::{FactRetriever, RetrievalOverrides, RetrievalSettings};
use ragback_application::{RetryPolicy, testing::retrieval_settings};
use ragback_domain::{Fact, FactOwner, FactText, Message, MessageText, Role, UserId};
use ragback_integrations::edge::EdgeFactStore;
use ragback_testkit::stats::{env_count, report};

const DIMENSION: usize = 384;
const VOCABULARY: usize = 3_000;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A word index, low indices far more often (about Zipf's law).
    fn word(&mut self) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((VOCABULARY as f64).powf(u) as usize).min(VOCABULARY) - 1
    }

    fn sentence(&mut self, words: usize) -> String {
        (0..words)
            .map(|_| format!("w{}", self.word()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Embeds a text as its words hashed into `DIMENSION` buckets, normalised.
struct HashEmbedder;

fn embed(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; DIMENSION];
    for word in text.split_whitespace() {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in word.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        v[(h % DIMENSION as u64) as usize] += 1.0;
    }
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

#[async_trait]
impl Embedder for HashEmbedder {
    fn model_id(&self) -> &str {
        "bench/hash"
    }

    fn max_batch(&self) -> usize {
        1_000
    }

    async fn embed(
        &self,
        texts: &[String],
        _purpose: EmbeddingPurpose,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|t| embed(t)).collect())
    }
}

fn main() {
    let per_user = env_count("FACTS", 2_000);
    let queries = env_count("QUERIES", 2_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EdgeFactStore::open(dir.path()).unwrap());
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let users: Vec<FactOwner> = ["ann", "bob", "cat"]
            .iter()
            .map(|u| FactOwner::User(UserId::parse(*u).unwrap()))
            .collect();
        let started = Instant::now();
        for owner in &users {
            let facts: Vec<EmbeddedFact> = (0..per_user)
                .map(|_| {
                    let words = 6 + (rng.next() % 7) as usize;
                    let text = rng.sentence(words);
                    EmbeddedFact {
                        vector: embed(&text),
                        fact: Fact::new(owner.clone(), FactText::parse(text).unwrap()),
                        model: "bench/hash".into(),
                    }
                })
                .collect();
            for batch in facts.chunks(1_000) {
                store.upsert(batch.to_vec()).await.unwrap();
            }
        }
        println!(
            "{} facts ({per_user} per user) seeded in {:.1} s",
            per_user * users.len(),
            started.elapsed().as_secs_f64()
        );

        let settings = RetrievalSettings {
            threshold: 0.2,
            ..retrieval_settings(
                None,
                RetryPolicy {
                    max_attempts: 1,
                    initial_backoff: Duration::ZERO,
                    max_backoff: Duration::ZERO,
                },
            )
        };
        let vector_only = FactRetriever::new(
            Some(Arc::new(HashEmbedder)),
            store.clone() as Arc<dyn FactStore>,
            settings,
        );
        let hybrid = vector_only.with_lexical_allowance(Some(0.025));
        let (mut dense_us, mut hybrid_us) = (Vec::new(), Vec::new());
        let (mut dense_facts, mut hybrid_facts) = (0, 0);
        for i in 0..queries {
            let words = 8 + (rng.next() % 5) as usize;
            let text = rng.sentence(words);
            let history = [Message::new(Role::User, MessageText::parse(text).unwrap())];
            let owners = vec![users[i % users.len()].clone()];
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            // Alternate which goes first, so neither always meets a warm cache.
            let order = if i % 2 == 0 {
                [&vector_only, &hybrid]
            } else {
                [&hybrid, &vector_only]
            };
            for retriever in order {
                let started = Instant::now();
                let got = retriever
                    .retrieve(
                        &history,
                        owners.clone(),
                        &RetrievalOverrides::default(),
                        deadline,
                    )
                    .await;
                let us = started.elapsed().as_secs_f64() * 1e6;
                assert_eq!(got.status.as_str(), "ok");
                if std::ptr::eq(retriever, &hybrid) {
                    hybrid_us.push(us);
                    hybrid_facts += got.facts.len();
                } else {
                    dense_us.push(us);
                    dense_facts += got.facts.len();
                }
            }
        }
        println!("{queries} turns each, among {per_user} facts of the user:");
        report("  vector search alone", 26, "µs", &dense_us);
        report("  hybrid (vector + BM25)", 26, "µs", &hybrid_us);
        let mut added: Vec<f64> = hybrid_us
            .iter()
            .zip(&dense_us)
            .map(|(h, d)| h - d)
            .collect();
        added.sort_by(f64::total_cmp);
        println!(
            "  added per turn: median {:.0} µs; facts used per turn {:.2} vs {:.2}",
            added[added.len() / 2],
            dense_facts as f64 / queries as f64,
            hybrid_facts as f64 / queries as f64
        );
    });
}
