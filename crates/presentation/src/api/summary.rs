//! A conversation's rolling summary: `GET` and `DELETE
//! /users/{id}/conversations/{conversation_id}/summary`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ragback_domain::{ConversationId, UserId};

use super::dto::at;
use super::error::ApiError;
use super::path::ApiPath;
use super::state::{AppState, SharedState};
use crate::wire::{ErrorBody, SummaryRecord};

fn ids(user: String, conversation: String) -> Result<(UserId, ConversationId), ApiError> {
    Ok((
        at("user_id", UserId::parse(user))?,
        at("conversation_id", ConversationId::parse(conversation))?,
    ))
}

fn store(
    state: &AppState,
) -> Result<&std::sync::Arc<dyn ragback_application::ports::SummaryStore>, ApiError> {
    state.summaries.as_ref().ok_or_else(|| {
        ApiError::summary_not_found(
            "conversation summaries are off (RAGBACK_SUMMARY__ENABLED=false): there are none",
        )
    })
}

fn missing(user: &UserId, conversation: &ConversationId) -> ApiError {
    ApiError::summary_not_found(format!(
        "user `{user}` has no summary of conversation `{conversation}` (a summary is written \
         once a conversation outgrows the prompt)"
    ))
}

/// `GET /users/{id}/conversations/{conversation_id}/summary`.
#[utoipa::path(
    get,
    path = "/users/{id}/conversations/{conversation_id}/summary",
    tag = "summaries",
    summary = "The rolling summary of a conversation: what fell out of the prompt",
    params(
        ("id" = String, Path, description = "The user's id"),
        ("conversation_id" = String, Path, description = "The conversation's id, as `/generate` got it"),
    ),
    responses(
        (status = 200, description = "The summary", body = SummaryRecord),
        (status = 404, description = "No summary of this conversation", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn get(
    State(state): State<SharedState>,
    ApiPath((user, conversation)): ApiPath<(String, String)>,
) -> Result<Json<SummaryRecord>, ApiError> {
    let (user, conversation) = ids(user, conversation)?;
    let summary = store(&state)?
        .get_summary(&user, &conversation)
        .await?
        .ok_or_else(|| missing(&user, &conversation))?;
    Ok(Json(SummaryRecord::new(conversation.as_str(), summary)))
}

/// `DELETE /users/{id}/conversations/{conversation_id}/summary`.
#[utoipa::path(
    delete,
    path = "/users/{id}/conversations/{conversation_id}/summary",
    tag = "summaries",
    summary = "Delete a conversation's summary (the next turn that outgrows the prompt writes it anew)",
    params(
        ("id" = String, Path, description = "The user's id"),
        ("conversation_id" = String, Path, description = "The conversation's id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Admin keys are configured and this is not one", body = ErrorBody),
        (status = 404, description = "No summary of this conversation", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn delete(
    State(state): State<SharedState>,
    ApiPath((user, conversation)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (user, conversation) = ids(user, conversation)?;
    if store(&state)?.delete_summary(&user, &conversation).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(missing(&user, &conversation))
    }
}
