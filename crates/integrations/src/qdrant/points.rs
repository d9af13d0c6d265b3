//! Points on the wire: queries, pages and reads of the collection, and the conversions between
//! points and facts.

use std::collections::HashMap;

use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::vector_output::Vector as OutputVector;
use qdrant_client::qdrant::{
    Condition, Filter, GetPointsBuilder, PointId, QueryPointsBuilder, ScoredPoint,
    ScrollPointsBuilder, Value as QdrantValue, Vector, VectorsOutput,
};
use ragback_application::ports::{
    FactPage, FactQuery, FactStoreError, StoredFact, ensure_same_model,
};
use ragback_domain::{Fact, FactId, FactOwner, ScoredFact};
use serde_json::Map;

use super::QdrantFactStore;
use crate::layout::{OWNER_KEY, VECTOR, from_payload, lexical, model_of, numeric_point};

impl QdrantFactStore {
    /// The points `nearest` (a query and the vector it uses) finds among the query's owners,
    /// best first; none when there is nothing to search.
    pub(super) async fn nearest(
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
                match self.cluster.read() {
                    Some(read) => nearest.read_consistency(read),
                    None => nearest,
                }
                .filter(owners_filter(&query.owners))
                .limit(query.limit as u64)
                .with_payload(true),
            )
            .await
            .map_err(self.unavailable(what))?;
        Ok(found.result)
    }

    /// A page of the facts `filter` matches (all without one), in id order from `start`.
    pub(super) async fn page(
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
        if let Some(read) = self.cluster.read() {
            request = request.read_consistency(read);
        }
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
    pub(super) async fn get(
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
                match self.cluster.read() {
                    Some(read) => {
                        GetPointsBuilder::new(&self.collection, points).read_consistency(read)
                    }
                    None => GetPointsBuilder::new(&self.collection, points),
                }
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
pub(super) fn lexical_vector(fact: &Fact) -> Vector {
    let words = lexical::document(fact.text.as_str());
    Vector::new_sparse(words.indices, words.values)
}

/// The dense vector among a point's vectors.
pub(super) fn dense_of(vectors: Option<VectorsOutput>) -> Option<Vec<f32>> {
    vectors
        .and_then(|v| v.get_vector_by_name(VECTOR))
        .and_then(|v| match v {
            OutputVector::Dense(dense) => Some(dense.data),
            _ => None,
        })
}

/// A found point as a fact of one of the query's owners, with the point's score.
pub(super) fn scored_fact(
    point: ScoredPoint,
    query: &FactQuery,
) -> Result<ScoredFact, FactStoreError> {
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
pub(super) fn owners_filter(owners: &[FactOwner]) -> Filter {
    Filter::should(
        owners
            .iter()
            .map(|o| Condition::matches(OWNER_KEY, o.key())),
    )
}

pub(super) fn point_id(id: FactId) -> PointId {
    PointId::from(id.to_string())
}

pub(super) fn fact_id(id: Option<PointId>) -> Result<FactId, FactStoreError> {
    match id.and_then(|p| p.point_id_options) {
        Some(PointIdOptions::Uuid(uuid)) => uuid
            .parse()
            .map_err(|_| FactStoreError::Corrupted(format!("point id `{uuid}` is not a UUID"))),
        Some(PointIdOptions::Num(n)) => Err(numeric_point(n)),
        None => Err(FactStoreError::Corrupted("a point without an id".into())),
    }
}

/// The fact and its recorded model.
pub(super) fn fact_of(
    id: FactId,
    payload: HashMap<String, QdrantValue>,
) -> Result<(Fact, Option<String>), FactStoreError> {
    let map = json_map(payload);
    let fact = from_payload(id, &map)?;
    Ok((fact, model_of(&map)))
}

/// A point's payload as JSON.
pub(super) fn json_map(payload: HashMap<String, QdrantValue>) -> Map<String, serde_json::Value> {
    payload
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::from(v)))
        .collect()
}
