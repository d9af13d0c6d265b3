//! The person chatting with a character.

use crate::text::label_id;
use crate::{Age, Name};

label_id!(
    /// The upstream service's id of a user; facts are stored under it.
    UserId
);

/// The person talking to the character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Upstream id; without one, retrieval falls back to the configured default user.
    pub id: Option<UserId>,
    /// How the character addresses them.
    pub name: Name,
    /// Age in years, when known.
    pub age: Option<Age>,
}
