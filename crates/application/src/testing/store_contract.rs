//! The behaviour every [`FactStore`] must have, as a suite of checks that each adapter's tests
//! run against a fresh, empty store (one store per check).
//!
//! Each check panics with a message on failure, like an assertion.

use ragback_domain::{CharacterId, Fact, FactOwner, FactText, UserId};

use crate::ports::{EmbeddedFact, FactPage, FactQuery, FactStore, FactStoreError, StoreStatus};

/// One `#[tokio::test]` per check of the contract, each on a fresh store from `$make`: an async
/// fn returning `Option<(store, guard)>` — the guard (a temporary directory, say) lives as long as
/// the check; `None` means the store is not available here, which the test says in its output
/// (never a silent pass). Use it inside a module of its own:
///
/// ```ignore
/// mod contract {
///     ragback_application::store_contract_tests!(super::fresh_store);
/// }
/// ```
#[macro_export]
macro_rules! store_contract_tests {
    ($make:path) => {
        $crate::store_contract_tests!(@each $make;
            empty_store,
            search_is_best_first_with_cosine_scores,
            owners_are_isolated,
            upserts_are_idempotent,
            limit_is_respected,
            dimension_is_enforced,
            counts_per_owner,
            listing_pages_through_everything,
            deletes_respect_owners,
            an_emptied_store_keeps_working,
            models_are_enforced,
            words_find_facts_rare_words_first,
            provenance_is_kept,
            extracted_messages_are_found_by_their_hash
        );
    };
    (@each $make:path; $($check:ident),+) => {
        $(
            #[tokio::test]
            async fn $check() {
                let Some((made, guard)) = $make().await else {
                    return;
                };
                // Declared in this order, dropped in the other: the store first, then what it
                // lives in (a temporary directory).
                let _guard = guard;
                let store = made;
                $crate::testing::store_contract::$check(&store).await;
            }
        )+
    };
}

fn user(id: &str) -> FactOwner {
    FactOwner::User(UserId::parse(id).expect("valid id"))
}

fn character(id: &str) -> FactOwner {
    FactOwner::Character(CharacterId::parse(id).expect("valid id"))
}

/// The model the checks embed with.
const MODEL: &str = "test/model";

fn fact(owner: &FactOwner, text: &str, vector: [f32; 3]) -> EmbeddedFact {
    EmbeddedFact {
        model: MODEL.to_owned(),
        fact: Fact::new(owner.clone(), FactText::parse(text).expect("valid text")),
        vector: vector.to_vec(),
    }
}

fn query(vector: [f32; 3], owners: &[FactOwner], limit: usize) -> FactQuery {
    FactQuery {
        model: MODEL.to_owned(),
        vector: vector.to_vec(),
        owners: owners.to_vec(),
        limit,
    }
}

async fn lexical_texts(store: &dyn FactStore, q: FactQuery, text: &str) -> Vec<String> {
    store
        .search_lexical(q, text)
        .await
        .expect("lexical search works")
        .into_iter()
        .map(|f| f.fact.fact.text.as_str().to_owned())
        .collect()
}

