//! `POST /users/{id}/memories:extract`: facts from the dialogue, with the decisions shown.

use axum::Json;
use axum::extract::State;
use ragback_application::memory::{Action, Decision, ExtractRequest, MemoryError};
use ragback_domain::{CharacterId, UserId};
use serde::Deserialize;

use super::admission::bounded;
use super::dto::{self, MessageDto, at};
use super::error::ApiError;
use super::json::ApiJson;
use super::path::ApiPath;
use super::request_id;
use super::state::SharedState;
use crate::wire::{ActionDto, DecisionDto, ErrorBody, ExtractResponse, FactRecord};

/// `{"messages": [...], "character_id"?, "dry_run"?}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExtractRequestDto {
    /// The dialogue, oldest first; facts come from the last user message.
    messages: Vec<MessageDto>,
    /// The character of the dialogue.
    #[serde(default)]
    character_id: Option<String>,
    /// Decide and answer, but change nothing.
    #[serde(default)]
    dry_run: bool,
}

/// Extracts the facts of the user's last message and reconciles them with the stored ones.
#[utoipa::path(
    post,
    path = "/users/{id}/memories:extract",
    tag = "facts",
    summary = "Learn facts from the dialogue: the model proposes, each is added, updated, deleted or left (dry_run: only shown)",
    params(("id" = String, Path, description = "The user's id")),
    request_body = ExtractRequestDto,
    responses(
        (status = 200, description = "The decisions", body = ExtractResponse),
        (status = 403, description = "This key may not learn facts (a reader key when memory or admin keys are configured)", body = ErrorBody),
        (status = 409, description = "The user would pass the facts cap", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 502, description = "The model failed or did not answer in JSON", body = ErrorBody),
        (status = 503, description = "No model or embedder, or the store is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn extract(
    State(state): State<SharedState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<ExtractRequestDto>,
) -> Result<Json<ExtractResponse>, ApiError> {
    let user = at("user_id", UserId::parse(id))?;
    let character = request
        .character_id
        .map(|c| at("character_id", CharacterId::parse(c)))
        .transpose()?;
    let messages = dto::messages(request.messages, &state.limits)?;
    let Some(memory) = &state.memory else {
        return Err(MemoryError::NoModel.into());
    };
    let extraction = bounded(
        &state.admission.upstream,
        state.limits.request_timeout,
        "the extraction",
        memory.extract(ExtractRequest {
            user,
            character,
            messages,
            request_id: request_id::current_text(),
            dry_run: request.dry_run,
        }),
    )
    .await
    .inspect_err(|error| {
        tracing::warn!(code = error.code().as_str(), "memory extraction failed")
    })?;
    Ok(Json(ExtractResponse {
        decisions: extraction.decisions.into_iter().map(decision).collect(),
        dry_run: request.dry_run,
        already_extracted: extraction.already_extracted,
        message_hash: extraction.message_hash,
    }))
}

fn decision(d: Decision) -> DecisionDto {
    DecisionDto {
        action: match d.action {
            Action::Add => ActionDto::Add,
            Action::Update => ActionDto::Update,
            Action::Delete => ActionDto::Delete,
            Action::Noop => ActionDto::Noop,
        },
        text: d.text,
        owner: d.owner.kind().into(),
        owner_id: d.owner.id().to_owned(),
        fact_id: d.fact_id.map(|id| id.to_string()),
        target: d.target.map(|f| FactRecord::new(f, None, None)),
        reason: d.reason.to_owned(),
    }
}
