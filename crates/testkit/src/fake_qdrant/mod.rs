//! A Qdrant server for tests: the real gRPC protocol (qdrant-client's own service definitions,
//! over tonic) in front of Qdrant's own engine (qdrant-edge), so that the server adapter is
//! exercised over the wire with real filtering, scoring and paging semantics.
//!
//! It implements the RPCs ragback uses, for collections with named dense cosine vectors, named
//! sparse vectors (with or without the IDF modifier), keyword and has-vector filters; anything
//! else answers `UNIMPLEMENTED`.

mod collection;
mod convert;
mod rpc;
mod seen;

pub use self::seen::Seen;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use qdrant_client::qdrant::{
    self, CollectionConfig, CollectionExists, CollectionExistsRequest, CollectionExistsResponse,
    CollectionInfo, CollectionOperationResponse, CollectionParams, CountPoints, CountResponse,
    CountResult, CreateCollection, CreateFieldIndexCollection, CreateVectorNameRequest,
    DeletePoints, GetCollectionInfoRequest, GetCollectionInfoResponse, GetPoints, GetResponse,
    PointsOperationResponse, QueryPoints, QueryResponse, ScrollPoints, ScrollResponse,
    SparseVectorConfig, SparseVectorParams, UpdatePointVectors, UpsertPoints, VectorParams,
    VectorParamsMap, VectorsConfig,
};
use qdrant_edge::{
    CountRequest, CreateIndex, CreateVectorName, Distance, EdgeConfigBuilder, EdgeShard,
    EdgeVectorParamsBuilder, FieldIndexOperations, Filter, JsonPath, Modifier, NamedQuery,
    PayloadFieldSchema, PayloadSchemaType, PointInsertOperations, PointOperations, PointStruct,
    PointVectorsPersisted, QueryEnum, QueryRequest, ScoringQuery, ScrollRequest, UpdateOperation,
    UpdateVectorsOp, Vector, VectorInternal, VectorNameConfig, VectorNameOperations,
    VectorOperations, VectorStructInternal, VectorStructPersisted, Vectors, WithPayloadInterface,
};
use tonic::Status;

use self::collection::{Collection, is_idf, sparse_params};
use self::convert::{
    done, edge_filter, edge_id, enabled_payload, enabled_vectors, grpc_id, grpc_payload,
    grpc_vectors, internal, retrieved, sparse,
};

/// The fake server's state.
#[derive(Default)]
pub(crate) struct FakeQdrant {
    collections: Mutex<HashMap<String, Collection>>,
    /// What it was asked.
    seen: std::sync::Arc<Seen>,
    /// Answers `create_vector_name` as a server before 1.18 does: `UNIMPLEMENTED`.
    before_vector_names: bool,
}

