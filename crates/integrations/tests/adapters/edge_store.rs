//! Qdrant Edge against the fact-store contract, plus what only an embedded store has: reopening,
//! the one-process lock.

use std::sync::Arc;

use ragback_application::ports::{EmbeddedFact, FactQuery, FactStore, FactStoreError};
use ragback_domain::{Fact, FactOwner, FactText, UserId};
use ragback_integrations::edge::{EdgeFactStore, INLINE_SEARCH_MAX_FACTS};

/// A fresh Qdrant Edge store in a temporary directory (kept while the check runs).
async fn fresh() -> Option<(EdgeFactStore, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let store = EdgeFactStore::open(dir.path()).unwrap();
    Some((store, dir))
}

/// The fact-store contract on Qdrant Edge, one test per check.
mod contract {
    ragback_application::store_contract_tests!(super::fresh);
}

fn john_fact(text: &str, vector: Vec<f32>) -> EmbeddedFact {
    EmbeddedFact {
        model: "test/model".into(),
        fact: Fact::new(
            FactOwner::User(UserId::parse("john").unwrap()),
            FactText::parse(text).unwrap(),
        ),
        vector,
    }
}

#[tokio::test]
async fn facts_survive_a_reopen_and_keep_the_dimension() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EdgeFactStore::open(dir.path()).unwrap();
        store
            .upsert(vec![john_fact("likes jazz", vec![0.0, 1.0])])
            .await
            .unwrap();
    }

    let store = EdgeFactStore::open(dir.path()).unwrap();
    let found = store
        .search(FactQuery {
            model: "test/model".into(),
            vector: vec![0.0, 1.0],
            owners: vec![FactOwner::User(UserId::parse("john").unwrap())],
            limit: 3,
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].fact.text.as_str(), "likes jazz");
    let err = store
        .upsert(vec![john_fact("three dims", vec![1.0, 0.0, 0.0])])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        FactStoreError::DimensionMismatch { store: 2, given: 3 }
    );
}

#[tokio::test]
async fn a_second_opener_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let first = EdgeFactStore::open(dir.path()).unwrap();

    let second = EdgeFactStore::open(dir.path());
    assert!(
        matches!(&second, Err(FactStoreError::Locked(m)) if m.contains("one process per directory")),
        "{:?}",
        second.err()
    );

    drop(first);
    assert!(EdgeFactStore::open(dir.path()).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_searches_and_upserts_do_not_interfere() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EdgeFactStore::open(dir.path()).unwrap());
    store
        .upsert(vec![john_fact("seed", vec![1.0, 0.0])])
        .await
        .unwrap();
    let owner = FactOwner::User(UserId::parse("john").unwrap());

    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = Arc::clone(&store);
        let owner = owner.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                store
                    .upsert(vec![john_fact(&format!("fact {i}"), vec![1.0, i as f32])])
                    .await
                    .map(|_| ())
            } else {
                store
                    .search(FactQuery {
                        model: "test/model".into(),
                        vector: vec![1.0, 0.0],
                        owners: vec![owner],
                        limit: 5,
                    })
                    .await
                    .map(|_| ())
            }
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(store.count(None).await.unwrap(), 9);
}

/// A unit vector at `degrees` on the circle.
fn at(degrees: f32) -> Vec<f32> {
    let radians = degrees.to_radians();
    vec![radians.cos(), radians.sin()]
}

#[tokio::test]
async fn searches_on_either_side_of_the_inline_limit_find_the_nearest_facts() {
    let dir = tempfile::tempdir().unwrap();
    let store = EdgeFactStore::open(dir.path()).unwrap();
    let (john, ann) = (
        FactOwner::User(UserId::parse("john").unwrap()),
        FactOwner::User(UserId::parse("ann").unwrap()),
    );
    // John has more facts than a search may score inline, spread over a half circle; Ann has
    // three.
    let many = INLINE_SEARCH_MAX_FACTS + 50;
    let step = 180.0 / many as f32;
    let mut facts: Vec<EmbeddedFact> = (0..many)
        .map(|i| john_fact(&format!("john {i}"), at(i as f32 * step)))
        .collect();
    for (i, degrees) in [200.0, 250.0, 300.0].into_iter().enumerate() {
        let mut fact = john_fact(&format!("ann {i}"), at(degrees));
        fact.fact.owner = ann.clone();
        facts.push(fact);
    }
    for batch in facts.chunks(500) {
        store.upsert(batch.to_vec()).await.unwrap();
    }
    let search = |owners: Vec<FactOwner>, degrees: f32| {
        store.search(FactQuery {
            model: "test/model".into(),
            vector: at(degrees),
            owners,
            limit: 2,
        })
    };
    let texts = |found: Vec<ragback_domain::ScoredFact>| -> Vec<String> {
        found
            .into_iter()
            .map(|f| f.fact.text.as_str().to_owned())
            .collect()
    };

    // Among John's facts: the blocking pool.
    let target = 700;
    let found = search(vec![john.clone()], target as f32 * step)
        .await
        .unwrap();
    assert_eq!(texts(found.clone())[0], format!("john {target}"));
    assert!((found[0].score - 1.0).abs() < 1e-4, "{found:?}");
    // Among Ann's: on the calling task, and none of John's even where his are nearer.
    let found = search(vec![ann.clone()], 10.0).await.unwrap();
    assert_eq!(texts(found), ["ann 2", "ann 1"]);
    let found = search(vec![ann.clone()], 249.0).await.unwrap();
    assert_eq!(texts(found), ["ann 1", "ann 0"]);
    // Both: as many facts as John's alone, so the blocking pool again.
    let found = search(vec![john, ann], 201.0).await.unwrap();
    assert_eq!(texts(found)[0], "ann 0");
}

