//! The typed configuration. Each section is a struct next to its own validation (the adapters'
//! sections live with their adapters); [`Settings::load`] layers the sources, parses and checks
//! them all, and names the variable to fix when one cannot be used.

mod embedder;
mod eval;
mod guard;
mod jobs;
mod memory;
mod retrieval;
mod server;
mod store;
mod summary;
mod values;
mod variants;

use ragback_application::bounds::InvalidSetting;
use ragback_application::ports::GenerationParams;
use ragback_application::{ChatSettings, RetrievalSettings, RetryPolicy};
use ragback_integrations::llm::LlmSettings;
use ragback_integrations::prompt::PromptSettings;
use serde::Deserialize;

pub use embedder::{EmbedderProvider, EmbedderSettings};
pub use eval::{EvalSettings, JudgeSettings, ModerationSettings, SimulatorSettings};
pub use guard::{GuardConfig, GuardModelSettings, VariantGuard};
pub use jobs::JobsConfig;
pub use memory::MemoryConfig;
pub use retrieval::{Rerank, RetrievalConfig};
pub use server::ServerSettings;
pub use store::{StoreKind, StoreSettings};
pub use summary::SummaryConfig;
pub use values::{ApiKeys, List, LogFormat};
pub use variants::{ExperimentConfig, VariantConfig, VariantRetrieval};

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
    /// Evaluation (`ragback eval`).
    pub eval: EvalSettings,
    /// Memory extraction.
    pub memory: MemoryConfig,
    /// The reply guard.
    pub guard: GuardConfig,
    /// Named variants besides the default one (`[variants.NAME]`).
    pub variants: std::collections::BTreeMap<String, VariantConfig>,
    /// The split of users between the variants (`[experiment]`).
    pub experiment: ExperimentConfig,
    /// Lorebooks (`RAGBACK_LORE__*`).
    pub lore: ragback_application::lore::LoreSettings,
    /// The rolling summary (`RAGBACK_SUMMARY__*`).
    pub summary: SummaryConfig,
    /// Background jobs kept until done (`RAGBACK_JOBS__*`).
    pub jobs: JobsConfig,
}

