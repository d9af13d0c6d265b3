//! LLM settings, and the async-openai `Config` built from them.

use std::time::Duration;

use async_openai::config::Config;
use ragback_application::bounds::{self, InvalidSetting, nonzero};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::routing::RoutingSettings;
use crate::config::{millis, seconds};
use crate::local_llm_settings::LocalLlmSettings;

/// The base URL when none is configured.
pub const DEFAULT_BASE_URL: &str = "https://openrouter.ai/api/v1";

/// Which language model answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LlmProvider {
    /// The OpenAI-compatible API when a key or another base URL is configured, else the local
    /// model.
    #[default]
    Auto,
    /// The OpenAI-compatible API at `base_url` (OpenRouter, OpenAI, Ollama, vLLM).
    Openai,
    /// The GGUF model of `local.model_path`, in-process.
    Local,
}

/// Which flavour of the OpenAI API the provider speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// OpenRouter's when `base_url` is on openrouter.ai, else plain OpenAI's.
    #[default]
    Auto,
    /// OpenRouter's: fallback models, provider preferences, reasoning budgets, attribution
    /// headers (for a proxy in front of OpenRouter, or a test double).
    Openrouter,
    /// Plain OpenAI's (OpenAI, Ollama, vLLM): none of OpenRouter's fields are sent.
    Openai,
}

/// Sampling defaults of the configured provider.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Upper bound on generated tokens.
    pub max_tokens: Option<u32>,
}

impl Sampling {
    /// For a hosted model.
    pub const API: Self = Self {
        temperature: Some(0.8),
        top_p: Some(0.95),
        max_tokens: Some(200),
    };
    /// For the in-process model.
    pub const LOCAL: Self = Self {
        temperature: Some(0.5),
        top_p: Some(0.9),
        max_tokens: Some(120),
    };
}

/// Why the LLM settings cannot be used to build a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmConfigError {
    /// The base URL is not an http(s) URL.
    #[error("not a valid http(s) URL: {0}")]
    BaseUrl(String),
    /// The key holds characters that cannot be sent in a header.
    #[error("the API key contains characters that are not allowed in an HTTP header")]
    ApiKey,
    /// An attribution header value is not valid.
    #[error("`{1}` is not a valid value for the {0} header")]
    Header(&'static str, String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
}

/// Hosts that refuse calls without an API key; other hosts (Ollama, vLLM) may not need one.
const HOSTS_REQUIRING_A_KEY: [&str; 2] = ["openrouter.ai", "api.openai.com"];

