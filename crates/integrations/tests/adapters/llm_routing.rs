//! OpenRouter's routing fields and attribution headers: in OpenRouter's format for OpenRouter,
//! and absent for other OpenAI-compatible providers, whole and streamed.

use futures::StreamExt;
use ragback_application::ports::{
    ChatModel, ChatRequest, DataCollection, GenerationParams, ModelRouting, PromptMessage,
    PromptRole, ProviderPreferences, ReasoningBudget, ReasoningEffort,
};
use ragback_integrations::llm::{Dialect, LlmSettings, OpenAiChatModel};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn request(reasoning: ReasoningBudget) -> ChatRequest {
    ChatRequest {
        messages: vec![PromptMessage {
            role: PromptRole::User,
            content: "I ran the marathon!".into(),
        }],
        params: GenerationParams {
            model: "anthropic/claude-3.5-haiku".into(),
            temperature: Some(0.7),
            routing: ModelRouting {
                fallback_models: vec!["openai/gpt-4o-mini".into(), "mistralai/mistral-nemo".into()],
                provider: Some(ProviderPreferences {
                    order: vec!["anthropic".into(), "amazon-bedrock".into()],
                    allow_fallbacks: Some(false),
                    data_collection: Some(DataCollection::Deny),
                }),
                reasoning: Some(reasoning),
            },
            ..Default::default()
        },
        json_schema: None,
    }
}

/// Answers a whole completion or a stream, as the request asks.
fn answer(request: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
    if body["stream"] == json!(true) {
        let chunk = json!({"model": "openai/gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": "*nods* Nice."}, "finish_reason": "stop"}]});
        ResponseTemplate::new(200)
            .insert_header("content-type", "text/event-stream")
            .set_body_string(format!("data: {chunk}\n\ndata: [DONE]\n\n"))
    } else {
        ResponseTemplate::new(200).set_body_json(json!({
            "model": "openai/gpt-4o-mini",
            "choices": [{"message": {"role": "assistant", "content": "*nods* Nice."},
                         "finish_reason": "stop"}]
        }))
    }
}

/// Calls the model at a fake server both ways; returns the two requests it received.
async fn both_ways(dialect: Dialect, reasoning: ReasoningBudget) -> Vec<Request> {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .respond_with(answer)
        .mount(&server)
        .await;
    let model = OpenAiChatModel::new(&LlmSettings {
        base_url: format!("{}/api/v1", server.uri()),
        api_key: Some(SecretString::from("sk-or-test")),
        dialect,
        ..LlmSettings::default()
    })
    .unwrap();
    let request = request(reasoning);
    let done = model.complete(&request).await.unwrap();
    assert_eq!(done.model, "openai/gpt-4o-mini", "the model that answered");
    let streamed: Vec<_> = model.stream(&request).await.unwrap().collect().await;
    assert_eq!(streamed[0].as_ref().unwrap().text, "*nods* Nice.");
    server.received_requests().await.unwrap()
}

fn body(request: &Request) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

#[tokio::test]
async fn openrouter_gets_its_routing_fields_and_headers_whole_and_streamed() {
    let requests = both_ways(Dialect::Openrouter, ReasoningBudget::MaxTokens(512)).await;
    assert_eq!(requests.len(), 2);
    for (request, stream) in requests.iter().zip([false, true]) {
        let body = body(request);
        assert_eq!(body["stream"], json!(stream));
        assert_eq!(body["model"], "anthropic/claude-3.5-haiku");
        assert_eq!(
            body["models"],
            json!([
                "anthropic/claude-3.5-haiku",
                "openai/gpt-4o-mini",
                "mistralai/mistral-nemo"
            ])
        );
        assert_eq!(
            body["provider"],
            json!({"order": ["anthropic", "amazon-bedrock"], "allow_fallbacks": false,
                   "data_collection": "deny"})
        );
        assert_eq!(body["reasoning"], json!({"max_tokens": 512}));
        assert!(body.get("reasoning_effort").is_none(), "{body}");
        assert_eq!(body["temperature"], json!(0.7));
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            header("http-referer").as_deref(),
            Some("https://github.com/ragback/ragback")
        );
        assert_eq!(header("x-title").as_deref(), Some("ragback"));
    }
    let effort = both_ways(
        Dialect::Openrouter,
        ReasoningBudget::Effort(ReasoningEffort::Low),
    )
    .await;
    assert_eq!(body(&effort[0])["reasoning"], json!({"effort": "low"}));
    assert_eq!(body(&effort[1])["reasoning"], json!({"effort": "low"}));
}

#[tokio::test]
async fn other_providers_get_none_of_them_but_an_effort_in_openai_s_own_field() {
    for reasoning in [
        ReasoningBudget::MaxTokens(512),
        ReasoningBudget::Effort(ReasoningEffort::Minimal),
    ] {
        let requests = both_ways(Dialect::Openai, reasoning).await;
        assert_eq!(requests.len(), 2);
        for request in &requests {
            let body = body(request);
            for field in ["models", "provider", "reasoning"] {
                assert!(body.get(field).is_none(), "{field} sent: {body}");
            }
            match reasoning {
                ReasoningBudget::Effort(_) => assert_eq!(body["reasoning_effort"], "minimal"),
                ReasoningBudget::MaxTokens(_) => assert!(body.get("reasoning_effort").is_none()),
            }
            assert!(request.headers.get("http-referer").is_none());
            assert!(request.headers.get("x-title").is_none());
            assert_eq!(body["model"], "anthropic/claude-3.5-haiku");
        }
    }
}

#[test]
fn the_dialect_follows_the_host_unless_set() {
    let at = |url: &str, dialect| LlmSettings {
        base_url: url.into(),
        dialect,
        ..LlmSettings::default()
    };
    assert!(at("https://openrouter.ai/api/v1", Dialect::Auto).speaks_openrouter());
    assert!(!at("http://localhost:11434/v1", Dialect::Auto).speaks_openrouter());
    assert!(!at("https://api.openai.com/v1", Dialect::Auto).speaks_openrouter());
    assert!(at("http://proxy.internal/v1", Dialect::Openrouter).speaks_openrouter());
    assert!(!at("https://openrouter.ai/api/v1", Dialect::Openai).speaks_openrouter());
}
