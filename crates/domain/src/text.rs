//! Validation shared by the textual value objects: names, ids, free text, ages.

use std::fmt;

/// Upper bounds on the size of domain values, in characters (Unicode scalar values).
pub mod limits {
    /// A user or character name.
    pub const NAME_CHARS: usize = 100;
    /// A user or character id.
    pub const ID_CHARS: usize = 128;
    /// One chat message.
    pub const MESSAGE_CHARS: usize = 8_000;
    /// A character description (and each free-text field of a character card).
    pub const DESCRIPTION_CHARS: usize = 16_000;
    /// A scenario.
    pub const SCENARIO_CHARS: usize = 4_000;
    /// One fact.
    pub const FACT_CHARS: usize = 2_000;
    /// The oldest age accepted.
    pub const MAX_AGE: u16 = 150;
}

/// A value that is none of the accepted forms (an owner kind, a fact source, a time).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not {expected}")]
pub struct UnknownValue {
    /// What was given.
    pub value: String,
    /// What is accepted, in words.
    pub expected: &'static str,
}

impl UnknownValue {
    /// `value` is not `expected`.
    pub fn new(value: &str, expected: &'static str) -> Self {
        Self {
            value: value.to_owned(),
            expected,
        }
    }
}

/// Why a value was refused. The caller knows which field it came from and adds that.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    /// Empty, or only whitespace.
    #[error("must not be empty")]
    Empty,
    /// Longer than allowed.
    #[error("must be at most {max} characters long (got {actual})")]
    TooLong {
        /// The limit.
        max: usize,
        /// The length received.
        actual: usize,
    },
    /// Holds a control character (line breaks are allowed only in free text).
    #[error("must not contain control characters")]
    ControlCharacter,
    /// Holds an invisible formatting character (a bidirectional control, a zero-width
    /// character), which would make two different values look the same.
    #[error(
        "must not contain invisible formatting characters (bidirectional controls, zero-width \
         characters)"
    )]
    InvisibleCharacter,
    /// A number below its smallest value (ranges open at the top).
    #[error("must be at least {min} (got {actual})")]
    TooSmall {
        /// Smallest accepted value.
        min: f64,
        /// The value received.
        actual: f64,
    },
    /// A number outside its range.
    #[error("must be between {min} and {max} (got {actual})")]
    OutOfRange {
        /// Smallest accepted value.
        min: f64,
        /// Largest accepted value.
        max: f64,
        /// The value received.
        actual: f64,
    },
}

/// Whether `c` is an invisible formatting character: a bidirectional control (which reorders
/// what is displayed), a zero-width character, a soft hyphen, a tag character. Two strings that
/// differ only by these look the same.
pub fn is_invisible_format(c: char) -> bool {
    is_bidi_control(c)
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{180E}' | '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}'
            | '\u{206A}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}')
}

/// Whether `c` changes the direction text is displayed in (the explicit bidirectional controls).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Checks a one-line label (a name): not blank, not too long, no control characters, no
/// bidirectional controls (zero-width joiners stay: emoji and some scripts need them).
pub(crate) fn check_label(value: &str, max: usize) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::Empty);
    }
    check_length(value, max)?;
    if value.chars().any(char::is_control) {
        return Err(ValidationError::ControlCharacter);
    }
    if value.chars().any(is_bidi_control) {
        return Err(ValidationError::InvisibleCharacter);
    }
    Ok(())
}

/// Checks an id: a label without any invisible formatting character, so that an id always looks
/// like what it is.
pub(crate) fn check_id(value: &str, max: usize) -> Result<(), ValidationError> {
    check_label(value, max)?;
    if value.chars().any(is_invisible_format) {
        return Err(ValidationError::InvisibleCharacter);
    }
    Ok(())
}

/// Checks free text: not too long, and no control characters other than tabs and line breaks.
pub(crate) fn check_free_text(value: &str, max: usize) -> Result<(), ValidationError> {
    check_length(value, max)?;
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ValidationError::ControlCharacter);
    }
    Ok(())
}

