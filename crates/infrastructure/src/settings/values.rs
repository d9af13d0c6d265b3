//! Value types of the configuration: secret key lists, plain lists, the log format.

pub use ragback_integrations::config::List;
use ragback_integrations::config::comma_list;
use secrecy::SecretString;
use serde::Deserialize;

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
