//! How a conversation summary is laid out in Qdrant, the same in the embedded store and on a
//! server: a point of its own collection (`summaries` beside the facts), id from the user and
//! the conversation, one constant one-dimensional vector (Qdrant points have vectors; summaries
//! are never searched), the summary in the payload.

use ragback_application::ports::SummaryStoreError;
use ragback_domain::{CharacterId, ConversationId, ConversationSummary, Timestamp, UserId};
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// The summaries' collection (a server's: `{collection}_summaries`; the embedded store's: the
/// `summaries` directory beside the facts).
pub(crate) const SUMMARIES: &str = "summaries";
/// The name of the points' one vector.
pub(crate) const SUMMARY_VECTOR: &str = "summary";

const NAMESPACE: Uuid = Uuid::from_u128(0x5c0e_2f7a_41d8_4c39_9b6e_0a7d_13f2_8e45);

/// The point id of a conversation's summary.
pub(crate) fn summary_point(user: &UserId, conversation: &ConversationId) -> Uuid {
    let name = format!("{}\u{0}{}", user.as_str(), conversation.as_str());
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// The vector every summary point has.
pub(crate) fn summary_vector() -> Vec<f32> {
    vec![1.0]
}

/// The payload of a summary.
pub(crate) fn summary_payload(
    user: &UserId,
    conversation: &ConversationId,
    summary: &ConversationSummary,
) -> Value {
    json!({
        "user": user.as_str(),
        "conversation": conversation.as_str(),
        "character": summary.character.as_ref().map(CharacterId::as_str),
        "text": summary.text,
        "covers": summary.covers,
        "last_hash": summary.last_hash,
        "prompt_hash": summary.prompt_hash,
        "model": summary.model,
        "updated_at": summary.updated.to_string(),
    })
}

/// The summary in a payload.
pub(crate) fn summary_from(
    payload: &Map<String, Value>,
) -> Result<ConversationSummary, SummaryStoreError> {
    let bad = |field: &str| {
        SummaryStoreError::Corrupted(format!("a summary's `{field}` is missing or invalid"))
    };
    let text = |field: &'static str| {
        payload
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| bad(field))
    };
    let character = match payload.get("character") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => {
            Some(CharacterId::parse(id.as_str()).map_err(|_| bad("character"))?)
        }
        Some(_) => return Err(bad("character")),
    };
    Ok(ConversationSummary {
        character,
        text: text("text")?,
        covers: payload
            .get("covers")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| bad("covers"))?,
        last_hash: text("last_hash")?,
        prompt_hash: text("prompt_hash")?,
        model: text("model")?,
        updated: Timestamp::parse_rfc3339(&text("updated_at")?).map_err(|_| bad("updated_at"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_goes_through_its_payload_unchanged() {
        let summary = ConversationSummary {
            character: Some(CharacterId::parse("mira").unwrap()),
            text: "They met.".into(),
            covers: 12,
            last_hash: "00ff".into(),
            prompt_hash: "ab".into(),
            model: "m".into(),
            updated: Timestamp::from_unix_millis(1_764_979_200_000),
        };
        let (user, conversation) = (
            UserId::parse("john").unwrap(),
            ConversationId::parse("c1").unwrap(),
        );
        let payload = summary_payload(&user, &conversation, &summary);
        assert_eq!(summary_from(payload.as_object().unwrap()).unwrap(), summary);
        assert_ne!(
            summary_point(&user, &conversation),
            summary_point(&user, &ConversationId::parse("c2").unwrap())
        );
    }
}
