//! ragback's domain: who talks (users and characters), what was said (messages), what is known
//! about them (facts), and how a raw model reply becomes one line of dialogue.
//!
//! Everything here is plain data with validating constructors: no I/O, no async, no vendor types.

mod card;
mod character;
mod conversation;
mod fact;
mod lore;
mod message;
mod provenance;
mod reply;
mod scenario;
mod text;
mod user;

pub use card::{CharacterCard, resolve_card_macros};
pub use character::{Character, CharacterId};
pub use conversation::{ConversationId, ConversationSummary, SUMMARY_CHARS};
pub use fact::{Fact, FactId, FactOwner, FactText, OwnerKind, ScoredFact};
pub use lore::{
    LoreEntry, LoreKey, LoreKeyError, LorePosition, LoreSource, Lorebook, SelectiveLogic,
    is_word_char, lore_limits, out_of_range,
};
pub use message::{Message, MessageText, Role};
pub use provenance::{FactSource, Provenance, Timestamp};
pub use reply::{ReplyStream, clean_reply};
pub use scenario::Scenario;
pub use text::{Age, Name, UnknownValue, ValidationError, is_invisible_format, limits};
pub use user::{User, UserId};
