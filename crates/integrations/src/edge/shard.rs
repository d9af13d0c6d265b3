//! The Qdrant Edge shard and the operations ragback runs on it. All calls block: callers run
//! them on the blocking pool, but for short searches (see [`super::EdgeFactStore`]).

use std::collections::HashSet;
use std::path::Path;

use qdrant_edge::{
    Condition, CountRequest, CreateIndex, CreateVectorName, Distance, EdgeConfigBuilder, EdgeShard,
    EdgeSparseVectorParamsBuilder, EdgeVectorParamsBuilder, FieldCondition, FieldIndexOperations,
    Filter, JsonPath, Match, Modifier, NamedQuery, PayloadFieldSchema, PayloadSchemaType, PointId,
    PointInsertOperations, PointOperations, PointStruct, PointVectorsPersisted, QueryEnum,
    QueryRequest, Record, ScoredPoint, ScoringQuery, ScrollRequest, SparseVectorConfig,
    UpdateOperation, UpdateVectorsOp, Vector, VectorInternal, VectorNameConfig,
    VectorNameOperations, VectorOperations, VectorPersisted, VectorStructInternal,
    VectorStructPersisted, Vectors, WithPayloadInterface, WithVector,
};
use ragback_application::ports::{
    EmbeddedFact, FactPage, FactQuery, FactStoreError, LexicalHit, StoredFact, UpsertReport,
    ensure_same_model,
};
use ragback_domain::{FactId, FactOwner, ScoredFact};

use crate::layout::{
    LEXICAL, MESSAGE_HASH, MIGRATION_BATCH, OWNER_KEY, VECTOR, from_payload, lexical, model_of,
    numeric_point, to_payload,
};

/// The file Qdrant Edge writes its configuration to; its presence means a shard exists.
pub(super) const EDGE_CONFIG_FILE: &str = "edge_config.json";
/// Written once every fact has its lexical vector: a store from before them (or a migration
/// cut short by a crash) lacks it, and is migrated when opened.
const LEXICAL_READY_FILE: &str = "lexical-v1.ready";

/// An open shard and its vector dimension.
pub(super) struct Shard {
    shard: EdgeShard,
    dimension: usize,
}

fn unavailable(context: &str) -> impl Fn(qdrant_edge::OperationError) -> FactStoreError + '_ {
    move |e| FactStoreError::Unavailable(format!("{context}: {e}"))
}

impl Shard {
    /// Loads the shard in `path`, if one was created there.
    pub(super) fn load_if_exists(path: &Path) -> Result<Option<Self>, FactStoreError> {
        if !path.join(EDGE_CONFIG_FILE).exists() {
            return Ok(None);
        }
        let shard = EdgeShard::load(path, None).map_err(unavailable("cannot load the store"))?;
        let dimension = shard
            .config()
            .vectors
            .get(VECTOR)
            .map(|v| v.size)
            .ok_or_else(|| {
                FactStoreError::Corrupted(format!(
                    "{} has no `{VECTOR}` vector: it was not created by ragback; point \
                     RAGBACK_STORE__PATH elsewhere",
                    path.display()
                ))
            })?;
        let shard = Self { shard, dimension };
        if !path.join(LEXICAL_READY_FILE).exists() {
            shard.add_lexical_vectors(path)?;
        }
        Ok(Some(shard))
    }

    /// Gives every stored fact its lexical vector (a store written before they existed, or a
    /// migration a crash cut short: rewriting a vector is harmless), then marks the store ready.
    fn add_lexical_vectors(&self, path: &Path) -> Result<(), FactStoreError> {
        if !self.shard.config().sparse_vectors.contains_key(LEXICAL) {
            self.shard
                .update(UpdateOperation::VectorNameOperation(
                    VectorNameOperations::CreateVectorName(CreateVectorName {
                        vector_name: LEXICAL.into(),
                        config: VectorNameConfig::sparse(SparseVectorConfig {
                            modifier: Some(Modifier::Idf),
                            datatype: None,
                        }),
                    }),
                ))
                .map_err(unavailable("cannot add the lexical index"))?;
        }
        let mut start = None;
        let mut migrated = 0;
        loop {
            let page = self.list(None, start, MIGRATION_BATCH, false)?;
            let points: Vec<PointVectorsPersisted> = page
                .facts
                .iter()
                .map(|stored| PointVectorsPersisted {
                    id: point_id(stored.fact.id),
                    vector: VectorStructPersisted::Named(
                        [(
                            LEXICAL.into(),
                            VectorPersisted::Sparse(lexical::document(stored.fact.text.as_str())),
                        )]
                        .into(),
                    ),
                })
                .collect();
            migrated += points.len();
            if !points.is_empty() {
                self.shard
                    .update(UpdateOperation::VectorOperation(
                        VectorOperations::UpdateVectors(UpdateVectorsOp {
                            points,
                            update_filter: None,
                        }),
                    ))
                    .map_err(unavailable("cannot index the facts' words"))?;
            }
            match page.next {
                Some(next) => start = Some(next),
                None => break,
            }
        }
        self.shard.flush();
        mark_lexical_ready(path)?;
        tracing::info!(path = %path.display(), facts = migrated, "added lexical vectors to the facts of a store written before them");
        Ok(())
    }

