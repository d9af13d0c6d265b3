//! The guard's adapters: the rules (cheap and precise where a phrase is enough), the trained
//! classifier (an embedding scored per tag), OpenAI's moderation endpoint, and a guard model in
//! Llama Guard's format behind an OpenAI-compatible endpoint.

pub mod classifier;
pub mod llm;
pub mod moderation;
pub mod rules;

pub use classifier::{ClassifierError, ClassifierGuard, load_classifier};
pub use llm::LlamaGuard;
pub use moderation::ModerationGuard;
pub use rules::{BannedPhraseError, BannedPhrases, RuleGuard};
