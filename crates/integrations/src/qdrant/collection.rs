//! The collection: created on the first write with the layout's vectors, the owner index and the
//! cluster settings; prepared at start-up — its layout checked against the settings, its facts
//! given the lexical vector when written before it — once across the processes sharing it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use qdrant_client::qdrant::create_vector_name_request::VectorConfig as NewVectorConfig;
use qdrant_client::qdrant::vectors_config::Config as VectorsConfigKind;
use qdrant_client::qdrant::{
    CollectionParams, Condition, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, CreateVectorNameRequestBuilder, Distance, FieldType, Filter,
    KeywordIndexParamsBuilder, Modifier, PointVectors, SparseVectorConfig,
    SparseVectorCreationConfig, SparseVectorParams, UpdatePointVectorsBuilder, VectorParamsBuilder,
    VectorsConfigBuilder,
};
use ragback_application::ports::FactStoreError;

use super::QdrantFactStore;
use super::points::{lexical_vector, point_id};
use crate::layout::{LEXICAL, MIGRATION_BATCH, OWNER_KEY, VECTOR};

/// What ragback knows of its collection once it has looked; it never changes while ragback runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Collection {
    /// The dense vectors' dimension.
    pub(super) dimension: usize,
    /// Whether it has the lexical vector (false: a server too old to add it to a collection
    /// created before it; the vector search alone then).
    pub(super) lexical: bool,
}

/// Where the start-up preparation is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum Preparation {
    /// Not asked for: a command-line tool, which prepares on first use.
    #[default]
    NotAsked,
    /// Running (the server asked at start-up): requests find the store unavailable meanwhile.
    Running,
    /// Failed for good (the collection is not laid out as the settings say).
    Failed(String),
    /// Done.
    Done,
}

/// How long a migration lock may stand before another process takes it over (its holder died).
const LOCK_STALE: Duration = Duration::from_secs(600);
/// How often a process waiting for another's migration looks again.
const LOCK_POLL: Duration = Duration::from_millis(250);

impl QdrantFactStore {
    /// The collection's dimension; `None` when the collection does not exist yet. A server
    /// prepares the collection at start-up ([`Self::prepare_collection`]) and its requests never
    /// migrate: until that is done they find the store unavailable. A tool that did not ask for
    /// the preparation gets it on first use.
    pub(super) async fn dimension(&self) -> Result<Option<usize>, FactStoreError> {
        if let Some(known) = self.known.get() {
            return Ok(Some(known.dimension));
        }
        if !self.exists().await? {
            return Ok(None);
        }
        match self.preparation() {
            // A tool's first use; or a collection another process created after this one was
            // prepared (created with the lexical vector: nothing to migrate, a read).
            Preparation::NotAsked | Preparation::Done => {
                let known = self.known.get_or_try_init(|| self.inspect()).await?;
                Ok(Some(known.dimension))
            }
            Preparation::Running => Err(FactStoreError::Unavailable(format!(
                "Qdrant collection `{}` is being prepared (its layout checked, its facts migrated) \
                 at start-up",
                self.collection
            ))),
            Preparation::Failed(why) => Err(FactStoreError::Misconfigured(why)),
        }
    }

    pub(super) fn preparation(&self) -> Preparation {
        self.preparation
            .lock()
            .map(|p| p.clone())
            .unwrap_or(Preparation::Running)
    }

    fn set_preparation(&self, state: Preparation) {
        if let Ok(mut p) = self.preparation.lock() {
            *p = state;
        }
    }

    /// Prepares the collection before the server takes requests: checks an existing one's layout
    /// against the settings and gives its facts the lexical vector they lack — under a lock that
    /// every process sharing the collection respects, so that replicas starting together migrate
    /// it once. Returns how many facts this process migrated. A collection that does not exist
    /// yet is created with the settings on the first write.
    pub async fn prepare_collection(&self) -> Result<usize, FactStoreError> {
        self.set_preparation(Preparation::Running);
        let result = self.prepare_inner().await;
        match &result {
            Ok(_) => self.set_preparation(Preparation::Done),
            Err(FactStoreError::Misconfigured(why)) => {
                self.set_preparation(Preparation::Failed(why.clone()));
            }
            // Unreachable now: asked again (the server retries).
            Err(_) => {}
        }
        result
    }

