//! Queued background jobs of the embedded store: one file, `jobs.json`, beside the facts (covered
//! by the same directory lock: one process at a time), rewritten whole on every change — written
//! to a temporary file, synced, then renamed over the old one, so that a crash leaves either.
//! Jobs a previous process held are free for this one: it is the only process left.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use ragback_application::jobs::JobMap;
use ragback_application::ports::{JobKind, JobStore, JobStoreError, QueuedJob};

use super::EdgeFactStore;

const JOBS_FILE: &str = "jobs.json";

/// Reads the jobs left in the store's directory (none when there is no file), all free.
pub(super) fn load(dir: &Path) -> Result<JobMap, JobStoreError> {
    let path = dir.join(JOBS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let mut jobs: JobMap = serde_json::from_slice(&bytes)
                .map_err(|e| JobStoreError::Corrupted(format!("{}: {e}", path.display())))?;
            // Whoever held these is gone: the directory lock says this process is the only one.
            jobs.free_all();
            Ok(jobs)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(JobMap::default()),
        Err(e) => Err(JobStoreError::Unavailable(format!(
            "{}: {e}",
            path.display()
        ))),
    }
}

fn save(dir: &Path, jobs: &JobMap) -> Result<(), JobStoreError> {
    let io = |e: std::io::Error| JobStoreError::Unavailable(format!("{}: {e}", dir.display()));
    let path = dir.join(JOBS_FILE);
    let temporary: PathBuf = dir.join(format!("{JOBS_FILE}.tmp"));
    let bytes = serde_json::to_vec(jobs).map_err(|e| JobStoreError::Corrupted(e.to_string()))?;
    let mut file = std::fs::File::create(&temporary).map_err(io)?;
    file.write_all(&bytes).map_err(io)?;
    file.sync_data().map_err(io)?;
    std::fs::rename(&temporary, &path).map_err(io)
}

impl EdgeFactStore {
    /// Runs `work` on the jobs (saved when it says they changed), on the blocking pool.
    async fn jobs<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut JobMap) -> (T, bool) + Send + 'static,
    ) -> Result<T, JobStoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut jobs = inner
                .jobs
                .lock()
                .map_err(|_| JobStoreError::Unavailable("the jobs' lock is poisoned".into()))?;
            let (out, changed) = work(&mut jobs);
            if changed {
                save(&inner.path, &jobs)?;
            }
            Ok(out)
        })
        .await
        .map_err(|e| JobStoreError::Unavailable(format!("job store task failed: {e}")))?
    }
}

#[async_trait]
impl JobStore for EdgeFactStore {
    async fn put(&self, job: &QueuedJob) -> Result<(), JobStoreError> {
        let job = job.clone();
        self.jobs(move |jobs| {
            jobs.put(job);
            ((), true)
        })
        .await
    }

    async fn claim(
        &self,
        kind: JobKind,
        owner: &str,
        now_ms: u64,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<QueuedJob>, JobStoreError> {
        let owner = owner.to_owned();
        self.jobs(move |jobs| {
            let won = jobs.claim(kind, &owner, now_ms, until_ms, limit);
            let changed = !won.is_empty();
            (won, changed)
        })
        .await
    }

    async fn renew(&self, ids: &[String], owner: &str, until_ms: u64) -> Result<(), JobStoreError> {
        let (ids, owner) = (ids.to_vec(), owner.to_owned());
        self.jobs(move |jobs| ((), jobs.renew(&ids, &owner, until_ms)))
            .await
    }

    async fn finish(&self, id: &str) -> Result<(), JobStoreError> {
        let id = id.to_owned();
        self.jobs(move |jobs| ((), jobs.finish(&id))).await
    }

    async fn pending(&self) -> Result<usize, JobStoreError> {
        self.jobs(|jobs| (jobs.len(), false)).await
    }
}
