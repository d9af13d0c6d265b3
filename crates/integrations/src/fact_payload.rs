//! How a fact is laid out in a Qdrant point's payload, shared by the Qdrant Edge and Qdrant
//! server adapters: the same layout lets facts move between them.

use ragback_domain::{Fact, FactId, FactOwner, FactText, OwnerKind};
use serde_json::{Map, Value, json};

/// The indexed payload field every search filters on: `user:john`, `character:blaze`.
pub(crate) const OWNER_KEY: &str = "owner";
const OWNER_KIND: &str = "owner_kind";
const OWNER_ID: &str = "owner_id";
const TEXT: &str = "text";
const MODEL: &str = "model";

/// The payload of a fact embedded by `model`.
pub(crate) fn to_payload(fact: &Fact, model: &str) -> Value {
    json!({
        OWNER_KEY: fact.owner.key(),
        OWNER_KIND: fact.owner.kind().as_str(),
        OWNER_ID: fact.owner.id(),
        TEXT: fact.text.as_str(),
        MODEL: model,
    })
}

/// The embedding model recorded in a payload (absent in stores written before it was recorded).
pub(crate) fn model_of(payload: &Map<String, Value>) -> Option<String> {
    payload
        .get(MODEL)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Rebuilds a fact from its id and payload; explains what is wrong otherwise.
pub(crate) fn from_payload(id: FactId, payload: &Map<String, Value>) -> Result<Fact, String> {
    let field = |name: &str| {
        payload
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("fact {id} has no `{name}` in its payload"))
    };
    let kind: OwnerKind = field(OWNER_KIND)?.parse()?;
    let owner = FactOwner::from_parts(kind, field(OWNER_ID)?)
        .map_err(|e| format!("fact {id} has an invalid owner id: {e}"))?;
    let text = FactText::parse(field(TEXT)?).map_err(|e| format!("fact {id} text {e}"))?;
    Ok(Fact { id, owner, text })
}

#[cfg(test)]
mod tests {
    use ragback_domain::UserId;

    use super::*;

    #[test]
    fn a_fact_round_trips_through_its_payload() {
        let fact = Fact::new(
            FactOwner::User(UserId::parse("john").unwrap()),
            FactText::parse("Likes jazz").unwrap(),
        );
        let payload = to_payload(&fact, "local/all-MiniLM-L6-v2");
        assert_eq!(payload[OWNER_KEY], "user:john");
        assert_eq!(
            model_of(payload.as_object().unwrap()).as_deref(),
            Some("local/all-MiniLM-L6-v2")
        );
        let back = from_payload(fact.id, payload.as_object().unwrap()).unwrap();
        assert_eq!(back, fact);
    }

    #[test]
    fn a_broken_payload_is_explained() {
        let id = FactId::from_uuid(Default::default());
        let err = from_payload(id, &Map::new()).unwrap_err();
        assert!(err.contains("owner_kind"), "{err}");
    }
}
