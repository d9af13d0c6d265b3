//! A collection on a Qdrant cluster: how it is sharded and replicated, how many replicas
//! acknowledge a write and answer a read. The collection is created with the settings, and an
//! existing one is checked against them at start-up: a difference is an error that says what
//! differs, never ignored.

use qdrant_client::qdrant::{
    CollectionParams, ReadConsistency, ReadConsistencyType, WriteOrdering, WriteOrderingType,
    read_consistency, vectors_config,
};
use ragback_application::ports::FactStoreError;

use super::QdrantFactStore;
use crate::layout::VECTOR;

/// How reads of a search are answered by the replicas of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistencyLevel {
    /// Every replica; a point must be on all of them.
    All,
    /// Every replica; a point must be on most of them.
    Majority,
    /// Half of the replicas and one more; a point must be on all of those.
    Quorum,
    /// This many replicas.
    Factor(u64),
}

impl ReadConsistencyLevel {
    /// Reads `majority`, `quorum`, `all` or a number of replicas.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "all" => Some(Self::All),
            "majority" => Some(Self::Majority),
            "quorum" => Some(Self::Quorum),
            number => number.parse().ok().filter(|n| *n > 0).map(Self::Factor),
        }
    }

    fn to_grpc(self) -> ReadConsistency {
        let value = match self {
            Self::All => read_consistency::Value::Type(ReadConsistencyType::All as i32),
            Self::Majority => read_consistency::Value::Type(ReadConsistencyType::Majority as i32),
            Self::Quorum => read_consistency::Value::Type(ReadConsistencyType::Quorum as i32),
            Self::Factor(n) => read_consistency::Value::Factor(n),
        };
        ReadConsistency { value: Some(value) }
    }
}

/// Which replica orders a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOrderingLevel {
    /// Any replica: fastest, concurrent writes to one point may end in any order.
    Weak,
    /// The shard's current leader (re-elected when it fails): consistent, and writes go on with a
    /// node down.
    Medium,
    /// The shard's first replica only: fails while that node is down.
    Strong,
}

impl WriteOrderingLevel {
    /// Reads `weak`, `medium` or `strong`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "weak" => Some(Self::Weak),
            "medium" => Some(Self::Medium),
            "strong" => Some(Self::Strong),
            _ => None,
        }
    }
}

/// The collection's layout on the cluster, and the consistency of reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Shards of the collection.
    pub shard_number: u32,
    /// Copies of each shard.
    pub replication_factor: u32,
    /// Replicas that must acknowledge a write.
    pub write_consistency_factor: u32,
    /// Replicas a search reads (`None`: the server's default, one).
    pub read_consistency: Option<ReadConsistencyLevel>,
    /// Who orders writes.
    pub write_ordering: WriteOrderingLevel,
    /// Payloads on disk rather than in memory (`None`: the server's default).
    pub on_disk_payload: Option<bool>,
    /// Dense vectors on disk (memory-mapped) rather than in memory (`None`: the default).
    pub on_disk_vectors: Option<bool>,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            shard_number: 1,
            replication_factor: 1,
            write_consistency_factor: 1,
            read_consistency: None,
            write_ordering: WriteOrderingLevel::Medium,
            on_disk_payload: None,
            on_disk_vectors: None,
        }
    }
}

impl ClusterSettings {
    /// The ordering every write asks for.
    pub(super) fn ordering(&self) -> WriteOrdering {
        let level = match self.write_ordering {
            WriteOrderingLevel::Weak => WriteOrderingType::Weak,
            WriteOrderingLevel::Medium => WriteOrderingType::Medium,
            WriteOrderingLevel::Strong => WriteOrderingType::Strong,
        };
        WriteOrdering {
            r#type: level as i32,
        }
    }

    /// The read consistency every search asks for, when one is set.
    pub(super) fn read(&self) -> Option<read_consistency::Value> {
        self.read_consistency
            .and_then(|level| level.to_grpc().value)
    }

