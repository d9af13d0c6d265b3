//! The collection: created on the first write with the layout's vectors and the owner index,
//! looked at once per process (its dimension, whether it has the lexical vector), and migrated
//! then when it was written before the lexical vector.

use std::collections::HashMap;

use qdrant_client::qdrant::create_vector_name_request::VectorConfig as NewVectorConfig;
use qdrant_client::qdrant::vectors_config::Config as VectorsConfigKind;
use qdrant_client::qdrant::{
    Condition, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    CreateVectorNameRequestBuilder, Distance, FieldType, Filter, KeywordIndexParamsBuilder,
    Modifier, PointVectors, SparseVectorConfig, SparseVectorCreationConfig, SparseVectorParams,
    UpdatePointVectorsBuilder, VectorParamsBuilder, VectorsConfigBuilder,
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

impl QdrantFactStore {
    /// The collection's dimension; `None` when the collection does not exist yet. The first
    /// look at an existing collection reads its configuration and migrates it (once per
    /// process, whoever asks first: the others wait for it).
    pub(super) async fn dimension(&self) -> Result<Option<usize>, FactStoreError> {
        if let Some(known) = self.known.get() {
            return Ok(Some(known.dimension));
        }
        let exists = self
            .client
            .collection_exists(&self.collection)
            .await
            .map_err(self.unavailable("checking the collection"))?;
        if !exists {
            return Ok(None);
        }
        let known = self.known.get_or_try_init(|| self.inspect()).await?;
        Ok(Some(known.dimension))
    }

    /// Reads the existing collection's configuration, and gives its facts lexical vectors when
    /// they lack them.
    async fn inspect(&self) -> Result<Collection, FactStoreError> {
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
        Ok(Collection {
            dimension: usize::try_from(size).unwrap_or(usize::MAX),
            lexical: self.add_lexical_vectors(has_lexical).await?,
        })
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
    pub(super) async fn ensure_collection(
        &self,
        dimension: usize,
    ) -> Result<usize, FactStoreError> {
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

    pub(super) fn check(store: usize, given: usize) -> Result<(), FactStoreError> {
        if store == given {
            Ok(())
        } else {
            Err(FactStoreError::DimensionMismatch { store, given })
        }
    }
}
