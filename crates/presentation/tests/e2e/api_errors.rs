//! Router tests: every input error gets its status and JSON body, and changes nothing (the model
//! is never called). Driven through `tower::ServiceExt::oneshot` with in-process fakes.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ragback_application::ports::GenerationParams;
use ragback_application::testing::{
    InMemoryFactStore, PlainRenderer, ScriptedChatModel, WordEmbedder, quick_retry,
    retrieval_settings,
};
use ragback_application::{ChatService, ChatSettings, FactLibrary, FactRetriever};
use ragback_presentation::api::{Admissions, AppState, Limits, router};
use serde_json::{Value, json};
use tower::ServiceExt;

const BODY_LIMIT: usize = 64 * 1024;

fn state(model: Arc<ScriptedChatModel>) -> AppState {
    let store = Arc::new(InMemoryFactStore::default());
    let embedder = Arc::new(WordEmbedder::default());
    let retry = quick_retry(1);
    let retriever = FactRetriever::new(
        Some(embedder.clone()),
        store.clone(),
        retrieval_settings(None, retry),
    );
    let chat = ChatService::new(
        retriever,
        Arc::new(PlainRenderer),
        model,
        ChatSettings {
            defaults: GenerationParams {
                model: "m".into(),
                temperature: None,
                top_p: None,
                max_tokens: None,
                seed: None,
                routing: Default::default(),
                cache_control: false,
            },
            history_messages: 20,
            max_prompt_tokens: 4_096,
            retry,
            timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
            lore: Default::default(),
        },
    );
    let limits = Limits {
        body_bytes: BODY_LIMIT,
        messages: 5,
        message_chars: 100,
        facts_per_call: 3,
        concurrency: 4,
        upstream_concurrency: 4,
        queue_timeout: Duration::from_millis(100),
        request_timeout: Duration::from_secs(2),
        body_timeout: Duration::from_secs(2),
    };
    AppState {
        chat,
        facts: FactLibrary::new(Some(embedder), store, retry, Duration::from_secs(1)),
        memory: None,
        memory_queue: None,
        memory_auto: false,
        summaries: None,
        admission: Admissions::new(&limits),
        limits,
        auth: Default::default(),
        cors_origins: Vec::new(),
        metrics: ragback_infrastructure::telemetry::metrics(),
    }
}

async fn send(request: Request<Body>) -> (StatusCode, Value, usize) {
    let model = Arc::new(ScriptedChatModel::new([ScriptedChatModel::reply(
        "*nods* ok",
    )]));
    let response = router(state(model.clone())).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body, model.requests().len())
}

fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

fn valid() -> Value {
    json!({
        "messages": [{"role": "user", "text": "hi"}],
        "user": {"name": "John"},
        "character": {"name": "Blaze", "description": "Street persona"}
    })
}

fn with(path: &str, value: Value) -> Value {
    let mut body = valid();
    let mut target = &mut body;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        target = match part.parse::<usize>() {
            Ok(i) => &mut target[i],
            Err(_) => &mut target[*part],
        };
    }
    let last = parts[parts.len() - 1];
    match (value, last.parse::<usize>()) {
        (Value::Null, Err(_)) => {
            target.as_object_mut().unwrap().remove(last);
        }
        (value, Ok(i)) => target[i] = value,
        (value, Err(_)) => target[last] = value,
    }
    body
}

#[tokio::test]
async fn a_valid_request_passes_and_actor_is_an_alias_of_role() {
    let body = json!({
        "messages": [{"actor": "user", "text": "hi"}, {"actor": "character", "text": "*waves*"}],
        "user": {"name": "John"},
        "character": {"name": "Blaze", "description": ""}
    });
    let (status, response, calls) = send(post("/generate", body.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{response}");
    assert_eq!(response["text"], "*nods* ok");
    assert_eq!(calls, 1);
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    for raw in ["{", "not json", "{\"messages\": [}", "", "{} trailing"] {
        let (status, body, calls) = send(post("/generate", raw)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{raw:?}: {body}");
        assert_eq!(body["error"]["code"], "malformed_json");
        assert_eq!(calls, 0);
    }
}

#[tokio::test]
async fn field_errors_are_422s_naming_the_field() {
    let long = "x".repeat(ragback_domain::limits::MESSAGE_CHARS + 1);
    let cases = [
        (with("messages", Value::Null), "messages"),
        (with("user", Value::Null), "user"),
        (
            with("messages.0.role", json!("narrator")),
            "messages[0].role",
        ),
        (with("messages.0.text", json!("   ")), "messages[0].text"),
        (with("messages.0.text", json!(long)), "messages[0].text"),
        (with("messages.0.text", json!(42)), "messages[0].text"),
        (with("user.name", json!("")), "user.name"),
        (with("character.name", json!(" ")), "character.name"),
        (
            with("character.description", Value::Null),
            "character.description",
        ),
        (with("user.age", json!(-1)), "user.age"),
        (with("user.age", json!(151)), "user.age"),
        (with("user.id", json!("bad\nid")), "user.id"),
        (
            with("generation", json!({"temperature": 3.0})),
            "generation.temperature",
        ),
        (
            with("generation", json!({"temprature": 0.5})),
            "generation.temprature",
        ),
        (with("retrieval", json!({"top_k": 0})), "retrieval.top_k"),
        (
            with("retrieval", json!({"threshold": 2})),
            "retrieval.threshold",
        ),
        (
            with(
                "character.card",
                json!({"spec": "chara_card_v9", "data": {}}),
            ),
            "character.card.spec",
        ),
        (
            with(
                "messages",
                json!(vec![json!({"role": "user", "text": "x"}); 6]),
            ),
            "messages",
        ),
    ];
    for (body, field) in cases {
        let (status, response, calls) = send(post("/generate", body.to_string())).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {response}"
        );
        assert_eq!(response["error"]["code"], "invalid_field", "{response}");
        assert_eq!(response["error"]["field"], field, "{response}");
        assert!(
            response["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field)
        );
        assert_eq!(calls, 0, "{field}: nothing may reach the model");
    }
}

#[tokio::test]
async fn an_oversized_body_is_a_413() {
    let big = json!({"messages": [{"role": "user", "text": "x".repeat(BODY_LIMIT)}]});
    let (status, body, calls) = send(post("/generate", big.to_string())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn a_body_not_declared_as_json_is_a_415() {
    let request = Request::post("/generate")
        .header("content-type", "text/plain")
        .body(Body::from(valid().to_string()))
        .unwrap();
    let (status, body, _) = send(request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_eq!(body["error"]["code"], "unsupported_media_type");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let (status, body, _) = send(Request::get("/nope").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body, _) = send(Request::get("/generate").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn the_legacy_route_validates_the_same_way() {
    let body = json!({
        "messages": [{"actor": "robot", "text": "hi"}],
        "user": {"name": "John", "age": 23},
        "character": {"name": "Blaze", "age": 19, "description": "x"}
    });
    let (status, response, calls) = send(post("/api/v1/chat", body.to_string())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{response}");
    assert_eq!(response["error"]["field"], "messages[0].actor");
    assert_eq!(calls, 0);
}
