//! `RAGBACK_GUARD__*`: the reply guard — what is checked, what is done about each tag, and the
//! texts it uses.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ragback_application::bounds::InvalidSetting;
use ragback_application::guard::{
    DEFAULT_DEFLECTION, DEFAULT_GUARD_TIMEOUT, DEFAULT_REFERRAL, GuardPolicy, TagAction,
};
use ragback_application::ports::GuardTag;
use ragback_integrations::config::{millis, seconds};
use secrecy::SecretString;
use serde::Deserialize;

use super::{List, ModerationSettings};

/// The guards that can check replies (`RAGBACK_GUARD__ADAPTERS`).
pub const ADAPTERS: [&str; 4] = ["rules", "classifier", "openai", "llm"];

/// The reply guard's settings (`[guard]`, `RAGBACK_GUARD__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardConfig {
    /// Check every reply, and the user's message, before the reply is returned.
    pub enabled: bool,
    /// When a guard cannot answer: replace the reply (`true`) or let it through.
    pub fail_closed: bool,
    /// What to do per tag (`RAGBACK_GUARD__ACTIONS__VIOLENCE=pass`): `pass`, `regenerate` or
    /// `replace`.
    pub actions: BTreeMap<String, String>,
    /// In-character deflections per tag (`RAGBACK_GUARD__DEFLECTIONS__REAL_MEETING=…`).
    pub deflections: BTreeMap<String, String>,
    /// The deflection of a tag without its own.
    pub deflection: String,
    /// Shown beside the reply when the user's message shows self-harm intent.
    pub referral: String,
    /// Phrases a reply must not hold: regular expressions, case-insensitive (the `banned` tag).
    pub banned: List,
    /// The trained classifier (`ragback guard train`); unset or missing: the rules alone.
    pub classifier: Option<PathBuf>,
    /// The guards that check, together (their tags united): `rules`, `classifier`, `openai`,
    /// `llm`.
    pub adapters: List,
    /// How long one guard may take over one text (`timeout_ms`); later, it has failed.
    #[serde(rename = "timeout_ms", deserialize_with = "millis::deserialize")]
    pub timeout: Duration,
    /// OpenAI's moderation endpoint (`RAGBACK_GUARD__OPENAI__*`), for the `openai` adapter.
    pub openai: ModerationSettings,
    /// A guard model in Llama Guard's format (`RAGBACK_GUARD__LLM__*`), for the `llm` adapter.
    pub llm: GuardModelSettings,
}

/// A variant's own guard settings (`[variants.NAME.guard]`), over the top-level `[guard]`'s.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VariantGuard {
    /// Phrases this variant's replies must not hold, besides the top-level ones.
    pub banned: List,
    /// Actions per tag, over the top-level ones.
    pub actions: BTreeMap<String, String>,
    /// Deflections per tag, over the top-level ones.
    pub deflections: BTreeMap<String, String>,
    /// The deflection of a tag without its own.
    pub deflection: Option<String>,
}

impl VariantGuard {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A guard model behind an OpenAI-compatible chat-completions endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardModelSettings {
    /// Its base URL (`…/v1`): Ollama's `http://localhost:11434/v1`, a vLLM server.
    pub base_url: Option<String>,
    /// Its key, when it wants one.
    pub api_key: Option<SecretString>,
    /// The model, as the endpoint names it.
    pub model: String,
    /// Deadline of one HTTP call (`timeout_secs`); the guard's `timeout_ms` bounds it too.
    #[serde(rename = "timeout_secs", deserialize_with = "seconds::deserialize")]
    pub timeout: Duration,
}

impl Default for GuardModelSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            api_key: None,
            model: "llama-guard3".into(),
            timeout: Duration::from_secs(10),
        }
    }
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            fail_closed: true,
            actions: BTreeMap::new(),
            deflections: BTreeMap::new(),
            deflection: DEFAULT_DEFLECTION.into(),
            referral: DEFAULT_REFERRAL.into(),
            banned: List::default(),
            classifier: Some(PathBuf::from("data/safety/classifier.json")),
            adapters: List(vec!["rules".into(), "classifier".into()]),
            timeout: DEFAULT_GUARD_TIMEOUT,
            openai: ModerationSettings::default(),
            llm: GuardModelSettings::default(),
        }
    }
}

