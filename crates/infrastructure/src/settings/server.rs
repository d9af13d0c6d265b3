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
    /// Listen address. Loopback by default: serving other machines is a decision (keys, or
    /// `allow_unauthenticated`).
    pub addr: SocketAddr,
    /// Largest request body, in bytes.
    pub body_limit_bytes: usize,
    /// Most messages one request may carry.
    pub max_messages: usize,
    /// Bearer tokens for every route but `/health` and `/ready` (comma-separated in the
    /// environment). None, and no admin keys either: no authentication.
    pub api_keys: ApiKeys,
    /// Bearer tokens that may also have facts learned from their turns (memory extraction).
    /// When set (or admin keys are), `api_keys` only read.
    pub memory_api_keys: ApiKeys,
    /// Bearer tokens that may do everything, adding and deleting facts included. When set,
    /// `api_keys` only read.
    pub admin_api_keys: ApiKeys,
    /// Serve a non-loopback address without any key. Off: such a start-up is refused.
    pub allow_unauthenticated: bool,
    /// Longest chat message, in characters (at most the domain's own limit).
    pub max_message_chars: usize,
    /// Most facts one `POST …/facts` call may add.
    pub max_facts_per_call: usize,
    /// Origins allowed to call the API from a browser (comma-separated; `*` for any). Empty: no
    /// CORS headers, so browsers refuse cross-origin calls.
    pub cors_origins: List,
    /// Generations (`/generate`, `/api/v1/chat`) running at once; more wait in a queue.
    pub max_concurrency: usize,
    /// Other calls that reach the embedder or the model (adding and searching facts, memory
    /// extraction) running at once; more wait in a queue.
    pub max_upstream_concurrency: usize,
    /// Connections open at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Connections open at once from one IP address (0: no limit of its own); more are closed.
    pub max_connections_per_ip: usize,
    /// Time a connection has to send a request's headers, and the longest a keep-alive
    /// connection stays idle (`header_timeout_ms`).
    #[serde(rename = "header_timeout_ms", deserialize_with = "millis::deserialize")]
    pub header_timeout: Duration,
    /// Time a request has to send its whole body (`body_timeout_ms`); 408 after it.
    #[serde(rename = "body_timeout_ms", deserialize_with = "millis::deserialize")]
    pub body_timeout: Duration,
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
            addr: SocketAddr::from(([127, 0, 0, 1], 8000)),
            body_limit_bytes: 256 * 1024,
            max_messages: 500,
            api_keys: ApiKeys::default(),
            memory_api_keys: ApiKeys::default(),
            admin_api_keys: ApiKeys::default(),
            allow_unauthenticated: false,
            max_message_chars: limits::MESSAGE_CHARS,
            max_facts_per_call: 256,
            cors_origins: List::default(),
            max_concurrency: 1024,
            max_upstream_concurrency: 16,
            max_connections: 4_096,
            max_connections_per_ip: 1_024,
            header_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(15),
            queue_timeout: Duration::from_millis(2_000),
            request_timeout: Duration::from_millis(60_000),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

impl ServerSettings {
    /// Whether no key of any kind is configured (authentication off).
    pub fn no_keys(&self) -> bool {
        self.api_keys.is_empty()
            && self.memory_api_keys.is_empty()
            && self.admin_api_keys.is_empty()
    }

    /// Refuses to serve `addr` (the configured one, or `--addr`) to other machines with no key,
    /// unless `allow_unauthenticated` says so.
    pub fn check_exposure(&self, addr: SocketAddr) -> Result<(), InvalidSetting> {
        if self.no_keys() && !addr.ip().is_loopback() && !self.allow_unauthenticated {
            return Err(InvalidSetting::new(
                "addr",
                format!(
                    "{addr} is reachable from other machines and no API key is set: set \
                     RAGBACK_SERVER__API_KEYS (and ADMIN_API_KEYS), bind 127.0.0.1, or say \
                     RAGBACK_SERVER__ALLOW_UNAUTHENTICATED=true"
                ),
            ));
        }
        Ok(())
    }

    /// Checks what parses but cannot be used; keys are relative to the section.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        MIN_BODY_BYTES.setting_count("body_limit_bytes", self.body_limit_bytes)?;
        bounds::POSITIVE.setting_count("max_messages", self.max_messages)?;
        Bound::between(1.0, limits::MESSAGE_CHARS as f64)
            .setting_count("max_message_chars", self.max_message_chars)?;
        bounds::POSITIVE.setting_count("max_facts_per_call", self.max_facts_per_call)?;
        bounds::POSITIVE.setting_count("max_concurrency", self.max_concurrency)?;
        bounds::POSITIVE
            .setting_count("max_upstream_concurrency", self.max_upstream_concurrency)?;
        bounds::POSITIVE.setting_count("max_connections", self.max_connections)?;
        nonzero("request_timeout_ms", self.request_timeout)?;
        nonzero("header_timeout_ms", self.header_timeout)?;
        nonzero("body_timeout_ms", self.body_timeout)?;
        for (key, keys) in [
            ("api_keys", &self.api_keys),
            ("memory_api_keys", &self.memory_api_keys),
            ("admin_api_keys", &self.admin_api_keys),
        ] {
            if let Some(problem) = keys.problem() {
                return Err(InvalidSetting::new(key, problem));
            }
        }
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
