//! The role-play character whose next line ragback writes.

use crate::text::{check_free_text, label_id};
use crate::{Age, CharacterCard, Name, ValidationError, limits, resolve_card_macros};

label_id!(
    /// The upstream service's id of a character; facts about the character are stored under it.
    CharacterId
);

/// A role-play character.
#[derive(Debug, Clone, PartialEq)]
pub struct Character {
    /// Upstream id; without one, no character facts are retrieved.
    pub id: Option<CharacterId>,
    /// The character's name, also stripped from the start of replies.
    pub name: Name,
    /// Age in years, when known.
    pub age: Option<Age>,
    /// Who the character is: persona, voice, background.
    pub description: String,
    /// The richer Character Card V2 fields, when the caller sent a card.
    pub card: Option<CharacterCard>,
}

impl Character {
    /// Builds a character, validating the description's length. Card macros (`{{char}}`,
    /// `{{user}}`) are resolved later, once the user's name is known.
    pub fn new(
        id: Option<CharacterId>,
        name: Name,
        age: Option<Age>,
        description: impl Into<String>,
        card: Option<CharacterCard>,
    ) -> Result<Self, ValidationError> {
        let description = description.into();
        check_free_text(&description, limits::DESCRIPTION_CHARS)?;
        Ok(Self {
            id,
            name,
            age,
            description: description.trim().to_owned(),
            card,
        })
    }

    /// Resolves the card macros `{{char}}` and `{{user}}` in the description and the card, for a
    /// chat with `user_name`. Other `{{…}}` text is left as written.
    pub fn resolve_macros(&mut self, user_name: &str) {
        self.description = resolve_card_macros(&self.description, self.name.as_str(), user_name);
        if let Some(card) = &mut self.card {
            card.resolve_macros(self.name.as_str(), user_name);
        }
    }
}
