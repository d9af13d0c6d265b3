//! The facts API's bodies: adding, listing, searching and deleting facts.

use ragback_domain::{
    Fact, FactId, FactOwner, FactSource, FactText, OwnerKind, Provenance, ScoredFact, Timestamp,
    UnknownValue, ValidationError,
};
use serde::{Deserialize, Serialize};

/// A fact record (or its provenance) that does not make a fact.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A time is missing beside `source`.
    #[error("`{0}` is required with `source`")]
    Missing(&'static str),
    /// A time, the id or a name is none of the accepted forms.
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

/// Whose fact: a user's or a character's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = Owner)]
pub enum OwnerKindDto {
    /// A user's.
    User,
    /// A character's.
    Character,
}

impl From<OwnerKind> for OwnerKindDto {
    fn from(kind: OwnerKind) -> Self {
        match kind {
            OwnerKind::User => Self::User,
            OwnerKind::Character => Self::Character,
        }
    }
}

impl From<OwnerKindDto> for OwnerKind {
    fn from(kind: OwnerKindDto) -> Self {
        match kind {
            OwnerKindDto::User => Self::User,
            OwnerKindDto::Character => Self::Character,
        }
    }
}

/// How a fact came to be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = FactSource)]
pub enum FactSourceDto {
    /// From a seeding file (`ragback facts add`).
    Seeded,
    /// Through the facts API.
    Api,
    /// Extracted from a dialogue.
    Extracted,
}

impl From<FactSource> for FactSourceDto {
    fn from(source: FactSource) -> Self {
        match source {
            FactSource::Seeded => Self::Seeded,
            FactSource::Api => Self::Api,
            FactSource::Extracted => Self::Extracted,
        }
    }
}

impl From<FactSourceDto> for FactSource {
    fn from(source: FactSourceDto) -> Self {
        match source {
            FactSourceDto::Seeded => Self::Seeded,
            FactSourceDto::Api => Self::Api,
            FactSourceDto::Extracted => Self::Extracted,
        }
    }
}

/// Where a fact came from and when, as listed and exported; every field absent for facts
/// stored before ragback recorded it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProvenanceFields {
    /// How it came to be stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<FactSourceDto>,
    /// When it was first stored (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// When its text last changed (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// For an extracted fact: the request whose dialogue it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// For an extracted fact: a hash of the message it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_hash: Option<String>,
    /// The texts it replaced, oldest first (a fact updated from the dialogue).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<String>,
}

impl ProvenanceFields {
    /// The fields of `provenance`.
    pub fn of(provenance: Option<&Provenance>) -> Self {
        provenance.map_or_else(Self::default, |p| Self {
            source: Some(p.source.into()),
            created_at: Some(p.created_at.to_string()),
            updated_at: Some(p.updated_at.to_string()),
            request_id: p.request_id.clone(),
            message_hash: p.message_hash.clone(),
            history: p.history.clone(),
        })
    }

    /// The provenance again: `None` without a source; times must be RFC 3339.
    pub fn to_provenance(&self) -> Result<Option<Provenance>, RecordError> {
        let Some(source) = self.source else {
            return Ok(None);
        };
        let time = |value: &Option<String>, field: &'static str| {
            let text = value.as_deref().ok_or(RecordError::Missing(field))?;
            Timestamp::parse_rfc3339(text).map_err(|source| RecordError::Unknown { field, source })
        };
        Ok(Some(Provenance {
            source: source.into(),
            created_at: time(&self.created_at, "created_at")?,
            updated_at: time(&self.updated_at, "updated_at")?,
            request_id: self.request_id.clone(),
            message_hash: self.message_hash.clone(),
            history: self.history.clone(),
        }))
    }
}

/// A stored fact, as listed or found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FactRecord {
    /// Its id (a UUID v5 of owner and text).
    pub id: String,
    /// Whose fact.
    pub owner: OwnerKindDto,
    /// The user's or character's id.
    pub owner_id: String,
    /// The fact.
    pub text: String,
    /// Where it came from and when.
    #[serde(flatten)]
    pub provenance: ProvenanceFields,
    /// Its cosine similarity to the query (search only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// Its document embedding (listing `with_vectors=true` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

impl FactRecord {
    /// The record of `fact`.
    pub fn new(fact: Fact, score: Option<f32>, vector: Option<Vec<f32>>) -> Self {
        Self {
            id: fact.id.to_string(),
            owner: fact.owner.kind().into(),
            owner_id: fact.owner.id().to_owned(),
            text: fact.text.as_str().to_owned(),
            provenance: ProvenanceFields::of(fact.provenance.as_ref()),
            score,
            vector,
        }
    }

    /// The fact again, checked as the server would.
    pub fn to_fact(&self) -> Result<Fact, RecordError> {
        let invalid = |field| move |source| RecordError::Invalid { field, source };
        let owner = FactOwner::from_parts(self.owner.into(), &self.owner_id)
            .map_err(invalid("owner_id"))?;
        let id: FactId = self.id.parse().map_err(|_| RecordError::Unknown {
            field: "id",
            source: UnknownValue::new(&self.id, "a fact id (a UUID)"),
        })?;
        let text = FactText::parse(self.text.as_str()).map_err(invalid("text"))?;
        Ok(Fact {
            id,
            owner,
            text,
            provenance: self.provenance.to_provenance()?,
        })
    }
}

impl From<ScoredFact> for FactRecord {
    fn from(found: ScoredFact) -> Self {
        Self::new(found.fact, Some(found.score), None)
    }
}

/// `POST /{users|characters}/{id}/facts`: `{"facts": ["…", …]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddFactsRequest {
    /// The facts' texts.
    pub facts: Vec<String>,
    /// What to record as their source: `api` (the default) or `seeded` (`ragback facts add`
    /// through a running server); `extracted` is the memory extractor's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<FactSourceDto>,
}

/// `{"ids": […], "added": n, "unchanged": m}`: an id per input fact, in input order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AddFactsResponse {
    /// The id of each input fact, new or not.
    pub ids: Vec<String>,
    /// Facts stored by this call.
    pub added: usize,
    /// Facts already stored, or repeated within the call.
    pub unchanged: usize,
}

/// A page of facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ListFactsResponse {
    /// The facts, in id order.
    pub facts: Vec<FactRecord>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /facts/search`: `{"user_id"?, "character_id"?, "query", "top_k"?, "threshold"?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchFactsRequest {
    /// Search this user's facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Search this character's facts (with `user_id`, both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub character_id: Option<String>,
    /// The text to search with, e.g. a chat message.
    pub query: String,
    /// How many facts at most (1 to 50).
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Minimum cosine similarity (−1 to 1).
    #[serde(default)]
    pub threshold: f32,
}

fn default_top_k() -> usize {
    10
}

/// `{"facts": [{id, owner, owner_id, text, score}]}`, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchFactsResponse {
    /// The facts at or above the threshold, best first.
    pub facts: Vec<FactRecord>,
}

/// `{"deleted": n}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeleteFactsResponse {
    /// How many facts were deleted.
    pub deleted: usize,
}