/// Settings of the language model (`RAGBACK_LLM__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmSettings {
    /// `auto`, `openai` or `local`.
    pub provider: LlmProvider,
    /// The in-process model (`RAGBACK_LLM__LOCAL__*`).
    pub local: LocalLlmSettings,
    /// Base URL of the OpenAI-compatible API.
    pub base_url: String,
    /// API key; also read from `OPENROUTER_API_KEY`.
    pub api_key: Option<SecretString>,
    /// Default model.
    pub model: String,
    /// Models a request may ask for (`generation.model`) besides those the variants use and
    /// their fallbacks; `*` allows any (every key holder may then spend on any model).
    pub allowed_models: crate::config::List,
    /// Deadline of one generation's model stage, retries included (`timeout_secs`).
    #[serde(rename = "timeout_secs", deserialize_with = "seconds::deserialize")]
    pub timeout: Duration,
    /// Attempts per generation, the first included.
    pub max_attempts: u32,
    /// First retry delay; doubles on each retry (`retry_initial_backoff_ms`).
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
    /// Default sampling temperature; unset, the provider's default of [`Self::sampling`].
    pub temperature: Option<f32>,
    /// Default nucleus sampling; unset, the provider's default.
    pub top_p: Option<f32>,
    /// Default upper bound on generated tokens; unset, the provider's default.
    pub max_tokens: Option<u32>,
    /// `auto`, `openrouter` or `openai`: whether OpenRouter's routing fields and headers are sent.
    pub dialect: Dialect,
    /// How OpenRouter may route calls (`RAGBACK_LLM__ROUTING__*`); the default variant's.
    pub routing: RoutingSettings,
    /// Mark the end of the prompt's stable part with `cache_control` (explicit cache
    /// breakpoints: Anthropic and Gemini models through OpenRouter); the default variant's.
    pub cache_control: bool,
    /// `HTTP-Referer` sent to OpenRouter (app attribution); empty to omit.
    pub http_referer: String,
    /// `X-Title` sent to OpenRouter (app attribution); empty to omit.
    pub app_title: String,
    /// TCP/TLS connect timeout (`connect_timeout_secs`).
    #[serde(
        rename = "connect_timeout_secs",
        deserialize_with = "seconds::deserialize"
    )]
    pub connect_timeout: Duration,
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self {
            provider: LlmProvider::Auto,
            local: LocalLlmSettings::default(),
            base_url: DEFAULT_BASE_URL.into(),
            api_key: None,
            model: "mistralai/mistral-nemo".into(),
            allowed_models: crate::config::List::default(),
            timeout: Duration::from_secs(60),
            max_attempts: 3,
            retry_initial_backoff: Duration::from_millis(500),
            retry_max_backoff: Duration::from_millis(8_000),
            temperature: None,
            top_p: None,
            max_tokens: None,
            dialect: Dialect::Auto,
            routing: RoutingSettings::default(),
            cache_control: false,
            http_referer: "https://github.com/ragback/ragback".into(),
            app_title: "ragback".into(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl LlmSettings {
    /// Checks what parses but cannot be used; keys are relative to the section.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.model.trim().is_empty() {
            return Err(InvalidSetting::new("model", "must not be empty"));
        }
        nonzero("timeout_secs", self.timeout)?;
        nonzero("connect_timeout_secs", self.connect_timeout)?;
        bounds::POSITIVE.setting("max_attempts", self.max_attempts)?;
        bounds::sampling(self.temperature, self.top_p, self.max_tokens)?;
        if self.provider == LlmProvider::Local && !cfg!(feature = "local-llm") {
            return Err(InvalidSetting::new(
                "provider",
                "this ragback was built without the `local-llm` feature: choose openai",
            ));
        }
        self.routing.validate().map_err(|e| e.under("routing"))?;
        self.local.validate().map_err(|e| e.under("local"))
    }

    /// Whether calls go to OpenRouter (or something speaking its dialect): only then are the
    /// routing fields and the attribution headers sent.
    pub fn speaks_openrouter(&self) -> bool {
        match self.dialect {
            Dialect::Openrouter => true,
            Dialect::Openai => false,
            Dialect::Auto => self
                .host()
                .is_some_and(|host| host == "openrouter.ai" || host.ends_with(".openrouter.ai")),
        }
    }

    /// The settings of OpenRouter's that this provider will not be sent, when some are set: the
    /// attribution headers when changed from their defaults. Routing is checked per variant
    /// ([`super::unsupported_outside_openrouter`]).
    pub fn ignored_attribution(&self) -> Vec<&'static str> {
        let defaults = Self::default();
        let mut ignored = Vec::new();
        if self.resolved_provider() == LlmProvider::Openai && !self.speaks_openrouter() {
            if self.http_referer != defaults.http_referer && !self.http_referer.is_empty() {
                ignored.push("http_referer");
            }
            if self.app_title != defaults.app_title && !self.app_title.is_empty() {
                ignored.push("app_title");
            }
        }
        ignored
    }

    /// The provider after the `auto` rule: the API when a key or a base URL of its own is set
    /// (Ollama needs no key), else the local model (when this build has it).
    pub fn resolved_provider(&self) -> LlmProvider {
        match self.provider {
            LlmProvider::Auto
                if self.api_key().is_none()
                    && self.base_url.trim_end_matches('/') == DEFAULT_BASE_URL
                    && cfg!(feature = "local-llm") =>
            {
                LlmProvider::Local
            }
            LlmProvider::Auto => LlmProvider::Openai,
            chosen => chosen,
        }
    }

    /// The sampling defaults a request falls back on: those set here, else the resolved
    /// provider's. A hosted model gets 0.8 / 0.95 / 200 tokens; the small local model rambles
    /// and drifts out of the scene at that temperature, so it gets 0.5 / 0.9 / 120 tokens.
    pub fn sampling(&self) -> Sampling {
        let provider = match self.resolved_provider() {
            LlmProvider::Local => Sampling::LOCAL,
            _ => Sampling::API,
        };
        Sampling {
            temperature: self.temperature.or(provider.temperature),
            top_p: self.top_p.or(provider.top_p),
            max_tokens: self.max_tokens.or(provider.max_tokens),
        }
    }

    /// The API key, unless absent or blank.
    pub fn api_key(&self) -> Option<&SecretString> {
        self.api_key
            .as_ref()
            .filter(|key| !key.expose_secret().trim().is_empty())
    }

    /// Whether the provider at `base_url` needs a key that is missing.
    pub fn missing_required_key(&self) -> bool {
        let needs_key = self
            .host()
            .is_some_and(|host| HOSTS_REQUIRING_A_KEY.iter().any(|h| host == *h));
        needs_key && self.api_key().is_none()
    }

    /// The host of `base_url`, when it parses.
    fn host(&self) -> Option<String> {
        url::Url::parse(&self.base_url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
    }
}

