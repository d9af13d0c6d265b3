//! `POST /generate`: the character's next line.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ragback_application::memory::ExtractRequest;
use ragback_application::{
    GenerateCommand, GenerateFailure, GenerationOverrides, ReplyEvent, RetrievalOverrides,
};
use ragback_domain::{ConversationId, LoreSource, Scenario};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::access;
use super::admission::Slot;
use super::auth::{Caller, Grant};
use super::deadline::RequestTimeout;
use super::dto::{self, CharacterDto, MessageDto, UserDto, at};
use super::error::ApiError;
use super::json::ApiJson;
use super::lore_dto::LorebookDto;
use super::request_id;
use super::state::{AppState, Limits, SharedState};
use crate::wire::{DeltaEvent, ErrorBody, FactsEvent, GenerateResponse, UsedFact};

/// The request body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
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
    /// Answer with Server-Sent Events as the reply is written.
    #[serde(default)]
    stream: bool,
    /// Memory: `{"extract": true}` learns facts from the user's last message after the reply.
    #[serde(default)]
    memory: Option<MemoryDto>,
    /// A configured variant to answer with, whatever the split assigns this user (for
    /// evaluations and tests); unknown names are refused.
    #[serde(default)]
    variant: Option<String>,
    /// The scene's lorebook (world info), in the Character Card V2 `character_book` format;
    /// used beside the card's own book.
    #[serde(default)]
    lorebook: Option<LorebookDto>,
    /// Which of the card's greetings shows the character's opening line: 0 is `first_mes`, 1
    /// and on `alternate_greetings` (default: picked by `generation.seed`, else `first_mes`).
    #[serde(default)]
    greeting: Option<usize>,
    /// The conversation (needs `user.id`): what no longer fits the prompt is summarized after
    /// the reply, and the summary goes into the next turns' prompts.
    #[serde(default)]
    conversation_id: Option<String>,
    /// With `conversation_id`: bring its summary up to date before replying, on the reply's
    /// path (for evaluations replaying a dialogue's turns; slower).
    #[serde(default)]
    summarize_first: bool,
}

/// Per-request memory: whether to extract facts from this turn, off the reply's path.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemoryDto {
    /// Extract after the reply (default: `RAGBACK_MEMORY__AUTO`).
    #[serde(default)]
    extract: Option<bool>,
}

/// Per-request generation parameters.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
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
    /// Seed of the sampler, for repeatable replies.
    #[serde(default)]
    seed: Option<u64>,
}

/// Per-request retrieval parameters.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetrievalDto {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    threshold: Option<f32>,
    #[serde(default)]
    margin: Option<f32>,
}

impl GenerateRequest {
    /// Validates and converts the request, with the caller's deadline (`X-Request-Timeout`).
    pub(crate) fn into_command(
        self,
        limits: &Limits,
        timeout: Option<Duration>,
    ) -> Result<GenerateCommand, ApiError> {
        let messages = dto::messages(self.messages, limits)?;
        let user = self.user.into_domain()?;
        let character = self.character.into_domain()?;
        if let Some(index) = self.greeting {
            let greetings = character.card.as_ref().map_or(0, |c| c.greetings());
            if index >= greetings {
                return Err(ApiError::invalid_field(
                    "greeting",
                    format!(
                        "the card has {greetings} greeting(s) (0 is first_mes, then \
                         alternate_greetings), got {index}"
                    ),
                ));
            }
        }
        let conversation = self
            .conversation_id
            .map(|id| at("conversation_id", ConversationId::parse(id)))
            .transpose()?;
        if conversation.is_some() && user.id.is_none() {
            return Err(ApiError::invalid_field(
                "user.id",
                "a conversation's summary is kept per user: give `user.id` with `conversation_id`",
            ));
        }
        let lorebook = self
            .lorebook
            .map(|book| book.into_domain(LoreSource::Scene, "lorebook"))
            .transpose()?;
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
            seed: g.seed,
        };
        generation.validate().map_err(|(field, e)| {
            ApiError::invalid_field(format!("generation.{field}"), e.to_string())
        })?;
        let r = self.retrieval.unwrap_or_default();
        let retrieval = RetrievalOverrides {
            enabled: r.enabled,
            top_k: r.top_k,
            threshold: r.threshold,
            margin: r.margin,
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
            timeout,
            variant: None,
            lorebook,
            greeting: self.greeting,
            conversation,
            summarize_first: self.summarize_first,
        })
    }
}

/// Longest variant name echoed in an error.
const MAX_VARIANT_CHARS: usize = 64;

/// The variant a request names, from the set in force; unknown names are a 422 naming them.
fn asked_variant(
    state: &AppState,
    name: Option<&str>,
) -> Result<Option<Arc<ragback_application::variants::Variant>>, ApiError> {
    let Some(name) = name else {
        return Ok(None);
    };
    if name.chars().count() > MAX_VARIANT_CHARS {
        return Err(ApiError::invalid_field(
            "variant",
            format!("at most {MAX_VARIANT_CHARS} characters: no variant has such a name"),
        ));
    }
    state
        .chat
        .variants()
        .current()
        .named(name)
        .map(Some)
        .map_err(|unknown| ApiError::invalid_field("variant", unknown.to_string()))
}

