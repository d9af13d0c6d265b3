//! The behaviour every [`FactStore`] must have, as a suite of checks that each adapter's tests
//! run against a fresh, empty store (one store per check).
//!
//! Each check panics with a message on failure, like an assertion. The checks of searching are in
//! [`search`], those of writing in [`writes`].

mod search;
mod writes;

use ragback_domain::{CharacterId, Fact, FactOwner, FactText, UserId};

use crate::ports::{EmbeddedFact, FactQuery, FactStore};
pub use search::*;
pub use writes::*;

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

pub(super) fn user(id: &str) -> FactOwner {
    FactOwner::User(UserId::parse(id).expect("valid id"))
}

pub(super) fn character(id: &str) -> FactOwner {
    FactOwner::Character(CharacterId::parse(id).expect("valid id"))
}

/// The model the checks embed with.
pub(super) const MODEL: &str = "test/model";

pub(super) fn fact(owner: &FactOwner, text: &str, vector: [f32; 3]) -> EmbeddedFact {
    EmbeddedFact {
        model: MODEL.to_owned(),
        fact: Fact::new(owner.clone(), FactText::parse(text).expect("valid text")),
        vector: vector.to_vec(),
    }
}

pub(super) fn query(vector: [f32; 3], owners: &[FactOwner], limit: usize) -> FactQuery {
    FactQuery {
        model: MODEL.to_owned(),
        vector: vector.to_vec(),
        owners: owners.to_vec(),
        limit,
    }
}

pub(super) async fn lexical_texts(store: &dyn FactStore, q: FactQuery, text: &str) -> Vec<String> {
    store
        .search_lexical(q, text)
        .await
        .expect("lexical search works")
        .into_iter()
        .map(|f| f.fact.fact.text.as_str().to_owned())
        .collect()
}

pub(super) async fn texts(store: &dyn FactStore, q: FactQuery) -> Vec<String> {
    store
        .search(q)
        .await
        .expect("search works")
        .into_iter()
        .map(|f| f.fact.text.as_str().to_owned())
        .collect()
}

/// A check of the contract (see the module).
#[cfg(test)]
mod tests {
    use crate::testing::InMemoryFactStore;

    /// A fresh in-memory store: the fake must honour the contract it stands in for.
    async fn fresh() -> Option<(InMemoryFactStore, ())> {
        Some((InMemoryFactStore::default(), ()))
    }

    crate::store_contract_tests!(fresh);
}