/// The provider as async-openai sees it: a base URL and fixed, pre-validated headers.
#[derive(Debug, Clone)]
pub(super) struct ProviderConfig {
    api_base: String,
    api_key: SecretString,
    headers: HeaderMap,
}

impl ProviderConfig {
    pub(super) fn new(settings: &LlmSettings) -> Result<Self, LlmConfigError> {
        let url = url::Url::parse(&settings.base_url)
            .map_err(|e| LlmConfigError::BaseUrl(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(LlmConfigError::BaseUrl(format!(
                "scheme must be http or https, not `{}`",
                url.scheme()
            )));
        }
        let mut headers = HeaderMap::new();
        let api_key = settings.api_key().cloned().unwrap_or_default();
        if !api_key.expose_secret().is_empty() {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", api_key.expose_secret()))
                .map_err(|_| LlmConfigError::ApiKey)?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        for (name, value) in [
            ("http-referer", &settings.http_referer),
            ("x-title", &settings.app_title),
        ] {
            if !value.is_empty() && settings.speaks_openrouter() {
                let value = HeaderValue::from_str(value)
                    .map_err(|_| LlmConfigError::Header(name, value.clone()))?;
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        Ok(Self {
            api_base: settings.base_url.trim_end_matches('/').to_owned(),
            api_key,
            headers,
        })
    }
}

impl Config for ProviderConfig {
    fn headers(&self) -> HeaderMap {
        self.headers.clone()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_base)
    }

    fn query(&self) -> Vec<(&str, &str)> {
        Vec::new()
    }

    fn api_base(&self) -> &str {
        &self.api_base
    }

    fn api_key(&self) -> &SecretString {
        &self.api_key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openrouter_without_a_key_is_not_configured_but_a_local_server_is() {
        let openrouter = LlmSettings::default();
        assert!(openrouter.missing_required_key());
        let blank_key = LlmSettings {
            api_key: Some(SecretString::from("  ")),
            ..LlmSettings::default()
        };
        assert!(blank_key.missing_required_key());
        let ollama = LlmSettings {
            base_url: "http://localhost:11434/v1".into(),
            ..LlmSettings::default()
        };
        assert!(!ollama.missing_required_key());
    }

    #[test]
    fn auto_is_the_api_with_a_key_or_a_base_url_of_its_own_else_local() {
        let keyless = LlmSettings::default();
        assert_eq!(keyless.resolved_provider(), LlmProvider::Local);
        let keyed = LlmSettings {
            api_key: Some(SecretString::from("sk-or-1")),
            ..LlmSettings::default()
        };
        assert_eq!(keyed.resolved_provider(), LlmProvider::Openai);
        let ollama = LlmSettings {
            base_url: "http://localhost:11434/v1".into(),
            ..LlmSettings::default()
        };
        assert_eq!(ollama.resolved_provider(), LlmProvider::Openai);
        let forced = LlmSettings {
            provider: LlmProvider::Openai,
            ..LlmSettings::default()
        };
        assert_eq!(forced.resolved_provider(), LlmProvider::Openai);
        let local = LlmSettings {
            provider: LlmProvider::Local,
            ..keyed
        };
        assert_eq!(local.resolved_provider(), LlmProvider::Local);
    }

    #[test]
    fn sampling_defaults_follow_the_provider_unless_set() {
        let keyless = LlmSettings::default();
        assert_eq!(keyless.sampling(), Sampling::LOCAL);
        let keyed = LlmSettings {
            api_key: Some(SecretString::from("sk-or-1")),
            ..LlmSettings::default()
        };
        assert_eq!(keyed.sampling(), Sampling::API);
        let chosen = LlmSettings {
            temperature: Some(0.2),
            max_tokens: Some(64),
            ..LlmSettings::default()
        };
        assert_eq!(
            chosen.sampling(),
            Sampling {
                temperature: Some(0.2),
                top_p: Sampling::LOCAL.top_p,
                max_tokens: Some(64),
            }
        );
    }

    #[test]
    fn a_key_that_cannot_be_a_header_is_refused() {
        let settings = LlmSettings {
            api_key: Some(SecretString::from("sk-abc\ndef")),
            ..LlmSettings::default()
        };
        assert!(matches!(
            ProviderConfig::new(&settings),
            Err(LlmConfigError::ApiKey)
        ));
    }

    #[test]
    fn bad_base_urls_are_refused() {
        for url in ["openrouter.ai/api/v1", "ftp://example.com", ""] {
            let settings = LlmSettings {
                base_url: url.into(),
                ..LlmSettings::default()
            };
            assert!(ProviderConfig::new(&settings).is_err(), "{url}");
        }
    }
}
