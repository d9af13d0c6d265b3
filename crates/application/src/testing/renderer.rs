//! A plain prompt renderer for tests.

use crate::ports::{PromptContext, PromptError, PromptRenderer, RenderedPrompt};

/// Renders a plain-text system prompt listing the context, one item per line.
#[derive(Debug, Default)]
pub struct PlainRenderer;

impl PromptRenderer for PlainRenderer {
    fn render(&self, ctx: &PromptContext<'_>) -> Result<RenderedPrompt, PromptError> {
        let mut system = format!(
            "character: {}\ndescription: {}\nuser: {}\n",
            ctx.character.name, ctx.character.description, ctx.user.name
        );
        if let Some(scenario) = ctx.scenario {
            system.push_str(&format!("scenario: {scenario}\n"));
        }
        for fact in ctx.facts {
            system.push_str(&format!("fact: {}\n", fact.fact.text.as_str()));
        }
        Ok(RenderedPrompt {
            system,
            opening_cue: ctx.greeting.then(|| "open the chat".to_owned()),
            after_history: None,
            context: None,
            at_depth: Vec::new(),
        })
    }
}
