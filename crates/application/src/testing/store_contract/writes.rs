//! The checks of writing: upserts, counts, listing, deletes, provenance, extracted messages.

use ragback_domain::{Fact, FactText};

use crate::ports::{EmbeddedFact, FactPage, FactStore};

use super::*;

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