    /// Whether the facts' collection exists.
    async fn exists(&self) -> Result<bool, FactStoreError> {
        self.client
            .collection_exists(&self.collection)
            .await
            .map_err(self.unavailable("checking the collection"))
    }

    async fn prepare_inner(&self) -> Result<usize, FactStoreError> {
        if !self.exists().await? {
            return Ok(0);
        }
        let lock = format!("{}__migration_lock", self.collection);
        let started = Instant::now();
        loop {
            let (params, pending) = self.pending_migration().await?;
            if !pending {
                let known = self.known_of(&params, true)?;
                self.known.get_or_init(|| async { known }).await;
                return Ok(0);
            }
            if self.create_lock(&lock).await? {
                let outcome = self.migrate(&params).await;
                if let Err(error) = self.client.delete_collection(&lock).await {
                    tracing::warn!(collection = %lock, %error, "the migration lock could not be removed: other processes take it over after 10 minutes");
                }
                let (known, migrated) = outcome?;
                self.known.get_or_init(|| async { known }).await;
                return Ok(migrated);
            }
            if started.elapsed() > LOCK_STALE {
                tracing::warn!(collection = %lock, "a migration lock stood for 10 minutes: its holder is gone; taking it over");
                self.client
                    .delete_collection(&lock)
                    .await
                    .map_err(self.unavailable("removing a stale migration lock"))?;
                continue;
            }
            tracing::info!(collection = %self.collection, "another process is migrating the collection; waiting for it");
            while started.elapsed() <= LOCK_STALE
                && self
                    .client
                    .collection_exists(&lock)
                    .await
                    .map_err(self.unavailable("checking the migration lock"))?
            {
                tokio::time::sleep(LOCK_POLL).await;
            }
        }
    }

    /// Takes the migration lock: creating a collection succeeds for one process only.
    async fn create_lock(&self, lock: &str) -> Result<bool, FactStoreError> {
        let mut vectors = VectorsConfigBuilder::default();
        vectors.add_named_vector_params("lock", VectorParamsBuilder::new(1, Distance::Cosine));
        match self
            .client
            // Laid out like the facts: on a cluster the lock survives the node that holds it.
            .create_collection(self.laid_out(lock).vectors_config(vectors))
            .await
        {
            Ok(_) => Ok(true),
            Err(error) => {
                let held = self
                    .client
                    .collection_exists(lock)
                    .await
                    .map_err(self.unavailable("checking the migration lock"))?;
                if held {
                    Ok(false)
                } else {
                    Err(self.unavailable("taking the migration lock")(error))
                }
            }
        }
    }

    /// The existing collection's parameters, checked against the settings, and whether facts
    /// lack the lexical vector.
    async fn pending_migration(&self) -> Result<(CollectionParams, bool), FactStoreError> {
        let info = self
            .client
            .collection_info(&self.collection)
            .await
            .map_err(self.unavailable("reading the collection"))?;
        let params = info
            .result
            .and_then(|r| r.config)
            .and_then(|c| c.params)
            .unwrap_or_default();
        self.check_layout(&params)?;
        if !has_lexical(&params) {
            return Ok((params, true));
        }
        let without = self
            .client
            .count(
                CountPointsBuilder::new(&self.collection)
                    .filter(Filter::must_not([Condition::has_vector(LEXICAL)]))
                    .exact(true),
            )
            .await
            .map_err(self.unavailable("counting facts without words"))?;
        Ok((params, without.result.is_some_and(|r| r.count > 0)))
    }