/// The payload ragback has always written for a fact of John's.
fn old_payload(text: &str) -> serde_json::Value {
    serde_json::json!({
        "owner": "user:john",
        "owner_kind": "user",
        "owner_id": "john",
        "text": text,
        "model": "test/model",
    })
}

#[tokio::test]
async fn a_store_written_before_lexical_vectors_gets_them_when_opened() {
    use qdrant_edge::{
        Distance, EdgeConfigBuilder, EdgeShard, EdgeVectorParamsBuilder, PointId,
        PointInsertOperations, PointOperations, PointStruct, UpdateOperation, Vectors,
    };
    let dir = tempfile::tempdir().unwrap();
    // A store as ragback wrote it before: one dense vector per point, no sparse one.
    {
        let config = EdgeConfigBuilder::new()
            .on_disk_payload(true)
            .vector(
                "fact",
                EdgeVectorParamsBuilder::new(2, Distance::Cosine).build(),
            )
            .build();
        let shard = EdgeShard::new(dir.path(), config).unwrap();
        let points = (0..300)
            .map(|i| {
                let text = if i == 123 {
                    "Has a dog named Biscuit".to_owned()
                } else {
                    format!("Old fact number {i}")
                };
                PointStruct::new(
                    PointId::Uuid(uuid::Uuid::new_v4()),
                    Vectors::new_named([("fact", vec![1.0, 0.0])]),
                    old_payload(&text),
                )
                .into()
            })
            .collect();
        shard
            .update(UpdateOperation::PointOperation(
                PointOperations::UpsertPoints(PointInsertOperations::PointsList(points)),
            ))
            .unwrap();
        shard.flush();
    }
    let john = FactOwner::User(UserId::parse("john").unwrap());
    let query = || FactQuery {
        model: "test/model".into(),
        vector: vec![0.0, 1.0],
        owners: vec![john.clone()],
        limit: 3,
    };

    let store = EdgeFactStore::open(dir.path()).unwrap();
    let found = store.search_lexical(query(), "biscuit").await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].fact.fact.text.as_str(), "Has a dog named Biscuit");
    assert_eq!(
        found[0].fact.fact.provenance, None,
        "written before provenance was recorded: read as before"
    );
    assert_eq!(store.count(None).await.unwrap(), 300, "nothing lost");
    // Beyond the first migration batch too, and new facts alike.
    store
        .upsert(vec![john_fact("Learns the banjo", vec![0.0, 1.0])])
        .await
        .unwrap();
    assert_eq!(
        store
            .search_lexical(query(), "number 299")
            .await
            .unwrap()
            .len(),
        3
    );
    drop(store);

    let reopened = EdgeFactStore::open(dir.path()).unwrap();
    let found = reopened.search_lexical(query(), "banjo").await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(
        (found[0].fact.score - 1.0).abs() < 1e-4,
        "its cosine: {found:?}"
    );
    assert_eq!(reopened.count(None).await.unwrap(), 301);
}

#[tokio::test]
async fn conversation_summaries_keep_the_summary_store_contract_and_survive_a_reopen() {
    use ragback_application::ports::SummaryStore;
    use ragback_domain::{ConversationId, ConversationSummary, Timestamp};
    let dir = tempfile::tempdir().unwrap();
    ragback_application::testing::summary_store_contract(&EdgeFactStore::open(dir.path()).unwrap())
        .await;
    let (user, conversation) = (
        UserId::parse("jane").unwrap(),
        ConversationId::parse("c1").unwrap(),
    );
    let reopened = EdgeFactStore::open(dir.path()).unwrap();
    let kept: Option<ConversationSummary> =
        reopened.get_summary(&user, &conversation).await.unwrap();
    assert_eq!(
        kept.map(|s| s.updated),
        Some(Timestamp::from_unix_millis(1_764_979_200_000))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_jobs_keep_the_contract_and_survive_a_restart() {
    use ragback_application::ports::{JobKind, JobStore, QueuedJob};
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EdgeFactStore::open(dir.path()).unwrap();
        ragback_application::testing::job_store_contract(&store).await;
        store
            .put(&QueuedJob {
                id: "memory:1".into(),
                kind: JobKind::Memory,
                payload: serde_json::json!({"n": 1}),
                lease_owner: "before".into(),
                lease_until_ms: u64::MAX,
                attempts: 1,
            })
            .await
            .unwrap();
    }
    // The next process finds the job its predecessor held, and takes it at once.
    let store = EdgeFactStore::open(dir.path()).unwrap();
    assert_eq!(store.pending().await.unwrap(), 1);
    let taken = store
        .claim(JobKind::Memory, "after", 0, 10, 5)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(
        (taken[0].lease_owner.as_str(), taken[0].attempts),
        ("after", 2)
    );
    assert!(
        store
            .claim(JobKind::Memory, "after", 0, 10, 5)
            .await
            .unwrap()
            .is_empty(),
        "its own lease holds"
    );
}
