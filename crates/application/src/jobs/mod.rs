//! Background work that outlives the replica that queued it.
//!
//! A queue with a [`JobJournal`] stores each job before it is acknowledged (leased to this
//! process, which renews the lease every sweep while the job waits or runs), deletes it once
//! done, and a sweeper takes over jobs whose lease ran out — those of a replica that died, or of
//! this one before a restart — so that nothing queued is lost, and a job runs in one place at a
//! time. The work itself is idempotent (an extraction by its message's
//! hash, a summary by what it covers), so a job taken over after a crash mid-run does no harm.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ports::{JobKind, JobStore, JobStoreError, QueuedJob};

mod map;

use crate::stable_hash::fnv1a;
pub use map::JobMap;

/// Where a queue keeps its jobs, and who this process is.
#[derive(Clone)]
pub struct JobJournal {
    store: Arc<dyn JobStore>,
    owner: Arc<str>,
    lease: Duration,
    sweep: Duration,
    /// The jobs queued or running in this process: a sweep that takes one of them again (its
    /// lease ran out while it waited) renews its lease and leaves it where it is.
    held: Arc<Mutex<HashSet<String>>>,
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A job's id: the same work queued twice is one job.
pub fn job_id(kind: JobKind, payload: &Value) -> String {
    let hash = fnv1a(&[kind.as_str().as_bytes(), payload.to_string().as_bytes()]);
    format!("{}:{hash:016x}", kind.as_str())
}

impl JobJournal {
    /// A journal in `store` for the process `owner`: a job it takes stays its own for `lease`,
    /// and free jobs are looked for every `sweep`.
    pub fn new(
        store: Arc<dyn JobStore>,
        owner: impl Into<Arc<str>>,
        lease: Duration,
        sweep: Duration,
    ) -> Self {
        Self {
            store,
            owner: owner.into(),
            lease,
            sweep,
            held: Arc::default(),
        }
    }

    /// Marks `id` as queued here; `false` when it already was.
    fn hold(&self, id: &str) -> bool {
        self.held
            .lock()
            .map_or(true, |mut held| held.insert(id.to_owned()))
    }

    fn release(&self, id: &str) {
        if let Ok(mut held) = self.held.lock() {
            held.remove(id);
        }
    }

    fn lease_until(&self) -> u64 {
        now_ms().saturating_add(u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX))
    }

    /// Stores a job of `kind` for `payload`, leased to this process; returns its id once it is
    /// durable.
    pub async fn record(&self, kind: JobKind, payload: Value) -> Result<String, JobStoreError> {
        let id = job_id(kind, &payload);
        self.store
            .put(&QueuedJob {
                id: id.clone(),
                kind,
                payload,
                lease_owner: self.owner.to_string(),
                lease_until_ms: self.lease_until(),
                attempts: 1,
            })
            .await?;
        self.hold(&id);
        Ok(id)
    }

    /// Removes a job that is done; a failure is logged (the job is then done once more, later:
    /// harmless, the work is idempotent).
    pub async fn finish(&self, id: &str) {
        self.release(id);
        if let Err(error) = self.store.finish(id).await {
            tracing::warn!(job = id, %error, "a finished job could not be removed from the store");
        }
    }

    /// Renews the leases of the jobs queued or running here, so that no other process takes
    /// them while they wait (a failure is logged: the leases then run out as they would).
    async fn renew_held(&self) {
        let ids: Vec<String> = match self.held.lock() {
            Ok(held) => held.iter().cloned().collect(),
            Err(_) => return,
        };
        if ids.is_empty() {
            return;
        }
        if let Err(error) = self
            .store
            .renew(&ids, &self.owner, self.lease_until())
            .await
        {
            tracing::warn!(%error, jobs = ids.len(), "the leases of queued jobs could not be renewed");
        }
    }

    /// Takes up to `limit` free jobs of `kind`.
    pub async fn take(&self, kind: JobKind, limit: usize) -> Result<Vec<QueuedJob>, JobStoreError> {
        self.store
            .claim(kind, &self.owner, now_ms(), self.lease_until(), limit)
            .await
    }

