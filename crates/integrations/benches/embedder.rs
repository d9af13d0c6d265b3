//! The local embedder's speed: one short query, seeding throughput at its batch size, and the
//! end-to-end retrieval (embed the query + search a real Qdrant Edge store).
//!
//! `cargo bench -p ragback-integrations --bench embedder` (needs `make model`;
//! QUERIES=… and FACTS=… change the counts).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ragback_application::ports::{Embedder, EmbeddingPurpose, FactStore};
use ragback_application::testing::{quick_retry, retrieval_settings};
use ragback_application::{FactLibrary, FactRetriever};
use ragback_domain::{Fact, FactOwner, FactText, UserId};
use ragback_integrations::edge::EdgeFactStore;
use ragback_integrations::local::{LocalEmbedder, LocalSettings};
use ragback_testkit::stats::{env_count, report};

const QUERIES: &[&str] = &[
    "I finally ran the marathon!",
    "my dog chewed my headphones again",
    "did you watch the match last night?",
    "hey, how's it going?",
    "I tried making fresh pasta yesterday",
    "work was brutal today, my boss is on my case",
    "saving up for Tokyo, no more takeaways",
    "my little sister starts driving lessons",
];

const SUBJECTS: &[&str] = &[
    "Plays",
    "Loves",
    "Hates",
    "Is learning",
    "Used to play",
    "Dreams about",
    "Talks a lot about",
    "Collects things related to",
];
const OBJECTS: &[&str] = &[
    "tennis on Sunday mornings",
    "old jazz records from the fifties",
    "the bass guitar",
    "cooking Thai curries",
    "long-distance running",
    "vintage motorbikes",
    "chess openings",
    "street photography in the rain",
    "baking sourdough bread",
    "learning Japanese",
    "hiking in the Scottish highlands",
    "watching Manchester United",
    "indie video games",
    "gardening on the balcony",
    "salsa dancing",
    "fixing up old bicycles",
];

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `n` distinct facts spread over 10 users.
fn facts(n: usize) -> Vec<Fact> {
    (0..n)
        .map(|i| {
            let user = UserId::parse(format!("user{}", i % 10)).unwrap();
            let text = format!(
                "{} {} (note {i})",
                SUBJECTS[i % SUBJECTS.len()],
                OBJECTS[(i / SUBJECTS.len()) % OBJECTS.len()]
            );
            Fact::new(FactOwner::User(user), FactText::parse(text).unwrap())
        })
        .collect()
}

fn main() {
    let queries = env_count("QUERIES", 300);
    let seed = env_count("FACTS", 2_048);
    let model_dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let settings = LocalSettings {
            model_dir,
            ..LocalSettings::default()
        };
        let embedder = Arc::new(LocalEmbedder::load(&settings).expect("run `make model` first"));
        println!(
            "{} (batch {}, {} at once), {} cores",
            embedder.model_id(),
            settings.batch_size,
            settings.max_concurrency,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );

        // 1. One short query at a time.
        for q in QUERIES {
            embedder
                .embed(&[(*q).to_owned()], EmbeddingPurpose::Query)
                .await
                .unwrap();
        }
        let mut query_ms = Vec::with_capacity(queries);
        for i in 0..queries {
            let text = [QUERIES[i % QUERIES.len()].to_owned()];
            let started = Instant::now();
            embedder
                .embed(&text, EmbeddingPurpose::Query)
                .await
                .unwrap();
            query_ms.push(millis(started.elapsed()));
        }
        report("embed one short query", 34, "ms", &query_ms);

        // 2. Seeding: embed in batches and upsert into a Qdrant Edge store.
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn FactStore> = Arc::new(EdgeFactStore::open(dir.path()).unwrap());
        let library = FactLibrary::new(
            Some(embedder.clone()),
            store.clone(),
            quick_retry(1),
            Duration::from_secs(600),
        );
        let all = facts(seed);
        let started = Instant::now();
        let seeded = library.add(all, |_| {}).await.unwrap();
        let took = started.elapsed();
        println!(
            "{:<34} {:>7.0} facts/s  ({} facts in {:.2} s, batch {})",
            "seed (embed + upsert)",
            seeded.added as f64 / took.as_secs_f64(),
            seeded.added,
            took.as_secs_f64(),
            settings.batch_size
        );

        // 3. Retrieval as /generate runs it: embed the query, search the user's facts.
        let retriever = FactRetriever::new(
            Some(embedder.clone()),
            store,
            retrieval_settings(None, quick_retry(1)),
        );
        let mut search_ms = Vec::with_capacity(queries);
        for i in 0..queries {
            let owners = vec![FactOwner::User(
                UserId::parse(format!("user{}", i % 10)).unwrap(),
            )];
            let started = Instant::now();
            let found = retriever
                .search(QUERIES[i % QUERIES.len()], owners, 3, 0.0)
                .await
                .unwrap();
            search_ms.push(millis(started.elapsed()));
            assert!(!found.is_empty());
        }
        report(
            &format!("retrieval (embed + search {seed})"),
            34,
            "ms",
            &search_ms,
        );
    });
}
