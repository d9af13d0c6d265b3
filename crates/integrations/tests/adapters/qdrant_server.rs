//! The Qdrant server adapter against the fact-store contract: always over the real gRPC protocol
//! against a fake server backed by Qdrant's engine, and against a real Qdrant when `QDRANT_URL`
//! is set (`make dc.up`, then `QDRANT_URL=http://localhost:6334 cargo test`).

use std::io::Write;
use std::time::Duration;

use ragback_application::ports::{EmbeddedFact, FactStore, FactStoreError};
use ragback_domain::{Fact, FactOwner, FactText, UserId};
use ragback_integrations::qdrant::{
    ClusterSettings, QdrantFactStore, QdrantSettings, ReadConsistencyLevel, WriteOrderingLevel,
};

fn store(url: &str, collection: &str) -> QdrantFactStore {
    on_cluster(url, collection, ClusterSettings::default())
}

fn on_cluster(url: &str, collection: &str, cluster: ClusterSettings) -> QdrantFactStore {
    QdrantFactStore::new(&QdrantSettings {
        url: url.to_owned(),
        api_key: None,
        collection: collection.to_owned(),
        timeout: Duration::from_secs(10),
        cluster,
    })
    .unwrap()
}

fn unique(name: &str) -> String {
    format!("ragback_test_{name}_{}", std::process::id())
}

/// A fresh fake server (Qdrant's engine behind the real gRPC API) and the adapter on it.
async fn on_the_fake() -> Option<(QdrantFactStore, ())> {
    let url = ragback_testkit::fake_qdrant::start().await;
    Some((store(&url, "facts"), ()))
}

/// The fact-store contract over gRPC, one test per check.
mod contract {
    ragback_application::store_contract_tests!(super::on_the_fake);
}

/// A collection of its own on the real Qdrant at `QDRANT_URL`, deleted when the check is done;
/// `None` (and a notice, once) when `QDRANT_URL` is not set.
async fn on_a_real_qdrant() -> Option<(QdrantFactStore, DropCollection)> {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let Ok(url) = std::env::var("QDRANT_URL") else {
        static NOTICE: std::sync::Once = std::sync::Once::new();
        NOTICE.call_once(|| {
            let notice = "NOT RUN: the store contract on a real Qdrant server; set QDRANT_URL \
                          (e.g. http://localhost:6334 after `make dc.up`) to run it";
            // Written to the process's stderr directly, past the harness's capture, so that it
            // shows in every run's output.
            match std::fs::OpenOptions::new().write(true).open("/dev/stderr") {
                Ok(mut stderr) => {
                    let _ = writeln!(stderr, "{notice}");
                }
                Err(_) => eprintln!("{notice}"),
            }
        });
        return None;
    };
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let collection = unique(&format!("contract_{n}"));
    let client = qdrant_client::Qdrant::from_url(&url).build().unwrap();
    Some((
        store(&url, &collection),
        DropCollection { client, collection },
    ))
}

/// Deletes a test's collection from the real Qdrant when dropped.
struct DropCollection {
    client: qdrant_client::Qdrant,
    collection: String,
}

impl Drop for DropCollection {
    fn drop(&mut self) {
        let (client, collection) = (self.client.clone(), self.collection.clone());
        // The test's runtime is ending; delete on a thread of its own.
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Runtime::new() {
                let _ = runtime.block_on(client.delete_collection(&collection));
            }
        })
        .join();
    }
}

/// The fact-store contract on a real Qdrant server, one test per check.
mod contract_on_a_real_qdrant {
    ragback_application::store_contract_tests!(super::on_a_real_qdrant);
}

