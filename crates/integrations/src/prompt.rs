//! The prompt template, rendered with Tera 2.

use std::path::{Path, PathBuf};

use ragback_application::ports::{PromptContext, PromptError, PromptRenderer, RenderedPrompt};
use ragback_domain::{OwnerKind, ScoredFact};
use serde::{Deserialize, Serialize};
use tera::{Context, Tera};

/// The template's name inside Tera.
const TEMPLATE: &str = "chat";
/// The block holding the system prompt (required).
const SYSTEM_BLOCK: &str = "system";
/// The block holding the user-side cue for a greeting (optional).
const OPENING_BLOCK: &str = "opening";

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
    #[error("{path} is not a valid prompt template: {message}")]
    Invalid {
        /// The template path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Renders the prompt from a Tera template with a `system` block and an optional `opening` block.
///
/// Values are inserted as data: template syntax inside messages, names or descriptions is never
/// evaluated, and nothing is HTML-escaped.
pub struct TeraPromptRenderer {
    tera: Tera,
    has_opening: bool,
}

impl TeraPromptRenderer {
    /// Loads and checks the template file.
    pub fn from_file(path: &Path) -> Result<Self, TemplateError> {
        let source = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_source(&source).map_err(|message| TemplateError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses and checks a template given as text.
    pub fn from_source(source: &str) -> Result<Self, String> {
        let mut tera = Tera::new();
        tera.autoescape_on(Vec::<&str>::new());
        tera.add_raw_template(TEMPLATE, source)
            .map_err(|e| error_chain(&e))?;
        let renderer = Self {
            has_opening: source.contains("{% block opening")
                || source.contains("{%- block opening"),
            tera,
        };
        // Render once with sample data so that a broken template fails at start-up, not on the
        // first request.
        renderer.check()?;
        Ok(renderer)
    }

    fn check(&self) -> Result<(), String> {
        let sample = View::sample();
        let context = Context::from_serialize(&sample).map_err(|e| error_chain(&e))?;
        self.tera
            .render_block(TEMPLATE, SYSTEM_BLOCK, &context)
            .map_err(|e| format!("block `{SYSTEM_BLOCK}`: {}", error_chain(&e)))?;
        if self.has_opening {
            self.tera
                .render_block(TEMPLATE, OPENING_BLOCK, &context)
                .map_err(|e| format!("block `{OPENING_BLOCK}`: {}", error_chain(&e)))?;
        }
        Ok(())
    }
}

impl PromptRenderer for TeraPromptRenderer {
    fn render(&self, ctx: &PromptContext<'_>) -> Result<RenderedPrompt, PromptError> {
        let view = View::from_context(ctx);
        let context =
            Context::from_serialize(&view).map_err(|e| PromptError::Template(error_chain(&e)))?;
        let system = self
            .tera
            .render_block(TEMPLATE, SYSTEM_BLOCK, &context)
            .map_err(|e| PromptError::Template(error_chain(&e)))?;
        let opening_cue = if ctx.greeting && self.has_opening {
            let cue = self
                .tera
                .render_block(TEMPLATE, OPENING_BLOCK, &context)
                .map_err(|e| PromptError::Template(error_chain(&e)))?;
            Some(tidy(&cue)).filter(|c| !c.is_empty())
        } else {
            None
        };
        Ok(RenderedPrompt {
            system: tidy(&system),
            opening_cue,
        })
    }
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

/// An error and its sources, `: `-separated.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    message
}

/// What the template sees. Every key is always present (absent values are `null`).
#[derive(Serialize)]
struct View<'a> {
    character: CharacterView<'a>,
    user: PersonView<'a>,
    scenario: Option<&'a str>,
    /// All facts, best first.
    facts: Vec<FactView<'a>>,
    /// Facts about the user.
    user_facts: Vec<FactView<'a>>,
    /// Facts about the character.
    character_facts: Vec<FactView<'a>>,
    greeting: bool,
}

#[derive(Serialize)]
struct CharacterView<'a> {
    name: &'a str,
    age: Option<u16>,
    description: &'a str,
    personality: Option<&'a str>,
    first_mes: Option<&'a str>,
    mes_example: Option<&'a str>,
    system_prompt: Option<&'a str>,
    post_history_instructions: Option<&'a str>,
}

#[derive(Serialize)]
struct PersonView<'a> {
    name: &'a str,
    age: Option<u16>,
}

