//! The facts API's bodies: adding, listing, searching and deleting facts.

use ragback_domain::{Fact, FactId, FactOwner, FactText, OwnerKind, ScoredFact};
use serde::{Deserialize, Serialize};

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
            score,
            vector,
        }
    }

    /// The fact again, checked as the server would.
    pub fn to_fact(&self) -> Result<Fact, String> {
        let owner = FactOwner::from_parts(self.owner.into(), &self.owner_id)
            .map_err(|e| format!("owner_id: {e}"))?;
        let id: FactId = self
            .id
            .parse()
            .map_err(|_| format!("`{}` is not a fact id", self.id))?;
        let text = FactText::parse(self.text.as_str()).map_err(|e| format!("text: {e}"))?;
        Ok(Fact { id, owner, text })
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
