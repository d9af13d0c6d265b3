//! Port: a guard that reads one text of the turn (the user's message, or the character's reply)
//! and says which safety or consistency tags it raises.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What a guard may raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardTag {
    /// Encouraging suicide or self-harm (in a reply); intent to harm oneself (in a user message).
    SelfHarm,
    /// Sexual content.
    Sexual,
    /// Sexual content involving a minor, or with a user under 18.
    Minor,
    /// A proposal to meet in real life (a place and a time, an address, "in person").
    RealMeeting,
    /// Hate against a group.
    Hate,
    /// Real violence: threats against the real person, instructions to hurt.
    Violence,
    /// Speaking as an AI or an assistant, or refusing in an assistant's voice.
    Assistant,
    /// Writing the user's lines or actions.
    UserVoice,
    /// Talk about the prompt, the rules, the role-play itself.
    Meta,
    /// Cut off mid-sentence.
    Truncated,
    /// A phrase the variant bans.
    Banned,
}

impl GuardTag {
    /// Every tag, safety first.
    pub const ALL: [Self; 11] = [
        Self::SelfHarm,
        Self::Sexual,
        Self::Minor,
        Self::RealMeeting,
        Self::Hate,
        Self::Violence,
        Self::Assistant,
        Self::UserVoice,
        Self::Meta,
        Self::Truncated,
        Self::Banned,
    ];

    /// The design's safety floor.
    pub const SAFETY: [Self; 6] = [
        Self::SelfHarm,
        Self::Sexual,
        Self::Minor,
        Self::RealMeeting,
        Self::Hate,
        Self::Violence,
    ];

    /// The tag's name on the wire and in settings.
    pub fn key(self) -> &'static str {
        match self {
            Self::SelfHarm => "self_harm",
            Self::Sexual => "sexual",
            Self::Minor => "minor",
            Self::RealMeeting => "real_meeting",
            Self::Hate => "hate",
            Self::Violence => "violence",
            Self::Assistant => "assistant",
            Self::UserVoice => "user_voice",
            Self::Meta => "meta",
            Self::Truncated => "truncated",
            Self::Banned => "banned",
        }
    }

    /// The tag of a name.
    pub fn parse(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|tag| tag.key() == key)
    }

    /// Whether it is one of the safety floor's (the others are about staying in character).
    pub fn is_safety(self) -> bool {
        Self::SAFETY.contains(&self)
    }
}

/// Whose text it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// The person chatting.
    User,
    /// The character (the model's reply).
    Character,
}

/// One text to check, with what the guard knows of the turn.
#[derive(Debug, Clone, Copy)]
pub struct GuardInput<'a> {
    /// The text.
    pub text: &'a str,
    /// Whose it is.
    pub speaker: Speaker,
    /// The user's name (a reply must not speak for them).
    pub user_name: &'a str,
    /// The character's name.
    pub character_name: &'a str,
    /// The user is under 18: stricter thresholds for `sexual` and `minor`.
    pub minor: bool,
    /// For a reply: the user's message it answers, when known (a guard model judges the reply
    /// in its context).
    pub replying_to: Option<&'a str>,
}

/// A raised tag and how sure the guard is, from 0 to 1 (1 for a rule).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finding {
    /// The tag.
    pub tag: GuardTag,
    /// How sure.
    pub score: f32,
}

impl Finding {
    /// A tag raised for certain (a rule, a guard model's verdict): each of `tags` at score 1.
    pub fn certain(tags: impl IntoIterator<Item = GuardTag>) -> Vec<Self> {
        tags.into_iter()
            .map(|tag| Self { tag, score: 1.0 })
            .collect()
    }
}

/// Why a guard could not answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GuardError {
    /// Its model or service is down, or did not answer in time.
    #[error("the guard is unavailable: {0}")]
    Unavailable(String),
    /// It answered something that is not a verdict.
    #[error("the guard answered with an invalid response: {0}")]
    InvalidResponse(String),
    /// It did not answer within the policy's timeout.
    #[error("the guard gave no answer within {0} ms")]
    Timeout(u128),
}

impl GuardError {
    /// Its kind, for the response and metrics (the details go to the log):
    /// `unavailable`, `invalid_response` or `timeout`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "unavailable",
            Self::InvalidResponse(_) => "invalid_response",
            Self::Timeout(_) => "timeout",
        }
    }
}

/// Reads a text and raises tags.
#[async_trait]
pub trait Guard: Send + Sync {
    /// A short name, for logs and metrics (`rules`, `classifier`, `llm`).
    fn name(&self) -> &str;

    /// The tags `input` raises (none: it passes).
    async fn check(&self, input: &GuardInput<'_>) -> Result<Vec<Finding>, GuardError>;

    /// The tags of each of `inputs`, in order: for checking many texts at once (a batch of
    /// embeddings, one request). One by one unless the guard does better.
    async fn check_many(&self, inputs: &[GuardInput<'_>]) -> Result<Vec<Vec<Finding>>, GuardError> {
        let mut all = Vec::with_capacity(inputs.len());
        for input in inputs {
            all.push(self.check(input).await?);
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_have_stable_names_and_the_safety_floor_comes_first() {
        for tag in GuardTag::ALL {
            assert_eq!(GuardTag::parse(tag.key()), Some(tag));
            assert_eq!(serde_json::to_value(tag).unwrap(), tag.key());
        }
        assert!(GuardTag::SAFETY.iter().all(|t| t.is_safety()));
        assert!(!GuardTag::Assistant.is_safety());
        assert_eq!(GuardTag::parse("nope"), None);
    }
}
