//! Qdrant Edge: the embedded, on-disk fact store (one process per directory).

mod jobs;
mod shard;
mod summaries;

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use ragback_application::ports::{
    EmbeddedFact, FactPage, FactQuery, FactStore, FactStoreError, LexicalHit, StoreStatus,
    UpsertReport,
};
use ragback_domain::{FactId, FactOwner, ScoredFact};

use shard::Shard;

/// The lock file that keeps a second process out of the directory.
const LOCK_FILE: &str = ".ragback.lock";

/// Searches among up to this many facts run on the calling task instead of the blocking pool.
///
/// A search scores every fact of the owners it is for, so its time follows their number: among
/// 1,000 it takes about 0.1 ms (p50) to 0.2 ms (p99) on 2 cores (bench `edge_search`), within
/// what an async task may hold its thread; the usual handful of facts takes 20–30 µs. The hand-off to the
/// blocking pool costs more than that: two thread wake-ups per search, and one blocking thread
/// (stack and allocator heap) per concurrent search.
pub const INLINE_SEARCH_MAX_FACTS: usize = 1_000;

/// Facts in a Qdrant Edge shard on local disk.
///
/// The shard is created on the first upsert, with that batch's vector dimension and cosine
/// distance, and a keyword index on the owner. Qdrant Edge is not multi-process: the directory is
/// locked for as long as the store is open, and a second opener gets [`FactStoreError::Locked`].
///
/// Its calls block, so they run on the blocking pool; a search among up to
/// [`INLINE_SEARCH_MAX_FACTS`] (by the owner index's count) runs on the calling task when no
/// writer holds the shard.
#[derive(Clone)]
pub struct EdgeFactStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Held for the store's lifetime; the OS releases the lock when the file closes.
    _lock: File,
    /// `None` until the first fact. Writers (upserts, which also flush) take it exclusively:
    /// Qdrant Edge's flush must not race with an update.
    shard: RwLock<Option<Shard>>,
    /// The conversation summaries' shard; `None` until the first summary.
    summaries: std::sync::Mutex<Option<qdrant_edge::EdgeShard>>,
    /// Queued background jobs, as `jobs.json` holds them.
    jobs: std::sync::Mutex<ragback_application::jobs::JobMap>,
}

impl EdgeFactStore {
    /// Opens (or prepares) the store in `path`, creating the directory if needed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FactStoreError> {
        let path = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&path).map_err(|e| {
            FactStoreError::Unavailable(format!("cannot create {}: {e}", path.display()))
        })?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.join(LOCK_FILE))
            .map_err(|e| {
                FactStoreError::Unavailable(format!("cannot open {}: {e}", path.display()))
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(FactStoreError::Locked(format!(
                    "another process (probably `ragback serve`) has the store at {} open; \
                     Qdrant Edge allows one process per directory: stop it, or go through its \
                     HTTP API",
                    path.display()
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(FactStoreError::Unavailable(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )));
            }
        }
        let shard = Shard::load_if_exists(&path)?;
        let summaries =
            summaries::load(&path).map_err(|e| FactStoreError::Unavailable(e.to_string()))?;
        let jobs = jobs::load(&path).map_err(|e| FactStoreError::Corrupted(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                _lock: lock,
                shard: RwLock::new(shard),
                summaries: std::sync::Mutex::new(summaries),
                jobs: std::sync::Mutex::new(jobs),
            }),
        })
    }

    /// The directory of the store.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs blocking shard work on the blocking pool.
    async fn blocking<T, F>(&self, work: F) -> Result<T, FactStoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, FactStoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| FactStoreError::Unavailable(format!("store task failed: {e}")))?
    }
}

impl EdgeFactStore {
    /// Runs work on the summaries' shard (created by the work when it needs one), on the
    /// blocking pool.
    async fn summaries<T, F>(
        &self,
        work: F,
    ) -> Result<T, ragback_application::ports::SummaryStoreError>
    where
        T: Send + 'static,
        F: FnOnce(
                &mut Option<qdrant_edge::EdgeShard>,
                &Path,
            ) -> Result<T, ragback_application::ports::SummaryStoreError>
            + Send
            + 'static,
    {
        use ragback_application::ports::SummaryStoreError;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut shard = inner
                .summaries
                .lock()
                .map_err(|_| SummaryStoreError::Unavailable("summaries lock poisoned".into()))?;
            work(&mut shard, &inner.path)
        })
        .await
        .map_err(|e| SummaryStoreError::Unavailable(format!("store task failed: {e}")))?
    }

    /// Runs a write that needs an existing shard exclusively; without a shard nothing is
    /// deleted.
    async fn write<F>(&self, work: F) -> Result<usize, FactStoreError>
    where
        F: FnOnce(&mut Shard) -> Result<usize, FactStoreError> + Send + 'static,
    {
        self.blocking(move |inner| {
            let mut guard = inner.shard.write().map_err(poisoned)?;
            guard.as_mut().map_or(Ok(0), work)
        })
        .await
    }

    /// Runs a read on the shard, or answers `empty()` when no fact was ever stored.
    async fn read<T, E, F>(&self, empty: E, work: F) -> Result<T, FactStoreError>
    where
        T: Send + 'static,
        E: FnOnce() -> T + Send + 'static,
        F: FnOnce(&Shard) -> Result<T, FactStoreError> + Send + 'static,
    {
        self.blocking(move |inner| {
            let guard = inner.shard.read().map_err(poisoned)?;
            guard.as_ref().map_or_else(|| Ok(empty()), work)
        })
        .await
    }

    /// A search on this thread, when it is sure to be short: no writer holds the shard now,
    /// and the owners have few facts. `None` sends it to the blocking pool.
    fn search_inline<T: Default>(
        &self,
        query: &FactQuery,
        search: impl FnOnce(&Shard) -> Result<T, FactStoreError>,
    ) -> Option<Result<T, FactStoreError>> {
        let guard = self.inner.shard.try_read().ok()?;
        let Some(shard) = guard.as_ref() else {
            return Some(Ok(T::default()));
        };
        match shard.estimate(&query.owners) {
            Ok(facts) if facts <= INLINE_SEARCH_MAX_FACTS => Some(search(shard)),
            // Many facts, or an error the blocking pool's attempt reports.
            _ => None,
        }
    }
}

