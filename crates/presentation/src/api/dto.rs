//! Request parts shared by `/generate` and `/api/v1/chat`, and their conversion into domain
//! values. Validation happens here, and every failure names its field.

use std::fmt::Display;

use ragback_domain::{
    Age, Character, CharacterCard, CharacterId, Message, MessageText, Name, Role, User, UserId,
    ValidationError,
};
use serde::Deserialize;

use super::error::ApiError;
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

/// A Character Card V2 (`{"spec": "chara_card_v2", "spec_version": "2.0", "data": {…}}`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct CardDto {
    #[serde(default)]
    spec: Option<String>,
    data: CardDataDto,
}

/// The card fields ragback uses; the others (tags, creator, extensions, …) are ignored.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct CardDataDto {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    personality: Option<String>,
    #[serde(default)]
    scenario: Option<String>,
    #[serde(default)]
    first_mes: Option<String>,
    #[serde(default)]
    mes_example: Option<String>,
    #[serde(default)]
    system_prompt: Option<String>,
    #[serde(default)]
    post_history_instructions: Option<String>,
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
                    && spec != "chara_card_v2"
                {
                    return Err(ApiError::invalid_field(
                        "character.card.spec",
                        format!("must be `chara_card_v2` (Character Card V2), got `{spec}`"),
                    ));
                }
                let data = card.data;
                let parsed = CharacterCard {
                    personality: data.personality,
                    scenario: data.scenario,
                    first_mes: data.first_mes,
                    mes_example: data.mes_example,
                    system_prompt: data.system_prompt,
                    post_history_instructions: data.post_history_instructions,
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
