//! The Character Card V2 fields ragback uses (spec `chara_card_v2`; a V3 card's V2 fields).

use crate::lore::Lorebook;
use crate::text::check_free_text;
use crate::{ValidationError, limits};

/// The most alternate greetings a card may hold.
pub const MAX_GREETINGS: usize = 64;

/// The prompt-relevant part of a Character Card V2 (`data.*`). Every field is optional free text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CharacterCard {
    /// `data.personality`: a short summary of the character's personality.
    pub personality: Option<String>,
    /// `data.scenario`: the card's default scenario, used when the request has none.
    pub scenario: Option<String>,
    /// `data.first_mes`: the card's greeting, shown to the model as an example of the opening line.
    pub first_mes: Option<String>,
    /// `data.mes_example`: example dialogue that shows the character's voice.
    pub mes_example: Option<String>,
    /// `data.system_prompt`: the card author's instructions, added to the system prompt.
    pub system_prompt: Option<String>,
    /// `data.post_history_instructions`: instructions the card wants after the chat history.
    pub post_history_instructions: Option<String>,
    /// `data.alternate_greetings`: other greetings, picked by index or by the request's seed.
    pub alternate_greetings: Vec<String>,
    /// `data.character_book`: the card's lorebook.
    pub character_book: Option<Lorebook>,
}

impl CharacterCard {
    /// Validates every field's length and characters; blank fields become `None`.
    pub fn new(mut self) -> Result<Self, (&'static str, ValidationError)> {
        for (field, value) in self.fields_mut() {
            if let Some(text) = value.as_deref() {
                check_free_text(text, limits::DESCRIPTION_CHARS).map_err(|e| (field, e))?;
                if text.trim().is_empty() {
                    *value = None;
                }
            }
        }
        if self.alternate_greetings.len() > MAX_GREETINGS {
            return Err((
                "alternate_greetings",
                ValidationError::TooLong {
                    max: MAX_GREETINGS,
                    actual: self.alternate_greetings.len(),
                },
            ));
        }
        for greeting in &self.alternate_greetings {
            check_free_text(greeting, limits::DESCRIPTION_CHARS)
                .map_err(|e| ("alternate_greetings", e))?;
        }
        Ok(self)
    }

    /// The greeting numbered `index`: 0 is `first_mes`, 1 and on the alternate greetings in
    /// order. `None` when there is no such greeting.
    pub fn greeting(&self, index: usize) -> Option<&str> {
        match index {
            0 => self.first_mes.as_deref(),
            n => self.alternate_greetings.get(n - 1).map(String::as_str),
        }
    }

    /// How many greetings there are to pick from (`first_mes` counts when present).
    pub fn greetings(&self) -> usize {
        1 + self.alternate_greetings.len()
    }

    /// Replaces the card macros `{{char}}` and `{{user}}` (any letter case) in every field.
    /// Only these two macros are known; any other `{{…}}` stays as written. The alternate
    /// greetings and the lorebook's entries are resolved too.
    pub fn resolve_macros(&mut self, char_name: &str, user_name: &str) {
        for (_, value) in self.fields_mut() {
            if let Some(text) = value {
                *text = resolve_card_macros(text, char_name, user_name);
            }
        }
        for greeting in &mut self.alternate_greetings {
            *greeting = resolve_card_macros(greeting, char_name, user_name);
        }
        if let Some(book) = &mut self.character_book {
            book.resolve_macros(char_name, user_name);
        }
    }

    fn fields_mut(&mut self) -> [(&'static str, &mut Option<String>); 6] {
        [
            ("personality", &mut self.personality),
            ("scenario", &mut self.scenario),
            ("first_mes", &mut self.first_mes),
            ("mes_example", &mut self.mes_example),
            ("system_prompt", &mut self.system_prompt),
            (
                "post_history_instructions",
                &mut self.post_history_instructions,
            ),
        ]
    }
}

/// Replaces `{{char}}` and `{{user}}` (any letter case) in card-authored text.
pub fn resolve_card_macros(text: &str, char_name: &str, user_name: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let replacement = [("{{char}}", char_name), ("{{user}}", user_name)]
            .into_iter()
            .find(|(token, _)| {
                after
                    .get(..token.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(token))
            });
        match replacement {
            Some((token, name)) => {
                out.push_str(name);
                rest = &after[token.len()..];
            }
            None => {
                out.push_str("{{");
                rest = &after[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macros_are_resolved_in_any_case_and_other_braces_are_kept() {
        let text = "{{char}} greets {{User}}. {{CHAR}} likes {{weather}} and {{";
        assert_eq!(
            resolve_card_macros(text, "Blaze", "John"),
            "Blaze greets John. Blaze likes {{weather}} and {{"
        );
    }

    #[test]
    fn blank_fields_become_none_and_long_ones_are_refused() {
        let card = CharacterCard {
            personality: Some("  ".into()),
            scenario: Some("A bar.".into()),
            ..CharacterCard::default()
        }
        .new()
        .unwrap();
        assert_eq!(card.personality, None);
        assert_eq!(card.scenario.as_deref(), Some("A bar."));

        let err = CharacterCard {
            mes_example: Some("x".repeat(limits::DESCRIPTION_CHARS + 1)),
            ..CharacterCard::default()
        }
        .new()
        .unwrap_err();
        assert_eq!(err.0, "mes_example");
    }
}
