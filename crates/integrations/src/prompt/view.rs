//! What the template sees: every value from outside made data.

use ragback_application::lore::LoreUse;
use ragback_application::ports::PromptContext;
use ragback_domain::{LorePosition, OwnerKind, ScoredFact};
use serde::Serialize;

use crate::prompt_data::{block, inline, strip_controls};

/// The longest a fact is in a prompt, in characters (longer ones are cut, with `…`).
pub const MAX_FACT_CHARS: usize = 300;

/// The longest summary in a prompt, in characters.
const SUMMARY_CHARS: usize = 8_000;

/// What the template sees. Every key is always present (absent values are `null`).
///
/// Everything that comes from outside is data ([`prompt_data`](crate::prompt_data)): names and a
/// greeting as one line, facts as one quoted line each, descriptions, personality, scene,
/// example dialogue, lore and the summary as quoted lines (`> …`) — none can start a section, a
/// role or a turn. A card's `system_prompt` and `post_history_instructions` are instructions by
/// design: only control tokens are removed from them.
#[derive(Serialize)]
pub(super) struct View {
    character: CharacterView,
    user: PersonView,
    scenario: Option<String>,
    /// All facts, best first.
    facts: Vec<FactView>,
    /// Facts about the user.
    user_facts: Vec<FactView>,
    /// Facts about the character.
    character_facts: Vec<FactView>,
    greeting: bool,
    /// Constant lore (stable: the system block's), before and after the character.
    lore_before_char: Vec<LoreView>,
    lore_after_char: Vec<LoreView>,
    /// Lore triggered this turn (the context block's), in insertion order.
    lore: Vec<LoreView>,
    /// What happened earlier in this conversation, quoted.
    summary: Option<String>,
}

#[derive(Serialize)]
struct CharacterView {
    name: String,
    age: Option<u16>,
    description: String,
    personality: Option<String>,
    first_mes: Option<String>,
    mes_example: Option<String>,
    /// The card's system prompt before `{{original}}` (ragback's rules), when it has one.
    system_prompt_before: Option<String>,
    /// The card's system prompt (after `{{original}}`, when it has one).
    system_prompt: Option<String>,
    post_history_instructions: Option<String>,
}

#[derive(Serialize)]
struct PersonView {
    name: String,
    age: Option<u16>,
}

#[derive(Clone, Serialize)]
struct FactView {
    /// The fact as a JSON string literal, quotes included.
    text: String,
    owner: &'static str,
    score: f32,
}

#[derive(Clone, Serialize)]
struct LoreView {
    /// The entry's name, one line (its id when it has none).
    name: String,
    /// Its content as quoted lines.
    content: String,
}

impl From<&LoreUse> for LoreView {
    fn from(used: &LoreUse) -> Self {
        Self {
            name: inline(used.name.as_deref().unwrap_or(&used.id), 100),
            content: lore_block(&used.content),
        }
    }
}

/// An entry's content as quoted lines.
pub(super) fn lore_block(content: &str) -> String {
    block(content, ragback_domain::lore_limits::CONTENT_CHARS)
}

/// The card's system prompt split at `{{original}}` (any letter case): what goes before
/// ragback's own rules, and what after. Without the macro everything goes after.
fn split_original(text: &str) -> (Option<&str>, Option<&str>) {
    let macro_at = text.to_ascii_lowercase().find("{{original}}");
    match macro_at {
        Some(at) => {
            let (before, after) = (&text[..at], &text[at + "{{original}}".len()..]);
            (non_blank(before), non_blank(after))
        }
        None => (None, Some(text)),
    }
}

fn non_blank(text: &str) -> Option<&str> {
    Some(text).filter(|t| !t.trim().is_empty())
}

