//! Request parts shared by `/generate` and `/api/v1/chat`, and their conversion into domain
//! values. Validation happens here, and every failure names its field.

use std::fmt::Display;

use ragback_domain::{
    Age, Character, CharacterCard, CharacterId, LoreSource, Message, MessageText, Name, Role, User,
    UserId, ValidationError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::ApiError;
use super::lore_dto::LorebookDto;
use super::state::Limits;

/// Attaches the field path to a validation failure.
pub(crate) fn at<T>(
    field: impl Display,
    result: Result<T, ValidationError>,
) -> Result<T, ApiError> {
    result.map_err(|e| ApiError::invalid_field(field.to_string(), e.to_string()))
}

/// Who wrote a message, on the wire.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RoleDto {
    User,
    Character,
}

/// A message; `actor` is accepted for `role`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct MessageDto {
    #[serde(alias = "actor")]
    role: RoleDto,
    text: String,
}

/// The user.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct UserDto {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    age: Option<u16>,
}

/// The character, optionally with a Character Card V2.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct CharacterDto {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    age: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    card: Option<CardDto>,
}

/// A Character Card V2 (`{"spec": "chara_card_v2", "spec_version": "2.0", "data": {…}}`); a V3
/// card (`chara_card_v3`) is read by its V2 fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct CardDto {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spec: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spec_version: Option<String>,
    data: CardDataDto,
}

/// The card's data: the prompt fields ragback uses, and the others kept as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct CardDataDto {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    personality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scenario: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_mes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mes_example: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    creator_notes: Option<String>,
    /// Replaces nothing: it follows ragback's own rules, or wraps them where it says
    /// `{{original}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    system_prompt: Option<String>,
    /// Sent after the chat history, as its last system message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    post_history_instructions: Option<String>,
    /// Picked by the request's `greeting`, else by its `generation.seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alternate_greetings: Option<Vec<String>>,
    /// The card's lorebook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    character_book: Option<LorebookDto>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    creator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    character_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    extensions: Option<Map<String, Value>>,
}

/// Converts the history, refusing more than `limits.messages` messages and messages longer than
/// `limits.message_chars`.
pub(crate) fn messages(dtos: Vec<MessageDto>, limits: &Limits) -> Result<Vec<Message>, ApiError> {
    let max = limits.messages;
    if dtos.len() > max {
        return Err(ApiError::invalid_field(
            "messages",
            format!(
                "at most {max} messages are accepted, got {} (send the latest ones; \
                 RAGBACK_SERVER__MAX_MESSAGES sets the limit)",
                dtos.len()
            ),
        ));
    }
    dtos.into_iter()
        .enumerate()
        .map(|(i, dto)| {
            let role = match dto.role {
                RoleDto::User => Role::User,
                RoleDto::Character => Role::Character,
            };
            let field = || format!("messages[{i}].text");
            let chars = dto.text.chars().count();
            if chars > limits.message_chars {
                let too_long = ValidationError::TooLong {
                    max: limits.message_chars,
                    actual: chars,
                };
                return Err(ApiError::invalid_field(field(), too_long.to_string()));
            }
            let text = at(field(), MessageText::parse(dto.text))?;
            Ok(Message::new(role, text))
        })
        .collect()
}

fn age(field: &str, years: Option<u16>) -> Result<Option<Age>, ApiError> {
    years.map(|y| at(field, Age::new(y))).transpose()
}

impl UserDto {
    pub(crate) fn into_domain(self) -> Result<User, ApiError> {
        Ok(User {
            id: self
                .id
                .map(|id| at("user.id", UserId::parse(id)))
                .transpose()?,
            name: at("user.name", Name::parse(self.name))?,
            age: age("user.age", self.age)?,
        })
    }
}

impl CharacterDto {
    pub(crate) fn into_domain(self) -> Result<Character, ApiError> {
        let id = self
            .id
            .map(|id| at("character.id", CharacterId::parse(id)))
            .transpose()?;
        let name = at("character.name", Name::parse(self.name))?;
        let age = age("character.age", self.age)?;
        let (card, card_description) = match self.card {
            Some(card) => {
                if let Some(spec) = card.spec.as_deref()
                    && !matches!(spec, "chara_card_v2" | "chara_card_v3")
                {
                    return Err(ApiError::invalid_field(
                        "character.card.spec",
                        format!(
                            "must be `chara_card_v2` (Character Card V2) or `chara_card_v3`, got \
                             `{}`",
                            super::error::printable(spec)
                        ),
                    ));
                }
                let data = card.data;
                let character_book = data
                    .character_book
                    .map(|book| {
                        book.into_domain(
                            LoreSource::Character,
                            "character.card.data.character_book",
                        )
                    })
                    .transpose()?;
                let parsed = CharacterCard {
                    personality: data.personality,
                    scenario: data.scenario,
                    first_mes: data.first_mes,
                    mes_example: data.mes_example,
                    system_prompt: data.system_prompt,
                    post_history_instructions: data.post_history_instructions,
                    alternate_greetings: data.alternate_greetings.unwrap_or_default(),
                    character_book,
                }
                .new()
                .map_err(|(field, e)| {
                    ApiError::invalid_field(format!("character.card.data.{field}"), e.to_string())
                })?;
                (Some(parsed), data.description)
            }
            None => (None, None),
        };
        let Some(description) = self.description.or(card_description) else {
            return Err(ApiError::invalid_field(
                "character.description",
                "missing field (give a description, or a card with data.description)",
            ));
        };
        at(
            "character.description",
            Character::new(id, name, age, description, card),
        )
    }
}