    /// Starts the sweeper of a queue: at once, then every `sweep`, it renews the leases of the
    /// jobs this process holds, and takes as many free jobs of `kind` as the queue has room for (at most `limit`) and hands each, read by `read`, to the
    /// queue through `sender`. It stops when the queue is gone (every strong sender dropped). A
    /// job `read` cannot understand is logged and removed; a job this process holds already
    /// keeps its place (the claim renewed its lease). Its queue's worker stops it with
    /// [`stop_sweeper`] once the queue is closed, so that it holds the store no longer.
    pub fn spawn_sweeper<T: Send + 'static>(
        &self,
        kind: JobKind,
        limit: usize,
        sender: tokio::sync::mpsc::WeakSender<(T, Option<String>)>,
        read: impl Fn(&Value) -> Option<T> + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let journal = self.clone();
        tokio::spawn(async move {
            loop {
                let Some(queue) = sender.upgrade() else {
                    return;
                };
                journal.renew_held().await;
                // Claims again while a claim renewed jobs held here: they took the room of free
                // ones (a bounded number of times, whatever the lease).
                for _ in 0..CLAIMS_PER_SWEEP {
                    match journal.sweep_once(kind, limit, &queue, &read).await {
                        Swept::Renewed => {}
                        Swept::Done => break,
                        Swept::Closed => return,
                    }
                }
                drop(queue);
                tokio::time::sleep(journal.sweep).await;
            }
        })
    }

    /// One claim of a sweep.
    async fn sweep_once<T: Send>(
        &self,
        kind: JobKind,
        limit: usize,
        queue: &tokio::sync::mpsc::Sender<(T, Option<String>)>,
        read: &(impl Fn(&Value) -> Option<T> + Sync),
    ) -> Swept {
        let room = queue.capacity().min(limit);
        if room == 0 {
            return Swept::Done;
        }
        let jobs = match self.take(kind, room).await {
            Ok(jobs) => jobs,
            Err(error) => {
                tracing::warn!(%error, kind = kind.as_str(), "queued jobs could not be looked for");
                return Swept::Done;
            }
        };
        let mut swept = Swept::Done;
        for job in jobs {
            if !self.hold(&job.id) {
                swept = Swept::Renewed;
                continue;
            }
            if job.attempts > MAX_ATTEMPTS {
                // Taken over and over: a job whose run kills its process, or never ends.
                metrics::counter!("ragback_jobs_abandoned_total", "kind" => kind.as_str())
                    .increment(1);
                tracing::error!(job = %job.id, attempts = job.attempts, "a queued job was taken over too often: abandoned");
                self.finish(&job.id).await;
                continue;
            }
            let Some(item) = read(&job.payload) else {
                tracing::error!(job = %job.id, "a stored job cannot be read: removed");
                self.finish(&job.id).await;
                continue;
            };
            metrics::counter!("ragback_jobs_resumed_total", "kind" => kind.as_str()).increment(1);
            tracing::info!(job = %job.id, attempts = job.attempts, "a queued job taken over");
            if let Err(error) = queue.try_send((item, Some(job.id.clone()))) {
                // Full (requests filled it meanwhile): taken again once its lease runs out.
                self.release(&job.id);
                if matches!(error, tokio::sync::mpsc::error::TrySendError::Closed(_)) {
                    return Swept::Closed;
                }
                return Swept::Done;
            }
        }
        swept
    }
}

/// Where [`enqueue`] left an item.
pub(crate) enum Queued<T> {
    /// On the queue.
    Sent,
    /// Stored, and the queue full (or stopping): a sweep takes it once its lease runs out.
    Waiting,
    /// Neither stored nor queued.
    Dropped(T),
}

