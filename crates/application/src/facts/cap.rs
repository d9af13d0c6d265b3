//! The cap on facts per owner, held under concurrency: a write first *reserves* room for what it
//! adds, with the count of what is stored and of what other writes have reserved read under one
//! lock per owner, and gives the room back when it is done (stored, or failed). Two writes can no
//! longer both see room for one more fact and both add it.
//!
//! The lock covers only the count and the reservation, never the embedding or the write, so writes
//! of one owner still run side by side. It holds within one process: replicas sharing one store
//! can each fill the last free places (said in SECURITY.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use ragback_domain::FactOwner;

use crate::ports::{FactStore, FactStoreError};

/// Locks that serialise count-and-reserve, by a hash of the owner.
const STRIPES: usize = 64;

/// Room reserved by writes under way, per owner.
pub(crate) struct CapLedger {
    stripes: Vec<tokio::sync::Mutex<()>>,
    reserved: Arc<Mutex<HashMap<FactOwner, usize>>>,
}

/// Why no room could be reserved.
#[derive(Debug)]
pub(crate) enum NoRoom {
    /// The owner would pass the cap.
    Full {
        /// Facts stored (and reserved by other writes under way).
        stored: usize,
    },
    /// Counting failed.
    Store(FactStoreError),
}

/// Room reserved for one owner; given back when dropped.
pub(crate) struct Reservation {
    owner: FactOwner,
    count: usize,
    reserved: Arc<Mutex<HashMap<FactOwner, usize>>>,
}

impl CapLedger {
    pub(crate) fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            reserved: Arc::default(),
        }
    }

    /// Reserves room for `adding` more facts of `owner` (0 reserves nothing and always passes)
    /// under `cap`.
    pub(crate) async fn reserve(
        &self,
        store: &dyn FactStore,
        owner: &FactOwner,
        adding: usize,
        cap: usize,
    ) -> Result<Reservation, NoRoom> {
        let nothing = |count| Reservation {
            owner: owner.clone(),
            count,
            reserved: Arc::clone(&self.reserved),
        };
        if adding == 0 {
            return Ok(nothing(0));
        }
        let _serialised = self.stripes[stripe(owner)].lock().await;
        let stored = store.count(Some(owner)).await.map_err(NoRoom::Store)?;
        let mut reserved = self.reserved.lock().unwrap_or_else(PoisonError::into_inner);
        let pending = reserved.get(owner).copied().unwrap_or(0);
        let held = stored + pending;
        if held + adding > cap {
            return Err(NoRoom::Full { stored: held });
        }
        *reserved.entry(owner.clone()).or_insert(0) += adding;
        drop(reserved);
        Ok(nothing(adding))
    }
}

fn stripe(owner: &FactOwner) -> usize {
    let hash =
        crate::stable_hash::fnv1a(&[owner.kind().as_str().as_bytes(), owner.id().as_bytes()]);
    usize::try_from(hash % STRIPES as u64).unwrap_or(0)
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.count == 0 {
            return;
        }
        let mut reserved = self.reserved.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pending) = reserved.get_mut(&self.owner) {
            *pending = pending.saturating_sub(self.count);
            if *pending == 0 {
                reserved.remove(&self.owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ragback_domain::UserId;

    use super::*;
    use crate::testing::InMemoryFactStore;

    #[tokio::test]
    async fn reservations_count_until_given_back() {
        let store = InMemoryFactStore::default();
        let ledger = CapLedger::new();
        let john = FactOwner::User(UserId::parse("john").unwrap());
        let first = ledger.reserve(&store, &john, 2, 3).await.unwrap();
        assert!(matches!(
            ledger.reserve(&store, &john, 2, 3).await,
            Err(NoRoom::Full { stored: 2 })
        ));
        let _one = ledger.reserve(&store, &john, 1, 3).await.unwrap();
        drop(first);
        assert!(ledger.reserve(&store, &john, 2, 3).await.is_ok());
        assert!(
            ledger.reserve(&store, &john, 0, 0).await.is_ok(),
            "nothing to add"
        );
    }
}
