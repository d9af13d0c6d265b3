//! One collection of the fake server: a Qdrant Edge shard and its vector configuration.

use std::collections::HashMap;

use qdrant_client::qdrant::{self};
use qdrant_edge::{EdgeShard, EdgeSparseVectorParamsBuilder, Modifier, VectorInternal};
use tonic::Status;

use super::convert::input_vector;

/// One collection: a Qdrant Edge shard in a temporary directory.
pub(super) struct Collection {
    pub(super) shard: EdgeShard,
    pub(super) vectors: HashMap<String, u64>,
    /// Sparse vector names, and whether each has the IDF modifier.
    pub(super) sparse: HashMap<String, bool>,
    /// Its layout as created (shards, replication, write consistency, payload on disk).
    pub(super) layout: qdrant::CollectionParams,
    pub(super) _dir: tempfile::TempDir,
}

impl Collection {
    /// Checks a named vector against the collection's configuration.
    pub(super) fn check(&self, name: &str, vector: &VectorInternal) -> Result<(), Status> {
        let fits = match vector {
            VectorInternal::Dense(data) => self
                .vectors
                .get(name)
                .is_some_and(|size| *size as usize == data.len()),
            VectorInternal::Sparse(_) => self.sparse.contains_key(name),
            VectorInternal::MultiDense(_) => false,
        };
        if fits {
            Ok(())
        } else {
            Err(Status::invalid_argument(format!(
                "Wrong input: Vector dimension error or no vector named `{name}`"
            )))
        }
    }

    /// The named vectors of a point, checked.
    pub(super) fn named(
        &self,
        vectors: Option<qdrant::Vectors>,
    ) -> Result<HashMap<String, VectorInternal>, Status> {
        let Some(qdrant::vectors::VectorsOptions::Vectors(named)) =
            vectors.and_then(|v| v.vectors_options)
        else {
            return Err(Status::unimplemented("only named vectors"));
        };
        let mut vectors = HashMap::new();
        for (name, vector) in named.vectors {
            let vector = input_vector(vector)?;
            self.check(&name, &vector)?;
            vectors.insert(name, vector);
        }
        Ok(vectors)
    }
}

pub(super) fn sparse_params(idf: bool) -> qdrant_edge::EdgeSparseVectorParams {
    let params = EdgeSparseVectorParamsBuilder::new();
    if idf {
        params.modifier(Modifier::Idf).build()
    } else {
        params.build()
    }
}

pub(super) fn is_idf(modifier: Option<i32>) -> bool {
    modifier == Some(qdrant::Modifier::Idf as i32)
}