#[derive(Clone, Copy, Serialize)]
struct FactView<'a> {
    text: &'a str,
    owner: &'static str,
    score: f32,
}

impl<'a> View<'a> {
    fn from_context(ctx: &PromptContext<'a>) -> Self {
        let card = ctx.character.card.as_ref();
        let field = |get: fn(&ragback_domain::CharacterCard) -> &Option<String>| {
            card.and_then(|c| get(c).as_deref())
        };
        let facts: Vec<FactView<'a>> = ctx.facts.iter().map(FactView::from).collect();
        let of = |kind: OwnerKind| {
            ctx.facts
                .iter()
                .filter(|f| f.fact.owner.kind() == kind)
                .map(FactView::from)
                .collect()
        };
        Self {
            character: CharacterView {
                name: ctx.character.name.as_str(),
                age: ctx.character.age.map(|a| a.years()),
                description: &ctx.character.description,
                personality: field(|c| &c.personality),
                first_mes: field(|c| &c.first_mes),
                mes_example: field(|c| &c.mes_example),
                system_prompt: field(|c| &c.system_prompt),
                post_history_instructions: field(|c| &c.post_history_instructions),
            },
            user: PersonView {
                name: ctx.user.name.as_str(),
                age: ctx.user.age.map(|a| a.years()),
            },
            scenario: ctx.scenario,
            user_facts: of(OwnerKind::User),
            character_facts: of(OwnerKind::Character),
            facts,
            greeting: ctx.greeting,
        }
    }

    /// Data that exercises every branch a template is likely to have.
    fn sample() -> View<'static> {
        let fact = FactView {
            text: "Sample fact",
            owner: "user",
            score: 0.5,
        };
        View {
            character: CharacterView {
                name: "Sample",
                age: Some(20),
                description: "A sample character.",
                personality: Some("calm"),
                first_mes: Some("Hi."),
                mes_example: Some("<START>"),
                system_prompt: Some("Be nice."),
                post_history_instructions: Some("Stay short."),
            },
            user: PersonView {
                name: "User",
                age: Some(30),
            },
            scenario: Some("A room."),
            facts: vec![FactView { ..fact }],
            user_facts: vec![FactView { ..fact }],
            character_facts: vec![FactView {
                owner: "character",
                ..fact
            }],
            greeting: true,
        }
    }
}

impl<'a> From<&'a ScoredFact> for FactView<'a> {
    fn from(f: &'a ScoredFact) -> Self {
        Self {
            text: f.fact.text.as_str(),
            owner: f.fact.owner.kind().as_str(),
            score: f.score,
        }
    }
}

#[cfg(test)]
mod tests {
    use ragback_domain::{
        Age, Character, CharacterCard, Fact, FactOwner, FactText, Name, User, UserId,
    };

    use super::*;

    /// The template shipped in `prompts/`.
    const SHIPPED: &str = include_str!("../../../prompts/chat.tera");

    fn user() -> User {
        User {
            id: Some(UserId::parse("john").unwrap()),
            name: Name::parse("John").unwrap(),
            age: Some(Age::new(23).unwrap()),
        }
    }

    fn character(description: &str, card: Option<CharacterCard>) -> Character {
        Character::new(
            None,
            Name::parse("Blaze").unwrap(),
            Some(Age::new(19).unwrap()),
            description,
            card,
        )
        .unwrap()
    }

    fn fact(text: &str) -> ScoredFact {
        ScoredFact {
            fact: Fact::new(
                FactOwner::User(UserId::parse("john").unwrap()),
                FactText::parse(text).unwrap(),
            ),
            score: 0.7,
        }
    }

