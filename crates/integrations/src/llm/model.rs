//! [`OpenAiChatModel`]: the `ChatModel` port over async-openai.

use async_openai::Client;
use async_openai::error::OpenAIError;
use async_openai::types::chat::ReasoningEffort as OpenAiEffort;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    ChatCompletionStreamOptions, CreateChatCompletionRequest,
};
use async_trait::async_trait;
use futures::StreamExt;
use ragback_application::ports::{
    ChatChunk, ChatModel, ChatModelError, ChatRequest, ChatStream, Completion, PromptRole,
    ReasoningBudget, ReasoningEffort, TokenUsage,
};
use reqwest::StatusCode;

use super::provider::{LlmConfigError, LlmSettings, ProviderConfig};
use super::routing::OpenRouterFields;
use super::transport::{StatusError, Transport};
use super::wire::{ChunkBody, CompletionBody, ErrorBody, Usage};
use crate::http;

/// What to tell an operator whose LLM has no key.
const MISSING_KEY_HINT: &str = "no API key is set for the language model provider: set \
     RAGBACK_LLM__API_KEY (or OPENROUTER_API_KEY) and restart ragback, or answer with the \
     in-process model (RAGBACK_LLM__PROVIDER=local)";

/// A chat model behind an OpenAI-compatible API.
#[derive(Debug, Clone)]
pub struct OpenAiChatModel {
    client: Client<ProviderConfig>,
    configured: bool,
    base_url: String,
    /// Whether OpenRouter's routing fields are sent.
    openrouter: bool,
}

/// A chat-completion request body: OpenAI's fields, and OpenRouter's beside them.
#[derive(Debug, serde::Serialize)]
struct Body {
    #[serde(flatten)]
    openai: CreateChatCompletionRequest,
    #[serde(flatten)]
    openrouter: OpenRouterFields,
}

impl OpenAiChatModel {
    /// Builds the client; does not call the provider.
    pub fn new(settings: &LlmSettings) -> Result<Self, LlmConfigError> {
        let config = ProviderConfig::new(settings)?;
        let http = crate::http::client_builder()
            .connect_timeout(settings.connect_timeout)
            .build()
            .map_err(|e| LlmConfigError::Client(e.to_string()))?;
        let client = Client::build(http.clone(), config).with_http_service(Transport::new(http));
        Ok(Self {
            client,
            configured: !settings.missing_required_key(),
            base_url: settings.base_url.clone(),
            openrouter: settings.speaks_openrouter(),
        })
    }
}

#[async_trait]
impl ChatModel for OpenAiChatModel {
    fn is_configured(&self) -> bool {
        self.configured
    }

    fn describe(&self) -> String {
        format!("the OpenAI-compatible API at {}", self.base_url)
    }

    async fn complete(&self, request: &ChatRequest) -> Result<Completion, ChatModelError> {
        if !self.configured {
            return Err(ChatModelError::NotConfigured(MISSING_KEY_HINT.into()));
        }
        let body = self.body(request, false)?;
        let response: CompletionBody = self
            .client
            .chat()
            .create_byot(&body)
            .await
            .map_err(classify)?;
        from_wire(response, &request.params.model)
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ChatModelError> {
        if !self.configured {
            return Err(ChatModelError::NotConfigured(MISSING_KEY_HINT.into()));
        }
        let body = self.body(request, true)?;
        let chunks = self
            .client
            .chat()
            .create_stream_byot::<_, ChunkBody>(&body)
            .await
            .map_err(classify)?;
        Ok(Box::pin(
            chunks.map(|chunk| chunk_from_wire(chunk.map_err(classify)?)),
        ))
    }
}

impl OpenAiChatModel {
    /// The body of one call: OpenRouter gets its routing fields; another provider only a
    /// reasoning effort, as OpenAI's `reasoning_effort`.
    fn body(
        &self,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<serde_json::Value, ChatModelError> {
        let mut openai = to_wire(request);
        if stream {
            openai.stream = Some(true);
            openai.stream_options = Some(ChatCompletionStreamOptions {
                include_usage: Some(true),
                include_obfuscation: None,
            });
        }
        let routing = &request.params.routing;
        let openrouter = if self.openrouter {
            OpenRouterFields::of(&request.params.model, routing)
        } else {
            if let Some(ReasoningBudget::Effort(effort)) = routing.reasoning {
                openai.reasoning_effort = Some(match effort {
                    ReasoningEffort::None => OpenAiEffort::None,
                    ReasoningEffort::Minimal => OpenAiEffort::Minimal,
                    ReasoningEffort::Low => OpenAiEffort::Low,
                    ReasoningEffort::Medium => OpenAiEffort::Medium,
                    ReasoningEffort::High => OpenAiEffort::High,
                });
            }
            OpenRouterFields::default()
        };
        // Through text, not `to_value`: an `f32` like 0.7 stays 0.7 instead of widening.
        let mut body = serde_json::to_string(&Body { openai, openrouter })
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text))
            .map_err(|e| ChatModelError::Rejected {
                status: 400,
                message: format!("the request cannot be written as JSON: {e}"),
            })?;
        if request.params.cache_control {
            mark_cache_breakpoint(&mut body);
        }
        Ok(body)
    }
}

/// Marks the end of the prompt's stable part, its first message, with an explicit cache
/// breakpoint: the content becomes one text part with `cache_control`, as Anthropic's and
/// Gemini's models take it through OpenRouter.
fn mark_cache_breakpoint(body: &mut serde_json::Value) {
    if let Some(first) = body.pointer_mut("/messages/0")
        && let Some(text) = first
            .get("content")
            .and_then(|c| c.as_str())
            .map(str::to_owned)
    {
        first["content"] = serde_json::json!([{
            "type": "text",
            "text": text,
            "cache_control": {"type": "ephemeral"},
        }]);
    }
}

