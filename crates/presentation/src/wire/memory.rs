//! `POST /users/{id}/memories:extract`: what the dialogue taught, decision by decision.

use serde::{Deserialize, Serialize};

use super::facts::{FactRecord, OwnerKindDto};

/// What happened to a candidate fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActionDto {
    /// Stored as a new fact.
    Add,
    /// Replaced `target`, whose text the new fact keeps in its `history`.
    Update,
    /// Removed `target`.
    Delete,
    /// Nothing changed.
    Noop,
}

/// The decision about one fact the model proposed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DecisionDto {
    /// What was done (or, in a dry run, would be).
    pub action: ActionDto,
    /// The proposed fact.
    pub text: String,
    /// Whose fact.
    pub owner: OwnerKindDto,
    /// The user's or character's id.
    pub owner_id: String,
    /// The new fact's id (add, update).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fact_id: Option<String>,
    /// The stored fact acted on: updated, deleted, or the one it duplicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<FactRecord>,
    /// Why, in a few words.
    pub reason: String,
}

/// The extraction's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExtractResponse {
    /// One per proposed fact, in the model's order.
    pub decisions: Vec<DecisionDto>,
    /// Nothing was changed: the request asked for a dry run.
    pub dry_run: bool,
    /// The message was extracted from before: the model was not asked, nothing changed.
    pub already_extracted: bool,
    /// The hash of the message extracted from, as recorded on its facts.
    pub message_hash: String,
}