    /// Creates a shard for `dimension`-dimensional cosine vectors, with the owner index.
    pub(super) fn create(path: &Path, dimension: usize) -> Result<Self, FactStoreError> {
        let config = EdgeConfigBuilder::new()
            .on_disk_payload(true)
            .vector(
                VECTOR,
                EdgeVectorParamsBuilder::new(dimension, Distance::Cosine).build(),
            )
            .sparse_vector(
                LEXICAL,
                EdgeSparseVectorParamsBuilder::new()
                    .modifier(Modifier::Idf)
                    .build(),
            )
            .build();
        let shard = EdgeShard::new(path, config).map_err(unavailable("cannot create the store"))?;
        shard
            .update(UpdateOperation::FieldIndexOperation(
                FieldIndexOperations::CreateIndex(CreateIndex {
                    field_name: owner_path()?,
                    field_schema: Some(PayloadFieldSchema::FieldType(PayloadSchemaType::Keyword)),
                }),
            ))
            .map_err(unavailable("cannot index the owner field"))?;
        shard.flush();
        mark_lexical_ready(path)?;
        tracing::info!(path = %path.display(), dimension, "created the Qdrant Edge fact store");
        Ok(Self { shard, dimension })
    }

    pub(super) fn dimension(&self) -> usize {
        self.dimension
    }

    fn check_dimension(&self, given: usize) -> Result<(), FactStoreError> {
        if given == self.dimension {
            Ok(())
        } else {
            Err(FactStoreError::DimensionMismatch {
                store: self.dimension,
                given,
            })
        }
    }

