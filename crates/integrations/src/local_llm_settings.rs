//! Settings of the in-process chat model, available even when the `local-llm` feature is off (so
//! that configuration files stay valid across builds).

use std::path::PathBuf;

use ragback_application::bounds::{self, Bound, InvalidSetting};
use serde::Deserialize;

/// The default model: SmolLM2-135M-Instruct, Q4_1, as `make model` puts it.
pub const DEFAULT_MODEL_PATH: &str = "models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Tokens of context of one generation: prompt and reply together.
const CONTEXT_TOKENS: Bound = Bound::between(256.0, 131_072.0);

/// Settings of the in-process chat model (`RAGBACK_LLM__LOCAL__*`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalLlmSettings {
    /// A GGUF instruct model with a chat template.
    pub model_path: PathBuf,
    /// Generations computed at once, each on its own worker thread with its own context; more
    /// wait their turn (under their deadline).
    pub max_concurrency: usize,
    /// CPU threads per generation; 0 means one per core but one (at least one): llama.cpp's
    /// threads spin, and a generation that shares its cores with other work slows down many
    /// times over.
    pub threads: usize,
    /// Tokens of context per generation (prompt and reply); at most the model's own.
    pub context_tokens: usize,
    /// Penalty on tokens seen in the last `repeat_last_n` tokens (1 = none); keeps a small model
    /// from looping.
    pub repeat_penalty: f32,
    /// How many of the latest tokens the repeat penalty looks at.
    pub repeat_last_n: usize,
    /// Keep the KV cache of the prompt's prefix shared with the worker's previous generation
    /// (consecutive turns of a conversation share their stable part and most of the history):
    /// only the rest of the prompt is decoded.
    pub reuse_prefix: bool,
}

impl Default for LocalLlmSettings {
    fn default() -> Self {
        Self {
            model_path: PathBuf::from(DEFAULT_MODEL_PATH),
            max_concurrency: 1,
            threads: 0,
            context_tokens: 2_048,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            reuse_prefix: true,
        }
    }
}

impl LocalLlmSettings {
    /// Checks what parses but cannot be used; keys are relative to the section.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        bounds::POSITIVE.setting_count("max_concurrency", self.max_concurrency)?;
        CONTEXT_TOKENS.setting_count("context_tokens", self.context_tokens)?;
        Bound::between(1.0, 2.0).setting("repeat_penalty", self.repeat_penalty)?;
        Bound::between(0.0, 4_096.0).setting_count("repeat_last_n", self.repeat_last_n)
    }

    /// The threads of one generation: the setting, or one per core but one, leaving headroom for
    /// the server, the embedder and whatever else runs on the machine.
    pub fn resolved_threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism()
                .map_or(1, |cores| usize::from(cores).saturating_sub(1))
                .max(1)
        }
    }
}
