//! Port: turning the character, the scene and the facts into the model's instructions.

use ragback_domain::{Character, ScoredFact, User};

/// Everything the prompt template may use.
#[derive(Debug, Clone, Copy)]
pub struct PromptContext<'a> {
    /// The character (card macros already resolved).
    pub character: &'a Character,
    /// The user.
    pub user: &'a User,
    /// The scene: the request's, else the card's.
    pub scenario: Option<&'a str>,
    /// Facts to weave in, best first; empty when none qualified.
    pub facts: &'a [ScoredFact],
    /// True when the history is empty: the character opens the chat.
    pub greeting: bool,
    /// The card's greeting to show as an example of the opening line (`first_mes`, or the
    /// alternate greeting picked), when there is one.
    pub greeting_text: Option<&'a str>,
    /// The lorebook entries chosen for this turn.
    pub lore: &'a crate::lore::LoreSelection,
    /// What happened earlier in this conversation, before the messages in the prompt.
    pub summary: Option<&'a str>,
    /// Whether the card's example dialogue (`mes_example`) goes in; it is the first thing left
    /// out when the prompt is over its budget.
    pub examples: bool,
}

/// The rendered instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedPrompt {
    /// The system prompt.
    pub system: String,
    /// For a greeting, the user-side cue that asks the character to open the chat (some models
    /// need at least one user message).
    pub opening_cue: Option<String>,
    /// Instructions after the chat history, as its last system message (a Character Card's
    /// `post_history_instructions`, where the card spec puts them).
    pub after_history: Option<String>,
    /// What changes every turn (facts, triggered lore, the summary), as a system message right
    /// before the last user message; `system` stays the same from turn to turn.
    pub context: Option<String>,
    /// Lorebook entries to put among the history, as system messages this many messages
    /// before its end.
    pub at_depth: Vec<(usize, String)>,
}

/// Why rendering failed: a template problem, never the user's input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    /// The template could not be rendered.
    #[error("prompt template failed: {0}")]
    Template(String),
}

/// Renders the system prompt.
///
/// Implementations must treat every string of the context as data: template syntax inside user
/// or character text appears literally and is never evaluated.
pub trait PromptRenderer: Send + Sync {
    /// Renders the prompt for one turn.
    fn render(&self, context: &PromptContext<'_>) -> Result<RenderedPrompt, PromptError>;
}
