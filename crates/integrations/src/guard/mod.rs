//! The guard's adapters: the rules (cheap and precise where a phrase is enough) and the trained
//! classifier (an embedding scored per tag).

pub mod classifier;
pub mod rules;

pub use classifier::{ClassifierError, ClassifierGuard, load_classifier};
pub use rules::{BannedPhraseError, RuleGuard};
