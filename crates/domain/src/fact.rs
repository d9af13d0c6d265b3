//! Facts: short statements about a user or a character, retrieved by similarity and put in
//! the prompt.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::Provenance;
use crate::text::check_required_text;
use crate::{CharacterId, UnknownValue, UserId, ValidationError, limits};

/// The namespace of fact ids (UUID v5). Changing it would change every id: never do.
const FACT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x7a3c_51e2_9d44_4b0f_8e21_66c9_0f5a_d713);

/// Whose fact it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OwnerKind {
    /// A fact about a user.
    User,
    /// A fact about a character.
    Character,
}

impl OwnerKind {
    /// The wire name: `user` or `character`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Character => "character",
        }
    }
}

impl FromStr for OwnerKind {
    type Err = UnknownValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "user" => Ok(Self::User),
            "character" => Ok(Self::Character),
            other => Err(UnknownValue::new(
                other,
                "a fact owner kind (user or character)",
            )),
        }
    }
}

/// The user or character a fact is about. Facts of one owner are never returned for another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FactOwner {
    /// A user's fact.
    User(UserId),
    /// A character's fact.
    Character(CharacterId),
}

impl FactOwner {
    /// Rebuilds an owner from its kind and id, as stored.
    pub fn from_parts(kind: OwnerKind, id: &str) -> Result<Self, ValidationError> {
        Ok(match kind {
            OwnerKind::User => Self::User(UserId::parse(id)?),
            OwnerKind::Character => Self::Character(CharacterId::parse(id)?),
        })
    }

    /// User or character.
    pub fn kind(&self) -> OwnerKind {
        match self {
            Self::User(_) => OwnerKind::User,
            Self::Character(_) => OwnerKind::Character,
        }
    }

    /// The owner's id.
    pub fn id(&self) -> &str {
        match self {
            Self::User(id) => id.as_str(),
            Self::Character(id) => id.as_str(),
        }
    }

    /// A single string that identifies the owner across kinds: `user:john`, `character:blaze`.
    /// Stores index and filter on it.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind().as_str(), self.id())
    }
}

impl fmt::Display for FactOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind().as_str(), self.id())
    }
}

/// The text of a fact: not blank, at most [`limits::FACT_CHARS`] characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FactText(String);

impl FactText {
    /// Validates and trims a fact.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = value.into();
        check_required_text(&value, limits::FACT_CHARS)?;
        Ok(Self(value.trim().to_owned()))
    }

    /// The fact as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A fact's id: a UUID v5 of its owner and its text, so adding the same fact twice keeps one copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FactId(Uuid);

impl FactId {
    /// The id of `text` owned by `owner`.
    pub fn derive(owner: &FactOwner, text: &FactText) -> Self {
        // The unit separator cannot appear in ids (no control characters), so the encoding of
        // (kind, id, text) is unambiguous.
        let name = format!(
            "{}\u{1f}{}\u{1f}{}",
            owner.kind().as_str(),
            owner.id(),
            text.as_str()
        );
        Self(Uuid::new_v5(&FACT_ID_NAMESPACE, name.as_bytes()))
    }

    /// Wraps a UUID read back from a store.
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl FromStr for FactId {
    type Err = uuid::Error;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(value).map(Self)
    }
}

impl fmt::Display for FactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Something known about a user or a character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// Derived from owner and text.
    pub id: FactId,
    /// Whose fact it is.
    pub owner: FactOwner,
    /// The statement itself.
    pub text: FactText,
    /// Where it came from and when; `None` for facts stored before ragback recorded it.
    pub provenance: Option<Provenance>,
}

impl Fact {
    /// A fact with its derived id, its provenance not (yet) known.
    pub fn new(owner: FactOwner, text: FactText) -> Self {
        Self {
            id: FactId::derive(&owner, &text),
            owner,
            text,
            provenance: None,
        }
    }

    /// The same fact with `provenance`.
    pub fn with_provenance(mut self, provenance: Provenance) -> Self {
        self.provenance = Some(provenance);
        self
    }
}

/// A fact found by similarity search, with its cosine similarity to the query.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredFact {
    /// The fact.
    pub fact: Fact,
    /// Cosine similarity to the query, in `[-1, 1]`.
    pub score: f32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> FactOwner {
        FactOwner::User(UserId::parse(id).unwrap())
    }

    #[test]
    fn same_owner_and_text_give_the_same_id_after_trimming() {
        let a = Fact::new(user("john"), FactText::parse("Ran a marathon").unwrap());
        let b = Fact::new(
            user("john"),
            FactText::parse("  Ran a marathon \n").unwrap(),
        );
        assert_eq!(a.id, b.id);
    }

    #[test]
    fn owner_and_kind_change_the_id() {
        let text = FactText::parse("Likes jazz").unwrap();
        let john = FactId::derive(&user("john"), &text);
        let jane = FactId::derive(&user("jane"), &text);
        let character = FactId::derive(
            &FactOwner::Character(CharacterId::parse("john").unwrap()),
            &text,
        );
        assert_ne!(john, jane);
        assert_ne!(john, character);
    }

    #[test]
    fn ids_are_stable_across_releases() {
        // Stored facts are addressed by these ids: this value must never change. Cross-checked
        // with Python: uuid.uuid5(UUID(int=0x7a3c51e29d444b0f8e2166c90f5ad713), "user\x1fjohn\x1fLikes jazz").
        let id = FactId::derive(&user("john"), &FactText::parse("Likes jazz").unwrap());
        assert_eq!(id.to_string(), "ad35100d-599d-5f0d-982e-7359b09ee501");
    }

    #[test]
    fn owner_round_trips_through_its_parts() {
        let owner = user("john");
        assert_eq!(owner.key(), "user:john");
        assert_eq!(
            FactOwner::from_parts(owner.kind(), owner.id()).unwrap(),
            owner
        );
        assert!("robot".parse::<OwnerKind>().is_err());
    }
}