    /// What differs between the settings and an existing collection's parameters. The on-disk
    /// flags are read as every server since 1.0 reports them (newer servers add a `memory`
    /// placement beside them, and keep the flags).
    #[allow(deprecated)]
    pub(super) fn differences(&self, params: &CollectionParams) -> Vec<String> {
        let mut found = Vec::new();
        let mut differ = |what: &str, setting: &str, collection: String, wanted: String| {
            if collection != wanted {
                found.push(format!(
                    "{what}: the collection has {collection}, RAGBACK_STORE__{setting} says {wanted}"
                ));
            }
        };
        differ(
            "shards",
            "SHARD_NUMBER",
            params.shard_number.to_string(),
            self.shard_number.to_string(),
        );
        differ(
            "replication",
            "REPLICATION_FACTOR",
            params.replication_factor.unwrap_or(1).to_string(),
            self.replication_factor.to_string(),
        );
        differ(
            "write consistency",
            "WRITE_CONSISTENCY_FACTOR",
            params.write_consistency_factor.unwrap_or(1).to_string(),
            self.write_consistency_factor.to_string(),
        );
        if let Some(wanted) = self.on_disk_payload {
            differ(
                "payload on disk",
                "ON_DISK_PAYLOAD",
                params.on_disk_payload.to_string(),
                wanted.to_string(),
            );
        }
        if let Some(wanted) = self.on_disk_vectors {
            let on_disk = params
                .vectors_config
                .as_ref()
                .and_then(|v| v.config.as_ref())
                .and_then(|c| match c {
                    vectors_config::Config::ParamsMap(map) => map.map.get(VECTOR)?.on_disk,
                    vectors_config::Config::Params(p) => p.on_disk,
                })
                .unwrap_or(false);
            differ(
                "vectors on disk",
                "ON_DISK_VECTORS",
                on_disk.to_string(),
                wanted.to_string(),
            );
        }
        found
    }
}

impl QdrantFactStore {
    /// Checks an existing collection's layout against the settings: an error naming every
    /// difference (the shards are fixed at creation; replication and write consistency can be
    /// changed on the server, `PATCH /collections/{name}`).
    pub(super) fn check_layout(&self, params: &CollectionParams) -> Result<(), FactStoreError> {
        let differences = self.cluster.differences(params);
        if differences.is_empty() {
            return Ok(());
        }
        Err(FactStoreError::Misconfigured(format!(
            "Qdrant collection `{}` at {} is not laid out as the settings say — {}. Set the \
             settings to the collection's values, or change the collection (replication and \
             write consistency: PATCH /collections/{}; shards: a new collection, then \
             `ragback facts export | ragback facts import`)",
            self.collection,
            self.url,
            differences.join("; "),
            self.collection
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_read_as_documented() {
        assert_eq!(
            ReadConsistencyLevel::parse("Majority"),
            Some(ReadConsistencyLevel::Majority)
        );
        assert_eq!(
            ReadConsistencyLevel::parse("2"),
            Some(ReadConsistencyLevel::Factor(2))
        );
        assert_eq!(ReadConsistencyLevel::parse("0"), None);
        assert_eq!(ReadConsistencyLevel::parse("most"), None);
        assert_eq!(
            WriteOrderingLevel::parse("strong"),
            Some(WriteOrderingLevel::Strong)
        );
    }

    #[test]
    #[allow(deprecated)] // the on-disk flag, as servers report it
    fn every_difference_is_named() {
        let settings = ClusterSettings {
            shard_number: 3,
            replication_factor: 3,
            write_consistency_factor: 2,
            on_disk_payload: Some(true),
            ..ClusterSettings::default()
        };
        let params = CollectionParams {
            shard_number: 1,
            replication_factor: Some(3),
            write_consistency_factor: Some(1),
            on_disk_payload: true,
            ..CollectionParams::default()
        };
        let found = settings.differences(&params);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0]
                .starts_with("shards: the collection has 1, RAGBACK_STORE__SHARD_NUMBER says 3")
        );
        assert!(found[1].contains("WRITE_CONSISTENCY_FACTOR says 2"));
    }
}
