//! The checks of searching: order, scores, owners, limits, dimensions, models, words.

use ragback_domain::{Fact, FactText};

use crate::ports::{EmbeddedFact, FactQuery, FactStore, FactStoreError, StoreStatus};

use super::*;

/// A check of the contract (see the module).
pub async fn empty_store(store: &dyn FactStore) {
    let found = store
        .search(query([1.0, 0.0, 0.0], &[user("john")], 5))
        .await;
    assert_eq!(found, Ok(Vec::new()), "an empty store finds nothing");
    assert_eq!(store.count(None).await, Ok(0));
    assert_eq!(
        store.status().await,
        Ok(StoreStatus {
            facts: 0,
            dimension: None
        })
    );
    assert_eq!(store.known(&[]).await, Ok(Vec::new()));
}

/// A check of the contract (see the module).
pub async fn search_is_best_first_with_cosine_scores(store: &dyn FactStore) {
    let john = user("john");
    store
        .upsert(vec![
            fact(&john, "orthogonal", [0.0, 1.0, 0.0]),
            fact(&john, "same direction", [2.0, 0.0, 0.0]),
            fact(&john, "opposite", [-1.0, 0.0, 0.0]),
            fact(&john, "diagonal", [1.0, 1.0, 0.0]),
        ])
        .await
        .expect("upsert works");

    let found = store
        .search(query([1.0, 0.0, 0.0], &[john], 10))
        .await
        .expect("search works");

    let got: Vec<(&str, f32)> = found
        .iter()
        .map(|f| (f.fact.text.as_str(), f.score))
        .collect();
    let expected = [
        ("same direction", 1.0),
        ("diagonal", std::f32::consts::FRAC_1_SQRT_2),
        ("orthogonal", 0.0),
        ("opposite", -1.0),
    ];
    assert_eq!(got.len(), expected.len(), "{got:?}");
    for ((text, score), (want_text, want_score)) in got.iter().zip(expected) {
        assert_eq!(*text, want_text, "order: {got:?}");
        assert!(
            (score - want_score).abs() < 1e-4,
            "cosine of {text}: {score}"
        );
    }
}

/// A check of the contract (see the module).
pub async fn owners_are_isolated(store: &dyn FactStore) {
    let (john, jane, john_the_character) = (user("john"), user("jane"), character("john"));
    store
        .upsert(vec![
            fact(&john, "john's fact", [1.0, 0.0, 0.0]),
            fact(&jane, "jane's fact", [1.0, 0.0, 0.0]),
            fact(
                &john_the_character,
                "the character john's fact",
                [1.0, 0.0, 0.0],
            ),
        ])
        .await
        .expect("upsert works");

    let v = [1.0, 0.0, 0.0];
    assert_eq!(
        texts(store, query(v, std::slice::from_ref(&john), 10)).await,
        ["john's fact"]
    );
    assert_eq!(
        texts(store, query(v, std::slice::from_ref(&jane), 10)).await,
        ["jane's fact"]
    );
    let mut both = texts(store, query(v, &[john, john_the_character], 10)).await;
    both.sort();
    assert_eq!(both, ["john's fact", "the character john's fact"]);
    assert_eq!(
        texts(store, query(v, &[user("nobody")], 10)).await,
        Vec::<String>::new()
    );
    assert_eq!(texts(store, query(v, &[], 10)).await, Vec::<String>::new());
}

/// A check of the contract (see the module).
pub async fn limit_is_respected(store: &dyn FactStore) {
    let john = user("john");
    let facts = (0..8)
        .map(|i| fact(&john, &format!("fact {i}"), [1.0, i as f32 / 10.0, 0.0]))
        .collect();
    store.upsert(facts).await.expect("upsert works");

    let found = texts(
        store,
        query([1.0, 0.0, 0.0], std::slice::from_ref(&john), 3),
    )
    .await;
    assert_eq!(found, ["fact 0", "fact 1", "fact 2"]);
    assert!(
        texts(store, query([1.0, 0.0, 0.0], &[john], 0))
            .await
            .is_empty()
    );
}