    /// Stores the facts not stored yet, then flushes: an acknowledged fact survives a crash.
    /// Needs exclusive access (flush must not race with another update).
    pub(super) fn upsert(
        &mut self,
        facts: Vec<EmbeddedFact>,
    ) -> Result<UpsertReport, FactStoreError> {
        let stored_model = self
            .list(None, None, 1, false)?
            .facts
            .into_iter()
            .next()
            .and_then(|f| f.model);
        for fact in &facts {
            self.check_dimension(fact.vector.len())?;
            ensure_same_model(stored_model.as_deref(), &fact.model)?;
        }
        let ids: Vec<FactId> = facts.iter().map(|f| f.fact.id).collect();
        let known: HashSet<FactId> = self.known(&ids)?.into_iter().collect();
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
            let vectors = Vectors::new_named([
                (VECTOR, Vector::new_dense(vector)),
                (
                    LEXICAL,
                    Vector(VectorInternal::Sparse(lexical::document(
                        fact.text.as_str(),
                    ))),
                ),
            ]);
            points.push(
                PointStruct::new(point_id(fact.id), vectors, to_payload(&fact, &model)).into(),
            );
        }
        if points.is_empty() {
            return Ok(report);
        }
        self.shard
            .update(UpdateOperation::PointOperation(
                PointOperations::UpsertPoints(PointInsertOperations::PointsList(points)),
            ))
            .map_err(unavailable("cannot store facts"))?;
        self.shard.flush();
        Ok(report)
    }

    /// Writes what Qdrant Edge holds in memory to disk. Needs exclusive access.
    pub(super) fn flush(&mut self) {
        self.shard.flush();
    }

    /// The `limit` nearest facts of the query's owners, best first, cosine scores.
    pub(super) fn search(&self, query: &FactQuery) -> Result<Vec<ScoredFact>, FactStoreError> {
        self.check_dimension(query.vector.len())?;
        let nearest = NamedQuery::new(VectorInternal::Dense(query.vector.clone()), VECTOR);
        self.query(query, nearest, WithVector::Bool(false))?
            .into_iter()
            .map(|(fact, _)| Ok(fact))
            .collect()
    }

    /// The `limit` facts of the query's owners that best match `text` by words, best first,
    /// with their cosine similarity to the query vector.
    pub(super) fn search_lexical(
        &self,
        query: &FactQuery,
        text: &str,
    ) -> Result<Vec<LexicalHit>, FactStoreError> {
        self.check_dimension(query.vector.len())?;
        let words = lexical::query(text);
        if words.indices.is_empty() {
            return Ok(Vec::new());
        }
        let matching = NamedQuery::new(VectorInternal::Sparse(words), LEXICAL);
        self.query(query, matching, WithVector::Selector(vec![VECTOR.into()]))?
            .into_iter()
            .map(|(found, point)| {
                let dense = dense_of(point.vector);
                Ok(lexical::hit(found, dense.as_deref(), &query.vector))
            })
            .collect()
    }

    /// Runs `nearest` among the query's owners: the facts with the query's score, and the points.
    fn query(
        &self,
        query: &FactQuery,
        nearest: NamedQuery<VectorInternal>,
        with_vector: WithVector,
    ) -> Result<Vec<(ScoredFact, ScoredPoint)>, FactStoreError> {
        let request = QueryRequest {
            prefetches: Vec::new(),
            query: Some(ScoringQuery::Vector(QueryEnum::Nearest(nearest))),
            filter: Some(owners_filter(&query.owners)?),
            score_threshold: None,
            limit: query.limit,
            offset: 0,
            params: None,
            with_vector,
            with_payload: WithPayloadInterface::Bool(true),
        };
        let mut points = self
            .shard
            .query(request)
            .map_err(unavailable("search failed"))?;
        points
            .iter_mut()
            .map(|point| {
                let id = fact_id(point.id)?;
                let payload = point.payload.take().map(|p| p.0).unwrap_or_default();
                ensure_same_model(model_of(&payload).as_deref(), &query.model)?;
                let fact = from_payload(id, &payload)?;
                if !query.owners.contains(&fact.owner) {
                    // The filter makes this impossible; never leak another owner's fact anyway.
                    return Err(FactStoreError::Corrupted(format!(
                        "fact {id} has owner key {} that does not match its owner",
                        fact.owner
                    )));
                }
                Ok(ScoredFact {
                    fact,
                    score: point.score,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|facts| facts.into_iter().zip(points).collect())
    }

    /// Which of `ids` are stored.
    pub(super) fn known(&self, ids: &[FactId]) -> Result<Vec<FactId>, FactStoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let points: Vec<PointId> = ids.iter().map(|id| point_id(*id)).collect();
        let records = self
            .shard
            .retrieve(
                &points,
                Some(WithPayloadInterface::Bool(false)),
                Some(WithVector::Bool(false)),
            )
            .map_err(unavailable("lookup failed"))?;
        records.into_iter().map(|r| fact_id(r.id)).collect()
    }

    /// A page of facts in id order.
    pub(super) fn list(
        &self,
        owner: Option<&FactOwner>,
        start: Option<FactId>,
        limit: usize,
        with_vectors: bool,
    ) -> Result<FactPage, FactStoreError> {
        let filter = owner
            .map(|o| owners_filter(std::slice::from_ref(o)))
            .transpose()?;
        let (records, next) = self
            .shard
            .scroll(ScrollRequest {
                offset: start.map(point_id),
                limit: Some(limit.max(1)),
                filter,
                with_payload: Some(WithPayloadInterface::Bool(true)),
                with_vector: WithVector::Bool(with_vectors),
                order_by: None,
            })
            .map_err(unavailable("listing failed"))?;
        Ok(FactPage {
            facts: records
                .into_iter()
                .map(stored_fact)
                .collect::<Result<_, _>>()?,
            next: next.map(fact_id).transpose()?,
        })
    }

    /// Deletes those of `ids` that belong to `owner`, then flushes. Needs exclusive access.
    pub(super) fn delete(
        &mut self,
        owner: &FactOwner,
        ids: &[FactId],
    ) -> Result<usize, FactStoreError> {
        let points: Vec<PointId> = ids.iter().map(|id| point_id(*id)).collect();
        let records = self
            .shard
            .retrieve(
                &points,
                Some(WithPayloadInterface::Bool(true)),
                Some(WithVector::Bool(false)),
            )
            .map_err(unavailable("lookup failed"))?;
        let mut owned = Vec::new();
        for record in records {
            let stored = stored_fact(record)?;
            if &stored.fact.owner == owner {
                owned.push(point_id(stored.fact.id));
            }
        }
        if owned.is_empty() {
            return Ok(0);
        }
        let deleted = owned.len();
        self.shard
            .update(UpdateOperation::PointOperation(
                PointOperations::DeletePoints { ids: owned },
            ))
            .map_err(unavailable("delete failed"))?;
        self.shard.flush();
        Ok(deleted)
    }

    /// Deletes every fact of `owner`, then flushes. Needs exclusive access.
    pub(super) fn delete_owner(&mut self, owner: &FactOwner) -> Result<usize, FactStoreError> {
        let deleted = self.count(Some(owner))?;
        if deleted == 0 {
            return Ok(0);
        }
        self.shard
            .update(UpdateOperation::PointOperation(
                PointOperations::DeletePointsByFilter(owners_filter(std::slice::from_ref(owner))?),
            ))
            .map_err(unavailable("delete failed"))?;
        self.shard.flush();
        Ok(deleted)
    }

    /// About how many facts `owners` hold, from the owner index: what a search of theirs scores
    /// at most.
    pub(super) fn estimate(&self, owners: &[FactOwner]) -> Result<usize, FactStoreError> {
        self.count_where(Some(owners_filter(owners)?), false)
    }

    /// Facts of one owner, or of everyone.
    pub(super) fn count(&self, owner: Option<&FactOwner>) -> Result<usize, FactStoreError> {
        let filter = owner
            .map(|o| owners_filter(std::slice::from_ref(o)))
            .transpose()?;
        self.count_where(filter, true)
    }

    /// Whether `owner` holds a fact extracted from the message with `hash`.
    pub(super) fn has_message(
        &self,
        owner: &FactOwner,
        hash: &str,
    ) -> Result<bool, FactStoreError> {
        let hash_path: JsonPath = MESSAGE_HASH.parse().map_err(|_| {
            FactStoreError::Corrupted(format!("`{MESSAGE_HASH}` is not a JSON path"))
        })?;
        let filter = Filter {
            must: Some(vec![
                Condition::Field(FieldCondition::new_match(
                    owner_path()?,
                    Match::from(owner.key()),
                )),
                Condition::Field(FieldCondition::new_match(
                    hash_path,
                    Match::from(hash.to_owned()),
                )),
            ]),
            ..Filter::new()
        };
        Ok(self.count_where(Some(filter), true)? > 0)
    }

    fn count_where(&self, filter: Option<Filter>, exact: bool) -> Result<usize, FactStoreError> {
        self.shard
            .count(CountRequest { filter, exact })
            .map_err(unavailable("count failed"))
    }
}

/// Marks the store's facts as all having their lexical vector.
fn mark_lexical_ready(path: &Path) -> Result<(), FactStoreError> {
    std::fs::write(path.join(LEXICAL_READY_FILE), b"").map_err(|e| {
        FactStoreError::Unavailable(format!("cannot write to {}: {e}", path.display()))
    })
}

/// The payload path of the owner key.
fn owner_path() -> Result<JsonPath, FactStoreError> {
    OWNER_KEY
        .parse()
        .map_err(|_| FactStoreError::Corrupted(format!("`{OWNER_KEY}` is not a JSON path")))
}

/// Matches points of any of `owners`.
fn owners_filter(owners: &[FactOwner]) -> Result<Filter, FactStoreError> {
    let path = owner_path()?;
    let conditions = owners
        .iter()
        .map(|owner| {
            Condition::Field(FieldCondition::new_match(
                path.clone(),
                Match::from(owner.key()),
            ))
        })
        .collect();
    Ok(Filter {
        should: Some(conditions),
        ..Filter::new()
    })
}

/// A listed point as a stored fact.
fn stored_fact(record: Record) -> Result<StoredFact, FactStoreError> {
    let id = fact_id(record.id)?;
    let payload = record.payload.map(|p| p.0).unwrap_or_default();
    let fact = from_payload(id, &payload)?;
    let model = model_of(&payload);
    Ok(StoredFact {
        fact,
        vector: dense_of(record.vector),
        model,
    })
}

/// The dense vector among a point's vectors.
fn dense_of(vectors: Option<VectorStructInternal>) -> Option<Vec<f32>> {
    match vectors {
        Some(VectorStructInternal::Named(mut vectors)) => match vectors.remove(VECTOR) {
            Some(VectorInternal::Dense(vector)) => Some(vector),
            _ => None,
        },
        _ => None,
    }
}

fn point_id(id: FactId) -> PointId {
    PointId::Uuid(id.as_uuid())
}

fn fact_id(id: PointId) -> Result<FactId, FactStoreError> {
    match id {
        PointId::Uuid(uuid) => Ok(FactId::from_uuid(uuid)),
        PointId::NumId(n) => Err(numeric_point(n)),
    }
}
