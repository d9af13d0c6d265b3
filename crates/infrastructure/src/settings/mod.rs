//! The typed configuration and its validation.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ragback_application::ports::GenerationParams;
use ragback_application::retrieval::MAX_TOP_K;
use ragback_application::{ChatSettings, RetrievalSettings, RetryPolicy};
use ragback_domain::{UserId, limits};
use ragback_integrations::cohere::CohereSettings;
use ragback_integrations::llm::LlmSettings;
use ragback_integrations::local_settings::LocalSettings;
use ragback_integrations::prompt::PromptSettings;
use secrecy::SecretString;
use serde::Deserialize;

use crate::sources::{ConfigSources, variable_of};

/// All of ragback's configuration. Every field has a default; see `.env.template`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// HTTP server.
    pub server: ServerSettings,
    /// Language model.
    pub llm: LlmSettings,
    /// Embeddings.
    pub embedder: EmbedderSettings,
    /// Fact store.
    pub store: StoreSettings,
    /// Retrieval defaults.
    pub retrieval: RetrievalConfig,
    /// Prompt template.
    pub prompt: PromptSettings,
    /// Log format: `pretty` or `json`.
    pub log_format: LogFormat,
}

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
    /// How long a generation may wait for a free slot before it gets 503.
    pub queue_timeout_ms: u64,
    /// Deadline of one generation, retrieval and model together. `X-Request-Timeout` (in
    /// milliseconds) can shorten it for one request, never lengthen it.
    pub request_timeout_ms: u64,
    /// On SIGTERM/SIGINT, how long in-flight requests (streams too) may take to finish.
    pub drain_timeout_secs: u64,
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
            queue_timeout_ms: 2_000,
            request_timeout_ms: 60_000,
            drain_timeout_secs: 30,
        }
    }
}

/// A set of secret bearer tokens: a comma-separated string (`RAGBACK_SERVER__API_KEYS=k1,k2`) or
/// a TOML list. Blank entries are dropped.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys(pub Vec<SecretString>);

impl ApiKeys {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for ApiKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let keys = comma_list(
            deserializer,
            "an API key must not be a plain number: use a long random token",
        )?;
        Ok(Self(keys.into_iter().map(SecretString::from).collect()))
    }
}

/// Plain strings: a comma-separated string or a TOML list. Blank entries are dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct List(pub Vec<String>);

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        comma_list(deserializer, "expected text, e.g. `a,b`").map(Self)
    }
}

/// A list, or one comma-separated string, trimmed, blanks dropped. A value made of digits (or
/// `true`) arrives as a number (or a boolean), already altered (`0123` → 123): refused with
/// `refusal`.
fn comma_list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    refusal: &'static str,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
        Other(serde::de::IgnoredAny),
    }
    let items: Vec<String> = match Raw::deserialize(deserializer)? {
        Raw::List(items) => items,
        Raw::Text(text) => text.split(',').map(str::to_owned).collect(),
        Raw::Other(_) => return Err(serde::de::Error::custom(refusal)),
    };
    Ok(items
        .into_iter()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect())
}

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
    /// Time allowed to embed a chat message, retries included, in milliseconds; past it the
    /// reply goes on without facts.
    pub query_timeout_ms: u64,
    /// Time allowed to embed one batch of facts when seeding, retries included, in milliseconds.
    pub batch_timeout_ms: u64,
    /// Attempts per embedding call, the first included.
    pub max_attempts: u32,
    /// First retry delay, in milliseconds.
    pub retry_initial_backoff_ms: u64,
    /// Longest retry delay, in milliseconds.
    pub retry_max_backoff_ms: u64,
    /// Cohere settings.
    pub cohere: CohereSettings,
    /// Local model settings.
    pub local: LocalSettings,
}

