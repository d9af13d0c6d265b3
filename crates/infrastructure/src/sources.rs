//! Where configuration comes from: defaults → optional `ragback.toml` → `.env` → environment.
//!
//! Variables are `RAGBACK_SECTION__KEY` (`__` between levels, any case); `OPENROUTER_API_KEY` and
//! `COHERE_API_KEY` are accepted as aliases of the two API keys, below the `RAGBACK_` names.
//! Empty values count as unset, so a copied `.env.template` with blanks changes nothing.

use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

/// The prefix of ragback's variables.
pub const PREFIX: &str = "RAGBACK_";
/// Conventional variable names accepted for the API keys.
const ALIASES: [(&str, &str); 2] = [
    ("OPENROUTER_API_KEY", "llm.api_key"),
    ("COHERE_API_KEY", "embedder.cohere.api_key"),
];

/// Which files to read besides the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSources {
    /// A TOML file; read when it exists.
    pub toml: Option<PathBuf>,
    /// A dotenv file; read when it exists.
    pub dotenv: Option<PathBuf>,
    /// Whether to read the process environment.
    pub environment: bool,
}

impl Default for ConfigSources {
    /// `ragback.toml` and `.env` in the working directory, and the environment.
    fn default() -> Self {
        Self {
            toml: Some(PathBuf::from("ragback.toml")),
            dotenv: Some(PathBuf::from(".env")),
            environment: true,
        }
    }
}

impl ConfigSources {
    /// Only the given variables: for tests.
    pub fn none() -> Self {
        Self {
            toml: None,
            dotenv: None,
            environment: false,
        }
    }

    /// The layered figment, without the defaults (they come from `#[serde(default)]`).
    pub(crate) fn figment(&self, extra: &[(String, String)]) -> Result<Figment, String> {
        let mut figment = Figment::new();
        if let Some(toml) = self.toml.as_deref().filter(|p| p.exists()) {
            figment = figment.merge(Toml::file_exact(toml));
        }
        if let Some(dotenv) = self.dotenv.as_deref().filter(|p| p.exists()) {
            let pairs = read_dotenv(dotenv)?;
            figment = figment.merge(Variables::new(format!("{}", dotenv.display()), pairs));
        }
        if self.environment {
            figment = figment.merge(Variables::new("environment", std::env::vars().collect()));
        }
        if !extra.is_empty() {
            figment = figment.merge(Variables::new("overrides", extra.to_vec()));
        }
        Ok(figment)
    }
}

fn read_dotenv(path: &Path) -> Result<Vec<(String, String)>, String> {
    let iter = dotenvy::from_path_iter(path).map_err(|e| format!("{}: {e}", path.display()))?;
    iter.map(|item| item.map_err(|e| format!("{}: {e}", path.display())))
        .collect()
}

/// The configuration key (`llm.api_key`) of a variable name, if it is one of ours.
fn key_of(name: &str) -> Option<String> {
    // The configuration file's own path (`ragback --config`), not a setting.
    if name.eq_ignore_ascii_case("RAGBACK_CONFIG") {
        return None;
    }
    if let Some((_, key)) = ALIASES.iter().find(|(alias, _)| name == *alias) {
        return Some((*key).to_owned());
    }
    let rest = name
        .get(..PREFIX.len())?
        .eq_ignore_ascii_case(PREFIX)
        .then(|| &name[PREFIX.len()..])?;
    let key = rest.to_ascii_lowercase().replace("__", ".");
    (!key.is_empty() && !key.split('.').any(str::is_empty)).then_some(key)
}

/// The variable name of a configuration key: `llm.api_key` → `RAGBACK_LLM__API_KEY`.
pub fn variable_of(path: &[String]) -> String {
    format!("{PREFIX}{}", path.join("__").to_ascii_uppercase())
}

/// A set of variables as a figment provider, aliases merged below the `RAGBACK_` names.
struct Variables {
    name: String,
    pairs: Vec<(String, String)>,
}

impl Variables {
    fn new(name: impl Into<String>, pairs: Vec<(String, String)>) -> Self {
        Self {
            name: name.into(),
            pairs,
        }
    }
}

impl Provider for Variables {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone()).interpolater(|_profile, path| {
            variable_of(&path.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut aliases = Dict::new();
        let mut ours = Dict::new();
        for (name, value) in &self.pairs {
            if value.trim().is_empty() {
                continue;
            }
            let Some(key) = key_of(name.trim()) else {
                continue;
            };
            let parsed: Value = value.parse().unwrap_or_else(|_| Value::from(value.clone()));
            let Some(nested) = figment::util::nest(&key, parsed).into_dict() else {
                continue;
            };
            let target =
                if name.starts_with(PREFIX) || name.to_ascii_uppercase().starts_with(PREFIX) {
                    &mut ours
                } else {
                    &mut aliases
                };
            *target = std::mem::take(target).merge(nested);
        }
        Ok(Profile::Default.collect(aliases.merge(ours)))
    }
}

/// `Dict` merging, the way figment's own `Env` does it.
trait Merge {
    fn merge(self, other: Dict) -> Dict;
}

impl Merge for Dict {
    fn merge(mut self, other: Dict) -> Dict {
        for (key, value) in other {
            let merged = match (self.remove(&key), value) {
                (Some(Value::Dict(tag, left)), Value::Dict(_, right)) => {
                    Value::Dict(tag, left.merge(right))
                }
                (_, value) => value,
            };
            self.insert(key, merged);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_names_map_to_keys_and_back() {
        assert_eq!(
            key_of("RAGBACK_LLM__API_KEY").as_deref(),
            Some("llm.api_key")
        );
        assert_eq!(key_of("ragback_log_format").as_deref(), Some("log_format"));
        assert_eq!(key_of("OPENROUTER_API_KEY").as_deref(), Some("llm.api_key"));
        assert_eq!(key_of("RAGBACK_"), None);
        assert_eq!(key_of("RAGBACK_CONFIG"), None);
        assert_eq!(key_of("RAGBACK_LLM____X"), None);
        assert_eq!(key_of("PATH"), None);
        assert_eq!(
            variable_of(&["embedder".into(), "cohere".into(), "api_key".into()]),
            "RAGBACK_EMBEDDER__COHERE__API_KEY"
        );
    }
}
