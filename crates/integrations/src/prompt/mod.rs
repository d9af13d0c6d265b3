//! The prompt template, rendered with Tera 2.

use std::path::{Path, PathBuf};

use ragback_application::ports::{PromptContext, PromptError, PromptRenderer, RenderedPrompt};
use serde::Deserialize;
use tera::{Context, Tera};

use crate::errors::chain;

mod view;

pub use view::MAX_FACT_CHARS;
use view::View;

/// The template's name inside Tera.
const TEMPLATE: &str = "chat";
/// The block holding the system prompt (required).
const SYSTEM_BLOCK: &str = "system";
/// The block holding the user-side cue for a greeting (optional).
const OPENING_BLOCK: &str = "opening";
/// The block of what changes every turn: facts, triggered lore, the summary (optional; a
/// system message before the last user message).
const CONTEXT_BLOCK: &str = "context";
/// The block of instructions that go after the chat history, as a last system message
/// (optional; a Character Card's `post_history_instructions`).
const AFTER_HISTORY_BLOCK: &str = "after_history";

/// Settings of the prompt (`RAGBACK_PROMPT__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptSettings {
    /// The Tera template file.
    pub template: PathBuf,
    /// How many of the latest messages go into the prompt, at most.
    pub history_messages: usize,
    /// The most tokens a prompt may take; older messages are left out until it fits (a local
    /// model's context caps it further).
    pub max_prompt_tokens: usize,
}

impl PromptSettings {
    /// Checks what parses but cannot be used; keys are relative to the section.
    pub fn validate(&self) -> Result<(), ragback_application::bounds::InvalidSetting> {
        use ragback_application::bounds::{Bound, POSITIVE};
        POSITIVE.setting_count("history_messages", self.history_messages)?;
        Bound::at_least(64.0).setting_count("max_prompt_tokens", self.max_prompt_tokens)
    }
}

impl Default for PromptSettings {
    fn default() -> Self {
        Self {
            template: PathBuf::from("prompts/chat.tera"),
            history_messages: 20,
            max_prompt_tokens: 4_096,
        }
    }
}

/// Why the template cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The template path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid template, or lacks the `system` block.
    #[error("{path} is not a valid prompt template: {source}")]
    Invalid {
        /// The template path.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: InvalidTemplate,
    },
}

/// What is wrong with a template's text.
#[derive(Debug, thiserror::Error)]
pub enum InvalidTemplate {
    /// It does not compile.
    #[error("{}", chain(.0))]
    Syntax(#[source] tera::Error),
    /// A block does not render with sample data (or is missing).
    #[error("block `{block}`: {}", chain(source))]
    Block {
        /// The block.
        block: &'static str,
        /// Tera's error.
        #[source]
        source: tera::Error,
    },
}

/// Renders the prompt from a Tera template with a `system` block, and optional `opening` and
/// `after_history` blocks.
///
/// Values are inserted as data: template syntax inside messages, names or descriptions is never
/// evaluated, and nothing is HTML-escaped.
pub struct TeraPromptRenderer {
    tera: Tera,
    has_opening: bool,
    has_after_history: bool,
    has_context: bool,
}

/// Whether `source` defines the block `name`.
fn defines(source: &str, name: &str) -> bool {
    source.contains(&format!("{{% block {name}")) || source.contains(&format!("{{%- block {name}"))
}

impl TeraPromptRenderer {
    /// Loads and checks the template file.
    pub fn from_file(path: &Path) -> Result<Self, TemplateError> {
        let source = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_source(&source).map_err(|source| TemplateError::Invalid {
            path: path.to_owned(),
            source,
        })
    }

    /// Parses and checks a template given as text.
    pub fn from_source(source: &str) -> Result<Self, InvalidTemplate> {
        let mut tera = Tera::new();
        tera.autoescape_on(Vec::<&str>::new());
        tera.add_raw_template(TEMPLATE, source)
            .map_err(InvalidTemplate::Syntax)?;
        let renderer = Self {
            has_opening: defines(source, OPENING_BLOCK),
            has_after_history: defines(source, AFTER_HISTORY_BLOCK),
            has_context: defines(source, CONTEXT_BLOCK),
            tera,
        };
        // Render once with sample data so that a broken template fails at start-up, not on the
        // first request.
        renderer.check()?;
        Ok(renderer)
    }

    fn check(&self) -> Result<(), InvalidTemplate> {
        let context = Context::from_serialize(&View::sample()).map_err(InvalidTemplate::Syntax)?;
        let blocks = [
            Some(SYSTEM_BLOCK),
            self.has_opening.then_some(OPENING_BLOCK),
            self.has_after_history.then_some(AFTER_HISTORY_BLOCK),
            self.has_context.then_some(CONTEXT_BLOCK),
        ];
        for block in blocks.into_iter().flatten() {
            self.tera
                .render_block(TEMPLATE, block, &context)
                .map_err(|source| InvalidTemplate::Block { block, source })?;
        }
        Ok(())
    }
}

impl TeraPromptRenderer {
    /// Renders `block` when the template has it; blank is `None`.
    fn optional(
        &self,
        has: bool,
        block: &str,
        context: &Context,
    ) -> Result<Option<String>, PromptError> {
        if !has {
            return Ok(None);
        }
        let text = self
            .tera
            .render_block(TEMPLATE, block, context)
            .map_err(|e| PromptError::Template(chain(&e)))?;
        Ok(Some(tidy(&text)).filter(|t| !t.is_empty()))
    }
}

impl PromptRenderer for TeraPromptRenderer {
    fn render(&self, ctx: &PromptContext<'_>) -> Result<RenderedPrompt, PromptError> {
        let view = View::from_context(ctx);
        let context =
            Context::from_serialize(&view).map_err(|e| PromptError::Template(chain(&e)))?;
        let system = self
            .tera
            .render_block(TEMPLATE, SYSTEM_BLOCK, &context)
            .map_err(|e| PromptError::Template(chain(&e)))?;
        let opening_cue =
            self.optional(self.has_opening && ctx.greeting, OPENING_BLOCK, &context)?;
        Ok(RenderedPrompt {
            system: tidy(&system),
            opening_cue,
            after_history: self.optional(self.has_after_history, AFTER_HISTORY_BLOCK, &context)?,
            context: self.optional(self.has_context, CONTEXT_BLOCK, &context)?,
            at_depth: at_depth(ctx),
        })
    }
}

/// Lore entries placed in the history, one system message per depth.
fn at_depth(ctx: &PromptContext<'_>) -> Vec<(usize, String)> {
    let mut by_depth: Vec<(usize, String)> = Vec::new();
    for (depth, used) in ctx.lore.at_depth() {
        let text = view::lore_block(&used.content);
        match by_depth.iter_mut().find(|(d, _)| *d == depth) {
            Some((_, joined)) => {
                joined.push('\n');
                joined.push_str(&text);
            }
            None => by_depth.push((
                depth,
                format!("World info, quoted; facts of the story:\n{text}"),
            )),
        }
    }
    by_depth
}

/// Removes trailing spaces and runs of blank lines that template tags leave behind.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.trim().lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.truncate(out.trim_end().len());
    out
}

#[cfg(test)]
mod tests;
