//! The facts use cases: add (embed the new ones in batches and store them), import, list,
//! count and delete, for the HTTP API and the command line alike.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ragback_domain::{Fact, FactId, FactOwner, FactSource, Provenance, Timestamp};
use tokio::time::Instant;

use crate::ports::{
    EmbedError, EmbeddedFact, Embedder, EmbeddingPurpose, FactPage, FactStore, FactStoreError,
    StoreStatus,
};
use crate::retry::{RetryError, RetryPolicy, retry};

mod cap;
mod changes;

use cap::{CapLedger, NoRoom, Reservation};
pub use changes::{ChangeError, Changes};

/// The time now, from the system clock.
pub fn now() -> Timestamp {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_unix_millis(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
}

/// `facts`, those without a provenance stored now from `source` (a fact already stored keeps
/// the provenance it was stored with: adding it again changes nothing).
pub fn stamped(facts: Vec<Fact>, source: FactSource) -> Vec<Fact> {
    let now = now();
    facts
        .into_iter()
        .map(|f| match f.provenance {
            Some(_) => f,
            None => f.with_provenance(Provenance::new(source, now)),
        })
        .collect()
}

/// What adding facts did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddFactsReport {
    /// Newly stored facts.
    pub added: usize,
    /// Facts already stored (same owner and text).
    pub unchanged: usize,
    /// Inputs that repeated an earlier input of the same call.
    pub duplicates: usize,
    /// New facts this call set out to store (`added` reaches it on success).
    pub to_add: usize,
}

/// What adding facts would do, found without embedding anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddPlan {
    /// Facts not stored yet, in input order.
    pub new: Vec<Fact>,
    /// Facts already stored.
    pub unchanged: usize,
    /// Inputs that repeated an earlier input.
    pub duplicates: usize,
}

/// Why adding facts stopped. Batches stored before the failure stay stored: `done` says how far
/// it got, and running the same input again finishes the job.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AddFactsError {
    /// No embedder is configured.
    #[error("no embedder is configured, so facts cannot be embedded")]
    NoEmbedder,
    /// Embedding a batch failed.
    #[error("embedding failed after {} facts were stored: {source}", done.added)]
    Embed {
        /// What was stored before the failure.
        done: AddFactsReport,
        /// The embedder's failure.
        source: RetryError<EmbedError>,
    },
    /// Stopped on request between two batches.
    #[error("interrupted after {} of {} new facts were stored", done.added, done.to_add)]
    Interrupted {
        /// What was stored before stopping.
        done: AddFactsReport,
    },
    /// An owner would hold more facts than the cap: nothing was stored.
    #[error(
        "{owner} has {stored} facts and the cap is {cap}: {adding} more would pass it; delete \
         some first (RAGBACK_STORE__MAX_FACTS_PER_OWNER sets the cap)"
    )]
    OwnerFull {
        /// The owner.
        owner: FactOwner,
        /// Facts it holds.
        stored: usize,
        /// New facts of this call.
        adding: usize,
        /// The cap.
        cap: usize,
    },
    /// The store failed.
    #[error("storing failed after {} facts were stored: {source}", done.added)]
    Store {
        /// What was stored before the failure.
        done: AddFactsReport,
        /// The store's failure.
        source: FactStoreError,
    },
}

/// Adds, lists, counts and deletes facts.
#[derive(Clone)]
pub struct FactLibrary {
    embedder: Option<Arc<dyn Embedder>>,
    store: Arc<dyn FactStore>,
    retry: RetryPolicy,
    batch_timeout: Duration,
    owner_cap: Option<usize>,
    ledger: Arc<CapLedger>,
}

impl FactLibrary {
    /// A library writing to `store`; `batch_timeout` bounds each batch's embedding, retries
    /// included.
    pub fn new(
        embedder: Option<Arc<dyn Embedder>>,
        store: Arc<dyn FactStore>,
        retry: RetryPolicy,
        batch_timeout: Duration,
    ) -> Self {
        Self {
            embedder,
            store,
            retry,
            batch_timeout,
            owner_cap: None,
            ledger: Arc::new(CapLedger::new()),
        }
    }

    /// The same library, refusing to let an owner hold more than `cap` facts.
    pub fn with_owner_cap(mut self, cap: usize) -> Self {
        self.owner_cap = Some(cap);
        self
    }

