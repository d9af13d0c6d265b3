//! `[variants.NAME]` and `[experiment]`: named bundles of model, sampling, routing, template and
//! retrieval settings, and the split of users between them. Unset fields of a variant are the
//! default variant's (`[llm]`, `[prompt]`, `[retrieval]`); its `routing`, when given, replaces
//! the default's whole.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ragback_application::bounds::{self, InvalidSetting};
use ragback_application::variants::DEFAULT_VARIANT;
use ragback_integrations::llm::RoutingSettings;
use serde::Deserialize;

use super::{GuardConfig, VariantGuard};

/// Longest variant name.
const MAX_NAME_CHARS: usize = 64;

/// One variant (`[variants.NAME]`, `RAGBACK_VARIANTS__NAME__*`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VariantConfig {
    /// The model.
    pub model: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Upper bound on generated tokens.
    pub max_tokens: Option<u32>,
    /// The prompt template file.
    pub template: Option<PathBuf>,
    /// Retrieval settings.
    pub retrieval: VariantRetrieval,
    /// OpenRouter's routing; replaces `[llm.routing]` whole when given.
    pub routing: Option<RoutingSettings>,
    /// `cache_control` breakpoints (default: `RAGBACK_LLM__CACHE_CONTROL`).
    pub cache_control: Option<bool>,
    /// The reply guard's banned phrases, actions and deflections, over `[guard]`'s.
    pub guard: VariantGuard,
}

/// A variant's retrieval settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VariantRetrieval {
    /// Retrieval on or off.
    pub enabled: Option<bool>,
    /// Facts per reply, at most.
    pub top_k: Option<usize>,
    /// Minimum cosine similarity of a used fact.
    pub threshold: Option<f32>,
    /// Facts after the best must score within this of it.
    pub margin: Option<f32>,
}

/// The experiment (`[experiment]`): who gets which variant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Hashed with the user id; a new salt reshuffles every user.
    pub salt: String,
    /// Each variant's share in percent, adding up to 100 (`{a = 90, b = 10}`), laid out by name;
    /// empty: everyone gets the default variant.
    pub variants: BTreeMap<String, u32>,
}

impl ExperimentConfig {
    /// The shares, by name.
    pub fn shares(&self) -> Vec<(String, u32)> {
        self.variants.iter().map(|(n, s)| (n.clone(), *s)).collect()
    }

    /// Checks the shares; keys are relative to `experiment`.
    pub fn validate(
        &self,
        variants: &BTreeMap<String, VariantConfig>,
    ) -> Result<(), InvalidSetting> {
        if self.variants.is_empty() {
            return Ok(());
        }
        for name in self.variants.keys() {
            if name != DEFAULT_VARIANT && !variants.contains_key(name) {
                return Err(InvalidSetting::new(
                    format!("variants.{name}"),
                    format!(
                        "`{name}` is not a variant: define [variants.{name}], or use one of {}",
                        known(variants)
                    ),
                ));
            }
        }
        let total: u64 = self.variants.values().map(|s| u64::from(*s)).sum();
        if total != 100 {
            return Err(InvalidSetting::new(
                "variants",
                format!("the shares are percentages and must add up to 100, not {total}"),
            ));
        }
        Ok(())
    }
}

fn known(variants: &BTreeMap<String, VariantConfig>) -> String {
    std::iter::once(DEFAULT_VARIANT)
        .chain(variants.keys().map(String::as_str))
        .collect::<Vec<_>>()
        .join(", ")
}

impl VariantConfig {
    /// Checks what parses but cannot be used; keys are relative to the variant.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if let Some(model) = &self.model
            && model.trim().is_empty()
        {
            return Err(InvalidSetting::new("model", "must not be empty"));
        }
        bounds::sampling(self.temperature, self.top_p, self.max_tokens)?;
        let r = &self.retrieval;
        if let Some(k) = r.top_k {
            bounds::TOP_K.setting_count("retrieval.top_k", k)?;
        }
        if let Some(t) = r.threshold {
            bounds::THRESHOLD.setting("retrieval.threshold", t)?;
        }
        if let Some(m) = r.margin {
            bounds::MARGIN.setting("retrieval.margin", m)?;
        }
        if let Some(routing) = &self.routing {
            routing.validate().map_err(|e| e.under("routing"))?;
        }
        GuardConfig::default()
            .for_variant(&self.guard)
            .policy()
            .map_err(|e| e.under("guard"))?;
        Ok(())
    }
}

