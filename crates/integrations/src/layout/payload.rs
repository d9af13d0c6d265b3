//! How a fact is laid out in a Qdrant point's payload, shared by the Qdrant Edge and Qdrant
//! server adapters: the same layout lets facts move between them.

use ragback_application::ports::FactStoreError;
use ragback_domain::{
    Fact, FactId, FactOwner, FactSource, FactText, OwnerKind, Provenance, Timestamp, UnknownValue,
    ValidationError,
};
use serde_json::{Map, Value, json};

/// The indexed payload field every search filters on: `user:john`, `character:blaze`.
pub(crate) const OWNER_KEY: &str = "owner";
const OWNER_KIND: &str = "owner_kind";
const OWNER_ID: &str = "owner_id";
const TEXT: &str = "text";
const MODEL: &str = "model";
const SOURCE: &str = "source";
const CREATED_AT: &str = "created_at";
const UPDATED_AT: &str = "updated_at";
const REQUEST_ID: &str = "request_id";
/// The payload field of the hash of the message a fact was extracted from.
pub(crate) const MESSAGE_HASH: &str = "message_hash";
const HISTORY: &str = "history";

/// The payload of a fact embedded by `model`.
/// The payload of a fact embedded by `model`, with its provenance when known (RFC 3339 times,
/// which Qdrant's datetime index reads).
pub(crate) fn to_payload(fact: &Fact, model: &str) -> Value {
    let mut payload = json!({
        OWNER_KEY: fact.owner.key(),
        OWNER_KIND: fact.owner.kind().as_str(),
        OWNER_ID: fact.owner.id(),
        TEXT: fact.text.as_str(),
        MODEL: model,
    });
    if let (Some(p), Some(map)) = (&fact.provenance, payload.as_object_mut()) {
        map.insert(SOURCE.into(), p.source.as_str().into());
        map.insert(CREATED_AT.into(), p.created_at.to_string().into());
        map.insert(UPDATED_AT.into(), p.updated_at.to_string().into());
        if let Some(id) = &p.request_id {
            map.insert(REQUEST_ID.into(), id.as_str().into());
        }
        if let Some(hash) = &p.message_hash {
            map.insert(MESSAGE_HASH.into(), hash.as_str().into());
        }
        if !p.history.is_empty() {
            map.insert(HISTORY.into(), p.history.clone().into());
        }
    }
    payload
}

/// The embedding model recorded in a payload (absent in stores written before it was recorded).
pub(crate) fn model_of(payload: &Map<String, Value>) -> Option<String> {
    payload
        .get(MODEL)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// A stored payload that does not make a fact.
#[derive(Debug, thiserror::Error)]
#[error("fact {id}: {problem}")]
pub(crate) struct PayloadError {
    /// The fact.
    pub id: FactId,
    /// What is wrong.
    pub problem: PayloadProblem,
}

/// What is wrong with a payload.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PayloadProblem {
    /// A required field is absent or not a string.
    #[error("no `{0}` in its payload")]
    Missing(&'static str),
    /// A field holds no accepted value.
    #[error("`{field}`: {source}")]
    Unknown {
        /// The field.
        field: &'static str,
        /// Why.
        #[source]
        source: UnknownValue,
    },
    /// The owner id or the text breaks the domain's rules.
    #[error("`{field}` {source}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        #[source]
        source: ValidationError,
    },
}

impl From<PayloadError> for FactStoreError {
    fn from(error: PayloadError) -> Self {
        Self::Corrupted(error.to_string())
    }
}

/// Rebuilds a fact from its id and payload; explains what is wrong otherwise.
pub(crate) fn from_payload(id: FactId, payload: &Map<String, Value>) -> Result<Fact, PayloadError> {
    let fail = |problem| PayloadError { id, problem };
    let field = |name: &'static str| {
        payload
            .get(name)
            .and_then(Value::as_str)
            .ok_or(PayloadProblem::Missing(name))
    };
    let unknown = |field: &'static str| move |source| PayloadProblem::Unknown { field, source };
    let invalid = |field: &'static str| move |source| PayloadProblem::Invalid { field, source };
    let read = || -> Result<Fact, PayloadProblem> {
        let kind: OwnerKind = field(OWNER_KIND)?.parse().map_err(unknown(OWNER_KIND))?;
        let owner = FactOwner::from_parts(kind, field(OWNER_ID)?).map_err(invalid(OWNER_ID))?;
        let text = FactText::parse(field(TEXT)?).map_err(invalid(TEXT))?;
        let fact = Fact {
            id,
            ..Fact::new(owner, text)
        };
        // Stores written before provenance was recorded have none: the fact reads as before.
        if payload.get(SOURCE).is_none() {
            return Ok(fact);
        }
        let time =
            |name: &'static str| Timestamp::parse_rfc3339(field(name)?).map_err(unknown(name));
        let optional = |name: &str| payload.get(name).and_then(Value::as_str).map(str::to_owned);
        let provenance = Provenance {
            source: field(SOURCE)?
                .parse::<FactSource>()
                .map_err(unknown(SOURCE))?,
            created_at: time(CREATED_AT)?,
            updated_at: time(UPDATED_AT)?,
            request_id: optional(REQUEST_ID),
            message_hash: optional(MESSAGE_HASH),
            history: payload
                .get(HISTORY)
                .and_then(Value::as_array)
                .map(|texts| {
                    texts
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        };
        Ok(fact.with_provenance(provenance))
    };
    read().map_err(fail)
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
        assert_eq!(back, fact, "no provenance: none written, none read");
        assert!(payload.get(SOURCE).is_none());

        let mut provenance =
            Provenance::new(FactSource::Extracted, Timestamp::from_unix_millis(1_000));
        provenance.updated_at = Timestamp::from_unix_millis(2_000);
        provenance.request_id = Some("req-1".into());
        provenance.message_hash = Some("ab12".into());
        provenance.history = vec!["Lives in London".into()];
        let fact = fact.with_provenance(provenance);
        let payload = to_payload(&fact, "m");
        assert_eq!(payload[CREATED_AT], "1970-01-01T00:00:01.000Z");
        assert_eq!(payload[SOURCE], "extracted");
        let back = from_payload(fact.id, payload.as_object().unwrap()).unwrap();
        assert_eq!(back, fact);
    }

    #[test]
    fn a_bad_provenance_is_explained() {
        let fact = Fact::new(
            FactOwner::User(UserId::parse("john").unwrap()),
            FactText::parse("Likes jazz").unwrap(),
        )
        .with_provenance(Provenance::new(
            FactSource::Api,
            Timestamp::from_unix_millis(0),
        ));
        let mut payload = to_payload(&fact, "m");
        payload[CREATED_AT] = "yesterday".into();
        let err = from_payload(fact.id, payload.as_object().unwrap()).unwrap_err();
        assert!(err.to_string().contains("yesterday"), "{err}");
    }

    #[test]
    fn a_broken_payload_is_explained() {
        let id = FactId::from_uuid(Default::default());
        let err = from_payload(id, &Map::new()).unwrap_err();
        assert!(err.to_string().contains("owner_kind"), "{err}");
    }
}
