//! `RAGBACK_SUMMARY__*`: the rolling summary of long conversations.

use std::path::PathBuf;

use ragback_application::bounds::{self, InvalidSetting};
use serde::Deserialize;

/// Rolling summary settings (`RAGBACK_SUMMARY__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SummaryConfig {
    /// Whether turns with a `conversation_id` get a summary of what fell out of the prompt.
    pub enabled: bool,
    /// The directory of the summary's templates (`system.tera`, `user.tera`).
    pub prompts: PathBuf,
    /// The model that summarizes (default: `RAGBACK_LLM__MODEL`), through the same provider.
    pub model: Option<String>,
    /// The longest summary the model may write, in tokens.
    pub max_tokens: u32,
    /// Summaries waiting to be written after their replies; more are dropped (the next turn
    /// queues them again).
    pub queue_capacity: usize,
}

impl Default for SummaryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            prompts: PathBuf::from("prompts/summary"),
            model: None,
            max_tokens: 400,
            queue_capacity: 256,
        }
    }
}

impl SummaryConfig {
    /// Checks what parses but cannot be used; keys are relative to the section.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        bounds::POSITIVE.setting_count("queue_capacity", self.queue_capacity)?;
        bounds::MAX_TOKENS.setting_count("max_tokens", self.max_tokens as usize)
    }
}
