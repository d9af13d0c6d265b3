//! A job store in memory, and the contract every job store keeps.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::jobs::JobMap;
use crate::ports::{JobKind, JobStore, JobStoreError, QueuedJob};

/// Jobs in a map, for tests.
#[derive(Default)]
pub struct InMemoryJobStore(Mutex<JobMap>);

fn poisoned<T>(_: T) -> JobStoreError {
    JobStoreError::Unavailable("the job map's lock is poisoned".into())
}

#[async_trait]
impl JobStore for InMemoryJobStore {
    async fn put(&self, job: &QueuedJob) -> Result<(), JobStoreError> {
        self.0.lock().map_err(poisoned)?.put(job.clone());
        Ok(())
    }

    async fn claim(
        &self,
        kind: JobKind,
        owner: &str,
        now_ms: u64,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<QueuedJob>, JobStoreError> {
        let mut jobs = self.0.lock().map_err(poisoned)?;
        Ok(jobs.claim(kind, owner, now_ms, until_ms, limit))
    }

    async fn renew(&self, ids: &[String], owner: &str, until_ms: u64) -> Result<(), JobStoreError> {
        self.0.lock().map_err(poisoned)?.renew(ids, owner, until_ms);
        Ok(())
    }

    async fn finish(&self, id: &str) -> Result<(), JobStoreError> {
        self.0.lock().map_err(poisoned)?.finish(id);
        Ok(())
    }

    async fn pending(&self) -> Result<usize, JobStoreError> {
        Ok(self.0.lock().map_err(poisoned)?.len())
    }
}

/// The contract of a job store: a job put is there until finished; a leased job is nobody
/// else's until its lease runs out, which only its holder can renew; racing claimants never share
/// a job; kinds stay apart.
pub async fn job_store_contract(store: &(impl JobStore + ?Sized)) {
    let job = |id: &str, kind, until| QueuedJob {
        id: id.into(),
        kind,
        payload: serde_json::json!({"n": id}),
        lease_owner: "a".into(),
        lease_until_ms: until,
        attempts: 1,
    };
    assert_eq!(store.pending().await.unwrap(), 0, "empty at first");
    store.put(&job("m1", JobKind::Memory, 1_000)).await.unwrap();
    store.put(&job("m2", JobKind::Memory, 5_000)).await.unwrap();
    store
        .put(&job("s1", JobKind::Summary, 1_000))
        .await
        .unwrap();
    assert_eq!(store.pending().await.unwrap(), 3);
    // At 2 000 only m1's lease ran out; s1 is another kind.
    let won = store
        .claim(JobKind::Memory, "b", 2_000, 9_000, 10)
        .await
        .unwrap();
    assert_eq!(won.len(), 1, "{won:?}");
    assert_eq!(
        (
            won[0].id.as_str(),
            won[0].lease_owner.as_str(),
            won[0].lease_until_ms,
            won[0].attempts
        ),
        ("m1", "b", 9_000, 2)
    );
    assert_eq!(
        won[0].payload,
        serde_json::json!({"n": "m1"}),
        "the payload as put"
    );
    assert!(
        store
            .claim(JobKind::Memory, "c", 3_000, 9_500, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased to b until 9 000, m2 to a until 5 000"
    );
    let won = store
        .claim(JobKind::Memory, "c", 9_000, 12_000, 1)
        .await
        .unwrap();
    assert_eq!(won.len(), 1, "the limit holds");
    store.finish("m1").await.unwrap();
    store.finish("m2").await.unwrap();
    store.finish("absent").await.unwrap();
    assert_eq!(store.pending().await.unwrap(), 1);
    let won = store
        .claim(JobKind::Summary, "d", 2_000, 3_000, 10)
        .await
        .unwrap();
    assert_eq!(won.len(), 1);
    // Only the holder renews a lease.
    let ids = ["s1".to_owned(), "absent".to_owned()];
    store.renew(&ids, "d", 50_000).await.unwrap();
    store.renew(&ids, "e", 90_000).await.unwrap();
    assert!(
        store
            .claim(JobKind::Summary, "e", 10_000, 60_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "renewed by d until 50 000"
    );
    let won = store
        .claim(JobKind::Summary, "e", 50_000, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(won.len(), 1, "e's renewal changed nothing");
    store.finish("s1").await.unwrap();
    assert_eq!(store.pending().await.unwrap(), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_in_memory_store_keeps_the_contract() {
        job_store_contract(&InMemoryJobStore::default()).await;
    }
}
