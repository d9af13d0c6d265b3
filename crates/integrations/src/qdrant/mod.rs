//! A Qdrant server (or cluster) over gRPC, through `qdrant-client`: the scale-out fact store.
//!
//! One collection holds every fact, with a named cosine vector `fact` and a keyword payload index
//! on `owner` marked `is_tenant` (Qdrant's multitenancy layout: each owner's facts are stored
//! together). The collection is created on the first upsert with that batch's dimension.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use qdrant_client::qdrant::create_vector_name_request::VectorConfig as NewVectorConfig;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::vector_output::Vector as OutputVector;
use qdrant_client::qdrant::vectors_config::Config as VectorsConfigKind;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    CreateVectorNameRequestBuilder, DeletePointsBuilder, Distance, FieldType, Filter,
    GetPointsBuilder, KeywordIndexParamsBuilder, Modifier, PointId, PointStruct, PointVectors,
    PointsIdsList, Query, QueryPointsBuilder, ScoredPoint, ScrollPointsBuilder, SparseVectorConfig,
    SparseVectorCreationConfig, SparseVectorParams, UpdatePointVectorsBuilder, UpsertPointsBuilder,
    Value as QdrantValue, Vector, VectorInput, VectorParamsBuilder, VectorsConfigBuilder,
    VectorsOutput, VectorsSelector,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use ragback_application::ports::{
    EmbeddedFact, FactPage, FactQuery, FactStore, FactStoreError, LexicalHit, StoreStatus,
    StoredFact, UpsertReport, ensure_same_model,
};
use ragback_domain::{Fact, FactId, FactOwner, ScoredFact};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Map;

use crate::fact_payload::{OWNER_KEY, from_payload, model_of, to_payload};
use crate::lexical::{self, LEXICAL};

/// Facts given their lexical vector per call when a collection from before them is migrated.
const MIGRATION_BATCH: u32 = 256;

/// The name of the one dense vector of each point (as in the Edge store).
const VECTOR: &str = "fact";

/// Where the server is and which collection to use.
#[derive(Debug, Clone)]
pub struct QdrantSettings {
    /// gRPC URL, e.g. `http://localhost:6334`.
    pub url: String,
    /// API key, when the server requires one.
    pub api_key: Option<SecretString>,
    /// Collection name.
    pub collection: String,
    /// Timeout of one call.
    pub timeout: Duration,
}

/// Facts in a Qdrant server collection.
pub struct QdrantFactStore {
    client: Qdrant,
    url: String,
    collection: String,
    /// The collection's dimension once known (it never changes).
    dimension: RwLock<Option<usize>>,
    /// Whether the collection has the lexical vector (false: a server too old to add it to a
    /// collection created before it; the vector search alone then).
    lexical: std::sync::atomic::AtomicBool,
}

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the Qdrant client for {url}: {message}")]
pub struct QdrantConfigError {
    url: String,
    message: String,
}

impl QdrantFactStore {
    /// Builds the client; does not connect until the first call.
    pub fn new(settings: &QdrantSettings) -> Result<Self, QdrantConfigError> {
        let mut builder = Qdrant::from_url(&settings.url)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .skip_compatibility_check();
        if let Some(key) = settings
            .api_key
            .as_ref()
            .filter(|k| !k.expose_secret().is_empty())
        {
            builder = builder.api_key(key.expose_secret().to_owned());
        }
        let client = builder.build().map_err(|e| QdrantConfigError {
            url: settings.url.clone(),
            message: e.to_string(),
        })?;
        Ok(Self {
            client,
            url: settings.url.clone(),
            collection: settings.collection.clone(),
            dimension: RwLock::new(None),
            lexical: std::sync::atomic::AtomicBool::new(true),
        })
    }