/// Checks free text that must say something.
pub(crate) fn check_required_text(value: &str, max: usize) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::Empty);
    }
    check_free_text(value, max)
}

fn check_length(value: &str, max: usize) -> Result<(), ValidationError> {
    // Byte length bounds the char count from above: skip counting for short strings.
    if value.len() > max {
        let actual = value.chars().count();
        if actual > max {
            return Err(ValidationError::TooLong { max, actual });
        }
    }
    Ok(())
}

/// The display name of a user or a character: not blank, at most [`limits::NAME_CHARS`] characters,
/// surrounding whitespace removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(String);

impl Name {
    /// Validates and trims a name.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = value.into();
        check_label(&value, limits::NAME_CHARS)?;
        Ok(Self(value.trim().to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An age in years, at most [`limits::MAX_AGE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Age(u16);

impl Age {
    /// Validates an age.
    pub fn new(years: u16) -> Result<Self, ValidationError> {
        if years > limits::MAX_AGE {
            return Err(ValidationError::OutOfRange {
                min: 0.0,
                max: f64::from(limits::MAX_AGE),
                actual: f64::from(years),
            });
        }
        Ok(Self(years))
    }

    /// The age in years.
    pub fn years(self) -> u16 {
        self.0
    }
}

/// Defines a validated id newtype (`UserId`, `CharacterId`): a non-blank label of at most
/// [`limits::ID_CHARS`] characters, kept exactly as given.
macro_rules! label_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates an id: not blank, no control or invisible formatting characters, at
            /// most [`limits::ID_CHARS`](crate::limits::ID_CHARS) characters.
            pub fn parse(value: impl Into<String>) -> Result<Self, crate::ValidationError> {
                let value = value.into();
                crate::text::check_id(&value, crate::limits::ID_CHARS)?;
                Ok(Self(value))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
pub(crate) use label_id;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_is_trimmed() {
        assert_eq!(Name::parse("  Blaze ").unwrap().as_str(), "Blaze");
    }

    #[test]
    fn blank_name_is_refused() {
        assert_eq!(Name::parse("   "), Err(ValidationError::Empty));
        assert_eq!(Name::parse(""), Err(ValidationError::Empty));
    }

    #[test]
    fn long_name_is_refused_with_its_length() {
        let long = "é".repeat(limits::NAME_CHARS + 1);
        assert_eq!(
            Name::parse(long),
            Err(ValidationError::TooLong {
                max: limits::NAME_CHARS,
                actual: limits::NAME_CHARS + 1
            })
        );
    }

    #[test]
    fn multibyte_name_at_the_limit_is_accepted() {
        assert!(Name::parse("é".repeat(limits::NAME_CHARS)).is_ok());
    }

    #[test]
    fn control_characters_are_refused_in_labels_but_newlines_allowed_in_text() {
        assert_eq!(
            Name::parse("Bla\nze"),
            Err(ValidationError::ControlCharacter)
        );
        assert!(check_free_text("line one\nline two\ttab", 100).is_ok());
        assert_eq!(
            check_free_text("bell \u{7}", 100),
            Err(ValidationError::ControlCharacter)
        );
    }

    #[test]
    fn ids_refuse_invisible_characters_and_names_bidi_controls() {
        use crate::UserId;
        for sneaky in [
            "jo\u{200B}hn",
            "john\u{202E}",
            "\u{2066}john",
            "jo\u{FEFF}hn",
            "jo\u{AD}hn",
        ] {
            assert_eq!(
                UserId::parse(sneaky),
                Err(ValidationError::InvisibleCharacter),
                "{sneaky:?}"
            );
        }
        assert_eq!(
            Name::parse("Bla\u{202E}ze"),
            Err(ValidationError::InvisibleCharacter)
        );
        assert!(Name::parse("👨\u{200D}👩\u{200D}👧 family").is_ok());
        assert!(UserId::parse("user-42@example.com").is_ok());
    }

    #[test]
    fn age_has_an_upper_bound() {
        assert_eq!(Age::new(23).unwrap().years(), 23);
        assert!(Age::new(limits::MAX_AGE + 1).is_err());
    }
}
