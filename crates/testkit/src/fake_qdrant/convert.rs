//! Between the gRPC protocol's types and Qdrant Edge's: ids, filters, payloads, vectors.

use std::collections::HashMap;

use qdrant_client::Payload;
use qdrant_client::qdrant::{
    self, PointsOperationResponse, RetrievedPoint, UpdateResult, UpdateStatus,
};
use qdrant_edge::{
    Condition, FieldCondition, Filter, HasVectorCondition, JsonPath, Match, PointId, Record,
    SparseVector, VectorInternal, VectorStructInternal, WithVector,
};
use tonic::Status;

pub(super) fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

pub(super) fn done() -> PointsOperationResponse {
    PointsOperationResponse {
        result: Some(UpdateResult {
            operation_id: Some(0),
            status: UpdateStatus::Completed as i32,
        }),
        ..Default::default()
    }
}

pub(super) fn edge_id(id: &qdrant::PointId) -> Result<PointId, Status> {
    match &id.point_id_options {
        Some(qdrant::point_id::PointIdOptions::Uuid(u)) => u
            .parse()
            .map(PointId::Uuid)
            .map_err(|_| Status::invalid_argument(format!("bad uuid {u}"))),
        Some(qdrant::point_id::PointIdOptions::Num(n)) => Ok(PointId::NumId(*n)),
        None => Err(Status::invalid_argument("point without id")),
    }
}

pub(super) fn grpc_id(id: PointId) -> qdrant::PointId {
    match id {
        PointId::Uuid(u) => qdrant::PointId::from(u.to_string()),
        PointId::NumId(n) => qdrant::PointId::from(n),
    }
}

/// A numeric range on `key` (the lease of a queued job), read by Qdrant Edge as Qdrant's REST
/// API writes it.
fn range_condition(key: &str, range: qdrant::Range) -> Result<Condition, Status> {
    let json = serde_json::json!({
        "key": key,
        "range": {"lt": range.lt, "gt": range.gt, "gte": range.gte, "lte": range.lte},
    });
    serde_json::from_value::<FieldCondition>(json)
        .map(Condition::Field)
        .map_err(|e| Status::invalid_argument(format!("bad range: {e}")))
}

/// Keyword-match, numeric-range and has-vector `should`/`must`/`must_not` filters, the only
/// kinds ragback sends.
pub(super) fn edge_filter(filter: Option<qdrant::Filter>) -> Result<Option<Filter>, Status> {
    let Some(filter) = filter else {
        return Ok(None);
    };
    if filter.min_should.is_some() {
        return Err(Status::unimplemented("only should/must/must_not filters"));
    }
    let convert = |conditions: Vec<qdrant::Condition>| -> Result<Option<Vec<Condition>>, Status> {
        if conditions.is_empty() {
            return Ok(None);
        }
        conditions
            .into_iter()
            .map(|c| match c.condition_one_of {
                Some(qdrant::condition::ConditionOneOf::Field(field)) if field.range.is_some() => {
                    range_condition(&field.key, field.range.unwrap_or_default())
                }
                Some(qdrant::condition::ConditionOneOf::Field(field)) => {
                    match field.r#match.and_then(|m| m.match_value) {
                        Some(qdrant::r#match::MatchValue::Keyword(k)) => {
                            let key: JsonPath = field
                                .key
                                .parse()
                                .map_err(|_| Status::invalid_argument("bad key"))?;
                            Ok(Condition::Field(FieldCondition::new_match(
                                key,
                                Match::from(k),
                            )))
                        }
                        _ => Err(Status::unimplemented("only keyword matches")),
                    }
                }
                Some(qdrant::condition::ConditionOneOf::HasVector(has)) => Ok(
                    Condition::HasVector(HasVectorCondition::from(has.has_vector)),
                ),
                _ => Err(Status::unimplemented(
                    "only field and has-vector conditions",
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    };
    Ok(Some(Filter {
        should: convert(filter.should)?,
        must: convert(filter.must)?,
        must_not: convert(filter.must_not)?,
        ..Filter::new()
    }))
}

pub(super) fn enabled_payload(selector: Option<qdrant::WithPayloadSelector>) -> bool {
    matches!(
        selector.and_then(|s| s.selector_options),
        Some(qdrant::with_payload_selector::SelectorOptions::Enable(true))
    )
}

pub(super) fn enabled_vectors(selector: Option<qdrant::WithVectorsSelector>) -> WithVector {
    match selector.and_then(|s| s.selector_options) {
        Some(qdrant::with_vectors_selector::SelectorOptions::Enable(on)) => WithVector::Bool(on),
        Some(qdrant::with_vectors_selector::SelectorOptions::Include(names)) => {
            WithVector::Selector(names.names)
        }
        None => WithVector::Bool(false),
    }
}

pub(super) fn grpc_payload(
    payload: Option<qdrant_edge::Payload>,
) -> HashMap<String, qdrant::Value> {
    let json = serde_json::Value::Object(
        payload
            .map(|p| p.0)
            .unwrap_or_default()
            .into_iter()
            .collect(),
    );
    Payload::try_from(json)
        .map(HashMap::from)
        .unwrap_or_default()
}

pub(super) fn grpc_vectors(vectors: Option<VectorStructInternal>) -> Option<qdrant::VectorsOutput> {
    let Some(VectorStructInternal::Named(named)) = vectors else {
        return None;
    };
    let vectors = named
        .into_iter()
        .filter_map(|(name, v)| match v {
            VectorInternal::Dense(data) => Some((
                name,
                qdrant::VectorOutput {
                    vector: Some(qdrant::vector_output::Vector::Dense(qdrant::DenseVector {
                        data,
                    })),
                    ..Default::default()
                },
            )),
            VectorInternal::Sparse(sparse) => Some((
                name,
                qdrant::VectorOutput {
                    vector: Some(qdrant::vector_output::Vector::Sparse(
                        qdrant::SparseVector {
                            values: sparse.values,
                            indices: sparse.indices,
                        },
                    )),
                    ..Default::default()
                },
            )),
            VectorInternal::MultiDense(_) => None,
        })
        .collect();
    Some(qdrant::VectorsOutput {
        vectors_options: Some(qdrant::vectors_output::VectorsOptions::Vectors(
            qdrant::NamedVectorsOutput { vectors },
        )),
    })
}

pub(super) fn retrieved(record: Record) -> RetrievedPoint {
    RetrievedPoint {
        id: Some(grpc_id(record.id)),
        payload: grpc_payload(record.payload),
        vectors: grpc_vectors(record.vector),
        ..Default::default()
    }
}

/// An input vector, dense or sparse, in the old (`data`, `indices`) or new (`vector`)
/// encoding.
#[allow(deprecated)]
pub(super) fn input_vector(vector: qdrant::Vector) -> Result<VectorInternal, Status> {
    match vector.vector {
        Some(qdrant::vector::Vector::Dense(d)) => Ok(VectorInternal::Dense(d.data)),
        Some(qdrant::vector::Vector::Sparse(s)) => sparse(s.indices, s.values),
        Some(_) => Err(Status::unimplemented("only dense and sparse vectors")),
        None => match vector.indices {
            Some(indices) => sparse(indices.data, vector.data),
            None => Ok(VectorInternal::Dense(vector.data)),
        },
    }
}

pub(super) fn sparse(indices: Vec<u32>, values: Vec<f32>) -> Result<VectorInternal, Status> {
    SparseVector::new(indices, values)
        .map(VectorInternal::Sparse)
        .map_err(|e| Status::invalid_argument(format!("Wrong input: {e}")))
}