/// `POST /generate`: JSON, or Server-Sent Events with `"stream": true`. The request is
/// validated before anything is streamed, so bad input is a plain 4xx JSON error either way.
#[utoipa::path(
    post,
    path = "/generate",
    tag = "generate",
    summary = "The character's next line, with the facts used",
    description = "With `\"stream\": true` the answer is Server-Sent Events instead: `facts`, \
        `delta`…, then `done` (this response) or `error` (an error body).",
    params(("X-Request-Timeout" = Option<String>, Header,
        description = "A shorter deadline for this request: milliseconds, `2500ms` or `3s`")),
    request_body = GenerateRequest,
    responses(
        (status = 200, description = "The reply", body = GenerateResponse),
        (status = 400, description = "Not JSON, or a bad header", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Memory extraction asked for by a key that may not learn facts", body = ErrorBody),
        (status = 408, description = "The body was not received in time", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid field; `error.field` names it", body = ErrorBody),
        (status = 502, description = "The LLM failed after retries", body = ErrorBody),
        (status = 503, description = "LLM not configured, or every generation slot busy", body = ErrorBody),
        (status = 504, description = "The deadline passed", body = ErrorBody),
    )
)]
pub(crate) async fn generate(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    RequestTimeout(timeout): RequestTimeout,
    ApiJson(request): ApiJson<GenerateRequest>,
) -> Result<Response, ApiError> {
    let stream = request.stream;
    let asked = request.memory.as_ref().and_then(|m| m.extract);
    let variant = asked_variant(&state, request.variant.as_deref())?;
    let mut command = request.into_command(&state.limits, timeout)?;
    command.variant = variant;
    allowed_model(&state, command.generation.model.as_deref())?;
    let memory = memory_request(&state, caller, asked, &command)?;
    // Only now, with the whole body read and valid, is a generation slot taken.
    let slot = state.admission.generation.admit().await?;
    if stream {
        let request_id = request_id::current();
        let events = state.chat.generate_stream(command);
        // Queued as the stream starts: extraction reads the user's message, not the reply, and
        // runs on its own task.
        queue_memory(&state, memory).await;
        return Ok(stream_reply(events, request_id, slot));
    }
    let generation = state.chat.generate(command).await.map_err(failure)?;
    drop(slot);
    queue_memory(&state, memory).await;
    Ok(Json(GenerateResponse::from(generation)).into_response())
}

/// Refuses a `generation.model` that no variant uses and `RAGBACK_LLM__ALLOWED_MODELS` does not
/// list: every key holder could otherwise spend the operator's provider key on any model.
fn allowed_model(state: &AppState, model: Option<&str>) -> Result<(), ApiError> {
    let Some(model) = model else { return Ok(()) };
    let variants = state.chat.variants().current();
    if variants.allows_model(model) {
        return Ok(());
    }
    Err(ApiError::invalid_field(
        "generation.model",
        format!(
            "`{}` is not offered here; ask for one of: {} (RAGBACK_LLM__ALLOWED_MODELS adds \
             models)",
            super::error::printable(model),
            variants.allowed_models().join(", ")
        ),
    ))
}

/// The extraction this turn gets: asked for (`asked`), or automatic (`RAGBACK_MEMORY__AUTO`).
///
/// Extraction writes facts, so a caller asking for it needs [`Grant::Learn`] (403) and a
/// `user.id` to learn about (422): facts are never pooled under a shared user. Automatic
/// extraction silently skips the turns it may not learn from (counted).
fn memory_request(
    state: &AppState,
    caller: Caller,
    asked: Option<bool>,
    command: &GenerateCommand,
) -> Result<Option<ExtractRequest>, ApiError> {
    let explicit = match asked {
        Some(false) => return Ok(None),
        Some(true) => true,
        None if state.memory_auto => false,
        None => return Ok(None),
    };
    let skipped = |reason: &'static str| {
        metrics::counter!("ragback_memory_skipped_total", "reason" => reason).increment(1);
        Ok(None)
    };
    if !caller.may(Grant::Learn) {
        if explicit {
            access::require(caller, Grant::Learn)?;
        }
        return skipped("forbidden");
    }
    let Some(user) = command.user.id.clone() else {
        if explicit {
            return Err(ApiError::invalid_field(
                "user.id",
                "memory extraction learns facts about one user: give `user.id` (facts are never \
                 stored under a shared user)",
            ));
        }
        return skipped("no_user_id");
    };
    if state.memory_queue.is_none() {
        return Ok(None);
    }
    Ok(Some(ExtractRequest {
        user,
        character: command.character.id.clone(),
        messages: command.messages.clone(),
        request_id: request_id::current_text(),
        dry_run: false,
    }))
}

/// Queues `memory`'s extraction before the reply is returned: stored first when the queue keeps
/// its jobs (a restart or a dead replica then loses nothing acknowledged); a full in-memory queue
/// drops it (counted), never delaying the reply.
async fn queue_memory(state: &AppState, memory: Option<ExtractRequest>) {
    if let (Some(queue), Some(request)) = (&state.memory_queue, memory) {
        queue.queue(request).await;
    }
}