#[tokio::test]
async fn a_collection_of_another_dimension_is_refused_with_a_message_to_reseed() {
    let url = ragback_testkit::fake_qdrant::start().await;
    let owner = FactOwner::User(UserId::parse("john").unwrap());
    let fact = |text: &str, dims: usize| EmbeddedFact {
        model: "test/model".into(),
        fact: Fact::new(owner.clone(), FactText::parse(text).unwrap()),
        vector: vec![0.5; dims],
    };
    store(&url, "facts")
        .upsert(vec![fact("a", 4)])
        .await
        .unwrap();

    // A second process (fresh client, no cache) with another embedder.
    let err = store(&url, "facts")
        .upsert(vec![fact("b", 8)])
        .await
        .unwrap_err();

    assert_eq!(
        err,
        FactStoreError::DimensionMismatch { store: 4, given: 8 }
    );
    assert!(err.to_string().contains("re-seed"));
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_names_the_url() {
    let down = store("http://127.0.0.1:9", "facts");
    let err = down.status().await.unwrap_err();
    assert!(
        matches!(&err, FactStoreError::Unavailable(m) if m.contains("127.0.0.1:9")),
        "{err:?}"
    );
}

/// A collection as ragback created it before lexical vectors (the testkit's).
async fn old_collection(url: &str, texts: &[&str]) {
    ragback_testkit::fake_qdrant::old_collection(url, "facts", texts).await;
}

#[tokio::test]
async fn on_a_server_that_cannot_add_the_lexical_vector_an_old_collection_keeps_working() {
    let url = ragback_testkit::fake_qdrant::start_before_vector_names().await;
    old_collection(&url, &["Has a dog named Biscuit"]).await;
    let john = FactOwner::User(UserId::parse("john").unwrap());
    let query = || ragback_application::ports::FactQuery {
        model: "test/model".into(),
        vector: vec![1.0, 0.0],
        owners: vec![john.clone()],
        limit: 3,
    };
    let adapter = store(&url, "facts");
    assert_eq!(
        adapter.search_lexical(query(), "biscuit").await.unwrap(),
        vec![]
    );
    adapter
        .upsert(vec![EmbeddedFact {
            model: "test/model".into(),
            fact: Fact::new(john.clone(), FactText::parse("Learns the banjo").unwrap()),
            vector: vec![0.0, 1.0],
        }])
        .await
        .expect("stored without a lexical vector");
    let found = adapter.search(query()).await.unwrap();
    assert_eq!(found.len(), 2, "the vector search works: {found:?}");
    assert_eq!(adapter.count(None).await.unwrap(), 2);
}

#[tokio::test]
async fn a_collection_written_before_lexical_vectors_gets_them_on_a_tools_first_use() {
    let url = ragback_testkit::fake_qdrant::start().await;
    let texts: Vec<String> = (0..300)
        .map(|i| match i {
            123 => "Has a dog named Biscuit".to_owned(),
            _ => format!("Old fact number {i}"),
        })
        .collect();
    old_collection(&url, &texts.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let john = FactOwner::User(UserId::parse("john").unwrap());
    let query = || ragback_application::ports::FactQuery {
        model: "test/model".into(),
        vector: vec![0.0, 1.0],
        owners: vec![john.clone()],
        limit: 3,
    };

    let adapter = store(&url, "facts");
    let found = adapter.search_lexical(query(), "biscuit").await.unwrap();
    assert_eq!(found.len(), 1, "a tool migrates on first use: {found:?}");
    assert_eq!(found[0].fact.fact.text.as_str(), "Has a dog named Biscuit");
    assert!(found[0].fact.score.abs() < 1e-4, "its cosine: {found:?}");
    assert_eq!(
        adapter
            .search_lexical(query(), "number 299")
            .await
            .unwrap()
            .len(),
        3,
        "beyond the first migration batch too"
    );
    assert_eq!(adapter.count(None).await.unwrap(), 300, "nothing lost");
    // A second process finds nothing left to migrate, and its new facts have words too.
    let second = store(&url, "facts");
    second
        .upsert(vec![EmbeddedFact {
            model: "test/model".into(),
            fact: Fact::new(john.clone(), FactText::parse("Learns the banjo").unwrap()),
            vector: vec![0.0, 1.0],
        }])
        .await
        .unwrap();
    let found = second.search_lexical(query(), "banjo").await.unwrap();
    assert_eq!(found.len(), 1);
    assert!((found[0].fact.score - 1.0).abs() < 1e-4, "{found:?}");
}

#[tokio::test]
async fn conversation_summaries_keep_the_summary_store_contract() {
    let url = ragback_testkit::fake_qdrant::start().await;
    ragback_application::testing::summary_store_contract(&store(&url, "facts")).await;
}

/// A three-node cluster's settings: every shard on every node, a majority acknowledges writes
/// and answers reads.
fn three_nodes() -> ClusterSettings {
    ClusterSettings {
        shard_number: 3,
        replication_factor: 3,
        write_consistency_factor: 2,
        read_consistency: Some(ReadConsistencyLevel::Majority),
        write_ordering: WriteOrderingLevel::Medium,
        on_disk_payload: Some(true),
        on_disk_vectors: None,
    }
}

#[tokio::test]
async fn the_collection_is_laid_out_as_the_settings_say_and_reads_and_writes_ask_for_their_consistency()
 {
    let (url, seen) = ragback_testkit::fake_qdrant::start_seen().await;
    let adapter = on_cluster(&url, "facts", three_nodes());
    adapter.prepare().await.unwrap();
    let john = FactOwner::User(UserId::parse("john").unwrap());
    adapter
        .upsert(vec![EmbeddedFact {
            model: "test/model".into(),
            fact: Fact::new(
                john.clone(),
                FactText::parse("Has a dog named Biscuit").unwrap(),
            ),
            vector: vec![1.0, 0.0],
        }])
        .await
        .unwrap();
    let query = ragback_application::ports::FactQuery {
        model: "test/model".into(),
        vector: vec![1.0, 0.0],
        owners: vec![john.clone()],
        limit: 3,
    };
    assert_eq!(adapter.search(query.clone()).await.unwrap().len(), 1);
    assert_eq!(
        adapter
            .search_lexical(query, "biscuit")
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(adapter.count(Some(&john)).await.unwrap(), 1);
    assert_eq!(
        seen.starting("create facts"),
        ["create facts shards=3 replication=3 write_consistency=2 on_disk_payload=true"]
    );
    let writes = seen.starting("write facts");
    assert!(!writes.is_empty());
    for write in &writes {
        assert!(write.ends_with("ordering=medium wait=true"), "{writes:?}");
    }
    let reads = seen.starting("read facts");
    assert!(
        reads.iter().any(|r| r.starts_with("read facts query")),
        "{reads:?}"
    );
    for read in &reads {
        assert!(read.ends_with("consistency=majority"), "{reads:?}");
    }
    // The summaries' collection is laid out alike.
    let conversation = ragback_domain::ConversationId::parse("c-1").unwrap();
    let summary = ragback_domain::ConversationSummary {
        character: None,
        text: "They met.".into(),
        covers: 2,
        last_hash: "00000000000000ff".into(),
        prompt_hash: "ab".repeat(32),
        model: "test/model".into(),
        updated: ragback_domain::Timestamp::from_unix_millis(1_764_979_200_000),
    };
    ragback_application::ports::SummaryStore::put_summary(
        &adapter,
        &UserId::parse("john").unwrap(),
        &conversation,
        &summary,
    )
    .await
    .unwrap();
    assert_eq!(
        seen.starting("create facts_summaries"),
        ["create facts_summaries shards=3 replication=3 write_consistency=2 on_disk_payload=true"]
    );
}

#[tokio::test]
async fn a_collection_laid_out_otherwise_is_reported_at_start_and_never_served() {
    let url = ragback_testkit::fake_qdrant::start().await;
    let single = store(&url, "facts");
    single
        .upsert(vec![EmbeddedFact {
            model: "test/model".into(),
            fact: Fact::new(
                FactOwner::User(UserId::parse("john").unwrap()),
                FactText::parse("Learns the banjo").unwrap(),
            ),
            vector: vec![1.0, 0.0],
        }])
        .await
        .unwrap();
    let clustered = on_cluster(&url, "facts", three_nodes());
    let error = clustered.prepare().await.unwrap_err();
    let FactStoreError::Misconfigured(message) = &error else {
        panic!("{error:?}");
    };
    assert!(
        message.contains("shards: the collection has 1, RAGBACK_STORE__SHARD_NUMBER says 3")
            && message.contains("RAGBACK_STORE__REPLICATION_FACTOR says 3"),
        "{message}"
    );
    assert!(matches!(
        clustered.ping().await,
        Err(FactStoreError::Misconfigured(_))
    ));
    assert!(matches!(
        clustered.count(None).await,
        Err(FactStoreError::Misconfigured(_))
    ));
}

#[tokio::test]
async fn replicas_starting_together_migrate_the_collection_once() {
    let (url, seen) = ragback_testkit::fake_qdrant::start_seen().await;
    let texts: Vec<String> = (0..300).map(|i| format!("Old fact number {i}")).collect();
    old_collection(&url, &texts.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let (a, b) = (store(&url, "facts"), store(&url, "facts"));
    let (left, right) = tokio::join!(a.prepare_collection(), b.prepare_collection());
    let mut migrated = [left.unwrap(), right.unwrap()];
    migrated.sort_unstable();
    assert_eq!(migrated, [0, 300], "one process migrated, the other waited");
    let batches = seen.starting("write facts update_vectors").len();
    assert_eq!(batches, 300_usize.div_ceil(256), "{:?}", seen.lines());
    assert_eq!(seen.starting("drop facts__migration_lock").len(), 1);
    let lock_attempts = seen.starting("create facts__migration_lock").len();
    let john = FactOwner::User(UserId::parse("john").unwrap());
    let query = ragback_application::ports::FactQuery {
        model: "test/model".into(),
        vector: vec![0.0, 1.0],
        owners: vec![john],
        limit: 3,
    };
    for store in [&a, &b] {
        let found = store
            .search_lexical(query.clone(), "number 299")
            .await
            .unwrap();
        assert_eq!(found.len(), 3, "{found:?}");
    }
    // A third start finds nothing to do, and takes no lock.
    let later = store(&url, "facts");
    assert_eq!(later.prepare_collection().await.unwrap(), 0);
    assert_eq!(
        seen.starting("create facts__migration_lock").len(),
        lock_attempts
    );
}

#[tokio::test]
async fn queued_jobs_keep_the_job_store_contract_on_the_server() {
    let url = ragback_testkit::fake_qdrant::start().await;
    ragback_application::testing::job_store_contract(&store(&url, "facts")).await;
}

#[tokio::test]
async fn two_replicas_claiming_at_once_never_take_the_same_job() {
    use ragback_application::ports::{JobKind, JobStore, QueuedJob};
    let url = ragback_testkit::fake_qdrant::start().await;
    let (a, b) = (store(&url, "facts"), store(&url, "facts"));
    for n in 0..40 {
        a.put(&QueuedJob {
            id: format!("memory:{n}"),
            kind: JobKind::Memory,
            payload: serde_json::json!({"n": n}),
            lease_owner: "dead".into(),
            lease_until_ms: 0,
            attempts: 1,
        })
        .await
        .unwrap();
    }
    let mut taken: Vec<String> = Vec::new();
    for _ in 0..4 {
        let (left, right) = tokio::join!(
            a.claim(JobKind::Memory, "a", 1_000, 10_000, 40),
            b.claim(JobKind::Memory, "b", 1_000, 10_000, 40)
        );
        taken.extend(left.unwrap().into_iter().map(|j| j.id));
        taken.extend(right.unwrap().into_iter().map(|j| j.id));
    }
    let mut unique = taken.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), taken.len(), "a job taken twice: {taken:?}");
    assert_eq!(unique.len(), 40, "every free job taken once");
}

#[tokio::test]
async fn a_free_job_is_found_behind_a_page_of_held_ones() {
    use ragback_application::ports::{JobKind, JobStore, QueuedJob};
    let url = ragback_testkit::fake_qdrant::start().await;
    let store = store(&url, "facts");
    // More held jobs than one claim reads, and one free job: the one stored last in the order a
    // scroll reads them (by point id, the UUID the store derives from the job's id).
    let point =
        |n: usize| uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("memory:{n}").as_bytes());
    let last = (0..300).max_by_key(|&n| point(n)).unwrap();
    for n in 0..300 {
        let free = n == last;
        store
            .put(&QueuedJob {
                id: format!("memory:{n}"),
                kind: JobKind::Memory,
                payload: serde_json::json!({"n": n}),
                lease_owner: if free { "dead" } else { "alive" }.into(),
                lease_until_ms: if free { 0 } else { 1_000_000 },
                attempts: 1,
            })
            .await
            .unwrap();
    }
    let taken = store
        .claim(JobKind::Memory, "me", 1_000, 10_000, 8)
        .await
        .unwrap();
    assert_eq!(
        taken.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        [format!("memory:{last}")]
    );
}