    /// What ragback knows of a collection of these parameters.
    fn known_of(
        &self,
        params: &CollectionParams,
        lexical: bool,
    ) -> Result<Collection, FactStoreError> {
        let size = match params
            .vectors_config
            .as_ref()
            .and_then(|v| v.config.as_ref())
        {
            Some(VectorsConfigKind::ParamsMap(map)) => map.map.get(VECTOR).map(|p| p.size),
            _ => None,
        };
        let Some(size) = size else {
            return Err(FactStoreError::Corrupted(format!(
                "collection `{}` has no `{VECTOR}` vector: it was not created by ragback; set \
                 RAGBACK_STORE__COLLECTION to another name",
                self.collection
            )));
        };
        Ok(Collection {
            dimension: usize::try_from(size).unwrap_or(usize::MAX),
            lexical,
        })
    }

    /// Migrates the collection (the lock held): what ragback then knows of it, and how many
    /// facts got their lexical vector.
    async fn migrate(
        &self,
        params: &CollectionParams,
    ) -> Result<(Collection, usize), FactStoreError> {
        self.known_of(params, false)?;
        let (lexical, migrated) = self.add_lexical_vectors(has_lexical(params)).await?;
        Ok((self.known_of(params, lexical)?, migrated))
    }

    /// Reads the existing collection's configuration and migrates it (a tool's first use).
    async fn inspect(&self) -> Result<Collection, FactStoreError> {
        let (params, _) = self.pending_migration().await?;
        Ok(self.migrate(&params).await?.0)
    }

    /// Gives the facts stored without a lexical vector (a collection written before them, or a
    /// migration cut short) theirs, adding the sparse vector to the collection first when it
    /// lacks it. Runs once per process, when the collection is first looked at; rewriting a
    /// vector another ragback wrote meanwhile is harmless. A server that cannot add a vector to
    /// a collection (Qdrant before 1.18) leaves it without: `false`, and a warning saying what
    /// to do.
    async fn add_lexical_vectors(
        &self,
        has_lexical: bool,
    ) -> Result<(bool, usize), FactStoreError> {
        if !has_lexical {
            let config = NewVectorConfig::SparseConfig(SparseVectorCreationConfig {
                modifier: Some(Modifier::Idf.into()),
                datatype: None,
            });
            let created = self
                .client
                .create_vector_name(
                    CreateVectorNameRequestBuilder::new(&self.collection, LEXICAL, config)
                        .wait(true),
                )
                .await;
            if let Err(error) = created {
                tracing::warn!(
                    url = %self.url,
                    collection = %self.collection,
                    %error,
                    "this collection has no lexical vector and the server cannot add one (it \
                     needs Qdrant 1.18 or later): retrieval uses the vector search alone; \
                     upgrade the server, or move the facts to a new collection \
                     (`ragback facts export`, then `import` with another RAGBACK_STORE__COLLECTION)"
                );
                return Ok((false, 0));
            }
        }
        let without = Filter::must_not([Condition::has_vector(LEXICAL)]);
        let mut start = None;
        let mut migrated = 0;
        loop {
            let page = self
                .page(Some(without.clone()), start, MIGRATION_BATCH as u32, false)
                .await?;
            let points: Vec<PointVectors> = page
                .facts
                .iter()
                .map(|stored| PointVectors {
                    id: Some(point_id(stored.fact.id)),
                    vectors: Some(
                        HashMap::from([(LEXICAL.to_owned(), lexical_vector(&stored.fact))]).into(),
                    ),
                })
                .collect();
            migrated += points.len();
            if !points.is_empty() {
                self.client
                    .update_vectors(
                        UpdatePointVectorsBuilder::new(&self.collection, points)
                            .wait(true)
                            .ordering(self.cluster.ordering()),
                    )
                    .await
                    .map_err(self.unavailable("migrating facts"))?;
            }
            match page.next {
                Some(next) => start = Some(next),
                None => break,
            }
        }
        if migrated > 0 || !has_lexical {
            tracing::info!(url = %self.url, collection = %self.collection, facts = migrated, "added lexical vectors to facts stored before them");
        }
        Ok((true, migrated))
    }

