//! OpenRouter's routing features as settings (`[llm.routing]`, `[variants.NAME.routing]`), and
//! their request-body form: `models`, `provider` and `reasoning`, exactly as OpenRouter reads
//! them. Other OpenAI-compatible providers get none of them but a reasoning effort, as OpenAI's
//! own `reasoning_effort`.

use ragback_application::bounds::{InvalidSetting, POSITIVE};
use ragback_application::ports::{
    DataCollection, ModelRouting, ProviderPreferences, ReasoningBudget, ReasoningEffort,
};
use serde::{Deserialize, Serialize};

use crate::config::List;

/// How the provider may route a call (`RAGBACK_LLM__ROUTING__*`); OpenRouter only, but for the
/// reasoning effort.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingSettings {
    /// Models OpenRouter tries in order when the model fails or refuses (`models`).
    pub fallback_models: List,
    /// Providers OpenRouter tries first, in order (`provider.order`).
    pub provider_order: List,
    /// Whether OpenRouter may use other providers when those fail (`provider.allow_fallbacks`).
    pub allow_fallbacks: Option<bool>,
    /// `allow` or `deny`: providers that keep prompts (`provider.data_collection`).
    pub data_collection: Option<DataCollectionSetting>,
    /// `none`, `minimal`, `low`, `medium` or `high`: how hard a reasoning model thinks.
    pub reasoning_effort: Option<EffortSetting>,
    /// The most tokens a reasoning model may think (OpenRouter's `reasoning.max_tokens`).
    pub reasoning_max_tokens: Option<u32>,
}

/// `allow` or `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataCollectionSetting {
    /// Any provider.
    Allow,
    /// Only providers that keep no prompts.
    Deny,
}

/// A reasoning effort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EffortSetting {
    /// No reasoning.
    None,
    /// The least.
    Minimal,
    /// Little.
    Low,
    /// The usual.
    Medium,
    /// Much.
    High,
}

impl RoutingSettings {
    /// Checks what parses but cannot be sent; keys are relative to the section.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if let Some(tokens) = self.reasoning_max_tokens {
            POSITIVE.setting("reasoning_max_tokens", tokens)?;
            if self.reasoning_effort.is_some() {
                return Err(InvalidSetting::new(
                    "reasoning_max_tokens",
                    "set either a reasoning effort or a cap in tokens, not both (providers \
                     take one)",
                ));
            }
        }
        if self.fallback_models.0.len() > 3 {
            return Err(InvalidSetting::new(
                "fallback_models",
                "OpenRouter takes at most 3 fallback models",
            ));
        }
        Ok(())
    }

    /// The routing the use case passes on.
    pub fn routing(&self) -> ModelRouting {
        let provider = (!self.provider_order.0.is_empty()
            || self.allow_fallbacks.is_some()
            || self.data_collection.is_some())
        .then(|| ProviderPreferences {
            order: self.provider_order.0.clone(),
            allow_fallbacks: self.allow_fallbacks,
            data_collection: self.data_collection.map(|d| match d {
                DataCollectionSetting::Allow => DataCollection::Allow,
                DataCollectionSetting::Deny => DataCollection::Deny,
            }),
        });
        let effort = self.reasoning_effort.map(|e| match e {
            EffortSetting::None => ReasoningEffort::None,
            EffortSetting::Minimal => ReasoningEffort::Minimal,
            EffortSetting::Low => ReasoningEffort::Low,
            EffortSetting::Medium => ReasoningEffort::Medium,
            EffortSetting::High => ReasoningEffort::High,
        });
        let reasoning = self
            .reasoning_max_tokens
            .map(ReasoningBudget::MaxTokens)
            .or(effort.map(ReasoningBudget::Effort));
        ModelRouting {
            fallback_models: self.fallback_models.0.clone(),
            provider,
            reasoning,
        }
    }
}

/// What a provider that is not OpenRouter cannot be sent of `routing`, for the start-up warning.
pub fn unsupported_outside_openrouter(routing: &ModelRouting) -> Vec<&'static str> {
    let mut unsupported = Vec::new();
    if !routing.fallback_models.is_empty() {
        unsupported.push("fallback_models");
    }
    if routing.provider.is_some() {
        unsupported.push("provider preferences");
    }
    if matches!(routing.reasoning, Some(ReasoningBudget::MaxTokens(_))) {
        unsupported.push("reasoning_max_tokens");
    }
    unsupported
}