/// A streamed chunk, or the error it reports.
fn chunk_from_wire(body: ChunkBody) -> Result<ChatChunk, ChatModelError> {
    if let Some(error) = body.error {
        return Err(classify_body_error(&error));
    }
    let mut text = String::new();
    for choice in body.choices.into_iter().take(1) {
        if let Some(error) = choice.error {
            return Err(classify_body_error(&error));
        }
        if choice.finish_reason.as_deref() == Some("error") {
            return Err(ChatModelError::unavailable(
                "the provider ended the reply with an error",
            ));
        }
        text = choice.delta.and_then(|d| d.content).unwrap_or_default();
    }
    Ok(ChatChunk {
        text,
        model: body.model.filter(|m| !m.is_empty()),
        usage: body.usage.map(usage),
    })
}

fn usage(u: Usage) -> TokenUsage {
    TokenUsage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        cached_tokens: u
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0),
    }
}

/// The async-openai request for one call.
fn to_wire(request: &ChatRequest) -> CreateChatCompletionRequest {
    let messages = request
        .messages
        .iter()
        .map(|m| match m.role {
            PromptRole::System => {
                ChatCompletionRequestSystemMessage::from(m.content.as_str()).into()
            }
            PromptRole::User => ChatCompletionRequestUserMessage::from(m.content.as_str()).into(),
            PromptRole::Assistant => {
                ChatCompletionRequestAssistantMessage::from(m.content.as_str()).into()
            }
        })
        .collect::<Vec<ChatCompletionRequestMessage>>();
    #[allow(deprecated)] // `max_tokens` is what OpenRouter, Ollama and vLLM all accept.
    CreateChatCompletionRequest {
        model: request.params.model.clone(),
        messages,
        temperature: request.params.temperature,
        top_p: request.params.top_p,
        max_tokens: request.params.max_tokens,
        // OpenAI takes an i64; larger seeds wrap, which keeps them repeatable.
        seed: request.params.seed.map(|seed| seed as i64),
        stream: Some(false),
        ..Default::default()
    }
}

/// The completion in a 200 body, or the error the body reports.
fn from_wire(body: CompletionBody, requested_model: &str) -> Result<Completion, ChatModelError> {
    if let Some(error) = body.error {
        return Err(classify_body_error(&error));
    }
    let Some(choice) = body.choices.into_iter().next() else {
        return Err(ChatModelError::InvalidResponse(
            "the response holds no choices".into(),
        ));
    };
    if let Some(error) = choice.error {
        return Err(classify_body_error(&error));
    }
    if choice.finish_reason.as_deref() == Some("error") {
        return Err(ChatModelError::unavailable(
            "the provider ended the reply with an error",
        ));
    }
    Ok(Completion {
        text: choice.message.and_then(|m| m.content).unwrap_or_default(),
        model: body
            .model
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| requested_model.to_owned()),
        usage: body.usage.map(usage),
        finish_reason: choice.finish_reason,
    })
}

/// An error reported in a 200 body: rate limits and 5xx-like codes are transient, 4xx-like codes
/// are refusals, anything unknown is treated as transient.
fn classify_body_error(error: &ErrorBody) -> ChatModelError {
    let message = http::shorten(error.message.as_deref().unwrap_or("unspecified error"));
    let rate_limited = error.numeric_code() == Some(429)
        || error.text_code().is_some_and(|c| c.contains("rate_limit"));
    match error.numeric_code() {
        _ if rate_limited => ChatModelError::RateLimited {
            retry_after: None,
            message,
        },
        Some(code @ 400..=499) if code != 408 => ChatModelError::Rejected {
            status: code,
            message,
        },
        _ => ChatModelError::unavailable(message),
    }
}

/// Maps async-openai's errors to the port's.
fn classify(error: OpenAIError) -> ChatModelError {
    match error {
        OpenAIError::Boxed(boxed) => match boxed.downcast::<StatusError>() {
            Ok(status) => classify_status(*status),
            Err(other) => ChatModelError::unavailable(other.to_string()),
        },
        OpenAIError::Reqwest(e) => ChatModelError::unavailable(http::describe_transport_error(&e)),
        OpenAIError::ApiError(api) => classify_status(StatusError {
            status: api.status_code,
            retry_after: None,
            message: http::shorten(&api.api_error.message),
        }),
        OpenAIError::JSONDeserialize(e, _) => {
            ChatModelError::InvalidResponse(format!("not a chat completion: {e}"))
        }
        OpenAIError::StreamError(e) => ChatModelError::unavailable(e.to_string()),
        OpenAIError::InvalidArgument(message) => ChatModelError::Rejected { status: 0, message },
        OpenAIError::FileSaveError(message) | OpenAIError::FileReadError(message) => {
            ChatModelError::unavailable(message)
        }
    }
}

fn classify_status(error: StatusError) -> ChatModelError {
    let StatusError {
        status,
        retry_after,
        message,
    } = error;
    match status {
        StatusCode::TOO_MANY_REQUESTS => ChatModelError::RateLimited {
            retry_after,
            message,
        },
        StatusCode::REQUEST_TIMEOUT => ChatModelError::Unavailable {
            message: format!("{status}: {message}"),
            retry_after,
        },
        s if s.is_server_error() => ChatModelError::Unavailable {
            message: format!("{status}: {message}"),
            retry_after,
        },
        s => ChatModelError::Rejected {
            status: s.as_u16(),
            message,
        },
    }
}
