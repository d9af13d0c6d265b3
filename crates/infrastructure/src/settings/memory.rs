//! `RAGBACK_MEMORY__*`: facts extracted from the dialogue.

use std::path::PathBuf;

use ragback_application::bounds::{self, InvalidSetting};
use serde::Deserialize;

/// Memory extraction settings (`RAGBACK_MEMORY__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// The directory of the extraction and reconciliation templates.
    pub prompts: PathBuf,
    /// The model that extracts (default: `RAGBACK_LLM__MODEL`), through the same provider.
    pub model: Option<String>,
    /// Messages before the last user message shown as context.
    pub context_messages: usize,
    /// Whether the character's own new canon becomes character facts.
    pub character_canon: bool,
    /// A candidate this similar (cosine) to a stored fact is that fact.
    pub duplicate_threshold: f32,
    /// A candidate this similar to a stored fact may update or retract it: the model decides.
    pub related_threshold: f32,
    /// Stored facts the model sees for a contested candidate.
    pub neighbours: usize,
    /// The longest answer of the model, in tokens.
    pub max_tokens: u32,
    /// Extract after every `/generate` reply unless the request says `"memory": {"extract": false}`.
    pub auto: bool,
    /// Extractions waiting to run after their replies; more are dropped (and counted).
    pub queue_capacity: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            prompts: PathBuf::from("prompts/memory"),
            model: None,
            context_messages: 4,
            character_canon: false,
            duplicate_threshold: 0.9,
            related_threshold: 0.55,
            neighbours: 3,
            max_tokens: 300,
            auto: false,
            queue_capacity: 256,
        }
    }
}

impl MemoryConfig {
    /// Checks what parses but cannot be used; keys are relative to the section.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        bounds::THRESHOLD.setting("duplicate_threshold", self.duplicate_threshold)?;
        bounds::THRESHOLD.setting("related_threshold", self.related_threshold)?;
        if self.related_threshold > self.duplicate_threshold {
            return Err(InvalidSetting::new(
                "related_threshold",
                "must not be above duplicate_threshold",
            ));
        }
        bounds::TOP_K.setting_count("neighbours", self.neighbours)?;
        bounds::POSITIVE.setting_count("queue_capacity", self.queue_capacity)?;
        bounds::MAX_TOKENS.setting_count("max_tokens", self.max_tokens as usize)
    }
}