    /// Reserves room under the cap for the `new` facts (net of `removed`, per owner), or refuses
    /// the plan when it would take an owner past the cap. The room is held until the
    /// reservations are dropped, after the write.
    async fn reserve_room(
        &self,
        new: &[Fact],
        removed: &[(FactOwner, FactId)],
    ) -> Result<Vec<Reservation>, AddFactsError> {
        let Some(cap) = self.owner_cap else {
            return Ok(Vec::new());
        };
        let mut owners: Vec<(&FactOwner, usize, usize)> = Vec::new();
        for fact in new {
            match owners.iter_mut().find(|(o, _, _)| *o == &fact.owner) {
                Some((_, adding, _)) => *adding += 1,
                None => owners.push((&fact.owner, 1, 0)),
            }
        }
        for (owner, _) in removed {
            if let Some((_, _, removing)) = owners.iter_mut().find(|(o, _, _)| *o == owner) {
                *removing += 1;
            }
        }
        let mut room = Vec::with_capacity(owners.len());
        for (owner, adding, removing) in owners {
            let net = adding.saturating_sub(removing);
            match self
                .ledger
                .reserve(self.store.as_ref(), owner, net, cap)
                .await
            {
                Ok(reservation) => room.push(reservation),
                Err(NoRoom::Full { stored }) => {
                    return Err(AddFactsError::OwnerFull {
                        owner: owner.clone(),
                        stored,
                        adding: net,
                        cap,
                    });
                }
                Err(NoRoom::Store(source)) => {
                    return Err(AddFactsError::Store {
                        done: AddFactsReport::default(),
                        source,
                    });
                }
            }
        }
        Ok(room)
    }

    /// Whether facts can be added (an embedder is configured).
    pub fn can_embed(&self) -> bool {
        self.embedder.is_some()
    }

    /// A page of at most `limit` facts (1 at least) of `owner`, or of everyone, from `start` (a
    /// previous page's `next`), in id order; with their vectors when asked.
    pub async fn list(
        &self,
        owner: Option<&FactOwner>,
        start: Option<FactId>,
        limit: usize,
        with_vectors: bool,
    ) -> Result<FactPage, FactStoreError> {
        self.store.list(owner, start, limit, with_vectors).await
    }

    /// How many facts `owner` (or everyone) has.
    pub async fn count(&self, owner: Option<&FactOwner>) -> Result<usize, FactStoreError> {
        self.store.count(owner).await
    }

    /// Deletes one fact of `owner`; `false` when the owner has no such fact.
    pub async fn delete(&self, owner: &FactOwner, id: FactId) -> Result<bool, FactStoreError> {
        Ok(self.store.delete(owner, &[id]).await? > 0)
    }

    /// Deletes every fact of `owner`; returns how many there were.
    pub async fn delete_owner(&self, owner: &FactOwner) -> Result<usize, FactStoreError> {
        self.store.delete_owner(owner).await
    }

    /// Whether the store is usable, and what it holds.
    pub async fn status(&self) -> Result<StoreStatus, FactStoreError> {
        self.store.status().await
    }

