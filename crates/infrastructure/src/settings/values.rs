//! Value types of the configuration: secret key lists, plain lists, the log format.

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