/// The tag of a settings key.
fn tag(section: &str, key: &str) -> Result<GuardTag, InvalidSetting> {
    GuardTag::parse(key).ok_or_else(|| {
        let known: Vec<&str> = GuardTag::ALL.iter().map(|t| t.key()).collect();
        InvalidSetting::new(
            format!("{section}.{key}"),
            format!("no tag `{key}`; the tags are {}", known.join(", ")),
        )
    })
}

impl GuardConfig {
    /// Checks what parses but cannot be used; keys are relative to the section.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        for adapter in &self.adapters.0 {
            if !ADAPTERS.contains(&adapter.as_str()) {
                return Err(InvalidSetting::new(
                    "adapters",
                    format!(
                        "no guard `{adapter}`; the guards are {}",
                        ADAPTERS.join(", ")
                    ),
                ));
            }
        }
        if self.enabled && self.adapters.0.is_empty() {
            return Err(InvalidSetting::new(
                "adapters",
                "no guard named: name at least one, or turn the guard off with enabled = false",
            ));
        }
        if self.uses("llm") && self.llm.base_url.is_none() {
            return Err(InvalidSetting::new(
                "llm.base_url",
                "the `llm` guard needs the endpoint serving the guard model (e.g. Ollama's \
                 http://localhost:11434/v1)",
            ));
        }
        if self.timeout.is_zero() {
            return Err(InvalidSetting::new("timeout_ms", "must be at least 1"));
        }
        self.policy().map(|_| ())
    }

    /// The settings of a variant: `variant`'s banned phrases added to these, its actions and
    /// deflections over these.
    pub fn for_variant(&self, variant: &VariantGuard) -> Self {
        let mut merged = self.clone();
        merged.banned.0.extend(variant.banned.0.iter().cloned());
        merged.actions.extend(variant.actions.clone());
        merged.deflections.extend(variant.deflections.clone());
        if let Some(deflection) = &variant.deflection {
            merged.deflection.clone_from(deflection);
        }
        merged
    }

    /// Whether `adapter` is one of the guards.
    pub fn uses(&self, adapter: &str) -> bool {
        self.adapters.0.iter().any(|a| a == adapter)
    }

    /// The policy these settings describe.
    pub fn policy(&self) -> Result<GuardPolicy, InvalidSetting> {
        let mut actions = BTreeMap::new();
        for (key, action) in &self.actions {
            let parsed = TagAction::parse(action.trim()).ok_or_else(|| {
                InvalidSetting::new(
                    format!("actions.{key}"),
                    format!("`{action}` is not an action: pass, regenerate or replace"),
                )
            })?;
            actions.insert(tag("actions", key)?, parsed);
        }
        let mut deflections = BTreeMap::new();
        for (key, text) in &self.deflections {
            if text.trim().is_empty() {
                return Err(InvalidSetting::new(
                    format!("deflections.{key}"),
                    "must not be blank",
                ));
            }
            deflections.insert(tag("deflections", key)?, text.trim().to_owned());
        }
        for (name, text) in [
            ("deflection", &self.deflection),
            ("referral", &self.referral),
        ] {
            if text.trim().is_empty() {
                return Err(InvalidSetting::new(name, "must not be blank"));
            }
        }
        Ok(GuardPolicy {
            actions,
            deflections,
            deflection: self.deflection.trim().to_owned(),
            fail_closed: self.fail_closed,
            referral: self.referral.trim().to_owned(),
            timeout: self.timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_deflections_name_real_tags() {
        let mut config = GuardConfig::default();
        config.actions.insert("violence".into(), "pass".into());
        config
            .deflections
            .insert("real_meeting".into(), "*laughs* Nice try.".into());
        let policy = config.policy().unwrap();
        assert_eq!(policy.action(GuardTag::Violence, false), TagAction::Pass);
        assert_eq!(
            policy.deflection(GuardTag::RealMeeting),
            "*laughs* Nice try."
        );
        config.actions.insert("gore".into(), "pass".into());
        let error = config.validate().unwrap_err();
        assert!(error.problem.contains("no tag `gore`"), "{error:?}");
        let mut config = GuardConfig::default();
        config.actions.insert("hate".into(), "ignore".into());
        assert!(
            config
                .validate()
                .unwrap_err()
                .problem
                .contains("pass, regenerate or replace")
        );
    }
}
