//! Where and when the scene takes place.

use crate::text::check_required_text;
use crate::{ValidationError, limits};

/// The scene the character is in, e.g. "You meet John at a bar after a long time apart."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario(String);

impl Scenario {
    /// Validates a scenario: not blank, at most [`limits::SCENARIO_CHARS`] characters; trimmed.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = value.into();
        check_required_text(&value, limits::SCENARIO_CHARS)?;
        Ok(Self(value.trim().to_owned()))
    }

    /// The scenario text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
