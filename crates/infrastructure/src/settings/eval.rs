//! `RAGBACK_EVAL__*`: the judges of `ragback eval pairwise` and `ragback eval moderate`, and the
//! server `ragback eval replay` calls.

use std::time::Duration;

use ragback_integrations::config::seconds;
use secrecy::SecretString;
use serde::Deserialize;

/// Evaluation settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSettings {
    /// The LLM judge (`RAGBACK_EVAL__JUDGE__*`).
    pub judge: JudgeSettings,
    /// Bearer token for the ragback server a replay calls (`RAGBACK_EVAL__SERVER_API_KEY`).
    pub server_api_key: Option<SecretString>,
    /// OpenAI's moderation endpoint (`RAGBACK_EVAL__MODERATION__*`), for `moderate --adapter openai`.
    pub moderation: ModerationSettings,
    /// The user simulator of `ragback eval simulate` (`RAGBACK_EVAL__SIMULATOR__*`).
    pub simulator: SimulatorSettings,
}

/// The user simulator: any OpenAI-compatible chat-completions endpoint, sampled (a person does
/// not answer the same way twice) with a seed per turn.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatorSettings {
    /// Its base URL (`…/v1`); unset, the local chat model simulates as a smoke test.
    pub base_url: Option<String>,
    /// Its key.
    pub api_key: Option<SecretString>,
    /// Its model.
    pub model: String,
    /// Deadline of one turn (`timeout_secs`).
    #[serde(rename = "timeout_secs", deserialize_with = "seconds::deserialize")]
    pub timeout: Duration,
    /// Tokens of one user turn.
    pub max_tokens: u32,
    /// Its sampling temperature.
    pub temperature: f32,
}

impl Default for SimulatorSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            api_key: None,
            model: "openai/gpt-4o-mini".into(),
            timeout: Duration::from_secs(60),
            max_tokens: 120,
            temperature: 0.8,
        }
    }
}

/// A moderation endpoint speaking OpenAI's `POST /moderations`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModerationSettings {
    /// Its base URL.
    pub base_url: String,
    /// Its key.
    pub api_key: Option<SecretString>,
    /// Its model.
    pub model: String,
    /// Deadline of one call (`timeout_secs`).
    #[serde(rename = "timeout_secs", deserialize_with = "seconds::deserialize")]
    pub timeout: Duration,
}

impl Default for ModerationSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".into(),
            api_key: None,
            model: "omni-moderation-latest".into(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// The judge: any OpenAI-compatible chat-completions endpoint, called at temperature 0.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JudgeSettings {
    /// Its base URL (`…/v1`); unset, no API judge: the local chat model serves as a smoke-test
    /// judge when it is present.
    pub base_url: Option<String>,
    /// Its key.
    pub api_key: Option<SecretString>,
    /// Its model.
    pub model: String,
    /// Deadline of one judge call (`timeout_secs`).
    #[serde(rename = "timeout_secs", deserialize_with = "seconds::deserialize")]
    pub timeout: Duration,
    /// Tokens of one verdict.
    pub max_tokens: u32,
}

impl Default for JudgeSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            api_key: None,
            model: "openai/gpt-4o".into(),
            timeout: Duration::from_secs(60),
            max_tokens: 400,
        }
    }
}
