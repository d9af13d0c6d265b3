//! One turn of the chat history.

use crate::text::check_required_text;
use crate::{ValidationError, limits};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The human user.
    User,
    /// The role-play character (a previous reply of ours, or an upstream-authored line).
    Character,
}

impl Role {
    /// The wire name: `user` or `character`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Character => "character",
        }
    }
}

/// The text of a message: not blank, at most [`limits::MESSAGE_CHARS`] characters. Kept as written
/// (it is data: template syntax inside it is never evaluated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    /// Validates a message text.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = value.into();
        check_required_text(&value, limits::MESSAGE_CHARS)?;
        Ok(Self(value))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One message of the chat history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// What was written.
    pub text: MessageText,
}

impl Message {
    /// A message from `role`.
    pub fn new(role: Role, text: MessageText) -> Self {
        Self { role, text }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_message_is_refused() {
        assert_eq!(MessageText::parse(" \n "), Err(ValidationError::Empty));
    }

    #[test]
    fn template_syntax_is_kept_verbatim() {
        let text = MessageText::parse("{{ secret }} {% if x %}").unwrap();
        assert_eq!(text.as_str(), "{{ secret }} {% if x %}");
    }
}
