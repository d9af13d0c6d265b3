//! Port: the prompts of memory extraction and reconciliation.

use ragback_domain::{Fact, Message};

use super::{PromptError, PromptMessage};
use crate::memory::Candidate;

/// The prompts of extraction and reconciliation.
///
/// Implementations must render every text they are given as data (a message or a fact cannot
/// change the instructions), and fail with [`PromptError`] rather than send a broken prompt.
pub trait MemoryPrompts: Send + Sync {
    /// Asks for the facts in `context` (oldest first; the last is the user message to read).
    fn extract(
        &self,
        user_name: &str,
        context: &[Message],
        character_canon: bool,
    ) -> Result<Vec<PromptMessage>, PromptError>;

    /// Asks what to do with `candidate` given the owner's nearest `stored` facts.
    fn reconcile(
        &self,
        candidate: &Candidate,
        stored: &[Fact],
    ) -> Result<Vec<PromptMessage>, PromptError>;
}
