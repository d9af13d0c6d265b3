//! Settings of the local embedder, available even when the `local-embedder` feature is off (so
//! that configuration files stay valid across builds).

use std::path::PathBuf;

use ragback_application::bounds::{self, InvalidSetting};
use serde::Deserialize;

/// Settings of the local embedder (`RAGBACK_EMBEDDER__LOCAL__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalSettings {
    /// Directory holding `config.json`, `tokenizer.json` and `model.safetensors`.
    pub model_dir: PathBuf,
    /// Texts per inference batch (also the seeding batch).
    pub batch_size: usize,
    /// Batches that may run at once; more wait their turn instead of competing for the CPU.
    pub max_concurrency: usize,
}

impl LocalSettings {
    /// Checks what parses but cannot be used; keys are relative to the section.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        bounds::POSITIVE.setting_count("batch_size", self.batch_size)?;
        bounds::POSITIVE.setting_count("max_concurrency", self.max_concurrency)
    }
}

impl Default for LocalSettings {
    fn default() -> Self {
        Self {
            model_dir: PathBuf::from("models/all-MiniLM-L6-v2"),
            batch_size: 32,
            max_concurrency: 2,
        }
    }
}