    /// The dimension, creating the collection for `dimension` when it does not exist.
    pub(super) async fn ensure_collection(
        &self,
        dimension: usize,
    ) -> Result<usize, FactStoreError> {
        if let Some(existing) = self.dimension().await? {
            return Ok(existing);
        }
        let mut vectors = VectorsConfigBuilder::default();
        let mut params = VectorParamsBuilder::new(dimension as u64, Distance::Cosine);
        if let Some(on_disk) = self.cluster.on_disk_vectors {
            params = params.on_disk(on_disk);
        }
        vectors.add_named_vector_params(VECTOR, params);
        let created = self
            .client
            .create_collection(
                self.laid_out(&self.collection)
                    .vectors_config(vectors)
                    .sparse_vectors_config(SparseVectorConfig {
                        map: HashMap::from([(
                            LEXICAL.to_owned(),
                            SparseVectorParams {
                                index: None,
                                modifier: Some(Modifier::Idf.into()),
                            },
                        )]),
                    }),
            )
            .await;
        if let Err(error) = created {
            // Another ragback may have created it meanwhile: use theirs.
            return match self.dimension().await? {
                Some(existing) => Ok(existing),
                None => Err(self.unavailable("creating the collection")(error)),
            };
        }
        self.client
            .create_field_index(
                CreateFieldIndexCollectionBuilder::new(
                    &self.collection,
                    OWNER_KEY,
                    FieldType::Keyword,
                )
                .field_index_params(KeywordIndexParamsBuilder::default().is_tenant(true))
                .wait(true)
                .ordering(self.cluster.ordering()),
            )
            .await
            .map_err(self.unavailable("indexing the owner field"))?;
        tracing::info!(url = %self.url, collection = %self.collection, dimension, "created the Qdrant collection");
        let known = self
            .known
            .get_or_init(|| async {
                Collection {
                    dimension,
                    lexical: true,
                }
            })
            .await;
        Ok(known.dimension)
    }

    /// A new collection named `name`, laid out as the settings say (shards, replication, write
    /// consistency, payload on disk).
    pub(super) fn laid_out(&self, name: &str) -> CreateCollectionBuilder {
        let mut builder = CreateCollectionBuilder::new(name)
            .shard_number(self.cluster.shard_number)
            .replication_factor(self.cluster.replication_factor)
            .write_consistency_factor(self.cluster.write_consistency_factor);
        if let Some(on_disk) = self.cluster.on_disk_payload {
            builder = builder.on_disk_payload(on_disk);
        }
        builder
    }

    /// Whether the side collection `name` (summaries, jobs) exists; once it does, `known`
    /// remembers it and no call is made again.
    pub(super) async fn side_exists(
        &self,
        name: &str,
        known: &AtomicBool,
    ) -> Result<bool, qdrant_client::QdrantError> {
        if known.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let exists = self.client.collection_exists(name).await?;
        if exists {
            known.store(true, Ordering::Relaxed);
        }
        Ok(exists)
    }

    /// Creates the side collection `name` unless it exists: laid out like the facts', with one
    /// one-dimensional placeholder vector named `vector`. Another process creating it meanwhile
    /// is no error.
    pub(super) async fn create_side(
        &self,
        name: &str,
        vector: &str,
        known: &AtomicBool,
    ) -> Result<(), qdrant_client::QdrantError> {
        if self.side_exists(name, known).await? {
            return Ok(());
        }
        let mut vectors = VectorsConfigBuilder::default();
        vectors.add_named_vector_params(vector, VectorParamsBuilder::new(1, Distance::Cosine));
        match self
            .client
            .create_collection(self.laid_out(name).vectors_config(vectors))
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if self.side_exists(name, known).await? => {
                tracing::debug!(%error, collection = name, "created by another process meanwhile");
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    pub(super) fn check(store: usize, given: usize) -> Result<(), FactStoreError> {
        if store == given {
            Ok(())
        } else {
            Err(FactStoreError::DimensionMismatch { store, given })
        }
    }
}

/// Whether a collection's parameters hold the lexical vector.
fn has_lexical(params: &CollectionParams) -> bool {
    params
        .sparse_vectors_config
        .as_ref()
        .is_some_and(|s| s.map.contains_key(LEXICAL))
}
