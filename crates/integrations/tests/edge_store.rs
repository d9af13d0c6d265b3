//! Qdrant Edge against the fact-store contract, plus what only an embedded store has: reopening,
//! the one-process lock.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may fail loudly

use std::sync::Arc;

use ragback_application::ports::{EmbeddedFact, FactQuery, FactStore, FactStoreError};
use ragback_application::testing::store_contract;
use ragback_domain::{Fact, FactOwner, FactText, UserId};
use ragback_integrations::edge::EdgeFactStore;

#[tokio::test]
async fn qdrant_edge_passes_the_store_contract() {
    for check in store_contract::CHECKS {
        let dir = tempfile::tempdir().unwrap();
        let store = EdgeFactStore::open(dir.path()).unwrap();
        println!("store contract on Qdrant Edge: {check}");
        store_contract::run(check, &store).await;
    }
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

#[tokio::test]
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
