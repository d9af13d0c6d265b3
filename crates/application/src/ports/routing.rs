//! How the provider may route a call: fallback models, provider preferences and a reasoning
//! budget. Our own words for what OpenRouter offers; an adapter whose provider has no such
//! feature leaves them out (and the start-up log says so).

/// Routing of one chat-completion call; the default asks for nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelRouting {
    /// Models the provider tries in order when the requested one fails or refuses.
    pub fallback_models: Vec<String>,
    /// Which upstream providers may serve the call.
    pub provider: Option<ProviderPreferences>,
    /// How much a reasoning model may think before it answers.
    pub reasoning: Option<ReasoningBudget>,
}

impl ModelRouting {
    /// Whether nothing is asked.
    pub fn is_empty(&self) -> bool {
        self.fallback_models.is_empty() && self.provider.is_none() && self.reasoning.is_none()
    }
}

/// Preferences among the providers serving a model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderPreferences {
    /// Providers to try first, in order.
    pub order: Vec<String>,
    /// Whether others may serve the call when those fail; unset, the provider's default.
    pub allow_fallbacks: Option<bool>,
    /// Whether providers that keep or train on prompts may serve the call.
    pub data_collection: Option<DataCollection>,
}

/// Whether providers that store prompts may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataCollection {
    /// Any provider.
    Allow,
    /// Only providers that do not keep prompts.
    Deny,
}

/// A reasoning model's thinking budget: a coarse effort, or a cap in tokens (one of them, as
/// providers accept one at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasoningBudget {
    /// An effort level.
    Effort(ReasoningEffort),
    /// At most this many reasoning tokens.
    MaxTokens(u32),
}

/// How hard a reasoning model thinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasoningEffort {
    /// No reasoning.
    None,
    /// The least that still reasons.
    Minimal,
    /// Little.
    Low,
    /// The usual.
    Medium,
    /// Much.
    High,
}

impl ReasoningEffort {
    /// Its name on the wire (`low`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Minimal => "minimal",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}
