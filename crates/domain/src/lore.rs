//! Lorebooks (Character Card V2 `character_book`, SillyTavern's World Info): entries of world
//! knowledge put into the prompt when their keys appear in the latest messages.
//!
//! This module holds the validated entries; matching them against a chat is the application's
//! (`ragback_application::lore`).

use crate::text::check_free_text;
use crate::{ValidationError, limits};

/// Upper bounds on a lorebook's size.
pub mod lore_limits {
    /// Entries in one book.
    pub const ENTRIES: usize = 2_000;
    /// Keys (primary or secondary) of one entry.
    pub const KEYS: usize = 64;
    /// Characters of one key.
    pub const KEY_CHARS: usize = 200;
    /// Characters of one entry's content.
    pub const CONTENT_CHARS: usize = 8_000;
    /// The deepest `scan_depth`, in messages.
    pub const SCAN_DEPTH: usize = 1_000;
    /// The deepest `at_depth` position, in messages.
    pub const POSITION_DEPTH: usize = 1_000;
    /// The compiled size of one regex key, in bytes.
    pub const REGEX_BYTES: usize = 256 * 1024;
    /// Regex keys in one book: each is compiled per request, so their number bounds its cost.
    pub const REGEX_KEYS: usize = 256;
}

/// One key: literal text, or a regular expression written `/pattern/flags`.
#[derive(Debug, Clone)]
pub enum LoreKey {
    /// Literal text, matched case-insensitively unless the entry says otherwise.
    Text {
        /// As written (trimmed).
        text: String,
        /// Lower-cased, for case-insensitive matching.
        lower: String,
        /// Whether it is one word (letters, digits, `_`): matched by a word lookup.
        one_word: bool,
    },
    /// A regular expression (flags `i`, `m`, `s`, `u`, `x`; JavaScript's `g` and `y` are
    /// accepted and mean nothing here). Case sensitivity and whole words do not apply.
    Pattern {
        /// The compiled expression.
        regex: regex::Regex,
        /// The key as written, flags included.
        written: String,
    },
}

impl PartialEq for LoreKey {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Text { text: a, .. }, Self::Text { text: b, .. }) => a == b,
            (Self::Pattern { written: a, .. }, Self::Pattern { written: b, .. }) => a == b,
            _ => false,
        }
    }
}

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoreKeyError {
    /// Its text is not acceptable.
    #[error(transparent)]
    Text(#[from] ValidationError),
    /// `/…/flags` that does not compile (or compiles too big).
    #[error("is not a valid regular expression: {0}")]
    Pattern(String),
    /// A flag that is not `g`, `i`, `m`, `s`, `u`, `x` or `y`.
    #[error("has an unknown regular expression flag `{0}` (known: g i m s u x y)")]
    Flag(char),
}

impl LoreKey {
    /// A key as a card writes it: `/pattern/flags` is a regular expression, anything else is
    /// literal text (trimmed). Blank keys are `None`.
    pub fn parse(key: &str) -> Result<Option<Self>, LoreKeyError> {
        crate::text::check_free_text(key, lore_limits::KEY_CHARS)?;
        let key = key.trim();
        if key.is_empty() {
            return Ok(None);
        }
        if let Some(body) = key.strip_prefix('/')
            && let Some(end) = body.rfind('/')
            && end > 0
        {
            let (pattern, flags) = (&body[..end], &body[end + 1..]);
            let mut builder = regex::RegexBuilder::new(pattern);
            builder
                .size_limit(lore_limits::REGEX_BYTES)
                .dfa_size_limit(lore_limits::REGEX_BYTES);
            for flag in flags.chars() {
                match flag {
                    'i' => builder.case_insensitive(true),
                    'm' => builder.multi_line(true),
                    's' => builder.dot_matches_new_line(true),
                    'x' => builder.ignore_whitespace(true),
                    'u' | 'g' | 'y' => &mut builder,
                    other => return Err(LoreKeyError::Flag(other)),
                };
            }
            let regex = builder
                .build()
                .map_err(|e| LoreKeyError::Pattern(e.to_string()))?;
            return Ok(Some(Self::Pattern {
                regex,
                written: key.to_owned(),
            }));
        }
        Ok(Some(Self::text(key)))
    }

    /// A literal key.
    pub fn text(key: &str) -> Self {
        Self::Text {
            text: key.to_owned(),
            lower: key.to_lowercase(),
            one_word: key.chars().all(is_word_char),
        }
    }

    /// The key as written in the book (`/…/` for a pattern).
    pub fn as_written(&self) -> String {
        match self {
            Self::Text { text, .. } => text.clone(),
            Self::Pattern { written, .. } => written.clone(),
        }
    }
}

/// A character of a word, for whole-word matching: a letter, a digit or `_`.
pub fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// How an entry's secondary keys combine with its primary keys (SillyTavern's
/// `extensions.selectiveLogic`: 0 AND ANY, 1 NOT ALL, 2 NOT ANY, 3 AND ALL).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SelectiveLogic {
    /// A primary key and at least one secondary key (the Card V2 spec's `selective`).
    #[default]
    AndAny,
    /// A primary key, and not every secondary key.
    NotAll,
    /// A primary key, and no secondary key.
    NotAny,
    /// A primary key and every secondary key.
    AndAll,
}