/// Stores `item` as a job of `kind` in `journal` (when the queue keeps one; its `payload`), then
/// puts it on the queue of `sender` without waiting. A store that fails is logged and counted,
/// and the item queued in memory alone.
pub(crate) async fn enqueue<T>(
    journal: Option<&JobJournal>,
    kind: JobKind,
    sender: &tokio::sync::mpsc::Sender<(T, Option<String>)>,
    item: T,
    payload: impl FnOnce(&T) -> Value,
) -> Queued<T> {
    let id = match journal {
        Some(journal) => match journal.record(kind, payload(&item)).await {
            Ok(id) => Some(id),
            Err(error) => {
                metrics::counter!("ragback_jobs_unstored_total", "kind" => kind.as_str())
                    .increment(1);
                tracing::warn!(%error, kind = kind.as_str(), "a job could not be stored: queued in memory only");
                None
            }
        },
        None => None,
    };
    match sender.try_send((item, id)) {
        Ok(()) => Queued::Sent,
        Err(error) => match (journal, error.into_inner()) {
            (Some(journal), (_, Some(id))) => {
                // No longer held here: the next sweep that finds its lease run out takes it.
                journal.release(&id);
                Queued::Waiting
            }
            (_, (item, _)) => Queued::Dropped(item),
        },
    }
}

/// Stops a sweeper and waits until it is gone (and its hold on the store with it).
pub async fn stop_sweeper(sweeper: Option<tokio::task::JoinHandle<()>>) {
    if let Some(sweeper) = sweeper {
        sweeper.abort();
        let _ = sweeper.await;
    }
}

/// Times a job may be taken before it is abandoned: one whose run kills its process (or
/// outlives every lease) must not come back forever.
pub const MAX_ATTEMPTS: u32 = 10;

/// Claims one sweep may make.
const CLAIMS_PER_SWEEP: usize = 8;

/// How a claim of a sweep went.
enum Swept {
    /// Some of the jobs it took were held here already: their room is free for another claim.
    Renewed,
    /// Nothing more to take now.
    Done,
    /// The queue is stopping.
    Closed,
}

/// A message as a stored job holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// `user` or `character`.
    pub role: String,
    /// What was said.
    pub text: String,
}

impl StoredMessage {
    /// The stored form of `message`.
    pub fn of(message: &ragback_domain::Message) -> Self {
        Self {
            role: message.role.as_str().to_owned(),
            text: message.text.as_str().to_owned(),
        }
    }