/// Checks every variant and its name; keys are relative to `variants`.
pub fn validate_variants(variants: &BTreeMap<String, VariantConfig>) -> Result<(), InvalidSetting> {
    for (name, variant) in variants {
        if name == DEFAULT_VARIANT {
            return Err(InvalidSetting::new(
                name.clone(),
                "the default variant is the top-level configuration ([llm], [prompt], \
                 [retrieval]): set it there",
            ));
        }
        let well_named = !name.is_empty()
            && name.chars().count() <= MAX_NAME_CHARS
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !well_named {
            return Err(InvalidSetting::new(
                name.clone(),
                format!(
                    "a variant name is 1 to {MAX_NAME_CHARS} lowercase letters, digits, `-` or `_`"
                ),
            ));
        }
        variant.validate().map_err(|e| e.under(name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ragback_application::ports::{DataCollection, ReasoningBudget, ReasoningEffort};

    use crate::settings::Settings;
    use crate::sources::ConfigSources;
    use crate::wiring::build_variants;

    const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../prompts/chat.tera");

    fn from_toml(toml: &str, vars: &[(&str, &str)]) -> Result<Settings, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ragback.toml");
        std::fs::write(&path, toml).unwrap();
        let sources = ConfigSources {
            toml: Some(path),
            dotenv: None,
            environment: false,
        };
        let mut vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        vars.push(("RAGBACK_PROMPT__TEMPLATE".into(), TEMPLATE.into()));
        vars.push(("RAGBACK_LLM__API_KEY".into(), "sk-or-test".into()));
        Settings::load(&sources, &vars).map_err(|e| e.to_string())
    }

    const TWO_VARIANTS: &str = r#"
[llm]
model = "mistralai/mistral-nemo"
temperature = 0.8

[llm.routing]
fallback_models = ["openai/gpt-4o-mini"]

[variants.b]
model = "anthropic/claude-3.5-haiku"
temperature = 0.6
max_tokens = 150
retrieval = { top_k = 2, threshold = 0.4 }
routing = { provider_order = ["anthropic"], allow_fallbacks = false, data_collection = "deny", reasoning_effort = "low" }

[variants.c]
top_p = 0.5

[experiment]
salt = "2026-12"
variants = { default = 80, b = 10, c = 10 }
"#;

    #[test]
    fn variants_inherit_the_default_and_the_split_is_built() {
        let settings = from_toml(TWO_VARIANTS, &[]).unwrap();
        let set = build_variants(&settings).unwrap();
        assert_eq!(set.names().collect::<Vec<_>>(), ["b", "c", "default"]);

        let default = set.named("default").unwrap();
        assert_eq!(default.params.model, "mistralai/mistral-nemo");
        assert_eq!(
            default.params.routing.fallback_models,
            ["openai/gpt-4o-mini"]
        );

        let b = set.named("b").unwrap();
        assert_eq!(b.params.model, "anthropic/claude-3.5-haiku");
        assert_eq!(b.params.temperature, Some(0.6));
        assert_eq!(b.params.max_tokens, Some(150));
        assert_eq!(b.params.top_p, default.params.top_p, "inherited");
        assert_eq!(b.retrieval.top_k, Some(2));
        assert_eq!(b.retrieval.threshold, Some(0.4));
        assert!(
            b.params.routing.fallback_models.is_empty(),
            "b's routing replaces the default's"
        );
        let provider = b.params.routing.provider.clone().unwrap();
        assert_eq!(provider.order, ["anthropic"]);
        assert_eq!(provider.allow_fallbacks, Some(false));
        assert_eq!(provider.data_collection, Some(DataCollection::Deny));
        assert_eq!(
            b.params.routing.reasoning,
            Some(ReasoningBudget::Effort(ReasoningEffort::Low))
        );

        let c = set.named("c").unwrap();
        assert_eq!(c.params.model, "mistralai/mistral-nemo");
        assert_eq!(c.params.top_p, Some(0.5));
        assert_eq!(
            c.params.routing, default.params.routing,
            "no routing of its own"
        );

        let shares = set.split().unwrap().shares().to_vec();
        assert_eq!(
            shares,
            [("b".into(), 10), ("c".into(), 10), ("default".into(), 80)]
        );
    }

    #[test]
    fn variants_come_from_the_environment_too() {
        let settings = from_toml(
            "",
            &[
                ("RAGBACK_VARIANTS__B__MODEL", "openai/gpt-4o"),
                (
                    "RAGBACK_VARIANTS__B__ROUTING__FALLBACK_MODELS",
                    "x/one, x/two",
                ),
                ("RAGBACK_EXPERIMENT__SALT", "s"),
                ("RAGBACK_EXPERIMENT__VARIANTS__DEFAULT", "50"),
                ("RAGBACK_EXPERIMENT__VARIANTS__B", "50"),
            ],
        )
        .unwrap();
        let set = build_variants(&settings).unwrap();
        let b = set.named("b").unwrap();
        assert_eq!(b.params.model, "openai/gpt-4o");
        assert_eq!(b.params.routing.fallback_models, ["x/one", "x/two"]);
        assert_eq!(set.split().unwrap().shares().len(), 2);
    }

    #[test]
    fn bad_variants_and_splits_name_what_to_fix() {
        let cases = [
            (
                "[experiment]\nvariants = { default = 90, b = 10 }\n",
                "RAGBACK_EXPERIMENT__VARIANTS__B",
            ),
            (
                "[variants.b]\nmodel = \"m\"\n[experiment]\nvariants = { default = 90, b = 20 }\n",
                "add up to 100, not 110",
            ),
            (
                "[variants.b]\ntemperature = 3.0\n",
                "RAGBACK_VARIANTS__B__TEMPERATURE",
            ),
            ("[variants.B]\nmodel = \"m\"\n", "lowercase"),
            (
                "[variants.default]\nmodel = \"m\"\n",
                "top-level configuration",
            ),
            ("[variants.b]\nmodle = \"m\"\n", "modle"),
            (
                "[variants.b.routing]\nreasoning_effort = \"high\"\nreasoning_max_tokens = 10\n",
                "RAGBACK_VARIANTS__B__ROUTING__REASONING_MAX_TOKENS",
            ),
            (
                "[variants.b.retrieval]\ntop_k = 0\n",
                "RAGBACK_VARIANTS__B__RETRIEVAL__TOP_K",
            ),
        ];
        for (toml, expected) in cases {
            let error = from_toml(toml, &[]).unwrap_err();
            assert!(error.contains(expected), "{toml}: {error}");
        }
    }

    #[test]
    fn the_example_file_is_a_valid_configuration() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let example = std::fs::read_to_string(root.join("ragback.example.toml")).unwrap();
        let mut settings = from_toml(&example, &[]).unwrap();
        for variant in settings.variants.values_mut() {
            variant.template = variant.template.as_ref().map(|t| root.join(t));
        }
        let set = build_variants(&settings).unwrap();
        assert_eq!(set.names().collect::<Vec<_>>(), ["b", "default"]);
        let b = set.named("b").unwrap();
        assert_eq!(
            b.params.routing.reasoning,
            Some(ReasoningBudget::MaxTokens(256))
        );
        assert!(b.params.cache_control, "b marks its stable part");
        assert!(!set.named("default").unwrap().params.cache_control);
        assert_eq!(set.split().unwrap().shares()[0], ("b".to_owned(), 10));
    }

    #[test]
    fn a_broken_template_of_a_variant_stops_the_start_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let broken = dir.path().join("broken.tera");
        std::fs::write(
            &broken,
            "{% block system %}{{ character.name | nosuchfilter }}{% endblock %}",
        )
        .unwrap();
        let toml = format!(
            "[variants.b]\ntemplate = {:?}\n",
            broken.display().to_string()
        );
        let settings = from_toml(&toml, &[]).unwrap();
        let error = build_variants(&settings).unwrap_err().to_string();
        assert!(
            error.starts_with("RAGBACK_VARIANTS__B__TEMPLATE: "),
            "{error}"
        );
        assert!(error.contains("broken.tera"), "{error}");

        let missing = from_toml("[variants.b]\ntemplate = \"nowhere.tera\"\n", &[]).unwrap();
        let error = build_variants(&missing).unwrap_err().to_string();
        assert!(error.contains("RAGBACK_VARIANTS__B__TEMPLATE"), "{error}");
        assert!(error.contains("nowhere.tera"), "{error}");
    }
}