impl SelectiveLogic {
    /// From SillyTavern's number; unknown numbers are `None`.
    pub fn from_number(n: u64) -> Option<Self> {
        Some(match n {
            0 => Self::AndAny,
            1 => Self::NotAll,
            2 => Self::NotAny,
            3 => Self::AndAll,
            _ => return None,
        })
    }

    /// Whether the secondary keys, `found` of `total` present, let the entry in.
    pub fn admits(self, found: usize, total: usize) -> bool {
        match self {
            Self::AndAny => found > 0,
            Self::NotAll => found < total,
            Self::NotAny => found == 0,
            Self::AndAll => found == total,
        }
    }
}

/// Where an entry goes in the prompt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LorePosition {
    /// Before the character's description.
    #[default]
    BeforeChar,
    /// After the character's description.
    AfterChar,
    /// As a system message this many messages before the end of the chat (0: after the last).
    AtDepth(usize),
}

/// One entry of a lorebook.
#[derive(Debug, Clone, PartialEq)]
pub struct LoreEntry {
    /// The entry's id in its book (`id`, else its index).
    pub id: String,
    /// Its name (`name`, else `comment`), for reports.
    pub name: Option<String>,
    /// Any of these in the scanned text triggers it.
    pub keys: Vec<LoreKey>,
    /// With `selective`, combined with the primary keys by `logic`.
    pub secondary_keys: Vec<LoreKey>,
    /// Whether the secondary keys apply.
    pub selective: bool,
    /// How they apply.
    pub logic: SelectiveLogic,
    /// What goes into the prompt.
    pub content: String,
    /// Always inserted, keys or not.
    pub constant: bool,
    /// Disabled entries are never inserted.
    pub enabled: bool,
    /// Lower goes higher in the prompt.
    pub insertion_order: i64,
    /// When the token budget is reached, lower priorities are left out first
    /// (default: `insertion_order`).
    pub priority: i64,
    /// Where it goes.
    pub position: LorePosition,
    /// Literal keys match letter case exactly.
    pub case_sensitive: bool,
    /// Literal keys match whole words only.
    pub whole_words: bool,
    /// Messages scanned for this entry, overriding the book's.
    pub scan_depth: Option<usize>,
    /// Never triggered by another entry's content (SillyTavern's `exclude_recursion`).
    pub exclude_recursion: bool,
    /// Its content is not scanned for other entries (SillyTavern's `prevent_recursion`).
    pub prevent_recursion: bool,
}