impl View {
    pub(super) fn from_context(ctx: &PromptContext<'_>) -> Self {
        use ragback_domain::limits::{DESCRIPTION_CHARS, NAME_CHARS, SCENARIO_CHARS};
        let card = ctx.character.card.as_ref();
        let field = |get: fn(&ragback_domain::CharacterCard) -> &Option<String>| {
            card.and_then(|c| get(c).as_deref())
        };
        let quoted_lines = |text: Option<&str>| text.map(|t| block(t, DESCRIPTION_CHARS));
        // Other `{{original}}`s are dropped: there is one set of rules.
        let instructions = |text: Option<&str>| {
            text.map(|t| strip_controls(t, &[]).replace("{{original}}", ""))
                .filter(|t| !t.trim().is_empty())
        };
        let (system_before, system_after) = field(|c| &c.system_prompt)
            .map(split_original)
            .unwrap_or_default();
        let facts: Vec<FactView> = ctx.facts.iter().map(FactView::from).collect();
        let of = |kind: OwnerKind| {
            ctx.facts
                .iter()
                .filter(|f| f.fact.owner.kind() == kind)
                .map(FactView::from)
                .collect()
        };
        let lore = ctx.lore;
        let triggered = |position| lore.triggered(position).map(LoreView::from);
        Self {
            character: CharacterView {
                name: inline(ctx.character.name.as_str(), NAME_CHARS),
                age: ctx.character.age.map(|a| a.years()),
                description: block(&ctx.character.description, DESCRIPTION_CHARS),
                personality: quoted_lines(field(|c| &c.personality)),
                first_mes: ctx.greeting_text.map(|t| inline(t, DESCRIPTION_CHARS)),
                mes_example: quoted_lines(field(|c| &c.mes_example).filter(|_| ctx.examples)),
                system_prompt_before: instructions(system_before),
                system_prompt: instructions(system_after),
                post_history_instructions: instructions(field(|c| &c.post_history_instructions)),
            },
            user: PersonView {
                name: inline(ctx.user.name.as_str(), NAME_CHARS),
                age: ctx.user.age.map(|a| a.years()),
            },
            scenario: ctx.scenario.map(|s| block(s, SCENARIO_CHARS)),
            user_facts: of(OwnerKind::User),
            character_facts: of(OwnerKind::Character),
            facts,
            greeting: ctx.greeting,
            lore_before_char: lore
                .constant(LorePosition::BeforeChar)
                .map(LoreView::from)
                .collect(),
            lore_after_char: lore
                .constant(LorePosition::AfterChar)
                .map(LoreView::from)
                .collect(),
            lore: triggered(LorePosition::BeforeChar)
                .chain(triggered(LorePosition::AfterChar))
                .collect(),
            summary: ctx.summary.map(|s| block(s, SUMMARY_CHARS)),
        }
    }

    /// Data that exercises every branch a template is likely to have.
    pub(super) fn sample() -> View {
        let fact = FactView {
            text: "\"Sample fact\"".into(),
            owner: "user",
            score: 0.5,
        };
        let lore = LoreView {
            name: "Sample lore".into(),
            content: "> The world.".into(),
        };
        let some = |text: &str| Some(text.to_owned());
        View {
            character: CharacterView {
                name: "Sample".into(),
                age: Some(20),
                description: "> A sample character.".into(),
                personality: some("> calm"),
                first_mes: some("Hi."),
                mes_example: some("> <START>"),
                system_prompt_before: some("Be kind."),
                system_prompt: some("Be nice."),
                post_history_instructions: some("Stay short."),
            },
            user: PersonView {
                name: "User".into(),
                age: Some(30),
            },
            scenario: some("> A room."),
            facts: vec![fact.clone()],
            user_facts: vec![fact.clone()],
            character_facts: vec![FactView {
                owner: "character",
                ..fact
            }],
            greeting: true,
            lore_before_char: vec![lore.clone()],
            lore_after_char: vec![lore.clone()],
            lore: vec![lore],
            summary: some("> Earlier."),
        }
    }
}

impl From<&ScoredFact> for FactView {
    fn from(f: &ScoredFact) -> Self {
        Self {
            text: crate::prompt_data::quoted(f.fact.text.as_str(), MAX_FACT_CHARS),
            owner: f.fact.owner.kind().as_str(),
            score: f.score,
        }
    }
}
