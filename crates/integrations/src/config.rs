//! What every settings struct shares: durations read as whole milliseconds or seconds (the unit is
//! in the key's name, `timeout_secs`), parsed once into [`Duration`]s, and lists that are a TOML
//! list or one comma-separated variable.

use serde::Deserialize;

/// A duration given in milliseconds.
pub mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Reads a whole number of milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// A duration given in seconds.
pub mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Reads a whole number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_secs)
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
pub fn comma_list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    refusal: &'static str,
) -> Result<Vec<String>, D::Error> {
    Ok(raw_list(deserializer, refusal)?
        .into_iter()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect())
}

/// A list, or one comma-separated string split at its commas, as given: items untrimmed, blank
/// ones kept (an empty string is no items). Numbers and booleans are refused with `refusal`.
pub fn raw_list<'de, D: serde::Deserializer<'de>>(
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
    match Raw::deserialize(deserializer)? {
        Raw::List(items) => Ok(items),
        Raw::Text(text) if text.is_empty() => Ok(Vec::new()),
        Raw::Text(text) => Ok(text.split(',').map(str::to_owned).collect()),
        Raw::Other(_) => Err(serde::de::Error::custom(refusal)),
    }
}