impl Default for EmbedderSettings {
    fn default() -> Self {
        Self {
            provider: None,
            query_timeout_ms: 3_000,
            batch_timeout_ms: 60_000,
            max_attempts: 3,
            retry_initial_backoff_ms: 200,
            retry_max_backoff_ms: 2_000,
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
            initial_backoff: Duration::from_millis(self.retry_initial_backoff_ms),
            max_backoff: Duration::from_millis(self.retry_max_backoff_ms),
        }
    }
}

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
    /// Timeout of one call to the Qdrant server, in seconds.
    pub timeout_secs: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            kind: StoreKind::Edge,
            path: PathBuf::from("var/qdrant-edge"),
            url: "http://localhost:6334".into(),
            api_key: None,
            collection: "ragback_facts".into(),
            timeout_secs: 10,
        }
    }
}

/// Retrieval defaults (`RAGBACK_RETRIEVAL__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrievalConfig {
    /// Whether retrieval runs when the request does not say.
    pub enabled: bool,
    /// Facts per reply, at most.
    pub top_k: usize,
    /// Minimum cosine similarity of a used fact.
    pub threshold: f32,
    /// The query: the last user message and the messages before it, this many in all.
    pub query_messages: usize,
    /// Whose facts to use when a request names no user (and for `/api/v1/chat`).
    pub default_user_id: String,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            top_k: 3,
            threshold: 0.275,
            query_messages: 1,
            default_user_id: "john".into(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Configuration that cannot be used; the message names the variable to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    fn key(path: &[&str], problem: impl std::fmt::Display) -> Self {
        let path: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        Self(format!("{}: {problem}", variable_of(&path)))
    }
}

