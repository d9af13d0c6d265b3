//! Streaming completions from a local server speaking OpenAI's event-stream format (with
//! OpenRouter's comments and mid-stream error objects).

use futures::StreamExt;
use ragback_application::ports::{
    ChatChunk, ChatModel, ChatModelError, ChatRequest, GenerationParams, PromptMessage, PromptRole,
    TokenUsage,
};
use ragback_integrations::llm::{LlmSettings, OpenAiChatModel};
use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn model(server: &MockServer) -> OpenAiChatModel {
    OpenAiChatModel::new(&LlmSettings {
        base_url: format!("{}/api/v1", server.uri()),
        api_key: Some(SecretString::from("sk-or-test")),
        ..LlmSettings::default()
    })
    .unwrap()
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![PromptMessage {
            role: PromptRole::User,
            content: "I ran the marathon!".into(),
        }],
        params: GenerationParams {
            model: "mistralai/mistral-nemo".into(),
            temperature: None,
            top_p: None,
            max_tokens: None,
            seed: None,
            routing: Default::default(),
            cache_control: false,
        },
        json_schema: None,
    }
}

/// A chunk of OpenAI's streaming format carrying `content`.
fn chunk(content: &str) -> String {
    let body = json!({
        "id": "gen-1", "object": "chat.completion.chunk", "created": 1_732_450_000,
        "model": "mistralai/mistral-nemo", "provider": "Mistral",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": content}, "finish_reason": null}]
    });
    format!("data: {body}\n\n")
}

fn sse(events: &[String]) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/event-stream")
        .set_body_string(events.concat())
}

async fn collect(model: &OpenAiChatModel) -> Vec<Result<ChatChunk, ChatModelError>> {
    model.stream(&request()).await.unwrap().collect().await
}

#[tokio::test]
async fn pieces_model_and_usage_arrive_until_done() {
    let server = MockServer::start().await;
    let last = json!({
        "id": "gen-1", "object": "chat.completion.chunk", "model": "mistralai/mistral-nemo",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    });
    let usage = json!({
        "id": "gen-1", "object": "chat.completion.chunk", "model": "mistralai/mistral-nemo",
        "choices": [], "usage": {"prompt_tokens": 42, "completion_tokens": 5, "total_tokens": 47}
    });
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .and(body_partial_json(
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        ))
        .respond_with(sse(&[
            ": OPENROUTER PROCESSING\n\n".into(),
            chunk("Bla"),
            chunk("ze: *grins*"),
            chunk(" Dope!"),
            format!("data: {last}\n\n"),
            format!("data: {usage}\n\n"),
            "data: [DONE]\n\n".into(),
        ]))
        .expect(1)
        .mount(&server)
        .await;

    let chunks: Vec<ChatChunk> = collect(&model(&server))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    let text: String = chunks.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(text, "Blaze: *grins* Dope!");
    assert_eq!(chunks[0].model.as_deref(), Some("mistralai/mistral-nemo"));
    assert_eq!(
        chunks.last().unwrap().usage,
        Some(TokenUsage {
            prompt_tokens: 42,
            completion_tokens: 5,
            cached_tokens: 0,
        })
    );
}

#[tokio::test]
async fn an_error_object_mid_stream_is_a_failure() {
    let server = MockServer::start().await;
    let error = json!({"error": {"code": 502, "message": "Provider disconnected"}});
    Mock::given(method("POST"))
        .respond_with(sse(&[chunk("Yo"), format!("data: {error}\n\n")]))
        .mount(&server)
        .await;

    let chunks = collect(&model(&server)).await;

    assert_eq!(chunks[0].as_ref().unwrap().text, "Yo");
    assert!(
        matches!(&chunks[1], Err(ChatModelError::Unavailable { message, .. }) if message.contains("Provider disconnected")),
        "{chunks:?}"
    );
}

#[tokio::test]
async fn a_malformed_chunk_is_an_invalid_response() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sse(&[chunk("Yo"), "data: {\"choices\": [\n\n".into()]))
        .mount(&server)
        .await;

    let chunks = collect(&model(&server)).await;

    assert!(
        matches!(&chunks[1], Err(ChatModelError::InvalidResponse(_))),
        "{chunks:?}"
    );
}

#[tokio::test]
async fn errors_before_the_stream_keep_status_and_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "2")
                .set_body_json(json!({"error": {"message": "Rate limit exceeded", "code": 429}})),
        )
        .mount(&server)
        .await;

    let error = match model(&server).stream(&request()).await {
        Err(error) => error,
        Ok(_) => panic!("a 429 opens no stream"),
    };

    assert_eq!(
        error,
        ChatModelError::RateLimited {
            retry_after: Some(std::time::Duration::from_secs(2)),
            message: "Rate limit exceeded".into()
        }
    );
}