impl LoreEntry {
    /// Checks the content; `field` errors name the part refused.
    pub fn check(&self) -> Result<(), (&'static str, ValidationError)> {
        check_free_text(&self.content, lore_limits::CONTENT_CHARS).map_err(|e| ("content", e))?;
        if let Some(name) = &self.name {
            check_free_text(name, limits::NAME_CHARS).map_err(|e| ("name", e))?;
        }
        for (field, keys) in [
            ("keys", &self.keys),
            ("secondary_keys", &self.secondary_keys),
        ] {
            if keys.len() > lore_limits::KEYS {
                return Err((
                    field,
                    ValidationError::TooLong {
                        max: lore_limits::KEYS,
                        actual: keys.len(),
                    },
                ));
            }
        }
        if let LorePosition::AtDepth(depth) = self.position
            && depth > lore_limits::POSITION_DEPTH
        {
            return Err(("position", out_of_range(depth, lore_limits::POSITION_DEPTH)));
        }
        if let Some(depth) = self.scan_depth
            && depth > lore_limits::SCAN_DEPTH
        {
            return Err(("scan_depth", out_of_range(depth, lore_limits::SCAN_DEPTH)));
        }
        Ok(())
    }
}

/// `actual` above `max` (ranges start at zero).
pub fn out_of_range(actual: usize, max: usize) -> ValidationError {
    ValidationError::OutOfRange {
        min: 0.0,
        max: max as f64,
        actual: actual as f64,
    }
}

/// Whose book it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoreSource {
    /// The character card's `character_book`.
    Character,
    /// The request's `lorebook`: the world of the scene.
    Scene,
}

impl LoreSource {
    /// `character` or `scene`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Character => "character",
            Self::Scene => "scene",
        }
    }
}

/// A lorebook.
#[derive(Debug, Clone, PartialEq)]
pub struct Lorebook {
    /// Whose it is.
    pub source: LoreSource,
    /// Its name.
    pub name: Option<String>,
    /// How many of the latest messages are scanned (default: the configured one).
    pub scan_depth: Option<usize>,
    /// The most tokens its entries take in a prompt (default: the configured one).
    pub token_budget: Option<usize>,
    /// Whether inserted entries' content is scanned for further entries.
    pub recursive_scanning: bool,
    /// Its entries, in the book's order.
    pub entries: Vec<LoreEntry>,
}

impl Lorebook {
    /// Replaces `{{char}}` and `{{user}}` in every entry's content.
    pub fn resolve_macros(&mut self, char_name: &str, user_name: &str) {
        for entry in &mut self.entries {
            entry.content = crate::resolve_card_macros(&entry.content, char_name, user_name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_text_unless_written_as_a_pattern() {
        assert_eq!(
            LoreKey::parse(" Lisbon ").unwrap(),
            Some(LoreKey::text("Lisbon"))
        );
        assert_eq!(LoreKey::parse("  ").unwrap(), None);
        assert_eq!(LoreKey::parse("/").unwrap(), Some(LoreKey::text("/")));
        let Some(LoreKey::Pattern { regex: re, .. }) = LoreKey::parse("/dragon(s)?/i").unwrap()
        else {
            panic!("a pattern");
        };
        assert!(re.is_match("DRAGONS"));
        assert!(matches!(
            LoreKey::parse("/a/q"),
            Err(LoreKeyError::Flag('q'))
        ));
        assert!(matches!(
            LoreKey::parse("/(unclosed/"),
            Err(LoreKeyError::Pattern(_))
        ));
        // Too big to compile within the limit: refused, never a huge automaton.
        assert!(matches!(
            LoreKey::parse("/\\w{1000}\\w{1000}/"),
            Err(LoreKeyError::Pattern(_))
        ));
    }

    #[test]
    fn the_selective_logic_follows_sillytavern() {
        use SelectiveLogic::*;
        assert!(AndAny.admits(1, 3) && !AndAny.admits(0, 3));
        assert!(NotAll.admits(2, 3) && !NotAll.admits(3, 3));
        assert!(NotAny.admits(0, 3) && !NotAny.admits(1, 3));
        assert!(AndAll.admits(3, 3) && !AndAll.admits(2, 3));
        assert_eq!(SelectiveLogic::from_number(2), Some(NotAny));
        assert_eq!(SelectiveLogic::from_number(9), None);
    }
}