    fn unavailable(&self, what: &str) -> impl Fn(QdrantError) -> FactStoreError + '_ {
        let what = what.to_owned();
        move |error| {
            FactStoreError::Unavailable(format!(
                "Qdrant at {} ({what}, collection `{}`): {error}",
                self.url, self.collection
            ))
        }
    }

    fn has_lexical(&self) -> bool {
        self.lexical.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn cached_dimension(&self) -> Option<usize> {
        self.dimension.read().ok().and_then(|d| *d)
    }

    fn remember(&self, dimension: usize) {
        if let Ok(mut cached) = self.dimension.write() {
            *cached = Some(dimension);
        }
    }

    /// The collection's dimension; `None` when the collection does not exist yet.
    async fn dimension(&self) -> Result<Option<usize>, FactStoreError> {
        if let Some(dimension) = self.cached_dimension() {
            return Ok(Some(dimension));
        }
        let exists = self
            .client
            .collection_exists(&self.collection)
            .await
            .map_err(self.unavailable("checking the collection"))?;
        if !exists {
            return Ok(None);
        }
        let info = self
            .client
            .collection_info(&self.collection)
            .await
            .map_err(self.unavailable("reading the collection"))?;
        let params = info.result.and_then(|r| r.config).and_then(|c| c.params);
        let has_lexical = params
            .as_ref()
            .and_then(|p| p.sparse_vectors_config.as_ref())
            .is_some_and(|s| s.map.contains_key(LEXICAL));
        let config = params.and_then(|p| p.vectors_config).and_then(|v| v.config);
        let size = match config {
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
        let dimension = usize::try_from(size).unwrap_or(usize::MAX);
        let lexical = self.add_lexical_vectors(has_lexical).await?;
        self.lexical
            .store(lexical, std::sync::atomic::Ordering::Relaxed);
        self.remember(dimension);
        Ok(Some(dimension))
    }

    /// Gives the facts stored without a lexical vector (a collection written before them, or a
    /// migration cut short) theirs, adding the sparse vector to the collection first when it
    /// lacks it. Runs once per process, when the collection is first looked at; rewriting a
    /// vector another ragback wrote meanwhile is harmless. A server that cannot add a vector to
    /// a collection (Qdrant before 1.18) leaves it without: `false`, and a warning saying what
    /// to do.
    async fn add_lexical_vectors(&self, has_lexical: bool) -> Result<bool, FactStoreError> {
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
                return Ok(false);
            }
        }
        let without = Filter::must_not([Condition::has_vector(LEXICAL)]);
        let mut start = None;
        let mut migrated = 0;
        loop {
            let page = self
                .page(Some(without.clone()), start, MIGRATION_BATCH, false)
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
                        UpdatePointVectorsBuilder::new(&self.collection, points).wait(true),
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
        Ok(true)
    }

    /// The dimension, creating the collection for `dimension` when it does not exist.
    async fn ensure_collection(&self, dimension: usize) -> Result<usize, FactStoreError> {
        if let Some(existing) = self.dimension().await? {
            return Ok(existing);
        }
        let mut vectors = VectorsConfigBuilder::default();
        vectors.add_named_vector_params(
            VECTOR,
            VectorParamsBuilder::new(dimension as u64, Distance::Cosine),
        );
        let created = self
            .client
            .create_collection(
                CreateCollectionBuilder::new(&self.collection)
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
                .wait(true),
            )
            .await
            .map_err(self.unavailable("indexing the owner field"))?;
        tracing::info!(url = %self.url, collection = %self.collection, dimension, "created the Qdrant collection");
        self.remember(dimension);
        Ok(dimension)
    }

    fn check(store: usize, given: usize) -> Result<(), FactStoreError> {
        if store == given {
            Ok(())
        } else {
            Err(FactStoreError::DimensionMismatch { store, given })
        }
    }

    /// The points `nearest` (a query and the vector it uses) finds among the query's owners,
    /// best first; none when there is nothing to search.
    async fn nearest(
        &self,
        query: &FactQuery,
        nearest: QueryPointsBuilder,
        what: &str,
    ) -> Result<Vec<ScoredPoint>, FactStoreError> {
        if query.owners.is_empty() || query.limit == 0 {
            return Ok(Vec::new());
        }
        let Some(dimension) = self.dimension().await? else {
            return Ok(Vec::new());
        };
        Self::check(dimension, query.vector.len())?;
        let found = self
            .client
            .query(
                nearest
                    .filter(owners_filter(&query.owners))
                    .limit(query.limit as u64)
                    .with_payload(true),
            )
            .await
            .map_err(self.unavailable(what))?;
        Ok(found.result)
    }

    /// A page of the facts `filter` matches (all without one), in id order from `start`.
    async fn page(
        &self,
        filter: Option<Filter>,
        start: Option<FactId>,
        limit: u32,
        with_vectors: bool,
    ) -> Result<FactPage, FactStoreError> {
        let mut request = ScrollPointsBuilder::new(&self.collection)
            .limit(limit)
            .with_payload(true)
            .with_vectors(with_vectors);
        if let Some(filter) = filter {
            request = request.filter(filter);
        }
        if let Some(start) = start {
            request = request.offset(point_id(start));
        }
        let page = self
            .client
            .scroll(request)
            .await
            .map_err(self.unavailable("listing facts"))?;
        let facts = page
            .result
            .into_iter()
            .map(|point| {
                let id = fact_id(point.id)?;
                let vector = dense_of(point.vectors);
                let (fact, model) = fact_of(id, point.payload)?;
                Ok(StoredFact {
                    fact,
                    vector,
                    model,
                })
            })
            .collect::<Result<_, FactStoreError>>()?;
        let next = page
            .next_page_offset
            .map(|p| fact_id(Some(p)))
            .transpose()?;
        Ok(FactPage { facts, next })
    }

    /// Stored points among `ids`, with payloads.
    async fn get(
        &self,
        ids: &[FactId],
        payload: bool,
    ) -> Result<Vec<(FactId, Option<Fact>)>, FactStoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let points: Vec<PointId> = ids.iter().map(|id| point_id(*id)).collect();
        let found = self
            .client
            .get_points(
                GetPointsBuilder::new(&self.collection, points)
                    .with_payload(payload)
                    .with_vectors(false),
            )
            .await
            .map_err(self.unavailable("reading facts"))?;
        found
            .result
            .into_iter()
            .map(|point| {
                let id = fact_id(point.id)?;
                let fact = payload
                    .then(|| fact_of(id, point.payload))
                    .transpose()?
                    .map(|(fact, _)| fact);
                Ok((id, fact))
            })
            .collect()
    }
}