    /// The message again; `None` when the stored one is not valid.
    pub fn read(&self) -> Option<ragback_domain::Message> {
        let role = match self.role.as_str() {
            "user" => ragback_domain::Role::User,
            "character" => ragback_domain::Role::Character,
            _ => return None,
        };
        let text = ragback_domain::MessageText::parse(self.text.as_str()).ok()?;
        Some(ragback_domain::Message::new(role, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::InMemoryJobStore;

    #[tokio::test]
    async fn a_recorded_job_is_leased_to_its_process_and_taken_over_after_its_lease() {
        let store = Arc::new(InMemoryJobStore::default());
        let first = JobJournal::new(
            store.clone(),
            "first",
            Duration::from_millis(50),
            Duration::from_secs(60),
        );
        let second = JobJournal::new(
            store.clone(),
            "second",
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        let id = first
            .record(JobKind::Memory, serde_json::json!({"x": 1}))
            .await
            .unwrap();
        assert_eq!(id, job_id(JobKind::Memory, &serde_json::json!({"x": 1})));
        assert!(
            second.take(JobKind::Memory, 10).await.unwrap().is_empty(),
            "leased"
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
        let taken = second.take(JobKind::Memory, 10).await.unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(
            (taken[0].lease_owner.as_str(), taken[0].attempts),
            ("second", 2)
        );
        second.finish(&id).await;
        assert_eq!(store.pending().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn the_sweeper_hands_free_jobs_to_its_queue_and_stops_with_it() {
        let store = Arc::new(InMemoryJobStore::default());
        let dead = JobJournal::new(
            store.clone(),
            "dead",
            Duration::ZERO,
            Duration::from_secs(60),
        );
        for n in 0..3 {
            dead.record(JobKind::Summary, serde_json::json!({"n": n}))
                .await
                .unwrap();
        }
        dead.record(JobKind::Summary, serde_json::json!("not a job"))
            .await
            .unwrap();
        store
            .put(&QueuedJob {
                id: "summary:poison".into(),
                kind: JobKind::Summary,
                payload: serde_json::json!({"n": 9}),
                lease_owner: "dead".into(),
                lease_until_ms: 0,
                attempts: MAX_ATTEMPTS,
            })
            .await
            .unwrap();
        let live = JobJournal::new(
            store.clone(),
            "live",
            Duration::from_secs(60),
            Duration::from_millis(20),
        );
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<(u64, Option<String>)>(8);
        live.spawn_sweeper(JobKind::Summary, 8, sender.downgrade(), |payload| {
            payload["n"].as_u64()
        });
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(receiver.recv().await.unwrap().0);
        }
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(
            store.pending().await.unwrap(),
            3,
            "the unreadable one and the one taken too often removed"
        );
        drop(sender);
        assert!(
            receiver.recv().await.is_none(),
            "the sweeper stopped with the queue"
        );
    }

    #[tokio::test]
    async fn a_sweep_never_queues_again_what_its_process_holds() {
        let store = Arc::new(InMemoryJobStore::default());
        // Leases that run out during the test: later sweeps find every job free again.
        let live = JobJournal::new(
            store.clone(),
            "live",
            Duration::from_millis(100),
            Duration::from_millis(10),
        );
        let own = live
            .record(JobKind::Memory, serde_json::json!({"n": 0}))
            .await
            .unwrap();
        let dead = JobJournal::new(store.clone(), "dead", Duration::ZERO, Duration::ZERO);
        for n in 1..=3 {
            dead.record(JobKind::Memory, serde_json::json!({"n": n}))
                .await
                .unwrap();
        }
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<(u64, Option<String>)>(2);
        live.spawn_sweeper(JobKind::Memory, 8, sender.downgrade(), |payload| {
            payload["n"].as_u64()
        });
        let mut got = Vec::new();
        while got.len() < 3 {
            got.push(receiver.recv().await.unwrap().0);
        }
        // Sweeps after every lease ran out: the jobs still held here (none finished) are not
        // queued again.
        tokio::time::sleep(Duration::from_millis(400)).await;
        while let Ok((n, _)) = receiver.try_recv() {
            got.push(n);
        }
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3], "its own job 0 stays where it was queued");
        live.finish(&own).await;
        assert_eq!(store.pending().await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_stored_job_that_finds_its_queue_full_is_swept_in_later() {
        let store = Arc::new(InMemoryJobStore::default());
        let journal = JobJournal::new(
            store.clone(),
            "here",
            Duration::from_millis(50),
            Duration::from_millis(10),
        );
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<(u64, Option<String>)>(1);
        let payload = |n: &u64| serde_json::json!({"n": n});
        let kind = JobKind::Memory;
        assert!(matches!(
            enqueue(Some(&journal), kind, &sender, 1, payload).await,
            Queued::Sent
        ));
        assert!(matches!(
            enqueue(Some(&journal), kind, &sender, 2, payload).await,
            Queued::Waiting
        ));
        let sweeper = journal.spawn_sweeper(kind, 8, sender.downgrade(), |p| p["n"].as_u64());
        assert_eq!(receiver.recv().await.unwrap().0, 1);
        assert_eq!(
            receiver.recv().await.unwrap().0,
            2,
            "taken once its lease ran out"
        );
        assert_eq!(
            store.pending().await.unwrap(),
            2,
            "both wait to be finished"
        );
        // Without a journal a full queue drops what it cannot take.
        assert!(matches!(
            enqueue(None, kind, &sender, 3, payload).await,
            Queued::Sent
        ));
        assert!(matches!(
            enqueue(None, kind, &sender, 4, payload).await,
            Queued::Dropped(4)
        ));
        stop_sweeper(Some(sweeper)).await;
    }
}
