//! Qdrant Edge search latency by store size: how long one `/generate` search holds the thread
//! that runs it.
//!
//! Seeds stores of `SIZES` facts (384-dimensional random vectors, like all-MiniLM-L6-v2's) held
//! by two owners, one with 20 facts and one with all the others, and times `QUERIES` searches
//! (top 3) for each owner. The owner with all the facts is the worst case: the filter keeps
//! every point and each one is scored. Searches among up to `INLINE_SEARCH_MAX_FACTS` facts run
//! on the calling task, larger ones on the blocking pool (the hand-off adds to their time).
//!
//! `cargo bench -p ragback-integrations --bench edge_search` (`SIZES=1000,10000` and `QUERIES=…`
//! change the sizes and the count).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use ragback_application::ports::{EmbeddedFact, FactQuery, FactStore};
use ragback_domain::{Fact, FactOwner, FactText, UserId};
use ragback_integrations::edge::{EdgeFactStore, INLINE_SEARCH_MAX_FACTS};
use ragback_testkit::stats::{env_count, report};

const DIMENSION: usize = 384;
const MODEL: &str = "bench";
const FEW: usize = 20;

/// A small deterministic generator (xorshift64*): the same vectors on every run.
struct Vectors(u64);

impl Vectors {
    fn next(&mut self) -> Vec<f32> {
        let mut v: Vec<f32> = (0..DIMENSION)
            .map(|_| {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
                bits as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }
}

fn owner(name: &str) -> FactOwner {
    FactOwner::User(UserId::parse(name).unwrap())
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name).ok().map_or_else(
        || default.to_vec(),
        |v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
    )
}

fn main() {
    let sizes = env_list("SIZES", &[1_000, 4_000, 10_000, 40_000]);
    let queries = env_count("QUERIES", 500);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("searches among up to {INLINE_SEARCH_MAX_FACTS} facts run inline");
    runtime.block_on(async move {
        let mut vectors = Vectors(0x9E37_79B9_7F4A_7C15);
        for size in sizes {
            let dir = tempfile::tempdir().unwrap();
            let store = EdgeFactStore::open(dir.path()).unwrap();
            let (few, many) = (owner("few"), owner("many"));
            let facts: Vec<EmbeddedFact> = (0..size.max(FEW + 1))
                .map(|i| EmbeddedFact {
                    fact: Fact::new(
                        if i < FEW { few.clone() } else { many.clone() },
                        FactText::parse(format!("fact number {i}")).unwrap(),
                    ),
                    vector: vectors.next(),
                    model: MODEL.to_owned(),
                })
                .collect();
            let started = Instant::now();
            for batch in facts.chunks(1_000) {
                store.upsert(batch.to_vec()).await.unwrap();
            }
            println!(
                "{} facts, seeded in {:.1} s",
                facts.len(),
                started.elapsed().as_secs_f64()
            );
            for (who, held) in [(&few, FEW), (&many, facts.len() - FEW)] {
                let mut us = Vec::with_capacity(queries);
                for _ in 0..queries {
                    let query = FactQuery {
                        vector: vectors.next(),
                        owners: vec![who.clone()],
                        limit: 3,
                        model: MODEL.to_owned(),
                    };
                    let started = Instant::now();
                    let found = store.search(query).await.unwrap();
                    us.push(started.elapsed().as_secs_f64() * 1e6);
                    assert_eq!(found.len(), 3);
                }
                let path = if held <= INLINE_SEARCH_MAX_FACTS {
                    "inline"
                } else {
                    "blocking pool"
                };
                report(&format!("  among {held} facts ({path})"), 36, "µs", &us);
            }
        }
    });
}
