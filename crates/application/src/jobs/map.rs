//! Jobs in one map by id: the leasing rules of a job store that holds all its jobs in one place
//! (in memory, or in a file only one process opens).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ports::{JobKind, QueuedJob};

/// Jobs by id; serialized as the map itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobMap(BTreeMap<String, QueuedJob>);

impl JobMap {
    /// Stores `job`, replacing a job of the same id.
    pub fn put(&mut self, job: QueuedJob) {
        self.0.insert(job.id.clone(), job);
    }

    /// Leases to `owner` until `until_ms` up to `limit` jobs of `kind` that are free at `now_ms`
    /// (as [`crate::ports::JobStore::claim`]); returns them.
    pub fn claim(
        &mut self,
        kind: JobKind,
        owner: &str,
        now_ms: u64,
        until_ms: u64,
        limit: usize,
    ) -> Vec<QueuedJob> {
        let mut won = Vec::new();
        for job in self.0.values_mut() {
            if won.len() >= limit {
                break;
            }
            if job.kind == kind && job.lease_until_ms <= now_ms {
                job.lease_to(owner, until_ms);
                won.push(job.clone());
            }
        }
        won
    }

    /// Extends to `until_ms` the leases of the jobs among `ids` that `owner` holds (as
    /// [`crate::ports::JobStore::renew`]); whether any changed.
    pub fn renew(&mut self, ids: &[String], owner: &str, until_ms: u64) -> bool {
        let mut changed = false;
        for id in ids {
            if let Some(job) = self.0.get_mut(id)
                && job.lease_owner == owner
            {
                job.lease_until_ms = until_ms;
                changed = true;
            }
        }
        changed
    }

    /// Removes a job that is done; whether it was there.
    pub fn finish(&mut self, id: &str) -> bool {
        self.0.remove(id).is_some()
    }

    /// How many jobs wait.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Frees every lease: whoever held them is gone.
    pub fn free_all(&mut self) {
        for job in self.0.values_mut() {
            job.lease_until_ms = 0;
        }
    }
}
