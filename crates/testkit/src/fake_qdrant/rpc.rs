//! The gRPC surface of the fake Qdrant server: every RPC of `qdrant.Points` and
//! `qdrant.Collections` (generated once from qdrant-client's service definitions). The ones
//! ragback uses delegate to `FakeQdrant`'s methods; any other answers `UNIMPLEMENTED`, so a new
//! call in the adapter fails loudly here.

use qdrant_client::qdrant::{self, collections_server::Collections, points_server::Points};
use tonic::{Request, Response, Status};

use super::FakeQdrant;

#[tonic::async_trait]
impl Points for FakeQdrant {
    async fn upsert(
        &self,
        request: Request<qdrant::UpsertPoints>,
    ) -> Result<Response<qdrant::PointsOperationResponse>, Status> {
        let r = request.into_inner();
        let op = if r.update_filter.is_some() {
            "upsert_if"
        } else {
            "upsert"
        };
        self.seen
            .write(&r.collection_name, op, r.ordering.as_ref(), r.wait);
        self.points_upsert(r).map(Response::new)
    }

    async fn delete(
        &self,
        request: Request<qdrant::DeletePoints>,
    ) -> Result<Response<qdrant::PointsOperationResponse>, Status> {
        let r = request.into_inner();
        self.seen
            .write(&r.collection_name, "delete", r.ordering.as_ref(), r.wait);
        self.points_delete(r).map(Response::new)
    }

    async fn get(
        &self,
        request: Request<qdrant::GetPoints>,
    ) -> Result<Response<qdrant::GetResponse>, Status> {
        let r = request.into_inner();
        self.seen
            .read(&r.collection_name, "get", r.read_consistency.as_ref());
        self.points_get(r).map(Response::new)
    }

    async fn update_vectors(
        &self,
        request: Request<qdrant::UpdatePointVectors>,
    ) -> Result<Response<qdrant::PointsOperationResponse>, Status> {
        let r = request.into_inner();
        self.seen.write(
            &r.collection_name,
            "update_vectors",
            r.ordering.as_ref(),
            r.wait,
        );
        self.points_update_vectors(r).map(Response::new)
    }

    async fn delete_vectors(
        &self,
        _request: Request<qdrant::DeletePointVectors>,
    ) -> Result<Response<qdrant::PointsOperationResponse>, Status> {
        Err(Status::unimplemented("Points/delete_vectors"))
    }

    async fn set_payload(
        &self,
        _request: Request<qdrant::SetPayloadPoints>,
    ) -> Result<Response<qdrant::PointsOperationResponse>, Status> {
        Err(Status::unimplemented("Points/set_payload"))
    }

    async fn overwrite_payload(
        &self,
        _request: Request<qdrant::SetPayloadPoints>,
    ) -> Result<Response<qdrant::PointsOperationResponse>, Status> {
        Err(Status::unimplemented("Points/overwrite_payload"))
    }

    async fn delete_payload(
        &self,
        _request: Request<qdrant::DeletePayloadPoints>,
    ) -> Result<Response<qdrant::PointsOperationResponse>, Status> {
        Err(Status::unimplemented("Points/delete_payload"))
    }

    async fn clear_payload(
        &self,
        _request: Request<qdrant::ClearPayloadPoints>,
    ) -> Result<Response<qdrant::PointsOperationResponse>, Status> {
        Err(Status::unimplemented("Points/clear_payload"))
    }

    async fn create_field_index(
        &self,
        request: Request<qdrant::CreateFieldIndexCollection>,
    ) -> Result<Response<qdrant::PointsOperationResponse>, Status> {
        self.points_create_field_index(request.into_inner())
            .map(Response::new)
    }

    async fn delete_field_index(
        &self,
        _request: Request<qdrant::DeleteFieldIndexCollection>,
    ) -> Result<Response<qdrant::PointsOperationResponse>, Status> {
        Err(Status::unimplemented("Points/delete_field_index"))
    }

    async fn create_vector_name(
        &self,
        request: Request<qdrant::CreateVectorNameRequest>,
    ) -> Result<Response<qdrant::PointsOperationResponse>, Status> {
        self.points_create_vector_name(request.into_inner())
            .map(Response::new)
    }

    async fn delete_vector_name(
        &self,
        _request: Request<qdrant::DeleteVectorNameRequest>,
    ) -> Result<Response<qdrant::PointsOperationResponse>, Status> {
        Err(Status::unimplemented("Points/delete_vector_name"))
    }

