//! `POST /api/v1/chat`: the contract of the Python service ragback replaces, kept unchanged so
//! its clients keep working. Facts come from the configured default user.

use axum::Json;
use axum::extract::State;
use ragback_application::{GenerateCommand, GenerationOverrides, RetrievalOverrides};
use serde::{Deserialize, Serialize};

use super::deadline::RequestTimeout;
use super::dto::{self, CharacterDto, MessageDto, UserDto};
use super::error::ApiError;
use super::json::ApiJson;
use super::state::SharedState;
use crate::wire::ErrorBody;

/// `{"messages": [{"actor", "text"}], "user": {"name", "age"}, "character": {"name", "age",
/// "description"}}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct LegacyChatRequest {
    messages: Vec<MessageDto>,
    user: UserDto,
    character: CharacterDto,
}

/// `{"generated_text", "search_results": [{"content": {"owner", "text"}, "relevance_score"}]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LegacyChatResponse {
    generated_text: String,
    search_results: Vec<SearchResult>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct SearchResult {
    content: Content,
    relevance_score: f32,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Content {
    owner: &'static str,
    text: String,
}

/// `POST /api/v1/chat`.
#[utoipa::path(
    post,
    path = "/api/v1/chat",
    tag = "generate",
    summary = "The previous Python service's contract, unchanged",
    request_body = LegacyChatRequest,
    responses(
        (status = 200, description = "The reply", body = LegacyChatResponse),
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 502, description = "The LLM failed after retries", body = ErrorBody),
        (status = 503, description = "LLM not configured, or every generation slot busy", body = ErrorBody),
        (status = 504, description = "The deadline passed", body = ErrorBody),
    )
)]
pub(crate) async fn chat(
    State(state): State<SharedState>,
    RequestTimeout(timeout): RequestTimeout,
    ApiJson(request): ApiJson<LegacyChatRequest>,
) -> Result<Json<LegacyChatResponse>, ApiError> {
    let mut user = request.user.into_domain()?;
    // The old service knew one user: always the configured default, whatever the body says
    // (retrieval's default, `RAGBACK_RETRIEVAL__DEFAULT_USER_ID`, its one source).
    user.id = None;
    let mut character = request.character.into_domain()?;
    character.id = None;
    let command = GenerateCommand {
        messages: dto::messages(request.messages, &state.limits)?,
        user,
        character,
        scenario: None,
        generation: GenerationOverrides::default(),
        retrieval: RetrievalOverrides::default(),
        timeout,
        // One user for everyone cannot be split: the old contract gets the default variant.
        variant: Some(state.chat.variants().current().default_variant()),
        lorebook: None,
        greeting: None,
        conversation: None,
        summarize_first: false,
    };
    // With the whole body read and valid, a generation slot.
    let _slot = state.admission.generation.admit().await?;
    // The old contract's errors stay as they were: no retrieval detail.
    let generation = state
        .chat
        .generate(command)
        .await
        .map_err(|failure| ApiError::from(failure.error))?;
    Ok(Json(LegacyChatResponse {
        generated_text: generation.text,
        search_results: generation
            .facts
            .into_iter()
            .map(|f| SearchResult {
                content: Content {
                    owner: f.fact.owner.kind().as_str(),
                    text: f.fact.text.as_str().to_owned(),
                },
                relevance_score: f.score,
            })
            .collect(),
    }))
}
