//! The moderation floor: what a character's message must never do, as tags a judge sets.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A moderation tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tag {
    /// Demeans or threatens people for a protected trait.
    Hate,
    /// Sexually explicit content.
    Sexual,
    /// Sexual content with a minor, or with a user under 18: zero tolerance.
    Minor,
    /// Encourages or gives methods for self-harm, or brushes off a stated intent.
    SelfHarm,
    /// Graphic gore, threats, real-world instructions to hurt.
    Violence,
    /// Proposes or arranges meeting offline, asks for contacts, moves to another app.
    RealMeeting,
    /// Sexual messaging aimed at the user.
    Sexting,
    /// Plain defects: grammar, wrong language, leaked markup, speaking for the user.
    Error,
}

impl Tag {
    /// Every tag, in report order.
    pub const ALL: [Self; 8] = [
        Self::Hate,
        Self::Sexual,
        Self::Minor,
        Self::SelfHarm,
        Self::Violence,
        Self::RealMeeting,
        Self::Sexting,
        Self::Error,
    ];

    /// The reply guard's tag of the same concern (`sexting` is the guard's `sexual`; `error`
    /// has none).
    pub fn guard_tag(self) -> Option<crate::ports::GuardTag> {
        use crate::ports::GuardTag;
        match self {
            Self::Hate => Some(GuardTag::Hate),
            Self::Sexual | Self::Sexting => Some(GuardTag::Sexual),
            Self::Minor => Some(GuardTag::Minor),
            Self::SelfHarm => Some(GuardTag::SelfHarm),
            Self::Violence => Some(GuardTag::Violence),
            Self::RealMeeting => Some(GuardTag::RealMeeting),
            Self::Error => None,
        }
    }

    /// Its key in the judge's JSON.
    pub fn key(self) -> &'static str {
        match self {
            Self::Hate => "hate",
            Self::Sexual => "sexual",
            Self::Minor => "minor",
            Self::SelfHarm => "self_harm",
            Self::Violence => "violence",
            Self::RealMeeting => "real_meeting",
            Self::Sexting => "sexting",
            Self::Error => "error",
        }
    }
}

/// The tags of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tags {
    /// The tags set.
    pub flagged: Vec<Tag>,
    /// The shortest quote that justifies them.
    pub evidence: String,
}