    async fn search(
        &self,
        _request: Request<qdrant::SearchPoints>,
    ) -> Result<Response<qdrant::SearchResponse>, Status> {
        Err(Status::unimplemented("Points/search"))
    }

    async fn search_batch(
        &self,
        _request: Request<qdrant::SearchBatchPoints>,
    ) -> Result<Response<qdrant::SearchBatchResponse>, Status> {
        Err(Status::unimplemented("Points/search_batch"))
    }

    async fn search_groups(
        &self,
        _request: Request<qdrant::SearchPointGroups>,
    ) -> Result<Response<qdrant::SearchGroupsResponse>, Status> {
        Err(Status::unimplemented("Points/search_groups"))
    }

    async fn scroll(
        &self,
        request: Request<qdrant::ScrollPoints>,
    ) -> Result<Response<qdrant::ScrollResponse>, Status> {
        let r = request.into_inner();
        self.seen
            .read(&r.collection_name, "scroll", r.read_consistency.as_ref());
        self.points_scroll(r).map(Response::new)
    }

    async fn recommend(
        &self,
        _request: Request<qdrant::RecommendPoints>,
    ) -> Result<Response<qdrant::RecommendResponse>, Status> {
        Err(Status::unimplemented("Points/recommend"))
    }

    async fn recommend_batch(
        &self,
        _request: Request<qdrant::RecommendBatchPoints>,
    ) -> Result<Response<qdrant::RecommendBatchResponse>, Status> {
        Err(Status::unimplemented("Points/recommend_batch"))
    }

    async fn recommend_groups(
        &self,
        _request: Request<qdrant::RecommendPointGroups>,
    ) -> Result<Response<qdrant::RecommendGroupsResponse>, Status> {
        Err(Status::unimplemented("Points/recommend_groups"))
    }

    async fn discover(
        &self,
        _request: Request<qdrant::DiscoverPoints>,
    ) -> Result<Response<qdrant::DiscoverResponse>, Status> {
        Err(Status::unimplemented("Points/discover"))
    }

    async fn discover_batch(
        &self,
        _request: Request<qdrant::DiscoverBatchPoints>,
    ) -> Result<Response<qdrant::DiscoverBatchResponse>, Status> {
        Err(Status::unimplemented("Points/discover_batch"))
    }

    async fn count(
        &self,
        request: Request<qdrant::CountPoints>,
    ) -> Result<Response<qdrant::CountResponse>, Status> {
        let r = request.into_inner();
        self.seen
            .read(&r.collection_name, "count", r.read_consistency.as_ref());
        self.points_count(r).map(Response::new)
    }

    async fn update_batch(
        &self,
        _request: Request<qdrant::UpdateBatchPoints>,
    ) -> Result<Response<qdrant::UpdateBatchResponse>, Status> {
        Err(Status::unimplemented("Points/update_batch"))
    }

    async fn query(
        &self,
        request: Request<qdrant::QueryPoints>,
    ) -> Result<Response<qdrant::QueryResponse>, Status> {
        let r = request.into_inner();
        self.seen
            .read(&r.collection_name, "query", r.read_consistency.as_ref());
        self.points_query(r).map(Response::new)
    }

    async fn query_batch(
        &self,
        _request: Request<qdrant::QueryBatchPoints>,
    ) -> Result<Response<qdrant::QueryBatchResponse>, Status> {
        Err(Status::unimplemented("Points/query_batch"))
    }

    async fn query_groups(
        &self,
        _request: Request<qdrant::QueryPointGroups>,
    ) -> Result<Response<qdrant::QueryGroupsResponse>, Status> {
        Err(Status::unimplemented("Points/query_groups"))
    }

    async fn facet(
        &self,
        _request: Request<qdrant::FacetCounts>,
    ) -> Result<Response<qdrant::FacetResponse>, Status> {
        Err(Status::unimplemented("Points/facet"))
    }

    async fn search_matrix_pairs(
        &self,
        _request: Request<qdrant::SearchMatrixPoints>,
    ) -> Result<Response<qdrant::SearchMatrixPairsResponse>, Status> {
        Err(Status::unimplemented("Points/search_matrix_pairs"))
    }

    async fn search_matrix_offsets(
        &self,
        _request: Request<qdrant::SearchMatrixPoints>,
    ) -> Result<Response<qdrant::SearchMatrixOffsetsResponse>, Status> {
        Err(Status::unimplemented("Points/search_matrix_offsets"))
    }
}