    /// Prepares the store before the server takes requests ([`FactStore::prepare`]): retried
    /// with backoff (1 s doubling to 30 s) while the store cannot be reached; a store set up
    /// otherwise than the settings say is logged, once, and left for readiness to report.
    pub async fn prepare(&self) {
        let mut delay = std::time::Duration::from_secs(1);
        loop {
            match self.store.prepare().await {
                Ok(()) => return,
                Err(FactStoreError::Unavailable(cause)) => {
                    tracing::warn!(%cause, retry_in = ?delay, "the fact store cannot be prepared yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(30));
                }
                Err(error) => {
                    tracing::error!(%error, "the fact store cannot serve: ragback stays not ready");
                    return;
                }
            }
        }
    }

    /// Whether the store answers (for readiness probes: counts nothing).
    pub async fn ping(&self) -> Result<(), FactStoreError> {
        self.store.ping().await
    }

    /// Writes what the store holds in memory to disk (at shutdown).
    pub async fn flush(&self) -> Result<(), FactStoreError> {
        self.store.flush().await
    }

    /// What adding `facts` would do: which are new, which are stored already, which repeat.
    pub async fn plan(&self, facts: Vec<Fact>) -> Result<AddPlan, FactStoreError> {
        let mut plan = AddPlan::default();
        let mut seen = HashSet::new();
        let mut unique = Vec::with_capacity(facts.len());
        for fact in facts {
            if seen.insert(fact.id) {
                unique.push(fact);
            } else {
                plan.duplicates += 1;
            }
        }
        let ids: Vec<_> = unique.iter().map(|f| f.id).collect();
        let known: HashSet<_> = self.store.known(&ids).await?.into_iter().collect();
        plan.unchanged = known.len();
        plan.new = unique
            .into_iter()
            .filter(|f| !known.contains(&f.id))
            .collect();
        Ok(plan)
    }

    /// Adds facts: skips repeated inputs and facts already stored, embeds the rest in batches
    /// and stores each batch before embedding the next. `progress` is called after every batch.
    pub async fn add(
        &self,
        facts: Vec<Fact>,
        progress: impl FnMut(&AddFactsReport),
    ) -> Result<AddFactsReport, AddFactsError> {
        self.add_until(facts, progress, || false).await
    }

    /// [`add`](Self::add), checking `stop` before each batch: when it says so, returns
    /// [`AddFactsError::Interrupted`] with what is stored so far. A batch under way always
    /// completes, so the store never holds half a batch.
    #[tracing::instrument(skip_all, fields(facts = facts.len()))]
    pub async fn add_until(
        &self,
        facts: Vec<Fact>,
        mut progress: impl FnMut(&AddFactsReport),
        stop: impl Fn() -> bool,
    ) -> Result<AddFactsReport, AddFactsError> {
        let mut report = AddFactsReport::default();
        let plan = self
            .plan(facts)
            .await
            .map_err(|source| AddFactsError::Store {
                done: report,
                source,
            })?;
        report.unchanged = plan.unchanged;
        report.duplicates = plan.duplicates;
        report.to_add = plan.new.len();
        progress(&report);
        if plan.new.is_empty() {
            return Ok(report);
        }
        let _room = self.reserve_room(&plan.new, &[]).await?;
        let embedder = self.embedder.as_ref().ok_or(AddFactsError::NoEmbedder)?;
        for batch in plan.new.chunks(embedder.max_batch().max(1)) {
            if stop() {
                return Err(AddFactsError::Interrupted { done: report });
            }
            let texts: Vec<String> = batch.iter().map(|f| f.text.as_str().to_owned()).collect();
            let deadline = Instant::now() + self.batch_timeout;
            let vectors = retry(&self.retry, deadline, "fact embedding", || {
                embedder.embed(&texts, EmbeddingPurpose::Document)
            })
            .await
            .map_err(|source| AddFactsError::Embed {
                done: report,
                source,
            })?;
            if vectors.len() != batch.len() {
                let source = RetryError::Failed {
                    attempts: 1,
                    last: EmbedError::InvalidResponse(format!(
                        "{} vectors for {} texts",
                        vectors.len(),
                        batch.len()
                    )),
                };
                return Err(AddFactsError::Embed {
                    done: report,
                    source,
                });
            }
            let embedded = batch
                .iter()
                .cloned()
                .zip(vectors)
                .map(|(fact, vector)| EmbeddedFact {
                    fact,
                    vector,
                    model: embedder.model_id().to_owned(),
                })
                .collect();
            let stored =
                self.store
                    .upsert(embedded)
                    .await
                    .map_err(|source| AddFactsError::Store {
                        done: report,
                        source,
                    })?;
            report.added += stored.added;
            report.unchanged += stored.unchanged;
            progress(&report);
        }
        Ok(report)
    }

    /// Stores facts that come with their vectors (an export, or facts embedded already), without
    /// embedding them, `batch` at a time, checking `stop` before each batch like
    /// [`add_until`](Self::add_until). The owner cap holds as for [`add`](Self::add).
    pub async fn import(
        &self,
        facts: Vec<EmbeddedFact>,
        batch: usize,
        mut progress: impl FnMut(&AddFactsReport),
        stop: impl Fn() -> bool,
    ) -> Result<AddFactsReport, AddFactsError> {
        let mut report = AddFactsReport {
            to_add: facts.len(),
            ..AddFactsReport::default()
        };
        // Room under the cap for the facts not stored yet, held until they are.
        let _room = if self.owner_cap.is_some() {
            let ids: Vec<FactId> = facts.iter().map(|f| f.fact.id).collect();
            let mut seen: HashSet<FactId> = self
                .store
                .known(&ids)
                .await
                .map_err(|source| AddFactsError::Store {
                    done: report,
                    source,
                })?
                .into_iter()
                .collect();
            let new: Vec<Fact> = facts
                .iter()
                .filter(|f| seen.insert(f.fact.id))
                .map(|f| f.fact.clone())
                .collect();
            self.reserve_room(&new, &[]).await?
        } else {
            Vec::new()
        };
        for chunk in facts.chunks(batch.max(1)) {
            if stop() {
                return Err(AddFactsError::Interrupted { done: report });
            }
            let stored =
                self.store
                    .upsert(chunk.to_vec())
                    .await
                    .map_err(|source| AddFactsError::Store {
                        done: report,
                        source,
                    })?;
            report.added += stored.added;
            report.unchanged += stored.unchanged;
            progress(&report);
        }
        Ok(report)
    }

    /// Which of `ids` are stored.
    pub async fn known(&self, ids: &[FactId]) -> Result<Vec<FactId>, FactStoreError> {
        self.store.known(ids).await
    }
}

#[cfg(test)]
mod tests {
    use ragback_domain::{FactOwner, FactText, UserId};