impl FakeQdrant {
    fn with<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Collection) -> Result<T, Status>,
    ) -> Result<T, Status> {
        let mut collections = self.collections.lock().map_err(internal)?;
        let collection = collections
            .get_mut(name)
            .ok_or_else(|| Status::not_found(format!("Collection `{name}` doesn't exist!")))?;
        f(collection)
    }

    pub(crate) fn collections_collection_exists(
        &self,
        r: CollectionExistsRequest,
    ) -> Result<CollectionExistsResponse, Status> {
        let exists = self
            .collections
            .lock()
            .map_err(internal)?
            .contains_key(&r.collection_name);
        Ok(CollectionExistsResponse {
            result: Some(CollectionExists { exists }),
            time: 0.0,
        })
    }

    #[allow(deprecated)] // the on-disk flag, which ragback sends and reads
    pub(crate) fn collections_create(
        &self,
        r: CreateCollection,
    ) -> Result<CollectionOperationResponse, Status> {
        let mut collections = self.collections.lock().map_err(internal)?;
        if collections.contains_key(&r.collection_name) {
            return Err(Status::already_exists(format!(
                "Collection `{}` already exists!",
                r.collection_name
            )));
        }
        let Some(qdrant::vectors_config::Config::ParamsMap(map)) =
            r.vectors_config.and_then(|c| c.config)
        else {
            return Err(Status::unimplemented("only named vectors"));
        };
        let mut builder = EdgeConfigBuilder::new();
        let mut vectors = HashMap::new();
        for (name, params) in map.map {
            if params.distance != qdrant::Distance::Cosine as i32 {
                return Err(Status::unimplemented("only cosine"));
            }
            builder = builder.vector(
                name.clone(),
                EdgeVectorParamsBuilder::new(params.size as usize, Distance::Cosine).build(),
            );
            vectors.insert(name, params.size);
        }
        let mut sparse = HashMap::new();
        for (name, params) in r.sparse_vectors_config.map(|c| c.map).unwrap_or_default() {
            let idf = is_idf(params.modifier);
            builder = builder.sparse_vector(name.clone(), sparse_params(idf));
            sparse.insert(name, idf);
        }
        let dir = tempfile::tempdir().map_err(internal)?;
        let shard = EdgeShard::new(dir.path(), builder.build()).map_err(internal)?;
        let layout = CollectionParams {
            shard_number: r.shard_number.unwrap_or(1),
            replication_factor: Some(r.replication_factor.unwrap_or(1)),
            write_consistency_factor: Some(r.write_consistency_factor.unwrap_or(1)),
            on_disk_payload: r.on_disk_payload.unwrap_or(true),
            ..Default::default()
        };
        collections.insert(
            r.collection_name,
            Collection {
                shard,
                vectors,
                sparse,
                layout,
                _dir: dir,
            },
        );
        Ok(CollectionOperationResponse {
            result: true,
            time: 0.0,
        })
    }

    pub(crate) fn collections_delete(
        &self,
        r: qdrant::DeleteCollection,
    ) -> Result<CollectionOperationResponse, Status> {
        let removed = self
            .collections
            .lock()
            .map_err(internal)?
            .remove(&r.collection_name)
            .is_some();
        Ok(CollectionOperationResponse {
            result: removed,
            time: 0.0,
        })
    }

    pub(crate) fn collections_get(
        &self,
        r: GetCollectionInfoRequest,
    ) -> Result<GetCollectionInfoResponse, Status> {
        self.with(&r.collection_name, |c| {
            let map = c
                .vectors
                .iter()
                .map(|(name, size)| {
                    (
                        name.clone(),
                        VectorParams {
                            size: *size,
                            distance: qdrant::Distance::Cosine as i32,
                            ..Default::default()
                        },
                    )
                })
                .collect();
            let sparse = c
                .sparse
                .iter()
                .map(|(name, idf)| {
                    let modifier = idf.then_some(qdrant::Modifier::Idf as i32);
                    let params = SparseVectorParams {
                        index: None,
                        modifier,
                    };
                    (name.clone(), params)
                })
                .collect();
            Ok(GetCollectionInfoResponse {
                result: Some(CollectionInfo {
                    config: Some(CollectionConfig {
                        params: Some(CollectionParams {
                            vectors_config: Some(VectorsConfig {
                                config: Some(qdrant::vectors_config::Config::ParamsMap(
                                    VectorParamsMap { map },
                                )),
                            }),
                            sparse_vectors_config: Some(SparseVectorConfig { map: sparse }),
                            ..c.layout.clone()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                time: 0.0,
            })
        })
    }

    pub(crate) fn points_create_field_index(
        &self,
        r: CreateFieldIndexCollection,
    ) -> Result<PointsOperationResponse, Status> {
        if r.field_type != Some(qdrant::FieldType::Keyword as i32) {
            return Err(Status::unimplemented("only keyword indexes"));
        }
        self.with(&r.collection_name, |c| {
            let field_name: JsonPath = r
                .field_name
                .parse()
                .map_err(|_| Status::invalid_argument("bad field"))?;
            c.shard
                .update(UpdateOperation::FieldIndexOperation(
                    FieldIndexOperations::CreateIndex(CreateIndex {
                        field_name,
                        field_schema: Some(PayloadFieldSchema::FieldType(
                            PayloadSchemaType::Keyword,
                        )),
                    }),
                ))
                .map_err(internal)?;
            Ok(done())
        })
    }

    pub(crate) fn points_upsert(&self, r: UpsertPoints) -> Result<PointsOperationResponse, Status> {
        self.with(&r.collection_name, |c| {
            let mut points = Vec::new();
            for point in r.points {
                let id = edge_id(&point.id.ok_or_else(|| Status::invalid_argument("no id"))?)?;
                let vectors = c
                    .named(point.vectors)?
                    .into_iter()
                    .map(|(name, v)| (name, Vector(v)));
                let payload: serde_json::Value = serde_json::Value::Object(
                    point
                        .payload
                        .into_iter()
                        .map(|(k, v)| (k, serde_json::Value::from(v)))
                        .collect(),
                );
                points.push(PointStruct::new(id, Vectors::new_named(vectors), payload).into());
            }
            // `update_filter`: an existing point is replaced only while it matches.
            let operation = match edge_filter(r.update_filter)? {
                Some(condition) => PointOperations::UpsertPointsConditional(
                    qdrant_edge::ConditionalInsertOperation {
                        points_op: PointInsertOperations::PointsList(points),
                        condition,
                        update_mode: None,
                    },
                ),
                None => PointOperations::UpsertPoints(PointInsertOperations::PointsList(points)),
            };
            c.shard
                .update(UpdateOperation::PointOperation(operation))
                .map_err(internal)?;
            Ok(done())
        })
    }

    pub(crate) fn points_get(&self, r: GetPoints) -> Result<GetResponse, Status> {
        self.with(&r.collection_name, |c| {
            let ids = r.ids.iter().map(edge_id).collect::<Result<Vec<_>, _>>()?;
            let records = c
                .shard
                .retrieve(
                    &ids,
                    Some(WithPayloadInterface::Bool(enabled_payload(r.with_payload))),
                    Some(enabled_vectors(r.with_vectors)),
                )
                .map_err(internal)?;
            Ok(GetResponse {
                result: records.into_iter().map(retrieved).collect(),
                ..Default::default()
            })
        })
    }

    pub(crate) fn points_query(&self, r: QueryPoints) -> Result<QueryResponse, Status> {
        let vector = match r.query.and_then(|q| q.variant) {
            Some(qdrant::query::Variant::Nearest(input)) => match input.variant {
                Some(qdrant::vector_input::Variant::Dense(d)) => VectorInternal::Dense(d.data),
                Some(qdrant::vector_input::Variant::Sparse(s)) => sparse(s.indices, s.values)?,
                _ => {
                    return Err(Status::unimplemented(
                        "only dense and sparse nearest queries",
                    ));
                }
            },
            _ => return Err(Status::unimplemented("only nearest queries")),
        };
        let using = r
            .using
            .ok_or_else(|| Status::invalid_argument("`using` is required here"))?;
        let filter = edge_filter(r.filter)?;
        let with_payload = enabled_payload(r.with_payload);
        let with_vector = enabled_vectors(r.with_vectors);
        self.with(&r.collection_name, |c| {
            c.check(&using, &vector)?;
            let found = c
                .shard
                .query(QueryRequest {
                    prefetches: Vec::new(),
                    query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery::new(
                        vector, using,
                    )))),
                    filter,
                    score_threshold: None,
                    limit: r.limit.unwrap_or(10) as usize,
                    offset: r.offset.unwrap_or(0) as usize,
                    params: None,
                    with_vector,
                    with_payload: WithPayloadInterface::Bool(with_payload),
                })
                .map_err(internal)?;
            let result = found
                .into_iter()
                .map(|p| qdrant::ScoredPoint {
                    id: Some(grpc_id(p.id)),
                    payload: grpc_payload(p.payload),
                    score: p.score,
                    vectors: grpc_vectors(p.vector),
                    ..Default::default()
                })
                .collect();
            Ok(QueryResponse {
                result,
                ..Default::default()
            })
        })
    }

    pub(crate) fn points_scroll(&self, r: ScrollPoints) -> Result<ScrollResponse, Status> {
        let filter = edge_filter(r.filter)?;
        let offset = r.offset.as_ref().map(edge_id).transpose()?;
        self.with(&r.collection_name, |c| {
            let (records, next) = c
                .shard
                .scroll(ScrollRequest {
                    offset,
                    limit: Some(r.limit.unwrap_or(10) as usize),
                    filter,
                    with_payload: Some(WithPayloadInterface::Bool(enabled_payload(r.with_payload))),
                    with_vector: enabled_vectors(r.with_vectors),
                    order_by: None,
                })
                .map_err(internal)?;
            Ok(ScrollResponse {
                next_page_offset: next.map(grpc_id),
                result: records.into_iter().map(retrieved).collect(),
                ..Default::default()
            })
        })
    }

    pub(crate) fn points_count(&self, r: CountPoints) -> Result<CountResponse, Status> {
        let filter = edge_filter(r.filter)?;
        self.with(&r.collection_name, |c| {
            let count = c
                .shard
                .count(CountRequest {
                    filter,
                    exact: true,
                })
                .map_err(internal)?;
            Ok(CountResponse {
                result: Some(CountResult {
                    count: count as u64,
                }),
                ..Default::default()
            })
        })
    }

    pub(crate) fn points_create_vector_name(
        &self,
        r: CreateVectorNameRequest,
    ) -> Result<PointsOperationResponse, Status> {
        if self.before_vector_names {
            return Err(Status::unimplemented("Points/create_vector_name"));
        }
        let Some(qdrant::create_vector_name_request::VectorConfig::SparseConfig(config)) =
            r.vector_config
        else {
            return Err(Status::unimplemented("only sparse vector names"));
        };
        self.with(&r.collection_name, |c| {
            if c.sparse.contains_key(&r.vector_name) || c.vectors.contains_key(&r.vector_name) {
                return Err(Status::invalid_argument(format!(
                    "Wrong input: Vector with name `{}` already exists",
                    r.vector_name
                )));
            }
            let idf = is_idf(config.modifier);
            c.shard
                .update(UpdateOperation::VectorNameOperation(
                    VectorNameOperations::CreateVectorName(CreateVectorName {
                        vector_name: r.vector_name.clone(),
                        config: VectorNameConfig::sparse(qdrant_edge::SparseVectorConfig {
                            modifier: idf.then_some(Modifier::Idf),
                            datatype: None,
                        }),
                    }),
                ))
                .map_err(internal)?;
            c.sparse.insert(r.vector_name, idf);
            Ok(done())
        })
    }

    pub(crate) fn points_update_vectors(
        &self,
        r: UpdatePointVectors,
    ) -> Result<PointsOperationResponse, Status> {
        if r.update_filter.is_some() {
            return Err(Status::unimplemented("no update filters"));
        }
        self.with(&r.collection_name, |c| {
            let points = r
                .points
                .into_iter()
                .map(|point| {
                    let id = edge_id(&point.id.ok_or_else(|| Status::invalid_argument("no id"))?)?;
                    let vectors = c.named(point.vectors)?;
                    Ok(PointVectorsPersisted {
                        id,
                        vector: VectorStructPersisted::from(VectorStructInternal::Named(vectors)),
                    })
                })
                .collect::<Result<Vec<_>, Status>>()?;
            c.shard
                .update(UpdateOperation::VectorOperation(
                    VectorOperations::UpdateVectors(UpdateVectorsOp {
                        points,
                        update_filter: None,
                    }),
                ))
                .map_err(internal)?;
            Ok(done())
        })
    }

    pub(crate) fn points_delete(&self, r: DeletePoints) -> Result<PointsOperationResponse, Status> {
        let selector = r.points.and_then(|p| p.points_selector_one_of);
        let operation = match selector {
            Some(qdrant::points_selector::PointsSelectorOneOf::Points(list)) => {
                PointOperations::DeletePoints {
                    ids: list.ids.iter().map(edge_id).collect::<Result<_, _>>()?,
                }
            }
            Some(qdrant::points_selector::PointsSelectorOneOf::Filter(filter)) => {
                PointOperations::DeletePointsByFilter(
                    edge_filter(Some(filter))?.unwrap_or_else(Filter::new),
                )
            }
            None => return Err(Status::invalid_argument("no points selector")),
        };
        self.with(&r.collection_name, |c| {
            c.shard
                .update(UpdateOperation::PointOperation(operation))
                .map_err(internal)?;
            Ok(done())
        })
    }
}

/// Serves a fresh fake on a free port; returns its gRPC URL.
pub async fn start() -> String {
    serve(FakeQdrant::default()).await
}

/// Creates `collection` on the server at `url` as ragback created it before lexical vectors: a
/// 2-dimensional dense vector `fact` per point, John's `texts` as facts, no sparse vector.
pub async fn old_collection(url: &str, collection: &str, texts: &[&str]) {
    use qdrant_client::qdrant::{
        CreateCollectionBuilder, Distance, PointStruct, UpsertPointsBuilder, VectorParamsBuilder,
        VectorsConfigBuilder,
    };
    let client = qdrant_client::Qdrant::from_url(url)
        .skip_compatibility_check()
        .build()
        .unwrap();
    let mut vectors = VectorsConfigBuilder::default();
    vectors.add_named_vector_params("fact", VectorParamsBuilder::new(2, Distance::Cosine));
    client
        .create_collection(CreateCollectionBuilder::new(collection).vectors_config(vectors))
        .await
        .unwrap();
    let points: Vec<PointStruct> = texts
        .iter()
        .map(|text| {
            let payload = serde_json::json!({
                "owner": "user:john", "owner_kind": "user", "owner_id": "john",
                "text": text, "model": "test/model",
            });
            PointStruct::new(
                uuid::Uuid::new_v4().to_string(),
                std::collections::HashMap::from([("fact".to_owned(), vec![1.0_f32, 0.0])]),
                qdrant_client::Payload::try_from(payload).unwrap(),
            )
        })
        .collect();
    client
        .upsert_points(UpsertPointsBuilder::new(collection, points).wait(true))
        .await
        .unwrap();
}

/// Serves a fresh fake that records what it is asked ([`Seen`]).
pub async fn start_seen() -> (String, std::sync::Arc<Seen>) {
    let fake = FakeQdrant::default();
    let seen = fake.seen.clone();
    (serve(fake).await, seen)
}

/// Serves a fake that cannot add a vector to a collection, as Qdrant before 1.18.
pub async fn start_before_vector_names() -> String {
    serve(FakeQdrant {
        before_vector_names: true,
        ..FakeQdrant::default()
    })
    .await
}

async fn serve(fake: FakeQdrant) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let fake = std::sync::Arc::new(fake);
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(qdrant::points_server::PointsServer::from_arc(fake.clone()))
            .add_service(qdrant::collections_server::CollectionsServer::from_arc(
                fake,
            ))
            .serve_with_incoming(incoming)
            .await
            .expect("fake Qdrant serves");
    });
    format!("http://{addr}")
}
