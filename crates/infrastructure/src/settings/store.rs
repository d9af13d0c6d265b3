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
        nonzero("timeout_secs", self.timeout)
    }
}