    use super::*;
    use crate::testing::{FailingEmbedder, InMemoryFactStore, WordEmbedder, quick_retry};

    fn facts(owner: &str, texts: &[&str]) -> Vec<Fact> {
        let owner = FactOwner::User(UserId::parse(owner).unwrap());
        texts
            .iter()
            .map(|t| Fact::new(owner.clone(), FactText::parse(*t).unwrap()))
            .collect()
    }

    fn library(embedder: Arc<dyn Embedder>, store: Arc<InMemoryFactStore>) -> FactLibrary {
        FactLibrary::new(
            Some(embedder),
            store,
            quick_retry(2),
            Duration::from_secs(5),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_adds_never_pass_the_cap() {
        let store = Arc::new(InMemoryFactStore::default());
        let library = library(Arc::new(WordEmbedder::default()), store.clone()).with_owner_cap(3);
        let adds = (0..12).map(|n| {
            let library = library.clone();
            tokio::spawn(async move {
                library
                    .add(facts("john", &[&format!("Fact number {n}")]), |_| {})
                    .await
            })
        });
        let results = futures::future::join_all(adds).await;
        let added = results
            .into_iter()
            .filter(|r| matches!(r, Ok(Ok(report)) if report.added == 1))
            .count();
        assert_eq!(added, 3);
        let john = FactOwner::User(UserId::parse("john").unwrap());
        assert_eq!(store.count(Some(&john)).await.unwrap(), 3);
    }

    /// The refusal of two new facts for an owner holding 2 of 3.
    fn assert_two_more_than_one_left(err: &AddFactsError) {
        assert!(
            matches!(
                err,
                AddFactsError::OwnerFull {
                    stored: 2,
                    adding: 2,
                    cap: 3,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn the_owner_cap_refuses_a_call_that_would_pass_it_and_stores_nothing() {
        let store = Arc::new(InMemoryFactStore::default());
        let embedder = Arc::new(WordEmbedder::default());
        let lib = library(embedder.clone(), store.clone()).with_owner_cap(3);
        lib.add(facts("john", &["a", "b"]), |_| {}).await.unwrap();
        lib.add(facts("jane", &["a", "b", "c"]), |_| {})
            .await
            .unwrap();

        let err = lib
            .add(facts("john", &["a", "c", "d"]), |_| {})
            .await
            .unwrap_err();
        assert_two_more_than_one_left(&err);
        assert!(err.to_string().contains("MAX_FACTS_PER_OWNER"), "{err}");
        assert_eq!(store.count(None).await.unwrap(), 5, "nothing stored");
        let calls = embedder.calls();
        // Up to the cap, and facts stored already, are fine.
        lib.add(facts("john", &["a", "c"]), |_| {}).await.unwrap();
        lib.add(facts("john", &["a", "b", "c"]), |_| {})
            .await
            .unwrap();
        assert_eq!(embedder.calls(), calls + 1, "only `c` was embedded");
        assert_eq!(store.count(None).await.unwrap(), 6);
    }

    #[tokio::test]
    async fn the_owner_cap_holds_for_imported_facts_too() {
        let store = Arc::new(InMemoryFactStore::default());
        let embedder = Arc::new(WordEmbedder::default());
        let lib = library(embedder, store.clone()).with_owner_cap(3);
        lib.add(facts("john", &["a", "b"]), |_| {}).await.unwrap();
        let embedded = |texts: &[&str]| -> Vec<EmbeddedFact> {
            facts("john", texts)
                .into_iter()
                .map(|fact| EmbeddedFact {
                    vector: WordEmbedder::vector(fact.text.as_str()),
                    fact,
                    model: "test/words".into(),
                })
                .collect()
        };
        let err = lib
            .import(embedded(&["a", "c", "d"]), 10, |_| {}, || false)
            .await
            .unwrap_err();
        assert_two_more_than_one_left(&err);
        assert_eq!(store.count(None).await.unwrap(), 2, "nothing stored");
        lib.import(embedded(&["a", "b", "c", "c"]), 10, |_| {}, || false)
            .await
            .unwrap();
        assert_eq!(store.count(None).await.unwrap(), 3, "up to the cap");
    }

    #[tokio::test]
    async fn adding_twice_keeps_one_copy_and_embeds_nothing_the_second_time() {
        let store = Arc::new(InMemoryFactStore::default());
        let embedder = Arc::new(WordEmbedder::default());
        let lib = library(embedder.clone(), store.clone());
        let input = facts("john", &["a", "b", "c", "d", "e", "a"]);

        let first = lib.add(input.clone(), |_| {}).await.unwrap();
        let calls_after_first = embedder.calls();
        let second = lib.add(input, |_| {}).await.unwrap();

        assert_eq!(
            first,
            AddFactsReport {
                added: 5,
                unchanged: 0,
                duplicates: 1,
                to_add: 5,
            }
        );
        assert_eq!(
            second,
            AddFactsReport {
                added: 0,
                unchanged: 5,
                duplicates: 1,
                to_add: 0,
            }
        );
        assert_eq!(calls_after_first, 2, "5 facts in batches of 4");
        assert_eq!(embedder.calls(), calls_after_first);
        assert_eq!(store.count(None).await.unwrap(), 5);
    }

    #[tokio::test]
    async fn progress_is_reported_after_each_batch() {
        let lib = library(Arc::new(WordEmbedder::default()), Arc::default());
        let mut seen = Vec::new();
        lib.add(facts("john", &["a", "b", "c", "d", "e"]), |r| {
            seen.push(r.added)
        })
        .await
        .unwrap();
        assert_eq!(seen, [0, 4, 5]);
    }

    #[tokio::test]
    async fn a_failing_embedder_stores_nothing_and_says_so() {
        let store = Arc::new(InMemoryFactStore::default());
        let lib = library(Arc::new(FailingEmbedder::default()), store.clone());

        let err = lib.add(facts("john", &["a"]), |_| {}).await.unwrap_err();

        assert!(matches!(err, AddFactsError::Embed { done, .. } if done.added == 0));
        assert_eq!(store.count(None).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_stop_request_ends_between_batches_and_a_rerun_finishes() {
        let store = Arc::new(InMemoryFactStore::default());
        let lib = library(Arc::new(WordEmbedder::default()), store.clone());
        let input = facts("john", &["a", "b", "c", "d", "e", "f"]);
        let batches = std::sync::atomic::AtomicUsize::new(0);

        let err = lib
            .add_until(
                input.clone(),
                |_| {},
                || batches.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 1,
            )
            .await
            .unwrap_err();

        let AddFactsError::Interrupted { done } = err else {
            panic!("expected an interruption, got {err:?}");
        };
        assert_eq!((done.added, done.to_add), (4, 6));
        assert_eq!(
            store.count(None).await.unwrap(),
            4,
            "the first batch stays stored"
        );
        let rerun = lib.add(input, |_| {}).await.unwrap();
        assert_eq!((rerun.added, rerun.unchanged), (2, 4));
    }

    #[tokio::test]
    async fn the_plan_embeds_nothing() {
        let store = Arc::new(InMemoryFactStore::default());
        let embedder = Arc::new(WordEmbedder::default());
        let lib = library(embedder.clone(), store);
        lib.add(facts("john", &["a"]), |_| {}).await.unwrap();
        let calls = embedder.calls();

        let plan = lib.plan(facts("john", &["a", "b", "b"])).await.unwrap();

        assert_eq!(plan.new.len(), 1);
        assert_eq!((plan.unchanged, plan.duplicates), (1, 1));
        assert_eq!(embedder.calls(), calls);
    }
}
