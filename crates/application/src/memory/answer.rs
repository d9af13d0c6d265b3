//! Reading the model's answers: the candidates of an extraction, the verdict of a
//! reconciliation. Models may write before the JSON, or fence it: the last JSON object counts.

use serde::Deserialize;

use super::{Candidate, MemoryError};

/// The last JSON object in `answer` (models may write before it, or fence it).
fn last_json_object(answer: &str) -> Option<serde_json::Value> {
    let end = answer.rfind('}')?;
    answer[..=end]
        .match_indices('{')
        .map(|(start, _)| start)
        .find_map(|start| serde_json::from_str::<serde_json::Value>(&answer[start..=end]).ok())
}

/// The extraction's answer as a JSON schema: at most 6 facts, each a short sentence.
pub fn candidates_schema(character_canon: bool) -> serde_json::Value {
    let owners: &[&str] = if character_canon {
        &["user", "character"]
    } else {
        &["user"]
    };
    serde_json::json!({
        "type": "object",
        "properties": {"facts": {"type": "array", "maxItems": 6, "items": {
            "type": "object",
            "properties": {
                "kind": {"enum": ["fact", "retraction"]},
                "owner": {"enum": owners},
                "text": {"type": "string", "maxLength": 160}
            }
        }}}
    })
}

/// The reconciliation's answer as a JSON schema, for `stored` listed facts (numbered from 1).
pub(super) fn verdict_schema(stored: usize) -> serde_json::Value {
    let numbered = |action: &str| {
        serde_json::json!({"type": "object", "properties": {
            "action": {"const": action},
            "fact": {"enum": (1..=stored.max(1)).collect::<Vec<_>>()}
        }})
    };
    let bare = |action: &str| serde_json::json!({"type": "object", "properties": {"action": {"const": action}}});
    serde_json::json!({"anyOf": [numbered("update"), numbered("delete"), bare("add"), bare("noop")]})
}

/// `{"facts": [{"owner", "text", "kind"}]}`, the extraction's answer.
pub fn parse_candidates(answer: &str) -> Result<Vec<Candidate>, MemoryError> {
    #[derive(Deserialize)]
    struct Answer {
        facts: Vec<Candidate>,
    }
    let value = last_json_object(answer)
        .ok_or_else(|| MemoryError::InvalidOutput(format!("no JSON object in {answer:?}")))?;
    serde_json::from_value::<Answer>(value)
        .map(|a| a.facts)
        .map_err(|e| MemoryError::InvalidOutput(e.to_string()))
}

/// The reconciliation's decision, with the index of the stored fact it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Add,
    Update(usize),
    Delete(usize),
    Noop,
}

/// `{"action": "add" | "update" | "delete" | "noop", "fact": n}` (n from 1 over `stored`).
pub(super) fn parse_verdict(answer: &str, stored: usize) -> Result<Verdict, MemoryError> {
    let invalid = |why: &str| MemoryError::InvalidOutput(format!("{why}: {answer:?}"));
    let value = last_json_object(answer).ok_or_else(|| invalid("no JSON object"))?;
    let target = || {
        value
            .get("fact")
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| (1..=stored).contains(n))
            .map(|n| n - 1)
            .ok_or_else(|| invalid("`fact` must be the number of a listed fact"))
    };
    match value.get("action").and_then(serde_json::Value::as_str) {
        Some("add") => Ok(Verdict::Add),
        Some("update") => Ok(Verdict::Update(target()?)),
        Some("delete") => Ok(Verdict::Delete(target()?)),
        Some("noop") => Ok(Verdict::Noop),
        _ => Err(invalid("`action` must be add, update, delete or noop")),
    }
}

#[cfg(test)]
mod tests {
    use ragback_domain::UserId;

    use super::*;
    use crate::memory::message_hash;

    #[test]
    fn verdicts_name_a_listed_fact() {
        assert_eq!(
            parse_verdict(r#"{"action": "update", "fact": 2}"#, 2).unwrap(),
            Verdict::Update(1)
        );
        assert_eq!(
            parse_verdict(r#"{"action": "noop"}"#, 0).unwrap(),
            Verdict::Noop
        );
        assert!(parse_verdict(r#"{"action": "delete", "fact": 3}"#, 2).is_err());
        assert!(parse_verdict(r#"{"action": "merge", "fact": 1}"#, 2).is_err());
        assert!(parse_verdict("delete it", 2).is_err());
        assert_eq!(
            message_hash(&UserId::parse("john").unwrap(), "hi"),
            message_hash(&UserId::parse("john").unwrap(), "hi")
        );
        assert_ne!(
            message_hash(&UserId::parse("john").unwrap(), "hi"),
            message_hash(&UserId::parse("jane").unwrap(), "hi")
        );
    }
}