/// How often an idle stream sends a comment, so proxies do not close it.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The events of a streamed reply as SSE: `facts`, `delta`…, then `done` or `error`. When the
/// client goes away the body is dropped, and with it the receiver: the generation stops.
///
/// The generation slot is held by the stream: until its last event is sent or the client leaves.
fn stream_reply(
    events: mpsc::Receiver<ReplyEvent>,
    request_id: Option<Arc<str>>,
    slot: Slot,
) -> Response {
    let events = futures::stream::unfold((events, slot), move |(mut events, slot)| {
        let request_id = request_id.clone();
        async move {
            let event = events.recv().await?;
            Some((
                Ok::<_, Infallible>(sse_event(event, request_id)),
                (events, slot),
            ))
        }
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // nginx buffers responses unless told otherwise.
    response.headers_mut().insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    response
}

/// One SSE event.
fn sse_event(event: ReplyEvent, request_id: Option<Arc<str>>) -> Event {
    let (name, data) = event_data(event, request_id);
    let data = data.unwrap_or_else(|error| {
        tracing::error!(%error, event = name, "cannot serialise a stream event");
        "{}".to_owned()
    });
    Event::default().event(name).data(data)
}

/// An event's name and JSON data.
fn event_data(
    event: ReplyEvent,
    request_id: Option<Arc<str>>,
) -> (&'static str, serde_json::Result<String>) {
    match event {
        ReplyEvent::Facts { status, facts } => (
            "facts",
            serde_json::to_string(&FactsEvent {
                retrieval: status.into(),
                facts: facts.into_iter().map(UsedFact::from).collect(),
            }),
        ),
        ReplyEvent::Delta(text) => ("delta", serde_json::to_string(&DeltaEvent { text })),
        ReplyEvent::Done(generation) => (
            "done",
            serde_json::to_string(&GenerateResponse::from(*generation)),
        ),
        ReplyEvent::Failed(error) => {
            let error = ApiError::from(error).with_request_id(request_id);
            error.report();
            ("error", serde_json::to_string(&error.body()))
        }
    }
}

/// The error of a failed generation, with the retrieval that ran before it.
fn failure(failure: GenerateFailure) -> ApiError {
    let error = ApiError::from(failure.error);
    match failure.retrieval {
        Some(retrieval) => error.with_retrieval(retrieval.into()),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::api::json::parse;

    const LIMITS: Limits = Limits {
        body_bytes: 256 * 1024,
        messages: 50,
        message_chars: 8_000,
        facts_per_call: 256,
        concurrency: 8,
        upstream_concurrency: 8,
        queue_timeout: Duration::from_millis(100),
        request_timeout: Duration::from_secs(2),
        body_timeout: Duration::from_secs(2),
    };

    /// Any JSON value, nested a few levels.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            "\\PC{0,20}".prop_map(Value::from),
            "[\\x00-\\x1f{}%#]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("messages".to_owned()),
                        Just("role".to_owned()),
                        Just("actor".to_owned()),
                        Just("text".to_owned()),
                        Just("user".to_owned()),
                        Just("character".to_owned()),
                        Just("name".to_owned()),
                        Just("age".to_owned()),
                        Just("description".to_owned()),
                        Just("card".to_owned()),
                        Just("data".to_owned()),
                        "[a-z_]{1,8}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A structurally valid request with arbitrary field contents.
    fn near_valid() -> impl Strategy<Value = Value> {
        (
            prop::collection::vec(("(user|character|narrator)", "\\PC{0,30}"), 0..8),
            "\\PC{0,12}",
            any::<Option<u16>>(),
            "\\PC{0,12}",
            "\\PC{0,40}",
            prop::option::of(-3.0f64..3.0),
            prop::option::of(0usize..80),
        )
            .prop_map(|(messages, user, age, name, description, threshold, top_k)| {
                json!({
                    "messages": messages.into_iter().map(|(role, text)| json!({"role": role, "text": text})).collect::<Vec<_>>(),
                    "user": {"name": user, "age": age},
                    "character": {"name": name, "description": description},
                    "retrieval": {"threshold": threshold, "top_k": top_k},
                })
            })
    }

    fn parse_and_validate(bytes: &[u8]) {
        if let Ok(request) = parse::<GenerateRequest>(bytes) {
            let _ = request.into_command(&LIMITS, None);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000)
        ))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            parse_and_validate(&bytes);
        }

        #[test]
        fn arbitrary_json_never_panics(value in any_json()) {
            parse_and_validate(value.to_string().as_bytes());
        }

        #[test]
        fn near_valid_requests_are_accepted_or_refused_with_a_field(value in near_valid()) {
            let result = parse::<GenerateRequest>(value.to_string().as_bytes())
                .and_then(|r| r.into_command(&LIMITS, None));
            if let Err(error) = result {
                prop_assert_eq!(error.status().as_u16(), 422);
                prop_assert_eq!(error.code().as_str(), "invalid_field");
            }
        }
    }
}
