//! A Qdrant server (or cluster) over gRPC, through `qdrant-client`: the scale-out fact store.
//!
//! One collection holds every fact, with a named cosine vector `fact` and a keyword payload index
//! on `owner` marked `is_tenant` (Qdrant's multitenancy layout: each owner's facts are stored
//! together). The collection is created on the first upsert with that batch's dimension
//! ([`collection`]); [`points`] speaks the wire format.

mod cluster;
mod collection;
mod jobs;
mod points;
mod summaries;

pub use cluster::{ClusterSettings, ReadConsistencyLevel, WriteOrderingLevel};
use collection::{Collection, Preparation};
use points::{dense_of, lexical_vector, owners_filter, point_id, scored_fact};

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, DeletePointsBuilder, Filter, PointId, PointStruct,
    PointsIdsList, Query, QueryPointsBuilder, UpsertPointsBuilder, Vector, VectorInput,
    VectorsSelector,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use ragback_application::ports::{
    EmbeddedFact, FactPage, FactQuery, FactStore, FactStoreError, LexicalHit, StoreStatus,
    UpsertReport, ensure_same_model,
};
use ragback_domain::{FactId, FactOwner, ScoredFact};
use secrecy::{ExposeSecret, SecretString};

use crate::layout::{LEXICAL, MESSAGE_HASH, OWNER_KEY, VECTOR, lexical, to_payload};

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
    /// The collection's layout on a cluster, and the consistency of reads and writes.
    pub cluster: ClusterSettings,
}

/// Facts in a Qdrant server collection.
pub struct QdrantFactStore {
    client: Qdrant,
    url: String,
    collection: String,
    /// The collection, once looked at.
    known: tokio::sync::OnceCell<Collection>,
    /// The summaries' collection is known to exist.
    summaries_known: std::sync::atomic::AtomicBool,
    /// The jobs' collection is known to exist.
    jobs_known: std::sync::atomic::AtomicBool,
    /// The collection's layout and the consistency of reads and writes.
    cluster: ClusterSettings,
    /// The start-up preparation.
    preparation: std::sync::Mutex<Preparation>,
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
            known: tokio::sync::OnceCell::new(),
            summaries_known: std::sync::atomic::AtomicBool::new(false),
            jobs_known: std::sync::atomic::AtomicBool::new(false),
            cluster: settings.cluster,
            preparation: std::sync::Mutex::new(Preparation::NotAsked),
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

    /// Whether the collection has the lexical vector (assumed until it is looked at).
    fn has_lexical(&self) -> bool {
        self.known.get().is_none_or(|c| c.lexical)
    }
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
                .upsert_points(
                    UpsertPointsBuilder::new(&self.collection, points)
                        .wait(true)
                        .ordering(self.cluster.ordering()),
                )
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
                    .wait(true)
                    .ordering(self.cluster.ordering()),
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
                    .wait(true)
                    .ordering(self.cluster.ordering()),
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
        if let Some(read) = self.cluster.read() {
            request = request.read_consistency(read);
        }
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

    async fn has_message(&self, owner: &FactOwner, hash: &str) -> Result<bool, FactStoreError> {
        if self.dimension().await?.is_none() {
            return Ok(false);
        }
        let filter = Filter::must([
            Condition::matches(OWNER_KEY, owner.key()),
            Condition::matches(MESSAGE_HASH, hash.to_owned()),
        ]);
        let counted = self
            .client
            .count(
                CountPointsBuilder::new(&self.collection)
                    .filter(filter)
                    .exact(true),
            )
            .await
            .map_err(self.unavailable("looking for an extracted message"))?;
        Ok(counted.result.is_some_and(|r| r.count > 0))
    }

    async fn prepare(&self) -> Result<(), FactStoreError> {
        self.prepare_collection().await.map(drop)
    }

    async fn ping(&self) -> Result<(), FactStoreError> {
        match self.preparation() {
            Preparation::Running => {
                return Err(FactStoreError::Unavailable(format!(
                    "Qdrant collection `{}` is being prepared at start-up",
                    self.collection
                )));
            }
            Preparation::Failed(why) => return Err(FactStoreError::Misconfigured(why)),
            Preparation::NotAsked | Preparation::Done => {}
        }
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