impl Settings {
    /// Loads and validates the configuration from `sources`, then `overrides` (variable name,
    /// value) on top.
    pub fn load(
        sources: &ConfigSources,
        overrides: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let figment = sources.figment(overrides).map_err(ConfigError)?;
        let settings: Self = figment.extract().map_err(|error| {
            let messages: Vec<String> = error
                .into_iter()
                .map(|e| {
                    let source = e
                        .metadata
                        .as_ref()
                        .map(|m| format!(" (from {})", m.name))
                        .unwrap_or_default();
                    if e.path.is_empty() {
                        format!("{}{source}", e.kind)
                    } else {
                        format!("{}: {}{source}", variable_of(&e.path), e.kind)
                    }
                })
                .collect();
            ConfigError(messages.join("; "))
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.body_limit_bytes < 1024 {
            return Err(ConfigError::key(
                &["server", "body_limit_bytes"],
                "must be at least 1024",
            ));
        }
        if s.max_messages == 0 {
            return Err(ConfigError::key(
                &["server", "max_messages"],
                "must be at least 1",
            ));
        }
        if !(1..=limits::MESSAGE_CHARS).contains(&s.max_message_chars) {
            return Err(ConfigError::key(
                &["server", "max_message_chars"],
                format!("must be between 1 and {}", limits::MESSAGE_CHARS),
            ));
        }
        if s.max_facts_per_call == 0 {
            return Err(ConfigError::key(
                &["server", "max_facts_per_call"],
                "must be at least 1",
            ));
        }
        if s.max_concurrency == 0 {
            return Err(ConfigError::key(
                &["server", "max_concurrency"],
                "must be at least 1",
            ));
        }
        if s.request_timeout_ms == 0 {
            return Err(ConfigError::key(
                &["server", "request_timeout_ms"],
                "must be at least 1",
            ));
        }
        if let Some(origin) =
            s.cors_origins.0.iter().find(|o| {
                o.as_str() != "*" && !(o.starts_with("http://") || o.starts_with("https://"))
            })
        {
            return Err(ConfigError::key(
                &["server", "cors_origins"],
                format!("`{origin}` is not an origin: use `https://host[:port]` or `*`"),
            ));
        }
        let l = &self.llm;
        if l.model.trim().is_empty() {
            return Err(ConfigError::key(&["llm", "model"], "must not be empty"));
        }
        if l.timeout_secs == 0 {
            return Err(ConfigError::key(
                &["llm", "timeout_secs"],
                "must be at least 1",
            ));
        }
        if l.max_attempts == 0 {
            return Err(ConfigError::key(
                &["llm", "max_attempts"],
                "must be at least 1",
            ));
        }
        if l.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            return Err(ConfigError::key(
                &["llm", "temperature"],
                "must be between 0 and 2",
            ));
        }
        if l.top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
            return Err(ConfigError::key(
                &["llm", "top_p"],
                "must be above 0, at most 1",
            ));
        }
        if l.max_tokens == Some(0) {
            return Err(ConfigError::key(
                &["llm", "max_tokens"],
                "must be at least 1",
            ));
        }
        let e = &self.embedder;
        if e.max_attempts == 0 {
            return Err(ConfigError::key(
                &["embedder", "max_attempts"],
                "must be at least 1",
            ));
        }
        if e.query_timeout_ms == 0 || e.batch_timeout_ms == 0 {
            return Err(ConfigError::key(
                &["embedder", "query_timeout_ms"],
                "timeouts must be positive",
            ));
        }
        if e.local.batch_size == 0 || e.local.max_concurrency == 0 {
            return Err(ConfigError::key(
                &["embedder", "local", "batch_size"],
                "batch_size and max_concurrency must be at least 1",
            ));
        }
        if e.resolved_provider() == EmbedderProvider::Local && !cfg!(feature = "local-embedder") {
            return Err(ConfigError::key(
                &["embedder", "provider"],
                "this ragback was built without the `local-embedder` feature: choose cohere or none",
            ));
        }
        if e.provider == Some(EmbedderProvider::Cohere) && e.cohere.api_key().is_none() {
            return Err(ConfigError::key(
                &["embedder", "cohere", "api_key"],
                "RAGBACK_EMBEDDER__PROVIDER=cohere needs a Cohere key (or set COHERE_API_KEY)",
            ));
        }
        let r = &self.retrieval;
        if !(1..=MAX_TOP_K).contains(&r.top_k) {
            return Err(ConfigError::key(
                &["retrieval", "top_k"],
                format!("must be between 1 and {MAX_TOP_K}"),
            ));
        }
        if !(-1.0..=1.0).contains(&r.threshold) {
            return Err(ConfigError::key(
                &["retrieval", "threshold"],
                "must be between -1 and 1 (cosine)",
            ));
        }
        if r.query_messages == 0 {
            return Err(ConfigError::key(
                &["retrieval", "query_messages"],
                "must be at least 1",
            ));
        }
        UserId::parse(r.default_user_id.as_str())
            .map_err(|e| ConfigError::key(&["retrieval", "default_user_id"], e))?;
        let st = &self.store;
        if !(st.url.starts_with("http://") || st.url.starts_with("https://")) {
            return Err(ConfigError::key(
                &["store", "url"],
                "must be an http(s) gRPC URL, e.g. http://localhost:6334",
            ));
        }
        if st.kind == StoreKind::Qdrant {
            if !cfg!(feature = "qdrant-server") {
                return Err(ConfigError::key(
                    &["store", "kind"],
                    "this ragback was built without the `qdrant-server` feature",
                ));
            }
            if st.collection.trim().is_empty() {
                return Err(ConfigError::key(
                    &["store", "collection"],
                    "must not be empty",
                ));
            }
            if st.timeout_secs == 0 {
                return Err(ConfigError::key(
                    &["store", "timeout_secs"],
                    "must be at least 1",
                ));
            }
        }
        if self.prompt.history_messages == 0 {
            return Err(ConfigError::key(
                &["prompt", "history_messages"],
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// The use case's view of the LLM settings.
    pub fn chat_settings(&self) -> ChatSettings {
        let l = &self.llm;
        ChatSettings {
            defaults: GenerationParams {
                model: l.model.clone(),
                temperature: l.temperature,
                top_p: l.top_p,
                max_tokens: l.max_tokens,
            },
            history_messages: self.prompt.history_messages,
            retry: RetryPolicy {
                max_attempts: l.max_attempts,
                initial_backoff: Duration::from_millis(l.retry_initial_backoff_ms),
                max_backoff: Duration::from_millis(l.retry_max_backoff_ms),
            },
            timeout: Duration::from_secs(l.timeout_secs),
            request_timeout: Duration::from_millis(self.server.request_timeout_ms),
        }
    }

    /// The use case's view of the retrieval settings.
    pub fn retrieval_settings(&self) -> RetrievalSettings {
        let r = &self.retrieval;
        RetrievalSettings {
            enabled: r.enabled,
            top_k: r.top_k,
            threshold: r.threshold,
            query_messages: r.query_messages,
            default_user: UserId::parse(r.default_user_id.as_str()).ok(),
            embed_timeout: Duration::from_millis(self.embedder.query_timeout_ms),
            embed_retry: self.embedder.retry(),
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::load(&ConfigSources::none(), &vars)
    }

    #[test]
    fn defaults_load_and_validate() {
        let s = load(&[]).unwrap();
        assert_eq!(s.server.addr.to_string(), "0.0.0.0:8000");
        assert_eq!(s.llm.base_url, "https://openrouter.ai/api/v1");
        assert_eq!(s.store.kind, StoreKind::Edge);
        assert_eq!(s.embedder.resolved_provider(), EmbedderProvider::Local);
        assert_eq!(s.log_format, LogFormat::Pretty);
    }

    #[test]
    fn api_keys_are_a_comma_separated_list_and_never_a_number() {
        let s = load(&[
            ("RAGBACK_SERVER__API_KEYS", " key-one , key-two ,,"),
            ("RAGBACK_SERVER__ADMIN_API_KEYS", "admin-key"),
        ])
        .unwrap();
        let keys: Vec<&str> = s
            .server
            .api_keys
            .0
            .iter()
            .map(|k| k.expose_secret())
            .collect();
        assert_eq!(keys, ["key-one", "key-two"]);
        assert_eq!(s.server.admin_api_keys.0.len(), 1);
        assert!(load(&[]).unwrap().server.api_keys.is_empty());

        let error = load(&[("RAGBACK_SERVER__API_KEYS", "0123")]).unwrap_err();
        assert!(
            error.to_string().contains("RAGBACK_SERVER__API_KEYS"),
            "{error}"
        );
        assert!(error.to_string().contains("plain number"), "{error}");
        assert!(
            !error.to_string().contains("123"),
            "the key is not echoed: {error}"
        );
    }

    #[test]
    fn nested_variables_and_aliases_apply_with_ragback_names_winning() {
        let s = load(&[
            ("RAGBACK_SERVER__ADDR", "127.0.0.1:9000"),
            ("RAGBACK_RETRIEVAL__THRESHOLD", "0.55"),
            ("RAGBACK_LOG_FORMAT", "json"),
            ("OPENROUTER_API_KEY", "sk-alias"),
            ("COHERE_API_KEY", "co-alias"),
            ("RAGBACK_EMBEDDER__COHERE__API_KEY", "co-ragback"),
        ])
        .unwrap();
        assert_eq!(s.server.addr.port(), 9000);
        assert!((s.retrieval.threshold - 0.55).abs() < 1e-6);
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.llm.api_key().unwrap().expose_secret(), "sk-alias");
        assert_eq!(
            s.embedder.cohere.api_key().unwrap().expose_secret(),
            "co-ragback"
        );
        assert_eq!(s.embedder.resolved_provider(), EmbedderProvider::Cohere);
    }

    #[test]
    fn cors_origins_are_a_comma_separated_list() {
        let s = load(&[(
            "RAGBACK_SERVER__CORS_ORIGINS",
            "https://a.example.com, http://localhost:3000",
        )])
        .unwrap();
        assert_eq!(
            s.server.cors_origins.0,
            ["https://a.example.com", "http://localhost:3000"]
        );
        let any = load(&[("RAGBACK_SERVER__CORS_ORIGINS", "*")]).unwrap();
        assert_eq!(any.server.cors_origins.0, ["*"]);
        assert!(load(&[]).unwrap().server.cors_origins.0.is_empty());
    }

    #[test]
    fn empty_values_count_as_unset() {
        let s = load(&[
            ("RAGBACK_EMBEDDER__PROVIDER", ""),
            ("RAGBACK_LLM__MODEL", " "),
        ])
        .unwrap();
        assert_eq!(s.embedder.provider, None);
        assert_eq!(s.llm.model, LlmSettings::default().model);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases = [
            (
                ("RAGBACK_LLM__TIMEOUT_SECS", "soon"),
                "RAGBACK_LLM__TIMEOUT_SECS",
            ),
            (("RAGBACK_SERVER__ADDR", "nowhere"), "RAGBACK_SERVER__ADDR"),
            (
                ("RAGBACK_RETRIEVAL__THRESHOLD", "1.5"),
                "RAGBACK_RETRIEVAL__THRESHOLD",
            ),
            (("RAGBACK_STORE__KIND", "postgres"), "RAGBACK_STORE__KIND"),
            (
                ("RAGBACK_STORE__URL", "localhost:6334"),
                "RAGBACK_STORE__URL",
            ),
            (("RAGBACK_LLM__TYPO", "x"), "typo"),
            (
                ("RAGBACK_EMBEDDER__PROVIDER", "cohere"),
                "RAGBACK_EMBEDDER__COHERE__API_KEY",
            ),
            (
                ("RAGBACK_RETRIEVAL__TOP_K", "0"),
                "RAGBACK_RETRIEVAL__TOP_K",
            ),
            (
                ("RAGBACK_SERVER__MAX_MESSAGE_CHARS", "8001"),
                "RAGBACK_SERVER__MAX_MESSAGE_CHARS",
            ),
            (
                ("RAGBACK_SERVER__MAX_CONCURRENCY", "0"),
                "RAGBACK_SERVER__MAX_CONCURRENCY",
            ),
            (
                ("RAGBACK_SERVER__CORS_ORIGINS", "app.example.com"),
                "RAGBACK_SERVER__CORS_ORIGINS",
            ),
        ];
        for ((name, value), expected) in cases {
            let err = load(&[(name, value)]).unwrap_err().to_string();
            assert!(err.contains(expected), "{name}={value}: {err}");
        }
        let long_id = "x".repeat(200);
        let err = load(&[("RAGBACK_RETRIEVAL__DEFAULT_USER_ID", &long_id)]).unwrap_err();
        assert!(
            err.to_string()
                .contains("RAGBACK_RETRIEVAL__DEFAULT_USER_ID"),
            "{err}"
        );
    }

    #[test]
    fn files_are_layered_under_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("ragback.toml");
        std::fs::write(
            &toml,
            "[llm]\nmodel = \"from/toml\"\ntimeout_secs = 7\n[retrieval]\ntop_k = 5\n",
        )
        .unwrap();
        let dotenv = dir.path().join(".env");
        std::fs::write(
            &dotenv,
            "RAGBACK_LLM__MODEL=from/dotenv\nOPENROUTER_API_KEY=sk-dotenv\n",
        )
        .unwrap();
        let sources = ConfigSources {
            toml: Some(toml),
            dotenv: Some(dotenv),
            environment: false,
        };

        let s =
            Settings::load(&sources, &[("RAGBACK_RETRIEVAL__TOP_K".into(), "4".into())]).unwrap();

        assert_eq!(s.llm.model, "from/dotenv");
        assert_eq!(s.llm.timeout_secs, 7);
        assert_eq!(s.retrieval.top_k, 4);
        assert_eq!(s.llm.api_key().unwrap().expose_secret(), "sk-dotenv");
    }

    #[test]
    fn secrets_are_not_printed_by_debug() {
        let s = load(&[("RAGBACK_LLM__API_KEY", "sk-very-secret")]).unwrap();
        assert!(!format!("{s:?}").contains("sk-very-secret"));
    }
}