    fn render(character: &Character, facts: &[ScoredFact], greeting: bool) -> RenderedPrompt {
        let renderer = TeraPromptRenderer::from_source(SHIPPED).unwrap();
        renderer
            .render(&PromptContext {
                character,
                user: &user(),
                scenario: Some("You meet John at a bar."),
                facts,
                greeting,
            })
            .unwrap()
    }

    #[test]
    fn the_system_prompt_holds_character_scene_user_facts_and_rules() {
        let blaze = character("Street persona from Brooklyn.", None);
        let prompt = render(&blaze, &[fact("Ran the London Marathon in 2024")], false);

        let system = &prompt.system;
        assert!(
            system.starts_with("You are Blaze, 19 years old."),
            "{system}"
        );
        assert!(system.contains("with John, who is 23"));
        assert!(system.contains("Street persona from Brooklyn."));
        assert!(system.contains("You meet John at a bar."));
        assert!(system.contains("- Ran the London Marathon in 2024"));
        assert!(system.contains("at most one of the facts"));
        assert!(system.contains("one brief action in asterisks"));
        assert!(
            !system.contains("\n\n\n"),
            "blank runs are tidied:\n{system}"
        );
        assert_eq!(prompt.opening_cue, None);
    }

    #[test]
    fn without_facts_the_facts_section_is_absent() {
        let prompt = render(&character("Persona.", None), &[], false);
        assert!(!prompt.system.contains("What you know about"));
        assert!(!prompt.system.contains("facts above"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(500)
        ))]

        /// Whatever the data holds (template syntax, quotes, unicode), rendering succeeds and
        /// every piece appears literally.
        #[test]
        fn any_data_renders_literally(
            description in "[^\\s\\p{C}][^\\p{C}]{0,120}[^\\s\\p{C}]",
            facts in proptest::collection::vec("[^\\s\\p{C}][^\\p{C}]{0,60}[^\\s\\p{C}]", 0..4),
            greeting in proptest::bool::ANY,
        ) {
            let facts: Vec<ScoredFact> = facts.iter().map(|t| fact(t)).collect();
            let prompt = render(&character(&description, None), &facts, greeting);
            proptest::prop_assert!(prompt.system.contains(&description));
            for f in &facts {
                let line = format!("- {}", f.fact.text.as_str());
                proptest::prop_assert!(prompt.system.contains(&line));
            }
        }
    }

    #[test]
    fn template_syntax_in_data_is_never_evaluated() {
        let tricky = "Says {{ user.name }} and {% if true %}x{% endif %} and <b>&</b>";
        let prompt = render(&character(tricky, None), &[fact("{{ secret }}")], false);
        assert!(prompt.system.contains(tricky), "{}", prompt.system);
        assert!(prompt.system.contains("- {{ secret }}"));
    }

    #[test]
    fn a_greeting_gets_the_opening_cue_and_the_cards_first_message() {
        let card = CharacterCard {
            first_mes: Some("*waves* Yo!".into()),
            personality: Some("loud".into()),
            ..Default::default()
        };
        let prompt = render(&character("Persona.", Some(card)), &[], true);
        assert_eq!(
            prompt.opening_cue.as_deref(),
            Some("[John is here. Open the conversation as Blaze, in the scene.]")
        );
        assert!(
            prompt
                .system
                .contains("Your usual greeting goes like this: *waves* Yo!")
        );
        assert!(prompt.system.contains("Personality: loud"));
    }

    #[test]
    fn broken_templates_are_refused_at_load() {
        assert!(TeraPromptRenderer::from_source("{% block system %}{{ oops").is_err());
        assert!(TeraPromptRenderer::from_source("no blocks at all").is_err());
        assert!(
            TeraPromptRenderer::from_source(
                "{% block system %}{{ user.name | nope }}{% endblock system %}"
            )
            .is_err()
        );
        let minimal = TeraPromptRenderer::from_source(
            "{% block system %}Hi {{ user.name }}{% endblock system %}",
        );
        assert!(minimal.is_ok());
    }
}