/// A check of the contract (see the module).
pub async fn dimension_is_enforced(store: &dyn FactStore) {
    let john = user("john");
    store
        .upsert(vec![fact(&john, "three dims", [1.0, 0.0, 0.0])])
        .await
        .expect("upsert works");

    let wider = EmbeddedFact {
        model: MODEL.to_owned(),
        fact: Fact::new(john.clone(), FactText::parse("four dims").expect("valid")),
        vector: vec![1.0, 0.0, 0.0, 0.0],
    };
    assert_eq!(
        store.upsert(vec![wider]).await,
        Err(FactStoreError::DimensionMismatch { store: 3, given: 4 })
    );
    let narrow = FactQuery {
        model: MODEL.to_owned(),
        vector: vec![1.0, 0.0],
        owners: vec![john],
        limit: 3,
    };
    assert_eq!(
        store.search(narrow).await,
        Err(FactStoreError::DimensionMismatch { store: 3, given: 2 })
    );
    assert_eq!(
        store.status().await,
        Ok(StoreStatus {
            facts: 1,
            dimension: Some(3)
        })
    );
    let message = FactStoreError::DimensionMismatch { store: 3, given: 2 }.to_string();
    assert!(message.contains("re-seed"), "{message}");
}

/// A check of the contract (see the module).
pub async fn models_are_enforced(store: &dyn FactStore) {
    let john = user("john");
    store
        .upsert(vec![fact(&john, "a", [1.0, 0.0, 0.0])])
        .await
        .expect("upsert works");
    let mismatch = FactStoreError::ModelMismatch {
        store: MODEL.to_owned(),
        given: "other/model".to_owned(),
    };

    let other = EmbeddedFact {
        model: "other/model".to_owned(),
        ..fact(&john, "b", [0.0, 1.0, 0.0])
    };
    assert_eq!(store.upsert(vec![other]).await, Err(mismatch.clone()));
    let other_query = FactQuery {
        model: "other/model".to_owned(),
        ..query([1.0, 0.0, 0.0], std::slice::from_ref(&john), 3)
    };
    assert_eq!(store.search(other_query).await, Err(mismatch.clone()));
    assert_eq!(
        store.count(None).await,
        Ok(1),
        "nothing of the other model was stored"
    );
    assert!(mismatch.to_string().contains("re-seed"), "{mismatch}");
}

/// A check of the contract (see the module).
pub async fn words_find_facts_rare_words_first(store: &dyn FactStore) {
    let (john, jane) = (user("john"), user("jane"));
    store
        .upsert(vec![
            fact(&john, "Has a dog named Biscuit", [0.0, 1.0, 0.0]),
            fact(&john, "Walks the dog every morning", [0.0, 0.0, 1.0]),
            fact(&john, "Plays the violin", [1.0, 0.0, 0.0]),
            fact(&jane, "Bakes biscuits for her dog", [1.0, 0.0, 0.0]),
        ])
        .await
        .expect("upsert works");
    let v = [1.0, 0.0, 0.0];
    let john_only = || query(v, std::slice::from_ref(&john), 10);

    let hits = store
        .search_lexical(john_only(), "Biscuit ate my dog's dinner")
        .await
        .expect("lexical search works");
    let got: Vec<(&str, f32, f32)> = hits
        .iter()
        .map(|h| (h.fact.fact.text.as_str(), h.fact.score, h.lexical))
        .collect();
    assert_eq!(got.len(), 2, "only john's facts sharing a word: {got:?}");
    assert_eq!(
        got[0].0, "Has a dog named Biscuit",
        "two shared words, one rare, come first: {got:?}"
    );
    assert_eq!(got[1].0, "Walks the dog every morning", "{got:?}");
    assert!(
        got[0].2 > got[1].2 && got[1].2 > 0.0,
        "lexical scores: {got:?}"
    );
    for (text, cosine, _) in &got {
        assert!(
            cosine.abs() < 1e-4,
            "the cosine of {text} to the query vector: {cosine}"
        );
    }

    assert_eq!(
        lexical_texts(store, john_only(), "biscuit").await,
        ["Has a dog named Biscuit"],
        "case does not matter"
    );
    assert_eq!(
        lexical_texts(store, query(v, std::slice::from_ref(&jane), 10), "biscuit").await,
        ["Bakes biscuits for her dog"],
        "another owner's fact only for that owner"
    );
    assert_eq!(
        lexical_texts(store, john_only(), "violin lessons").await,
        ["Plays the violin"]
    );
    let nothing: Vec<String> = Vec::new();
    assert_eq!(
        lexical_texts(store, john_only(), "quantum chromodynamics").await,
        nothing
    );
    assert_eq!(
        lexical_texts(store, query(v, &[], 10), "biscuit").await,
        nothing
    );
    assert_eq!(
        lexical_texts(store, query(v, std::slice::from_ref(&john), 1), "dog")
            .await
            .len(),
        1,
        "the limit holds"
    );
}