/// Configuration that cannot be used; the message names the variable to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// A setting of `section` that cannot be used.
    fn of(section: &str, invalid: InvalidSetting) -> Self {
        let path: Vec<String> = std::iter::once(section)
            .chain(invalid.key.split('.'))
            .map(str::to_owned)
            .collect();
        Self(format!("{}: {}", variable_of(&path), invalid.problem))
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

    /// Checks values that parse but make no sense, section by section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let at = |section: &'static str| move |e| ConfigError::of(section, e);
        self.server.validate().map_err(at("server"))?;
        self.llm.validate().map_err(at("llm"))?;
        self.embedder.validate().map_err(at("embedder"))?;
        self.store.validate().map_err(at("store"))?;
        self.retrieval.validate().map_err(at("retrieval"))?;
        self.memory.validate().map_err(at("memory"))?;
        self.guard.validate().map_err(at("guard"))?;
        self.lore.validate().map_err(at("lore"))?;
        self.summary.validate().map_err(at("summary"))?;
        self.jobs.validate().map_err(at("jobs"))?;
        variants::validate_variants(&self.variants).map_err(at("variants"))?;
        self.experiment
            .validate(&self.variants)
            .map_err(at("experiment"))?;
        self.prompt.validate().map_err(at("prompt"))
    }

    /// Refuses to serve `addr` (the configured address or `--addr`) when that would expose an
    /// unauthenticated server to other machines; the message names the variable.
    pub fn check_serving(&self, addr: std::net::SocketAddr) -> Result<(), ConfigError> {
        self.server
            .check_exposure(addr)
            .map_err(|e| ConfigError::of("server", e))
    }

    /// The use case's view of the LLM settings.
    pub fn chat_settings(&self) -> ChatSettings {
        let l = &self.llm;
        let sampling = l.sampling();
        ChatSettings {
            defaults: GenerationParams {
                model: l.model.clone(),
                temperature: sampling.temperature,
                top_p: sampling.top_p,
                max_tokens: sampling.max_tokens,
                seed: None,
                routing: l.routing.routing(),
                cache_control: l.cache_control,
            },
            history_messages: self.prompt.history_messages,
            max_prompt_tokens: self.prompt.max_prompt_tokens,
            retry: RetryPolicy {
                max_attempts: l.max_attempts,
                initial_backoff: l.retry_initial_backoff,
                max_backoff: l.retry_max_backoff,
            },
            timeout: l.timeout,
            request_timeout: self.server.request_timeout,
            lore: self.lore.clone(),
        }
    }

    /// The use case's view of the summary settings: deterministic, in the configured model.
    pub fn summary_settings(&self) -> ragback_application::summary::SummarySettings {
        ragback_application::summary::SummarySettings {
            params: GenerationParams {
                model: self
                    .summary
                    .model
                    .clone()
                    .unwrap_or_else(|| self.llm.model.clone()),
                temperature: Some(0.0),
                top_p: None,
                max_tokens: Some(self.summary.max_tokens),
                seed: Some(0),
                routing: Default::default(),
                cache_control: false,
            },
        }
    }

    /// The use case's view of the memory settings.
    pub fn memory_settings(&self) -> ragback_application::memory::MemorySettings {
        let m = &self.memory;
        ragback_application::memory::MemorySettings {
            params: ragback_application::ports::GenerationParams {
                model: m.model.clone().unwrap_or_else(|| self.llm.model.clone()),
                temperature: Some(0.0),
                top_p: None,
                max_tokens: Some(m.max_tokens),
                seed: Some(0),
                routing: Default::default(),
                cache_control: false,
            },
            context_messages: m.context_messages,
            character_canon: m.character_canon,
            duplicate_threshold: m.duplicate_threshold,
            related_threshold: m.related_threshold,
            neighbours: m.neighbours,
            retry: self.chat_settings().retry,
            timeout: self.llm.timeout,
        }
    }

    /// The use case's view of the retrieval settings.
    pub fn retrieval_settings(&self) -> RetrievalSettings {
        let r = &self.retrieval;
        RetrievalSettings {
            enabled: r.enabled,
            top_k: r.top_k,
            threshold: r.threshold,
            margin: r.margin,
            rerank_threshold: r.rerank_threshold,
            rerank_candidates: r.rerank_candidates,
            query_messages: r.query_messages,
            query_context_weight: r.query_context_weight,
            query_last_alone: r.query_last_alone,
            lexical_allowance: r.hybrid.then_some(r.lexical_allowance),
            default_user: Some(r.default_user_id.clone()),
            embed_timeout: self.embedder.query_timeout,
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
        assert_eq!(
            s.server.addr.to_string(),
            "127.0.0.1:8000",
            "loopback by default"
        );
        assert_eq!(s.llm.base_url, "https://openrouter.ai/api/v1");
        assert_eq!(s.store.kind, StoreKind::Edge);
        assert_eq!(s.embedder.resolved_provider(), EmbedderProvider::Local);
        assert_eq!(s.log_format, LogFormat::Pretty);
    }

    #[test]
    fn api_keys_are_a_comma_separated_list_and_never_a_number() {
        let s = load(&[
            (
                "RAGBACK_SERVER__API_KEYS",
                " key-one-0123456789 , key-two-0123456789 ",
            ),
            ("RAGBACK_SERVER__ADMIN_API_KEYS", "admin-key-0123456789"),
        ])
        .unwrap();
        let keys: Vec<&str> = s
            .server
            .api_keys
            .0
            .iter()
            .map(|k| k.expose_secret())
            .collect();
        assert_eq!(keys, ["key-one-0123456789", "key-two-0123456789"]);
        assert_eq!(s.server.admin_api_keys.0.len(), 1);
        assert!(load(&[]).unwrap().server.api_keys.is_empty());
        assert!(
            load(&[("RAGBACK_SERVER__API_KEYS", "")])
                .unwrap()
                .server
                .api_keys
                .is_empty(),
            "an empty value is no keys"
        );

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
    fn unsafe_key_lists_are_refused_naming_the_variable() {
        for (variable, value, says) in [
            ("RAGBACK_SERVER__API_KEYS", ", ", "blank key"),
            (
                "RAGBACK_SERVER__API_KEYS",
                "key-one-0123456789,,",
                "blank key",
            ),
            ("RAGBACK_SERVER__ADMIN_API_KEYS", " , , ", "blank key"),
            (
                "RAGBACK_SERVER__MEMORY_API_KEYS",
                "short",
                "shorter than 16",
            ),
            (
                "RAGBACK_SERVER__API_KEYS",
                "long-enough-key-0001,short",
                "key 2 of 2",
            ),
        ] {
            let error = load(&[(variable, value)]).unwrap_err().to_string();
            assert!(error.contains(variable), "{value:?}: {error}");
            assert!(error.contains(says), "{value:?}: {error}");
            assert!(
                !error.contains("short,") && !error.contains("0001"),
                "no key echoed: {error}"
            );
        }
    }

    #[test]
    fn an_open_server_on_a_public_address_is_refused_unless_said_so() {
        let public: std::net::SocketAddr = "0.0.0.0:8000".parse().unwrap();
        let open = load(&[]).unwrap();
        let error = open.check_serving(public).unwrap_err().to_string();
        assert!(error.contains("RAGBACK_SERVER__ADDR"), "{error}");
        assert!(
            error.contains("RAGBACK_SERVER__ALLOW_UNAUTHENTICATED"),
            "{error}"
        );
        assert!(
            open.check_serving("127.0.0.1:8000".parse().unwrap())
                .is_ok()
        );
        assert!(open.check_serving("[::1]:8000".parse().unwrap()).is_ok());
        let keyed = load(&[("RAGBACK_SERVER__API_KEYS", "key-one-0123456789")]).unwrap();
        assert!(keyed.check_serving(public).is_ok());
        let said = load(&[("RAGBACK_SERVER__ALLOW_UNAUTHENTICATED", "true")]).unwrap();
        assert!(said.check_serving(public).is_ok());
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
        assert_eq!(s.llm.timeout, std::time::Duration::from_secs(7));
        assert_eq!(s.retrieval.top_k, 4);
        assert_eq!(s.llm.api_key().unwrap().expose_secret(), "sk-dotenv");
    }

    #[test]
    fn a_setting_out_of_range_is_named_as_itself() {
        let cases = [
            (
                ("RAGBACK_EMBEDDER__BATCH_TIMEOUT_MS", "0"),
                "RAGBACK_EMBEDDER__BATCH_TIMEOUT_MS",
            ),
            (
                ("RAGBACK_EMBEDDER__QUERY_TIMEOUT_MS", "0"),
                "RAGBACK_EMBEDDER__QUERY_TIMEOUT_MS",
            ),
            (
                ("RAGBACK_EMBEDDER__LOCAL__MAX_CONCURRENCY", "0"),
                "RAGBACK_EMBEDDER__LOCAL__MAX_CONCURRENCY",
            ),
            (
                ("RAGBACK_EMBEDDER__LOCAL__BATCH_SIZE", "0"),
                "RAGBACK_EMBEDDER__LOCAL__BATCH_SIZE",
            ),
            (
                ("RAGBACK_EMBEDDER__COHERE__BATCH_SIZE", "97"),
                "RAGBACK_EMBEDDER__COHERE__BATCH_SIZE",
            ),
            (("RAGBACK_LLM__TOP_P", "0"), "RAGBACK_LLM__TOP_P"),
            (("RAGBACK_LLM__MAX_TOKENS", "0"), "RAGBACK_LLM__MAX_TOKENS"),
            (
                ("RAGBACK_PROMPT__HISTORY_MESSAGES", "0"),
                "RAGBACK_PROMPT__HISTORY_MESSAGES",
            ),
        ];
        for ((name, value), expected) in cases {
            let err = load(&[(name, value)]).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid configuration: {expected}:")),
                "{name}={value}: {err}"
            );
        }
    }

    #[test]
    fn the_server_store_url_matters_only_for_the_server_store() {
        let embedded = load(&[("RAGBACK_STORE__URL", "localhost:6334")]).unwrap();
        assert_eq!(embedded.store.kind, StoreKind::Edge);
        let err = load(&[
            ("RAGBACK_STORE__KIND", "qdrant"),
            ("RAGBACK_STORE__URL", "localhost:6334"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("RAGBACK_STORE__URL"), "{err}");
    }

    #[test]
    fn durations_and_ids_are_typed_at_load() {
        let s = load(&[
            ("RAGBACK_SERVER__QUEUE_TIMEOUT_MS", "1500"),
            ("RAGBACK_SERVER__DRAIN_TIMEOUT_SECS", "7"),
            ("RAGBACK_RETRIEVAL__DEFAULT_USER_ID", "jane"),
        ])
        .unwrap();
        assert_eq!(
            s.server.queue_timeout,
            std::time::Duration::from_millis(1_500)
        );
        assert_eq!(s.server.drain_timeout, std::time::Duration::from_secs(7));
        assert_eq!(s.retrieval.default_user_id.as_str(), "jane");
        assert_eq!(
            s.retrieval_settings()
                .default_user
                .map(|u| u.as_str().to_owned()),
            Some("jane".to_owned())
        );
    }

    #[test]
    fn the_env_template_is_a_valid_configuration() {
        let template = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.env.template");
        let sources = ConfigSources {
            toml: None,
            dotenv: Some(template),
            environment: false,
        };
        let s = Settings::load(&sources, &[]).unwrap();
        assert_eq!(s.llm.provider, ragback_integrations::llm::LlmProvider::Auto);
        assert_eq!(s.prompt.max_prompt_tokens, 4_096);
        assert_eq!(s.eval.judge.base_url, None, "blank: the smoke-test judge");
        assert_eq!(s.eval.judge.model, "openai/gpt-4o");
        assert_eq!(s.eval.moderation.model, "omni-moderation-latest");
    }

    #[test]
    fn secrets_are_not_printed_by_debug() {
        let s = load(&[("RAGBACK_LLM__API_KEY", "sk-very-secret")]).unwrap();
        assert!(!format!("{s:?}").contains("sk-very-secret"));
    }
}
