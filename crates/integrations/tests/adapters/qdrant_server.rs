//! The Qdrant server adapter against the fact-store contract: always over the real gRPC protocol
//! against a fake server backed by Qdrant's engine, and against a real Qdrant when `QDRANT_URL`
//! is set (`make dc.up`, then `QDRANT_URL=http://localhost:6334 cargo test`).

use std::io::Write;
use std::time::Duration;

use ragback_application::ports::{EmbeddedFact, FactStore, FactStoreError};
use ragback_application::testing::store_contract;
use ragback_domain::{Fact, FactOwner, FactText, UserId};
use ragback_integrations::qdrant::{QdrantFactStore, QdrantSettings};

fn store(url: &str, collection: &str) -> QdrantFactStore {
    QdrantFactStore::new(&QdrantSettings {
        url: url.to_owned(),
        api_key: None,
        collection: collection.to_owned(),
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

fn unique(name: &str) -> String {
    format!("ragback_test_{name}_{}", std::process::id())
}

#[tokio::test]
async fn the_server_adapter_passes_the_store_contract_over_grpc() {
    for check in store_contract::CHECKS {
        let url = ragback_testkit::fake_qdrant::start().await;
        println!("store contract on the Qdrant server adapter (fake server): {check}");
        store_contract::run(check, &store(&url, "facts")).await;
    }
}

#[tokio::test]
async fn the_server_adapter_passes_the_store_contract_on_a_real_qdrant() {
    let Ok(url) = std::env::var("QDRANT_URL") else {
        let notice = "NOT RUN: the store contract on a real Qdrant server; set QDRANT_URL \
                      (e.g. http://localhost:6334 after `make dc.up`) to run it";
        // Written to the process's stderr directly, past the harness's capture, so that it shows
        // in every run's output.
        match std::fs::OpenOptions::new().write(true).open("/dev/stderr") {
            Ok(mut stderr) => {
                let _ = writeln!(stderr, "{notice}");
            }
            Err(_) => eprintln!("{notice}"),
        }
        return;
    };
    for check in store_contract::CHECKS {
        let collection = unique(check);
        println!("store contract on Qdrant at {url}: {check} (collection {collection})");
        store_contract::run(check, &store(&url, &collection)).await;
        let client = qdrant_client::Qdrant::from_url(&url).build().unwrap();
        let _ = client.delete_collection(&collection).await;
    }
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