/// A fact's text as its BM25 sparse vector.
fn lexical_vector(fact: &Fact) -> Vector {
    let words = lexical::document(fact.text.as_str());
    Vector::new_sparse(words.indices, words.values)
}

/// The dense vector among a point's vectors.
fn dense_of(vectors: Option<VectorsOutput>) -> Option<Vec<f32>> {
    vectors
        .and_then(|v| v.get_vector_by_name(VECTOR))
        .and_then(|v| match v {
            OutputVector::Dense(dense) => Some(dense.data),
            _ => None,
        })
}

/// A found point as a fact of one of the query's owners, with the point's score.
fn scored_fact(point: ScoredPoint, query: &FactQuery) -> Result<ScoredFact, FactStoreError> {
    let id = fact_id(point.id)?;
    let (fact, model) = fact_of(id, point.payload)?;
    ensure_same_model(model.as_deref(), &query.model)?;
    if !query.owners.contains(&fact.owner) {
        return Err(FactStoreError::Corrupted(format!(
            "fact {id} does not belong to the owners searched"
        )));
    }
    Ok(ScoredFact {
        fact,
        score: point.score,
    })
}

/// Matches points of any of `owners`.
fn owners_filter(owners: &[FactOwner]) -> Filter {
    Filter::should(
        owners
            .iter()
            .map(|o| Condition::matches(OWNER_KEY, o.key())),
    )
}

fn point_id(id: FactId) -> PointId {
    PointId::from(id.to_string())
}

fn fact_id(id: Option<PointId>) -> Result<FactId, FactStoreError> {
    match id.and_then(|p| p.point_id_options) {
        Some(PointIdOptions::Uuid(uuid)) => uuid
            .parse()
            .map_err(|_| FactStoreError::Corrupted(format!("point id `{uuid}` is not a UUID"))),
        Some(PointIdOptions::Num(n)) => Err(FactStoreError::Corrupted(format!(
            "point {n} has a numeric id: the collection holds data not written by ragback"
        ))),
        None => Err(FactStoreError::Corrupted("a point without an id".into())),
    }
}

/// The fact and its recorded model.
fn fact_of(
    id: FactId,
    payload: HashMap<String, QdrantValue>,
) -> Result<(Fact, Option<String>), FactStoreError> {
    let map: Map<String, serde_json::Value> = payload
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::from(v)))
        .collect();
    let fact = from_payload(id, &map).map_err(FactStoreError::Corrupted)?;
    Ok((fact, model_of(&map)))
}

#[async_trait]
impl FactStore for QdrantFactStore {
    async fn upsert(&self, facts: Vec<EmbeddedFact>) -> Result<UpsertReport, FactStoreError> {
        let Some(given) = facts.first().map(|f| f.vector.len()) else {
            return Ok(UpsertReport::default());
        };
        for fact in &facts {
            Self::check(given, fact.vector.len())?;
        }
        let dimension = self.ensure_collection(given).await?;
        Self::check(dimension, given)?;
        let stored_model = self
            .list(None, None, 1, false)
            .await?
            .facts
            .into_iter()
            .next()
            .and_then(|f| f.model);
        for fact in &facts {
            ensure_same_model(stored_model.as_deref(), &fact.model)?;
        }
        let ids: Vec<FactId> = facts.iter().map(|f| f.fact.id).collect();
        let known: HashSet<FactId> = self
            .get(&ids, false)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut report = UpsertReport::default();
        let mut points = Vec::new();
        for EmbeddedFact {
            fact,
            vector,
            model,
        } in facts
        {
            if known.contains(&fact.id) {
                report.unchanged += 1;
                continue;
            }
            report.added += 1;
            let payload = Payload::try_from(to_payload(&fact, &model))
                .map_err(|e| FactStoreError::Corrupted(format!("payload of {}: {e}", fact.id)))?;
            let mut vectors = HashMap::from([(VECTOR.to_owned(), Vector::new_dense(vector))]);
            if self.has_lexical() {
                vectors.insert(LEXICAL.to_owned(), lexical_vector(&fact));
            }
            points.push(PointStruct::new(point_id(fact.id), vectors, payload));
        }
        if !points.is_empty() {
            self.client
                .upsert_points(UpsertPointsBuilder::new(&self.collection, points).wait(true))
                .await
                .map_err(self.unavailable("storing facts"))?;
        }
        Ok(report)
    }

