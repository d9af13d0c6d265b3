//! The OpenAI-compatible adapter against local servers speaking the chat-completions wire format
//! (OpenAI's, with OpenRouter's variations: attribution headers, errors inside 200 bodies).

use std::time::Duration;

use ragback_application::ports::{
    ChatModel, ChatModelError, ChatRequest, GenerationParams, PromptMessage, PromptRole, TokenUsage,
};
use ragback_integrations::llm::{Dialect, LlmSettings, OpenAiChatModel};
use secrecy::SecretString;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{bearer_token, body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A server speaking OpenRouter's dialect at `base_url` (the fake's address is not openrouter.ai).
fn settings(base_url: &str) -> LlmSettings {
    LlmSettings {
        base_url: base_url.to_owned(),
        api_key: Some(SecretString::from("sk-or-test")),
        dialect: Dialect::Openrouter,
        ..LlmSettings::default()
    }
}

fn model(server: &MockServer) -> OpenAiChatModel {
    OpenAiChatModel::new(&settings(&format!("{}/api/v1", server.uri()))).unwrap()
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![
            PromptMessage {
                role: PromptRole::System,
                content: "You are Blaze.".into(),
            },
            PromptMessage {
                role: PromptRole::Assistant,
                content: "*fist bumps* Yo".into(),
            },
            PromptMessage {
                role: PromptRole::User,
                content: "I ran the marathon!".into(),
            },
        ],
        params: GenerationParams {
            model: "mistralai/mistral-nemo".into(),
            temperature: Some(0.8),
            top_p: Some(0.95),
            max_tokens: Some(200),
            seed: Some(7),
            routing: Default::default(),
            cache_control: false,
        },
        json_schema: None,
    }
}

/// A successful chat completion as OpenRouter sends it.
fn completion(text: &str) -> serde_json::Value {
    json!({
        "id": "gen-1732450000-abc",
        "provider": "Mistral",
        "model": "mistralai/mistral-nemo",
        "object": "chat.completion",
        "created": 1732450000,
        "choices": [{
            "logprobs": null,
            "finish_reason": "stop",
            "native_finish_reason": "stop",
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null}
        }],
        "usage": {"prompt_tokens": 812, "completion_tokens": 24, "total_tokens": 836,
                  "prompt_tokens_details": {"cached_tokens": 512}}
    })
}

async fn complete_with(
    response: ResponseTemplate,
) -> Result<ragback_application::ports::Completion, ChatModelError> {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .respond_with(response)
        .mount(&server)
        .await;
    model(&server).complete(&request()).await
}

#[tokio::test]
async fn a_completion_is_requested_with_the_prompt_parameters_and_attribution_headers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .and(bearer_token("sk-or-test"))
        .and(header("http-referer", "https://github.com/ragback/ragback"))
        .and(header("x-title", "ragback"))
        .and(body_partial_json(json!({
            "model": "mistralai/mistral-nemo",
            "messages": [
                {"role": "system", "content": "You are Blaze."},
                {"role": "assistant", "content": "*fist bumps* Yo"},
                {"role": "user", "content": "I ran the marathon!"}
            ],
            "temperature": 0.8,
            "top_p": 0.95,
            "max_tokens": 200,
            "seed": 7,
            "stream": false
        })))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(completion("*raises glass* No way!")),
        )
        .expect(1)
        .mount(&server)
        .await;

    let done = model(&server).complete(&request()).await.unwrap();

    assert_eq!(done.text, "*raises glass* No way!");
    assert_eq!(done.model, "mistralai/mistral-nemo");
    assert_eq!(
        done.usage,
        Some(TokenUsage {
            prompt_tokens: 812,
            completion_tokens: 24,
            cached_tokens: 512,
        })
    );
}

#[tokio::test]
async fn minimal_bodies_of_other_servers_are_accepted() {
    // Ollama and vLLM omit fields OpenAI sends; the model name falls back to the requested one.
    let body = json!({"choices": [{"message": {"role": "assistant", "content": "hey"}}]});
    let done = complete_with(ResponseTemplate::new(200).set_body_json(body))
        .await
        .unwrap();
    assert_eq!(done.text, "hey");
    assert_eq!(done.model, "mistralai/mistral-nemo");
    assert_eq!(done.usage, None);
}

#[tokio::test]
async fn http_errors_are_classified_with_retry_after() {
    let openrouter_error =
        |code: u16, message: &str| json!({"error": {"code": code, "message": message}});
    let cases = [
        (
            ResponseTemplate::new(429)
                .insert_header("retry-after", "3")
                .set_body_json(openrouter_error(429, "Rate limit exceeded")),
            ChatModelError::RateLimited {
                retry_after: Some(Duration::from_secs(3)),
                message: "Rate limit exceeded".into(),
            },
        ),
        (
            ResponseTemplate::new(429).set_body_json(openrouter_error(429, "Rate limit exceeded")),
            ChatModelError::RateLimited {
                retry_after: None,
                message: "Rate limit exceeded".into(),
            },
        ),
        (
            ResponseTemplate::new(503)
                .insert_header("retry-after", "1")
                .set_body_string("upstream overloaded"),
            ChatModelError::Unavailable {
                message: "503 Service Unavailable: upstream overloaded".into(),
                retry_after: Some(Duration::from_secs(1)),
            },
        ),
        (
            ResponseTemplate::new(500)
                .set_body_json(openrouter_error(500, "Internal Server Error")),
            ChatModelError::unavailable("500 Internal Server Error: Internal Server Error"),
        ),
        (
            ResponseTemplate::new(401)
                .set_body_json(openrouter_error(401, "No auth credentials found")),
            ChatModelError::Rejected {
                status: 401,
                message: "No auth credentials found".into(),
            },
        ),
        (
            ResponseTemplate::new(400).set_body_json(openrouter_error(400, "not a valid model ID")),
            ChatModelError::Rejected {
                status: 400,
                message: "not a valid model ID".into(),
            },
        ),
    ];
    for (response, expected) in cases {
        assert_eq!(complete_with(response).await, Err(expected));
    }
}

