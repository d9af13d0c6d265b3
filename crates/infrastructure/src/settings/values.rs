//! Value types of the configuration: secret key lists, plain lists, the log format.

pub use ragback_integrations::config::List;
use ragback_integrations::config::raw_list;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// A set of secret bearer tokens: a comma-separated string (`RAGBACK_SERVER__API_KEYS=k1,k2`) or
/// a TOML list. An empty string is no keys; a list that holds a blank entry (`, `, `k1,,k2`, a
/// trailing comma) is refused: a typo must not turn authentication off.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys(pub Vec<SecretString>);

/// The shortest key accepted: shorter ones can be guessed.
pub const MIN_KEY_CHARS: usize = 16;

impl ApiKeys {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first problem of the keys: one shorter than [`MIN_KEY_CHARS`] characters (which one is
    /// not said: keys are never printed).
    pub fn problem(&self) -> Option<String> {
        let short = self
            .0
            .iter()
            .position(|k| k.expose_secret().chars().count() < MIN_KEY_CHARS)?;
        Some(format!(
            "key {} of {} is shorter than {MIN_KEY_CHARS} characters: use long random tokens \
             (e.g. `openssl rand -hex 32`)",
            short + 1,
            self.0.len()
        ))
    }
}

impl<'de> Deserialize<'de> for ApiKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = raw_list(
            deserializer,
            "an API key must not be a plain number: use a long random token",
        )?;
        if items.iter().any(|k| k.trim().is_empty()) {
            return Err(serde::de::Error::custom(
                "holds a blank key (`, `, `k1,,k2` or a trailing comma): list real keys, or \
                 leave the setting empty for no authentication",
            ));
        }
        Ok(Self(
            items
                .into_iter()
                .map(|k| SecretString::from(k.trim().to_owned()))
                .collect(),
        ))
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
