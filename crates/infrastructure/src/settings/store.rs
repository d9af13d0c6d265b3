//! `RAGBACK_STORE__*`: where facts are stored.

use std::path::PathBuf;
use std::time::Duration;

use ragback_application::bounds::{self, InvalidSetting, nonzero};
use ragback_integrations::config::seconds;
use secrecy::SecretString;
use serde::Deserialize;

/// Which fact store to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Qdrant Edge, embedded, on disk.
    Edge,
    /// A Qdrant server or cluster, over gRPC.
    Qdrant,
}

/// Fact store settings (`RAGBACK_STORE__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// The store.
    pub kind: StoreKind,
    /// Directory of the Qdrant Edge store (`edge`).
    pub path: PathBuf,
    /// gRPC URL of the Qdrant server (`qdrant`).
    pub url: String,
    /// API key of the Qdrant server, when it needs one.
    pub api_key: Option<SecretString>,
    /// Collection of the Qdrant server.
    pub collection: String,
    /// Timeout of one call to the Qdrant server (`timeout_secs`).
    #[serde(rename = "timeout_secs", deserialize_with = "seconds::deserialize")]
    pub timeout: Duration,
    /// The most facts one user or character may hold: adding past it is refused.
    pub max_facts_per_owner: usize,
    /// Shards of the collections ragback creates on a Qdrant server (`qdrant`).
    pub shard_number: u32,
    /// Copies of each shard (on a cluster: 3 keeps every shard with one node down).
    pub replication_factor: u32,
    /// Replicas that must acknowledge a write before it is acknowledged (at most the
    /// replication factor; 2 of 3 is a majority).
    pub write_consistency_factor: u32,
    /// Replicas a search reads: `majority`, `quorum`, `all` or a number (unset: one).
    pub read_consistency: Option<String>,
    /// Who orders writes: `weak`, `medium` (the shard's elected leader; writes go on with a node
    /// down) or `strong` (the first replica only).
    pub write_ordering: String,
    /// Payloads on disk rather than in memory (unset: the server's default).
    pub on_disk_payload: Option<bool>,
    /// Dense vectors on disk, memory-mapped (unset: in memory).
    pub on_disk_vectors: Option<bool>,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            kind: StoreKind::Edge,
            path: PathBuf::from("var/qdrant-edge"),
            url: "http://localhost:6334".into(),
            api_key: None,
            collection: "ragback_facts".into(),
            timeout: Duration::from_secs(10),
            max_facts_per_owner: 10_000,
            shard_number: 1,
            replication_factor: 1,
            write_consistency_factor: 1,
            read_consistency: None,
            write_ordering: "medium".into(),
            on_disk_payload: None,
            on_disk_vectors: None,
        }
    }
}

impl StoreSettings {
    /// Checks what parses but cannot be used; keys are relative to the section. The server's
    /// keys matter only for the server store.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        bounds::POSITIVE.setting_count("max_facts_per_owner", self.max_facts_per_owner)?;
        if self.kind != StoreKind::Qdrant {
            return Ok(());
        }
        if !cfg!(feature = "qdrant-server") {
            return Err(InvalidSetting::new(
                "kind",
                "this ragback was built without the `qdrant-server` feature",
            ));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(InvalidSetting::new(
                "url",
                "must be an http(s) gRPC URL, e.g. http://localhost:6334",
            ));
        }
        if self.collection.trim().is_empty() {
            return Err(InvalidSetting::new("collection", "must not be empty"));
        }
        for (key, value) in [
            ("shard_number", self.shard_number),
            ("replication_factor", self.replication_factor),
            ("write_consistency_factor", self.write_consistency_factor),
        ] {
            if value == 0 {
                return Err(InvalidSetting::new(key, "must be at least 1"));
            }
        }
        if self.write_consistency_factor > self.replication_factor {
            return Err(InvalidSetting::new(
                "write_consistency_factor",
                "must not exceed replication_factor: no write could be acknowledged",
            ));
        }
        if let Some(read) = &self.read_consistency {
            let level = read.trim().to_ascii_lowercase();
            let known = matches!(level.as_str(), "all" | "majority" | "quorum")
                || level.parse::<u64>().is_ok_and(|n| n > 0);
            if !known {
                return Err(InvalidSetting::new(
                    "read_consistency",
                    "is majority, quorum, all or a number of replicas",
                ));
            }
        }
        if !matches!(
            self.write_ordering.trim().to_ascii_lowercase().as_str(),
            "weak" | "medium" | "strong"
        ) {
            return Err(InvalidSetting::new(
                "write_ordering",
                "is weak, medium or strong",
            ));
        }
        nonzero("timeout_secs", self.timeout)
    }
}