async fn texts(store: &dyn FactStore, q: FactQuery) -> Vec<String> {
    store
        .search(q)
        .await
        .expect("search works")
        .into_iter()
        .map(|f| f.fact.text.as_str().to_owned())
        .collect()
}

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
pub async fn upserts_are_idempotent(store: &dyn FactStore) {
    let john = user("john");
    let batch = vec![
        fact(&john, "a", [1.0, 0.0, 0.0]),
        fact(&john, "b", [0.0, 1.0, 0.0]),
    ];
    let first = store.upsert(batch.clone()).await.expect("upsert works");
    let second = store.upsert(batch.clone()).await.expect("upsert works");

    assert_eq!((first.added, first.unchanged), (2, 0));
    assert_eq!((second.added, second.unchanged), (0, 2));
    assert_eq!(store.count(None).await, Ok(2));
    let unknown = Fact::new(john, FactText::parse("c").expect("valid")).id;
    let mut known = store
        .known(&[batch[0].fact.id, unknown, batch[1].fact.id])
        .await
        .expect("lookup works");
    known.sort();
    let mut expected = vec![batch[0].fact.id, batch[1].fact.id];
    expected.sort();
    assert_eq!(known, expected);
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
pub async fn counts_per_owner(store: &dyn FactStore) {
    let (john, blaze) = (user("john"), character("blaze"));
    store
        .upsert(vec![
            fact(&john, "a", [1.0, 0.0, 0.0]),
            fact(&john, "b", [0.0, 1.0, 0.0]),
            fact(&blaze, "c", [0.0, 0.0, 1.0]),
        ])
        .await
        .expect("upsert works");

    assert_eq!(store.count(Some(&john)).await, Ok(2));
    assert_eq!(store.count(Some(&blaze)).await, Ok(1));
    assert_eq!(store.count(Some(&user("jane"))).await, Ok(0));
    assert_eq!(store.count(None).await, Ok(3));
}

/// A check of the contract (see the module).
pub async fn listing_pages_through_everything(store: &dyn FactStore) {
    let (john, jane) = (user("john"), user("jane"));
    let mut facts: Vec<EmbeddedFact> = (0..7)
        .map(|i| fact(&john, &format!("john {i}"), [1.0, i as f32, 0.0]))
        .collect();
    facts.push(fact(&jane, "jane 0", [0.0, 0.0, 1.0]));
    store.upsert(facts).await.expect("upsert works");

    let mut seen = Vec::new();
    let mut start = None;
    loop {
        let FactPage { facts, next } = store
            .list(Some(&john), start, 3, false)
            .await
            .expect("list works");
        assert!(facts.len() <= 3);
        assert!(
            facts
                .iter()
                .all(|f| f.fact.owner == john && f.vector.is_none())
        );
        seen.extend(facts.into_iter().map(|f| f.fact.id));
        match next {
            Some(next) => start = Some(next),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "id order, no repeats");
    assert_eq!(seen.len(), 7, "no gaps");

    let everyone = store.list(None, None, 100, true).await.expect("list works");
    assert_eq!(everyone.facts.len(), 8);
    assert_eq!(everyone.next, None);
    let jane_fact = everyone
        .facts
        .iter()
        .find(|f| f.fact.owner == jane)
        .expect("jane's fact is listed");
    let vector = jane_fact.vector.as_ref().expect("vectors when asked for");
    assert_eq!(vector.len(), 3);
    assert!(
        (vector[2] - 1.0).abs() < 1e-4,
        "cosine stores normalise: {vector:?}"
    );
    let empty = store.list(Some(&user("nobody")), None, 10, false).await;
    assert_eq!(
        empty,
        Ok(FactPage {
            facts: Vec::new(),
            next: None
        })
    );
}

/// A check of the contract (see the module).
pub async fn deletes_respect_owners(store: &dyn FactStore) {
    let (john, jane) = (user("john"), user("jane"));
    let johns = fact(&john, "john's", [1.0, 0.0, 0.0]);
    let janes = fact(&jane, "jane's", [1.0, 0.0, 0.0]);
    let janes_other = fact(&jane, "jane's other", [0.0, 1.0, 0.0]);
    store
        .upsert(vec![johns.clone(), janes.clone(), janes_other.clone()])
        .await
        .expect("upsert works");

    assert_eq!(
        store.delete(&john, &[janes.fact.id]).await,
        Ok(0),
        "john cannot delete jane's fact"
    );
    assert_eq!(store.delete(&jane, &[janes.fact.id]).await, Ok(1));
    assert_eq!(
        store.delete(&jane, &[janes.fact.id]).await,
        Ok(0),
        "already gone"
    );
    assert_eq!(store.count(None).await, Ok(2));

    assert_eq!(store.delete_owner(&jane).await, Ok(1));
    assert_eq!(store.delete_owner(&jane).await, Ok(0));
    assert_eq!(
        texts(store, query([1.0, 0.0, 0.0], &[john, jane], 10)).await,
        ["john's"]
    );
}

/// A check of the contract (see the module).
pub async fn an_emptied_store_keeps_working(store: &dyn FactStore) {
    let john = user("john");
    store
        .upsert(vec![fact(&john, "a", [1.0, 0.0, 0.0])])
        .await
        .expect("upsert works");
    assert_eq!(store.delete_owner(&john).await, Ok(1));

    assert_eq!(store.count(None).await, Ok(0));
    let again = store
        .upsert(vec![fact(&john, "a", [1.0, 0.0, 0.0])])
        .await
        .expect("upsert works");
    assert_eq!(
        (again.added, again.unchanged),
        (1, 0),
        "a deleted fact can come back"
    );
    assert_eq!(
        texts(store, query([1.0, 0.0, 0.0], &[john], 10)).await,
        ["a"]
    );
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

/// A check of the contract (see the module).
pub async fn provenance_is_kept(store: &dyn FactStore) {
    use ragback_domain::{FactSource, Provenance, Timestamp};
    let john = user("john");
    let mut extracted = Provenance::new(FactSource::Extracted, Timestamp::from_unix_millis(1_000));
    extracted.updated_at = Timestamp::from_unix_millis(2_500);
    extracted.request_id = Some("req-42".into());
    extracted.message_hash = Some("9f86d081".into());
    let mut with = fact(&john, "Moved to Berlin", [1.0, 0.0, 0.0]);
    with.fact = with.fact.with_provenance(extracted.clone());
    let without = fact(&john, "Likes jazz", [0.0, 1.0, 0.0]);
    store
        .upsert(vec![with.clone(), without.clone()])
        .await
        .expect("upsert works");
    let listed = store
        .list(Some(&john), None, 10, false)
        .await
        .expect("listing works")
        .facts;
    let of = |text: &str| {
        listed
            .iter()
            .find(|s| s.fact.text.as_str() == text)
            .map(|s| s.fact.provenance.clone())
    };
    assert_eq!(of("Moved to Berlin"), Some(Some(extracted.clone())));
    assert_eq!(
        of("Likes jazz"),
        Some(None),
        "a fact without provenance reads as one"
    );
    let found = store
        .search(query([1.0, 0.0, 0.0], std::slice::from_ref(&john), 1))
        .await
        .expect("search works");
    assert_eq!(found[0].fact.provenance, Some(extracted.clone()));

    // Stored again with another provenance: the first is kept, as the fact is.
    let mut again = with.clone();
    again.fact = again.fact.with_provenance(Provenance::new(
        FactSource::Api,
        Timestamp::from_unix_millis(9_000),
    ));
    store.upsert(vec![again]).await.expect("upsert works");
    let found = store
        .search(query([1.0, 0.0, 0.0], std::slice::from_ref(&john), 1))
        .await
        .expect("search works");
    assert_eq!(found[0].fact.provenance, Some(extracted));
}

/// A check of the contract (see the module).
pub async fn extracted_messages_are_found_by_their_hash(store: &dyn FactStore) {
    use ragback_domain::{FactSource, Provenance, Timestamp};
    let (john, jane) = (user("john"), user("jane"));
    assert!(
        !store
            .has_message(&john, "feed")
            .await
            .expect("lookup works"),
        "an empty store has none"
    );
    let mut learned = fact(&john, "Moved to Berlin", [1.0, 0.0, 0.0]);
    learned.fact = learned.fact.with_provenance(Provenance {
        message_hash: Some("feed".into()),
        ..Provenance::new(FactSource::Extracted, Timestamp::from_unix_millis(1_000))
    });
    let seeded = fact(&jane, "Likes jazz", [0.0, 1.0, 0.0]);
    store
        .upsert(vec![learned, seeded])
        .await
        .expect("upsert works");
    assert!(
        store
            .has_message(&john, "feed")
            .await
            .expect("lookup works")
    );
    assert!(
        !store
            .has_message(&john, "beef")
            .await
            .expect("lookup works"),
        "another message"
    );
    assert!(
        !store
            .has_message(&jane, "feed")
            .await
            .expect("lookup works"),
        "another owner's message"
    );
}

#[cfg(test)]
mod tests {
    use crate::testing::InMemoryFactStore;

    /// A fresh in-memory store: the fake must honour the contract it stands in for.
    async fn fresh() -> Option<(InMemoryFactStore, ())> {
        Some((InMemoryFactStore::default(), ()))
    }

    crate::store_contract_tests!(fresh);
}
