//! `RAGBACK_SERVER__*`: the HTTP server, its limits and its keys.

use std::net::SocketAddr;
use std::time::Duration;

use ragback_application::bounds::{self, Bound, InvalidSetting, nonzero};
use ragback_domain::limits;
use ragback_integrations::config::{millis, seconds};
use serde::Deserialize;

use super::{ApiKeys, List};

/// The smallest body limit that still takes a request.
const MIN_BODY_BYTES: Bound = Bound::at_least(1024.0);

/// HTTP server settings (`RAGBACK_SERVER__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Listen address.
    pub addr: SocketAddr,
    /// Largest request body, in bytes.
    pub body_limit_bytes: usize,
    /// Most messages one request may carry.
    pub max_messages: usize,
    /// Bearer tokens for every route but `/health` and `/ready` (comma-separated in the
    /// environment). None, and no admin keys either: no authentication.
    pub api_keys: ApiKeys,
    /// Bearer tokens that may also add and delete facts. When set, `api_keys` only read facts.
    pub admin_api_keys: ApiKeys,
    /// Longest chat message, in characters (at most the domain's own limit).
    pub max_message_chars: usize,
    /// Most facts one `POST …/facts` call may add.
    pub max_facts_per_call: usize,
    /// Origins allowed to call the API from a browser (comma-separated; `*` for any). Empty: no
    /// CORS headers, so browsers refuse cross-origin calls.
    pub cors_origins: List,
    /// Generations (`/generate`, `/api/v1/chat`) running at once; more wait in a queue.
    pub max_concurrency: usize,
    /// How long a generation may wait for a free slot before it gets 503 (`queue_timeout_ms`).
    #[serde(rename = "queue_timeout_ms", deserialize_with = "millis::deserialize")]
    pub queue_timeout: Duration,
    /// Deadline of one generation, retrieval and model together (`request_timeout_ms`).
    /// `X-Request-Timeout` can shorten it for one request, never lengthen it.
    #[serde(
        rename = "request_timeout_ms",
        deserialize_with = "millis::deserialize"
    )]
    pub request_timeout: Duration,
    /// On SIGTERM/SIGINT, how long in-flight requests (streams too) may take to finish
    /// (`drain_timeout_secs`).
    #[serde(
        rename = "drain_timeout_secs",
        deserialize_with = "seconds::deserialize"
    )]
    pub drain_timeout: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([0, 0, 0, 0], 8000)),
            body_limit_bytes: 256 * 1024,
            max_messages: 500,
            api_keys: ApiKeys::default(),
            admin_api_keys: ApiKeys::default(),
            max_message_chars: limits::MESSAGE_CHARS,
            max_facts_per_call: 256,
            cors_origins: List::default(),
            max_concurrency: 1024,
            queue_timeout: Duration::from_millis(2_000),
            request_timeout: Duration::from_millis(60_000),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

impl ServerSettings {
    /// Checks what parses but cannot be used; keys are relative to the section.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        MIN_BODY_BYTES.setting_count("body_limit_bytes", self.body_limit_bytes)?;
        bounds::POSITIVE.setting_count("max_messages", self.max_messages)?;
        Bound::between(1.0, limits::MESSAGE_CHARS as f64)
            .setting_count("max_message_chars", self.max_message_chars)?;
        bounds::POSITIVE.setting_count("max_facts_per_call", self.max_facts_per_call)?;
        bounds::POSITIVE.setting_count("max_concurrency", self.max_concurrency)?;
        nonzero("request_timeout_ms", self.request_timeout)?;
        if let Some(origin) =
            self.cors_origins.0.iter().find(|o| {
                o.as_str() != "*" && !(o.starts_with("http://") || o.starts_with("https://"))
            })
        {
            return Err(InvalidSetting::new(
                "cors_origins",
                format!("`{origin}` is not an origin: use `https://host[:port]` or `*`"),
            ));
        }
        Ok(())
    }
}
