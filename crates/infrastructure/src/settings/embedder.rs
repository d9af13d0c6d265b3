//! `RAGBACK_EMBEDDER__*`: which embedder turns texts into vectors, and its time limits.

use std::time::Duration;

use ragback_application::RetryPolicy;
use ragback_application::bounds::{self, InvalidSetting, nonzero};
use ragback_integrations::cohere::CohereSettings;
use ragback_integrations::config::millis;
use ragback_integrations::local_settings::LocalSettings;
use serde::Deserialize;

/// Which embedder to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbedderProvider {
    /// all-MiniLM-L6-v2, in-process.
    Local,
    /// Cohere over HTTP.
    Cohere,
    /// No embedder: retrieval is skipped.
    None,
}

/// Embedder settings (`RAGBACK_EMBEDDER__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedderSettings {
    /// `local`, `cohere` or `none`; unset means Cohere when a Cohere key is set, else local.
    pub provider: Option<EmbedderProvider>,
    /// Time allowed to embed a chat message, retries included (`query_timeout_ms`); past it the
    /// reply goes on without facts.
    #[serde(rename = "query_timeout_ms", deserialize_with = "millis::deserialize")]
    pub query_timeout: Duration,
    /// Time allowed to embed one batch of facts when seeding, retries included
    /// (`batch_timeout_ms`).
    #[serde(rename = "batch_timeout_ms", deserialize_with = "millis::deserialize")]
    pub batch_timeout: Duration,
    /// Attempts per embedding call, the first included.
    pub max_attempts: u32,
    /// First retry delay (`retry_initial_backoff_ms`).
    #[serde(
        rename = "retry_initial_backoff_ms",
        deserialize_with = "millis::deserialize"
    )]
    pub retry_initial_backoff: Duration,
    /// Longest retry delay (`retry_max_backoff_ms`).
    #[serde(
        rename = "retry_max_backoff_ms",
        deserialize_with = "millis::deserialize"
    )]
    pub retry_max_backoff: Duration,
    /// Cohere settings.
    pub cohere: CohereSettings,
    /// Local model settings.
    pub local: LocalSettings,
}

impl Default for EmbedderSettings {
    fn default() -> Self {
        Self {
            provider: None,
            query_timeout: Duration::from_millis(3_000),
            batch_timeout: Duration::from_millis(60_000),
            max_attempts: 3,
            retry_initial_backoff: Duration::from_millis(200),
            retry_max_backoff: Duration::from_millis(2_000),
            cohere: CohereSettings::default(),
            local: LocalSettings::default(),
        }
    }
}

impl EmbedderSettings {
    /// The provider after applying the default rule.
    pub fn resolved_provider(&self) -> EmbedderProvider {
        self.provider.unwrap_or(if self.cohere.api_key().is_some() {
            EmbedderProvider::Cohere
        } else {
            EmbedderProvider::Local
        })
    }

    /// The retry policy of embedding calls.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            initial_backoff: self.retry_initial_backoff,
            max_backoff: self.retry_max_backoff,
        }
    }

    /// Checks what parses but cannot be used; keys are relative to the section.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        bounds::POSITIVE.setting("max_attempts", self.max_attempts)?;
        nonzero("query_timeout_ms", self.query_timeout)?;
        nonzero("batch_timeout_ms", self.batch_timeout)?;
        self.local.validate().map_err(|e| e.under("local"))?;
        self.cohere.validate().map_err(|e| e.under("cohere"))?;
        if self.resolved_provider() == EmbedderProvider::Local && !cfg!(feature = "local-embedder")
        {
            return Err(InvalidSetting::new(
                "provider",
                "this ragback was built without the `local-embedder` feature: choose cohere or none",
            ));
        }
        if self.provider == Some(EmbedderProvider::Cohere) && self.cohere.api_key().is_none() {
            return Err(InvalidSetting::new(
                "cohere.api_key",
                "RAGBACK_EMBEDDER__PROVIDER=cohere needs a Cohere key (or set COHERE_API_KEY)",
            ));
        }
        Ok(())
    }
}