    async fn search(&self, query: FactQuery) -> Result<Vec<ScoredFact>, FactStoreError> {
        let nearest = QueryPointsBuilder::new(&self.collection)
            .query(query.vector.clone())
            .using(VECTOR);
        self.nearest(&query, nearest, "searching")
            .await?
            .into_iter()
            .map(|point| scored_fact(point, &query))
            .collect()
    }

    async fn search_lexical(
        &self,
        query: FactQuery,
        text: &str,
    ) -> Result<Vec<LexicalHit>, FactStoreError> {
        let words = lexical::query(text);
        // The dimension first: it settles whether the collection has the lexical vector.
        if words.indices.is_empty() || self.dimension().await?.is_none() || !self.has_lexical() {
            return Ok(Vec::new());
        }
        let nearest = QueryPointsBuilder::new(&self.collection)
            .query(Query::new_nearest(VectorInput::new_sparse(
                words.indices,
                words.values,
            )))
            .using(LEXICAL)
            .with_vectors(VectorsSelector {
                names: vec![VECTOR.to_owned()],
            });
        self.nearest(&query, nearest, "searching by words")
            .await?
            .into_iter()
            .map(|mut point| {
                let dense = dense_of(point.vectors.take());
                let found = scored_fact(point, &query)?;
                Ok(lexical::hit(found, dense.as_deref(), &query.vector))
            })
            .collect()
    }

    async fn known(&self, ids: &[FactId]) -> Result<Vec<FactId>, FactStoreError> {
        if self.dimension().await?.is_none() {
            return Ok(Vec::new());
        }
        Ok(self
            .get(ids, false)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    async fn list(
        &self,
        owner: Option<&FactOwner>,
        start: Option<FactId>,
        limit: usize,
        with_vectors: bool,
    ) -> Result<FactPage, FactStoreError> {
        let empty = FactPage {
            facts: Vec::new(),
            next: None,
        };
        if self.dimension().await?.is_none() {
            return Ok(empty);
        }
        let filter = owner.map(|o| owners_filter(std::slice::from_ref(o)));
        let limit = u32::try_from(limit.max(1)).unwrap_or(u32::MAX);
        self.page(filter, start, limit, with_vectors).await
    }

    async fn delete(&self, owner: &FactOwner, ids: &[FactId]) -> Result<usize, FactStoreError> {
        if self.dimension().await?.is_none() {
            return Ok(0);
        }
        let owned: Vec<PointId> = self
            .get(ids, true)
            .await?
            .into_iter()
            .filter(|(_, fact)| fact.as_ref().is_some_and(|f| &f.owner == owner))
            .map(|(id, _)| point_id(id))
            .collect();
        if owned.is_empty() {
            return Ok(0);
        }
        let deleted = owned.len();
        self.client
            .delete_points(
                DeletePointsBuilder::new(&self.collection)
                    .points(PointsIdsList { ids: owned })
                    .wait(true),
            )
            .await
            .map_err(self.unavailable("deleting facts"))?;
        Ok(deleted)
    }

    async fn delete_owner(&self, owner: &FactOwner) -> Result<usize, FactStoreError> {
        let deleted = self.count(Some(owner)).await?;
        if deleted == 0 {
            return Ok(0);
        }
        self.client
            .delete_points(
                DeletePointsBuilder::new(&self.collection)
                    .points(owners_filter(std::slice::from_ref(owner)))
                    .wait(true),
            )
            .await
            .map_err(self.unavailable("deleting facts"))?;
        Ok(deleted)
    }

    async fn count(&self, owner: Option<&FactOwner>) -> Result<usize, FactStoreError> {
        if self.dimension().await?.is_none() {
            return Ok(0);
        }
        let mut request = CountPointsBuilder::new(&self.collection).exact(true);
        if let Some(owner) = owner {
            request = request.filter(owners_filter(std::slice::from_ref(owner)));
        }
        let counted = self
            .client
            .count(request)
            .await
            .map_err(self.unavailable("counting facts"))?;
        Ok(counted.result.map_or(0, |r| r.count as usize))
    }

    async fn ping(&self) -> Result<(), FactStoreError> {
        self.client
            .collection_exists(&self.collection)
            .await
            .map_err(self.unavailable("checking the collection"))
            .map(drop)
    }

    async fn status(&self) -> Result<StoreStatus, FactStoreError> {
        let dimension = self.dimension().await?;
        let facts = match dimension {
            Some(_) => self.count(None).await?,
            None => 0,
        };
        Ok(StoreStatus { facts, dimension })
    }
}