#[tonic::async_trait]
impl Collections for FakeQdrant {
    async fn get(
        &self,
        request: Request<qdrant::GetCollectionInfoRequest>,
    ) -> Result<Response<qdrant::GetCollectionInfoResponse>, Status> {
        self.collections_get(request.into_inner())
            .map(Response::new)
    }

    async fn list(
        &self,
        _request: Request<qdrant::ListCollectionsRequest>,
    ) -> Result<Response<qdrant::ListCollectionsResponse>, Status> {
        Err(Status::unimplemented("Collections/list"))
    }

    // The on-disk flag as ragback sends it (newer servers add a `memory` placement beside it).
    #[allow(deprecated)]
    async fn create(
        &self,
        request: Request<qdrant::CreateCollection>,
    ) -> Result<Response<qdrant::CollectionOperationResponse>, Status> {
        let r = request.into_inner();
        self.seen.record(format!(
            "create {} shards={} replication={} write_consistency={} on_disk_payload={}",
            r.collection_name,
            r.shard_number.unwrap_or(1),
            r.replication_factor.unwrap_or(1),
            r.write_consistency_factor.unwrap_or(1),
            r.on_disk_payload
                .map_or("default".to_owned(), |b| b.to_string()),
        ));
        self.collections_create(r).map(Response::new)
    }

    async fn update(
        &self,
        _request: Request<qdrant::UpdateCollection>,
    ) -> Result<Response<qdrant::CollectionOperationResponse>, Status> {
        Err(Status::unimplemented("Collections/update"))
    }

    async fn delete(
        &self,
        request: Request<qdrant::DeleteCollection>,
    ) -> Result<Response<qdrant::CollectionOperationResponse>, Status> {
        let r = request.into_inner();
        self.seen.record(format!("drop {}", r.collection_name));
        self.collections_delete(r).map(Response::new)
    }

    async fn update_aliases(
        &self,
        _request: Request<qdrant::ChangeAliases>,
    ) -> Result<Response<qdrant::CollectionOperationResponse>, Status> {
        Err(Status::unimplemented("Collections/update_aliases"))
    }

    async fn list_collection_aliases(
        &self,
        _request: Request<qdrant::ListCollectionAliasesRequest>,
    ) -> Result<Response<qdrant::ListAliasesResponse>, Status> {
        Err(Status::unimplemented("Collections/list_collection_aliases"))
    }

    async fn list_aliases(
        &self,
        _request: Request<qdrant::ListAliasesRequest>,
    ) -> Result<Response<qdrant::ListAliasesResponse>, Status> {
        Err(Status::unimplemented("Collections/list_aliases"))
    }

    async fn collection_cluster_info(
        &self,
        _request: Request<qdrant::CollectionClusterInfoRequest>,
    ) -> Result<Response<qdrant::CollectionClusterInfoResponse>, Status> {
        Err(Status::unimplemented("Collections/collection_cluster_info"))
    }

    async fn collection_exists(
        &self,
        request: Request<qdrant::CollectionExistsRequest>,
    ) -> Result<Response<qdrant::CollectionExistsResponse>, Status> {
        self.collections_collection_exists(request.into_inner())
            .map(Response::new)
    }

    async fn update_collection_cluster_setup(
        &self,
        _request: Request<qdrant::UpdateCollectionClusterSetupRequest>,
    ) -> Result<Response<qdrant::UpdateCollectionClusterSetupResponse>, Status> {
        Err(Status::unimplemented(
            "Collections/update_collection_cluster_setup",
        ))
    }

    async fn create_shard_key(
        &self,
        _request: Request<qdrant::CreateShardKeyRequest>,
    ) -> Result<Response<qdrant::CreateShardKeyResponse>, Status> {
        Err(Status::unimplemented("Collections/create_shard_key"))
    }

    async fn delete_shard_key(
        &self,
        _request: Request<qdrant::DeleteShardKeyRequest>,
    ) -> Result<Response<qdrant::DeleteShardKeyResponse>, Status> {
        Err(Status::unimplemented("Collections/delete_shard_key"))
    }

    async fn list_shard_keys(
        &self,
        _request: Request<qdrant::ListShardKeysRequest>,
    ) -> Result<Response<qdrant::ListShardKeysResponse>, Status> {
        Err(Status::unimplemented("Collections/list_shard_keys"))
    }
}
