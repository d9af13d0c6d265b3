//! `POST /generate`: the character's next line.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use ragback_application::{GenerateCommand, Generation, GenerationOverrides, RetrievalOverrides};
use ragback_domain::Scenario;
use serde::{Deserialize, Serialize};

use super::dto::{self, CharacterDto, FactDto, MessageDto, UserDto, at};
use super::error::ApiError;
use super::json::ApiJson;
use super::state::{AppState, Limits};

/// The request body.
#[derive(Debug, Deserialize)]
pub(crate) struct GenerateRequest {
    messages: Vec<MessageDto>,
    user: UserDto,
    character: CharacterDto,
    #[serde(default)]
    scenario: Option<String>,
    #[serde(default)]
    generation: Option<GenerationDto>,
    #[serde(default)]
    retrieval: Option<RetrievalDto>,
}

/// Per-request generation parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GenerationDto {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    max_tokens: Option<u32>,
}

/// Per-request retrieval parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetrievalDto {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    threshold: Option<f32>,
}

impl GenerateRequest {
    /// Validates and converts the request.
    pub(crate) fn into_command(self, limits: &Limits) -> Result<GenerateCommand, ApiError> {
        let messages = dto::messages(self.messages, limits.messages)?;
        let user = self.user.into_domain()?;
        let character = self.character.into_domain()?;
        let scenario = self
            .scenario
            .filter(|s| !s.trim().is_empty())
            .map(|s| at("scenario", Scenario::parse(s)))
            .transpose()?;
        let g = self.generation.unwrap_or_default();
        let generation = GenerationOverrides {
            model: g.model,
            temperature: g.temperature,
            top_p: g.top_p,
            max_tokens: g.max_tokens,
        };
        generation.validate().map_err(|(field, e)| {
            ApiError::invalid_field(format!("generation.{field}"), e.to_string())
        })?;
        let r = self.retrieval.unwrap_or_default();
        let retrieval = RetrievalOverrides {
            enabled: r.enabled,
            top_k: r.top_k,
            threshold: r.threshold,
        };
        retrieval.validate().map_err(|(field, e)| {
            ApiError::invalid_field(format!("retrieval.{field}"), e.to_string())
        })?;
        Ok(GenerateCommand {
            messages,
            user,
            character,
            scenario,
            generation,
            retrieval,
        })
    }
}

/// The response body.
#[derive(Debug, Serialize)]
pub(crate) struct GenerateResponse {
    text: String,
    facts: Vec<FactDto>,
    model: String,
    usage: Option<UsageDto>,
    retrieval: &'static str,
    timings_ms: TimingsDto,
}

#[derive(Debug, Serialize)]
struct UsageDto {
    prompt_tokens: u32,
    completion_tokens: u32,
}

/// Stage timings in milliseconds.
#[derive(Debug, Serialize)]
struct TimingsDto {
    embed: f64,
    search: f64,
    render: f64,
    llm: f64,
    total: f64,
}

/// Milliseconds, to the microsecond.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1_000.0
}

impl From<Generation> for GenerateResponse {
    fn from(g: Generation) -> Self {
        Self {
            text: g.text,
            facts: g.facts.into_iter().map(FactDto::from).collect(),
            model: g.model,
            usage: g.usage.map(|u| UsageDto {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
            }),
            retrieval: g.retrieval.as_str(),
            timings_ms: TimingsDto {
                embed: ms(g.timings.embed),
                search: ms(g.timings.search),
                render: ms(g.timings.render),
                llm: ms(g.timings.llm),
                total: ms(g.timings.total),
            },
        }
    }
}

/// `POST /generate`.
pub(crate) async fn generate(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<GenerateRequest>,
) -> Result<Json<GenerateResponse>, ApiError> {
    let command = request.into_command(&state.limits)?;
    let generation = state.chat.generate(command).await?;
    Ok(Json(generation.into()))
}