#[tokio::test]
async fn an_error_inside_a_200_body_is_a_failure() {
    let cases = [
        (
            json!({"error": {"code": 502, "message": "Provider returned error", "metadata": {"provider_name": "Mistral"}}}),
            ChatModelError::unavailable("Provider returned error"),
        ),
        (
            json!({"error": {"code": 429, "message": "Provider rate limited"}}),
            ChatModelError::RateLimited {
                retry_after: None,
                message: "Provider rate limited".into(),
            },
        ),
        (
            json!({"error": {"code": 400, "message": "context length exceeded"}}),
            ChatModelError::Rejected {
                status: 400,
                message: "context length exceeded".into(),
            },
        ),
        (
            json!({"id": "gen-1", "choices": [{"finish_reason": "error", "error": {"code": 502, "message": "stream broke"}, "message": {"role": "assistant", "content": ""}}]}),
            ChatModelError::unavailable("stream broke"),
        ),
    ];
    for (body, expected) in cases {
        let result = complete_with(ResponseTemplate::new(200).set_body_json(body)).await;
        assert_eq!(result, Err(expected));
    }
}

#[tokio::test]
async fn malformed_json_and_empty_choices_are_invalid_responses() {
    for response in [
        ResponseTemplate::new(200).set_body_string("<html>oops</html>"),
        ResponseTemplate::new(200).set_body_json(json!({"id": "x", "choices": []})),
    ] {
        let result = complete_with(response).await;
        assert!(
            matches!(result, Err(ChatModelError::InvalidResponse(_))),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn without_a_key_openrouter_is_not_called() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("x")))
        .expect(0)
        .mount(&server)
        .await;
    // A key-less OpenRouter configuration: the base URL host decides that a key is needed.
    let keyless = OpenAiChatModel::new(&LlmSettings::default()).unwrap();

    let result = keyless.complete(&request()).await;

    assert!(!keyless.is_configured());
    assert!(
        matches!(&result, Err(ChatModelError::NotConfigured(hint)) if hint.contains("RAGBACK_LLM__API_KEY")),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_local_server_needs_no_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("hi")))
        .mount(&server)
        .await;
    let ollama = OpenAiChatModel::new(&LlmSettings {
        base_url: format!("{}/v1", server.uri()),
        api_key: None,
        ..LlmSettings::default()
    })
    .unwrap();
    assert!(ollama.is_configured());
    assert_eq!(ollama.complete(&request()).await.unwrap().text, "hi");
    let sent = &server.received_requests().await.unwrap()[0];
    assert!(sent.headers.get("authorization").is_none());
}

#[tokio::test]
async fn connection_refused_and_reset_mid_body_are_unavailable() {
    let refused = OpenAiChatModel::new(&settings("http://127.0.0.1:9/v1")).unwrap();
    let result = refused.complete(&request()).await;
    assert!(
        matches!(result, Err(ChatModelError::Unavailable { .. })),
        "{result:?}"
    );

    // A server that promises 10 kB and hangs up after a few bytes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buffer = vec![0u8; 64 * 1024];
        let _ = socket.read(&mut buffer).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10000\r\n\r\n{\"choices\": [";
        socket.write_all(head.as_bytes()).await.unwrap();
        drop(socket);
    });
    let reset = OpenAiChatModel::new(&settings(&format!("http://{address}/v1"))).unwrap();
    let result = reset.complete(&request()).await;
    assert!(
        matches!(result, Err(ChatModelError::Unavailable { .. })),
        "{result:?}"
    );
}

/// Every hostile `Retry-After` value, through the real adapter: capped at an hour or ignored,
/// never a panic (an integer near `u64::MAX`, `1e20`, a date in year 9999, garbage).
#[tokio::test]
async fn hostile_retry_after_values_are_capped_or_ignored() {
    use ragback_integrations::http::MAX_RETRY_AFTER;
    for (value, expected) in [
        ("18446744073709551615", Some(MAX_RETRY_AFTER)),
        ("18446744073709551616", Some(MAX_RETRY_AFTER)),
        ("1e20", Some(MAX_RETRY_AFTER)),
        ("1.7976931348623157e308", Some(MAX_RETRY_AFTER)),
        ("Fri, 31 Dec 9999 23:59:59 GMT", Some(MAX_RETRY_AFTER)),
        ("-1", None),
        ("NaN", None),
        ("inf", None),
        ("soon", None),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", value)
                    .set_body_json(json!({"error": {"code": 429, "message": "slow"}})),
            )
            .mount(&server)
            .await;
        let error = model(&server).complete(&request()).await.unwrap_err();
        assert_eq!(
            error,
            ChatModelError::RateLimited {
                retry_after: expected,
                message: "slow".into(),
            },
            "Retry-After: {value}"
        );
    }
}