/// The fields OpenRouter reads beside the OpenAI ones.
#[derive(Debug, Default, Serialize)]
pub(super) struct OpenRouterFields {
    /// The model first, then its fallbacks, in priority order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    models: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<ProviderBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<ReasoningBody>,
}

#[derive(Debug, Serialize)]
struct ProviderBody {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    order: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allow_fallbacks: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_collection: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct ReasoningBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    effort: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
}

impl OpenRouterFields {
    /// OpenRouter's form of `routing` for a call to `model`.
    pub(super) fn of(model: &str, routing: &ModelRouting) -> Self {
        let models = if routing.fallback_models.is_empty() {
            Vec::new()
        } else {
            std::iter::once(model.to_owned())
                .chain(routing.fallback_models.iter().cloned())
                .collect()
        };
        Self {
            models,
            provider: routing.provider.as_ref().map(|p| ProviderBody {
                order: p.order.clone(),
                allow_fallbacks: p.allow_fallbacks,
                data_collection: p.data_collection.map(|d| match d {
                    DataCollection::Allow => "allow",
                    DataCollection::Deny => "deny",
                }),
            }),
            reasoning: routing.reasoning.map(|r| match r {
                ReasoningBudget::Effort(effort) => ReasoningBody {
                    effort: Some(effort.as_str()),
                    max_tokens: None,
                },
                ReasoningBudget::MaxTokens(tokens) => ReasoningBody {
                    effort: None,
                    max_tokens: Some(tokens),
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn openrouter_fields_are_written_in_openrouter_s_format() {
        let settings = RoutingSettings {
            fallback_models: List(vec!["openai/gpt-4o-mini".into()]),
            provider_order: List(vec!["anthropic".into(), "openai".into()]),
            allow_fallbacks: Some(false),
            data_collection: Some(DataCollectionSetting::Deny),
            reasoning_effort: None,
            reasoning_max_tokens: Some(256),
        };
        settings.validate().unwrap();
        let fields = OpenRouterFields::of("anthropic/claude-3.5-haiku", &settings.routing());
        assert_eq!(
            serde_json::to_value(fields).unwrap(),
            json!({
                "models": ["anthropic/claude-3.5-haiku", "openai/gpt-4o-mini"],
                "provider": {"order": ["anthropic", "openai"], "allow_fallbacks": false,
                             "data_collection": "deny"},
                "reasoning": {"max_tokens": 256},
            })
        );
        let effort = RoutingSettings {
            reasoning_effort: Some(EffortSetting::Low),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(OpenRouterFields::of("m", &effort.routing())).unwrap(),
            json!({"reasoning": {"effort": "low"}})
        );
        let nothing = OpenRouterFields::of("m", &RoutingSettings::default().routing());
        assert_eq!(serde_json::to_value(nothing).unwrap(), json!({}));
    }

    #[test]
    fn a_budget_is_an_effort_or_a_cap_and_fallbacks_are_few() {
        let both = RoutingSettings {
            reasoning_effort: Some(EffortSetting::High),
            reasoning_max_tokens: Some(100),
            ..Default::default()
        };
        assert_eq!(both.validate().unwrap_err().key, "reasoning_max_tokens");
        let zero = RoutingSettings {
            reasoning_max_tokens: Some(0),
            ..Default::default()
        };
        assert!(zero.validate().is_err());
        let many = RoutingSettings {
            fallback_models: List(vec!["a".into(), "b".into(), "c".into(), "d".into()]),
            ..Default::default()
        };
        assert_eq!(many.validate().unwrap_err().key, "fallback_models");
    }

    #[test]
    fn outside_openrouter_only_an_effort_can_be_sent() {
        let effort = RoutingSettings {
            reasoning_effort: Some(EffortSetting::Low),
            ..Default::default()
        };
        assert!(unsupported_outside_openrouter(&effort.routing()).is_empty());
        let all = RoutingSettings {
            fallback_models: List(vec!["x".into()]),
            data_collection: Some(DataCollectionSetting::Allow),
            reasoning_max_tokens: Some(10),
            ..Default::default()
        };
        assert_eq!(
            unsupported_outside_openrouter(&all.routing()),
            [
                "fallback_models",
                "provider preferences",
                "reasoning_max_tokens"
            ]
        );
    }
}