fn poisoned<T>(_: T) -> FactStoreError {
    FactStoreError::Unavailable("the store lock is poisoned after a panic; restart".into())
}

#[async_trait]
impl FactStore for EdgeFactStore {
    async fn upsert(&self, facts: Vec<EmbeddedFact>) -> Result<UpsertReport, FactStoreError> {
        let Some(dimension) = facts.first().map(|f| f.vector.len()) else {
            return Ok(UpsertReport::default());
        };
        if let Some(odd) = facts.iter().find(|f| f.vector.len() != dimension) {
            return Err(FactStoreError::DimensionMismatch {
                store: dimension,
                given: odd.vector.len(),
            });
        }
        self.blocking(move |inner| {
            let mut guard = inner.shard.write().map_err(poisoned)?;
            let shard = match guard.take() {
                Some(shard) => guard.insert(shard),
                None => guard.insert(Shard::create(&inner.path, dimension)?),
            };
            shard.upsert(facts)
        })
        .await
    }

    async fn search(&self, query: FactQuery) -> Result<Vec<ScoredFact>, FactStoreError> {
        if query.owners.is_empty() || query.limit == 0 {
            return Ok(Vec::new());
        }
        if let Some(found) = self.search_inline(&query, |shard| shard.search(&query)) {
            return found;
        }
        self.read(Vec::new, move |shard| shard.search(&query)).await
    }

    async fn search_lexical(
        &self,
        query: FactQuery,
        text: &str,
    ) -> Result<Vec<LexicalHit>, FactStoreError> {
        if query.owners.is_empty() || query.limit == 0 {
            return Ok(Vec::new());
        }
        if let Some(found) = self.search_inline(&query, |shard| shard.search_lexical(&query, text))
        {
            return found;
        }
        let text = text.to_owned();
        self.read(Vec::new, move |shard| shard.search_lexical(&query, &text))
            .await
    }

    async fn known(&self, ids: &[FactId]) -> Result<Vec<FactId>, FactStoreError> {
        let ids = ids.to_vec();
        self.read(Vec::new, move |shard| shard.known(&ids)).await
    }

    async fn list(
        &self,
        owner: Option<&FactOwner>,
        start: Option<FactId>,
        limit: usize,
        with_vectors: bool,
    ) -> Result<FactPage, FactStoreError> {
        let owner = owner.cloned();
        let empty = || FactPage {
            facts: Vec::new(),
            next: None,
        };
        self.read(empty, move |shard| {
            shard.list(owner.as_ref(), start, limit, with_vectors)
        })
        .await
    }

    async fn delete(&self, owner: &FactOwner, ids: &[FactId]) -> Result<usize, FactStoreError> {
        let (owner, ids) = (owner.clone(), ids.to_vec());
        self.write(move |shard| shard.delete(&owner, &ids)).await
    }

    async fn delete_owner(&self, owner: &FactOwner) -> Result<usize, FactStoreError> {
        let owner = owner.clone();
        self.write(move |shard| shard.delete_owner(&owner)).await
    }

    async fn has_message(&self, owner: &FactOwner, hash: &str) -> Result<bool, FactStoreError> {
        let (owner, hash) = (owner.clone(), hash.to_owned());
        self.read(|| false, move |shard| shard.has_message(&owner, &hash))
            .await
    }

    async fn count(&self, owner: Option<&FactOwner>) -> Result<usize, FactStoreError> {
        let owner = owner.cloned();
        self.read(|| 0, move |shard| shard.count(owner.as_ref()))
            .await
    }

    async fn status(&self) -> Result<StoreStatus, FactStoreError> {
        let empty = || StoreStatus {
            facts: 0,
            dimension: None,
        };
        self.read(empty, |shard| {
            Ok(StoreStatus {
                facts: shard.count(None)?,
                dimension: Some(shard.dimension()),
            })
        })
        .await
    }

    async fn ping(&self) -> Result<(), FactStoreError> {
        self.read(|| (), |_| Ok(())).await
    }

    async fn flush(&self) -> Result<(), FactStoreError> {
        self.write(|shard| {
            shard.flush();
            Ok(0)
        })
        .await
        .map(drop)
    }
}
