//! The store the configuration chooses: Qdrant Edge in a directory, or a Qdrant server.

use std::sync::Arc;

use ragback_application::ports::{FactStore, FactStoreError, JobStore, SummaryStore};
use ragback_integrations::edge::EdgeFactStore;

use super::{WiringError, setting};
use crate::{Settings, StoreKind};

/// One store, seen through each port it serves.
#[derive(Clone)]
pub struct Stores {
    /// The facts.
    pub facts: Arc<dyn FactStore>,
    /// Conversation summaries.
    pub summaries: Arc<dyn SummaryStore>,
    /// Queued background jobs.
    pub jobs: Arc<dyn JobStore>,
}

/// Opens the configured fact store.
pub fn open_store(settings: &Settings) -> Result<Arc<dyn FactStore>, WiringError> {
    open_stores(settings).map(|stores| stores.facts)
}

/// Opens the configured store, for facts, summaries and jobs alike.
pub fn open_stores(settings: &Settings) -> Result<Stores, WiringError> {
    fn all<S: FactStore + SummaryStore + JobStore + 'static>(store: S) -> Stores {
        let store = Arc::new(store);
        Stores {
            facts: store.clone(),
            summaries: store.clone(),
            jobs: store,
        }
    }
    match settings.store.kind {
        StoreKind::Edge => EdgeFactStore::open(&settings.store.path)
            .map(all)
            .map_err(|e| {
                let variable = format!("RAGBACK_STORE__PATH={}", settings.store.path.display());
                match e {
                    FactStoreError::Locked(_) => WiringError::StoreLocked(format!("{variable}: {e}")),
                    _ => setting(variable)(e),
                }
            }),
        #[cfg(feature = "qdrant-server")]
        StoreKind::Qdrant => {
            use ragback_integrations::qdrant::{
                ClusterSettings, QdrantFactStore, QdrantSettings, ReadConsistencyLevel,
                WriteOrderingLevel,
            };
            let s = &settings.store;
            QdrantFactStore::new(&QdrantSettings {
                url: s.url.clone(),
                api_key: s.api_key.clone(),
                collection: s.collection.clone(),
                timeout: s.timeout,
                // Both parsed already by the settings' validation.
                cluster: ClusterSettings {
                    shard_number: s.shard_number,
                    replication_factor: s.replication_factor,
                    write_consistency_factor: s.write_consistency_factor,
                    read_consistency: s
                        .read_consistency
                        .as_deref()
                        .and_then(ReadConsistencyLevel::parse),
                    write_ordering: WriteOrderingLevel::parse(&s.write_ordering)
                        .unwrap_or(WriteOrderingLevel::Medium),
                    on_disk_payload: s.on_disk_payload,
                    on_disk_vectors: s.on_disk_vectors,
                },
            })
            .map(all)
            .map_err(setting("RAGBACK_STORE__URL"))
        }
        #[cfg(not(feature = "qdrant-server"))]
        StoreKind::Qdrant => Err(WiringError::Unavailable(
            "RAGBACK_STORE__KIND=qdrant: this ragback was built without the `qdrant-server` feature"
                .into(),
        )),
    }
}
