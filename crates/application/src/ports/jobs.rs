//! The port for queued background work: what a server acknowledged with a reply and will do after
//! it (a memory extraction, a summary), kept where every replica can see it until it is done, so
//! that a replica that dies or restarts loses none of it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Facts learned from a turn.
    Memory,
    /// A conversation's rolling summary brought up to date.
    Summary,
}

impl JobKind {
    /// Its name in files, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Summary => "summary",
        }
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedJob {
    /// Stable for the same work: the same turn queued twice is one job.
    pub id: String,
    /// What it does.
    pub kind: JobKind,
    /// Its input.
    pub payload: serde_json::Value,
    /// The process that holds it.
    pub lease_owner: String,
    /// Until when (Unix milliseconds); after it, any process may take the job over.
    pub lease_until_ms: u64,
    /// Times it was taken.
    pub attempts: u32,
}

impl QueuedJob {
    /// Leases the job to `owner` until `until_ms`, counting the attempt.
    pub fn lease_to(&mut self, owner: &str, until_ms: u64) {
        owner.clone_into(&mut self.lease_owner);
        self.lease_until_ms = until_ms;
        self.attempts = self.attempts.saturating_add(1);
    }
}

/// Why the job store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobStoreError {
    /// It cannot be reached or read.
    #[error("job store unavailable: {0}")]
    Unavailable(String),
    /// It holds what cannot be read.
    #[error("job store holds invalid data: {0}")]
    Corrupted(String),
}

/// Keeps queued jobs until they are done.
///
/// Implementations must: acknowledge `put` only once the job is durable; let `claim` hand a job
/// to one caller only, and only once its lease has run out (a store only one process can open may
/// free its predecessor's leases when it opens) — two processes claiming at once never get the
/// same job.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores `job`, replacing a job of the same id.
    async fn put(&self, job: &QueuedJob) -> Result<(), JobStoreError>;

    /// Leases to `owner` until `until_ms` up to `limit` jobs of `kind` that are free at
    /// `now_ms`; returns those this call won, their attempts counted.
    async fn claim(
        &self,
        kind: JobKind,
        owner: &str,
        now_ms: u64,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<QueuedJob>, JobStoreError>;

    /// Extends to `until_ms` the leases of the jobs among `ids` that `owner` still holds (a job
    /// another process took meanwhile stays theirs; an id not stored is skipped).
    async fn renew(&self, ids: &[String], owner: &str, until_ms: u64) -> Result<(), JobStoreError>;

    /// Removes a job that is done.
    async fn finish(&self, id: &str) -> Result<(), JobStoreError>;

    /// How many jobs wait, leased or free (a finished job is removed).
    async fn pending(&self) -> Result<usize, JobStoreError>;
}
