//! A set of changes applied together, or not at all: facts to add (with their vectors) and facts
//! to remove, as one extraction decides them. The cap is checked on the net change (an update at
//! the cap adds one fact and removes one), the additions are written first, and when a removal
//! fails afterwards the additions are taken back.

use std::collections::HashSet;

use ragback_domain::{FactId, FactOwner};

use super::{AddFactsError, FactLibrary};
use crate::ports::{EmbeddedFact, FactStoreError};

/// What to change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Facts to store (a fact already stored is left as it is).
    pub add: Vec<EmbeddedFact>,
    /// Facts to delete, by owner.
    pub remove: Vec<(FactOwner, FactId)>,
}

impl Changes {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    /// How many changes there are.
    pub fn len(&self) -> usize {
        self.add.len() + self.remove.len()
    }
}

/// Why changes were not applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChangeError {
    /// Refused before anything changed (the owner's cap), or a failure undone: nothing changed.
    #[error(transparent)]
    Refused(#[from] AddFactsError),
    /// The store failed part-way and what was done could not be undone.
    #[error(
        "the store failed after {applied} of {total} changes, which could not be undone: {source}"
    )]
    Partial {
        /// Changes that were made.
        applied: usize,
        /// Changes asked for.
        total: usize,
        /// The store's failure.
        source: FactStoreError,
    },
}

impl FactLibrary {
    /// Applies `changes` all together: on success every addition is stored and every removal
    /// done; on [`ChangeError::Refused`] the store is as it was.
    pub async fn apply(&self, changes: Changes) -> Result<(), ChangeError> {
        if changes.is_empty() {
            return Ok(());
        }
        let refused = |source| {
            ChangeError::Refused(AddFactsError::Store {
                done: super::AddFactsReport::default(),
                source,
            })
        };
        let ids: Vec<FactId> = changes.add.iter().map(|f| f.fact.id).collect();
        let known: HashSet<FactId> = self
            .store
            .known(&ids)
            .await
            .map_err(refused)?
            .into_iter()
            .collect();
        let new: Vec<_> = changes
            .add
            .iter()
            .filter(|f| !known.contains(&f.fact.id))
            .map(|f| f.fact.clone())
            .collect();
        let _room = self.reserve_room(&new, &changes.remove).await?;
        let total = changes.len();
        if !changes.add.is_empty() {
            self.store.upsert(changes.add).await.map_err(refused)?;
        }
        let mut removed = 0;
        for (owner, ids) in by_owner(&changes.remove) {
            if let Err(source) = self.store.delete(&owner, &ids).await {
                if removed == 0 && self.take_back(&new).await {
                    return Err(refused(source));
                }
                return Err(ChangeError::Partial {
                    applied: new.len() + removed,
                    total,
                    source,
                });
            }
            removed += ids.len();
        }
        Ok(())
    }

    /// Deletes the facts just added; whether that worked.
    async fn take_back(&self, added: &[ragback_domain::Fact]) -> bool {
        let pairs: Vec<(FactOwner, FactId)> =
            added.iter().map(|f| (f.owner.clone(), f.id)).collect();
        for (owner, ids) in by_owner(&pairs) {
            if let Err(error) = self.store.delete(&owner, &ids).await {
                tracing::error!(%error, "cannot take back facts added by a failed change");
                return false;
            }
        }
        true
    }
}

/// `pairs` grouped by owner, in first-seen order.
fn by_owner(pairs: &[(FactOwner, FactId)]) -> Vec<(FactOwner, Vec<FactId>)> {
    let mut groups: Vec<(FactOwner, Vec<FactId>)> = Vec::new();
    for (owner, id) in pairs {
        match groups.iter_mut().find(|(o, _)| o == owner) {
            Some((_, ids)) => ids.push(*id),
            None => groups.push((owner.clone(), vec![*id])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use ragback_domain::{Fact, FactText, UserId};

    use super::*;
    use crate::ports::FactStore;
    use crate::testing::{InMemoryFactStore, WordEmbedder, quick_retry, seed};

    fn john() -> FactOwner {
        FactOwner::User(UserId::parse("john").unwrap())
    }

    fn fact(text: &str) -> Fact {
        Fact::new(john(), FactText::parse(text).unwrap())
    }

    fn embedded(text: &str) -> EmbeddedFact {
        EmbeddedFact {
            fact: fact(text),
            vector: WordEmbedder::vector(text),
            model: "test/words".into(),
        }
    }

    async fn setup(cap: usize) -> (Arc<InMemoryFactStore>, FactLibrary, FactId) {
        let store = Arc::new(InMemoryFactStore::default());
        seed(
            &WordEmbedder::default(),
            &*store,
            &john(),
            &["Lives in London"],
        )
        .await;
        let library = FactLibrary::new(
            Some(Arc::new(WordEmbedder::default())),
            store.clone(),
            quick_retry(1),
            Duration::from_secs(5),
        )
        .with_owner_cap(cap);
        (store, library, fact("Lives in London").id)
    }

    /// Berlin replaces London.
    fn moving(london: FactId) -> Changes {
        Changes {
            add: vec![embedded("Lives in Berlin")],
            remove: vec![(john(), london)],
        }
    }

    async fn texts(store: &InMemoryFactStore) -> Vec<String> {
        let page = store.list(None, None, 10, false).await.unwrap();
        page.facts
            .into_iter()
            .map(|f| f.fact.text.as_str().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn an_update_at_the_cap_replaces_the_fact() {
        let (store, library, london) = setup(1).await;
        library.apply(moving(london)).await.unwrap();
        assert_eq!(texts(&store).await, ["Lives in Berlin"]);
    }

    #[tokio::test]
    async fn a_failed_removal_takes_the_additions_back() {
        let (store, library, london) = setup(10).await;
        store.fail_next_deletes(1);
        let error = library.apply(moving(london)).await.unwrap_err();
        assert!(matches!(error, ChangeError::Refused(_)), "{error}");
        assert_eq!(texts(&store).await, ["Lives in London"], "nothing changed");
    }

    #[tokio::test]
    async fn a_failure_that_cannot_be_undone_says_how_far_it_got() {
        let (store, library, london) = setup(10).await;
        store.fail_next_deletes(2);
        let error = library.apply(moving(london)).await.unwrap_err();
        assert!(
            matches!(
                error,
                ChangeError::Partial {
                    applied: 1,
                    total: 2,
                    ..
                }
            ),
            "{error}"
        );
    }
}