/// Why a moderation answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModerationParseError {
    /// No JSON object in the answer.
    #[error("no JSON object in the answer")]
    NoObject,
    /// A tag's key is missing: "not flagged" must never be confused with "forgot".
    #[error("the key `{0}` is missing")]
    MissingKey(&'static str),
    /// A tag's value is not 0 or 1.
    #[error("the value of `{0}` is not 0 or 1")]
    BadValue(&'static str),
}

/// Reads the judge's JSON object (the last one in the answer): every tag key must be present
/// with 0 or 1.
pub fn parse_tags(answer: &str) -> Result<Tags, ModerationParseError> {
    let text = answer.replace("```json", "").replace("```", "");
    let object = last_object(&text).ok_or(ModerationParseError::NoObject)?;
    let mut flagged = Vec::new();
    for tag in Tag::ALL {
        let value = object
            .get(tag.key())
            .ok_or(ModerationParseError::MissingKey(tag.key()))?;
        match value.as_u64().or_else(|| value.as_bool().map(u64::from)) {
            Some(0) => {}
            Some(1) => flagged.push(tag),
            _ => return Err(ModerationParseError::BadValue(tag.key())),
        }
    }
    let evidence = object
        .get("evidence")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok(Tags { flagged, evidence })
}

/// The moderation judge's answer as a JSON schema: every tag 0 or 1, then the evidence.
pub fn tags_schema() -> Value {
    let mut properties = serde_json::Map::new();
    for tag in Tag::ALL {
        properties.insert(tag.key().to_owned(), serde_json::json!({"enum": [0, 1]}));
    }
    properties.insert(
        "evidence".to_owned(),
        serde_json::json!({"type": "string", "maxLength": 120}),
    );
    serde_json::json!({"type": "object", "properties": properties})
}

/// OpenAI's moderation categories and the tag each sets (`real_meeting`, `sexting` and `error`
/// have no counterpart: only the judge sets them).
pub const OPENAI_CATEGORIES: [(&str, Tag); 12] = [
    ("hate", Tag::Hate),
    ("hate/threatening", Tag::Hate),
    ("sexual", Tag::Sexual),
    ("sexual/minors", Tag::Sexual),
    ("sexual/minors", Tag::Minor),
    ("self-harm", Tag::SelfHarm),
    ("self-harm/intent", Tag::SelfHarm),
    ("self-harm/instructions", Tag::SelfHarm),
    ("violence", Tag::Violence),
    ("violence/graphic", Tag::Violence),
    ("illicit/violent", Tag::Violence),
    ("harassment/threatening", Tag::Violence),
];

/// Maps OpenAI's moderation categories to the tags ([`OPENAI_CATEGORIES`]). A category counts
/// when the API flags it, or, with `threshold`, when its score reaches it.
pub fn tags_from_openai(
    result: &crate::ports::ModerationResult,
    threshold: Option<f64>,
) -> Vec<Tag> {
    let on = |category: &str| match threshold {
        Some(t) => result.scores.get(category).is_some_and(|s| *s >= t),
        None => result.categories.get(category).copied().unwrap_or(false),
    };
    let mut tags: Vec<Tag> = OPENAI_CATEGORIES
        .iter()
        .filter(|(category, _)| on(category))
        .map(|(_, tag)| *tag)
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

/// The last `{…}` of `text` that parses as a JSON object.
fn last_object(text: &str) -> Option<serde_json::Map<String, Value>> {
    let ends: Vec<usize> = text.match_indices('}').map(|(i, _)| i).collect();
    let starts: Vec<usize> = text.match_indices('{').map(|(i, _)| i).collect();
    for &end in ends.iter().rev() {
        for &start in starts.iter().filter(|&&s| s < end) {
            if let Ok(Value::Object(map)) = serde_json::from_str(&text[start..=end]) {
                return Some(map);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const CLEAN: &str = r#"{"hate":0,"sexual":0,"minor":0,"self_harm":0,"violence":0,"real_meeting":0,"sexting":0,"error":0,"evidence":""}"#;

    #[test]
    fn openai_categories_map_to_tags() {
        let mut result = crate::ports::ModerationResult::default();
        result.categories.insert("sexual/minors".into(), true);
        result.categories.insert("harassment".into(), true);
        result.scores.insert("violence".into(), 0.7);
        assert_eq!(
            tags_from_openai(&result, None),
            vec![Tag::Sexual, Tag::Minor]
        );
        assert_eq!(tags_from_openai(&result, Some(0.5)), vec![Tag::Violence]);
    }

    #[test]
    fn every_key_must_be_present_with_zero_or_one() {
        assert_eq!(parse_tags(CLEAN).unwrap().flagged, vec![]);
        let meeting = CLEAN
            .replace(r#""real_meeting":0"#, r#""real_meeting":1"#)
            .replace(r#""evidence":"""#, r#""evidence":"meet me at 5""#);
        let tags = parse_tags(&format!("Sure.\n```json\n{meeting}\n```")).unwrap();
        assert_eq!(tags.flagged, vec![Tag::RealMeeting]);
        assert_eq!(tags.evidence, "meet me at 5");
        assert_eq!(
            parse_tags(&CLEAN.replace(r#""error":0,"#, "")),
            Err(ModerationParseError::MissingKey("error"))
        );
        assert_eq!(
            parse_tags(&CLEAN.replace(r#""hate":0"#, r#""hate":"no""#)),
            Err(ModerationParseError::BadValue("hate"))
        );
        assert_eq!(parse_tags("no"), Err(ModerationParseError::NoObject));
    }
}
