//! OpenAI's `POST /moderations` against a local server speaking its format.

use std::time::Duration;

use ragback_application::ports::{Moderation, ModerationError};
use ragback_integrations::moderation::OpenAiModeration;
use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(server: &MockServer) -> OpenAiModeration {
    OpenAiModeration::new(
        &format!("{}/v1", server.uri()),
        Some(SecretString::from("sk-test")),
        "omni-moderation-latest",
        Duration::from_secs(5),
    )
    .unwrap()
}

#[tokio::test]
async fn results_come_back_one_per_text_with_categories_and_scores() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/moderations"))
        .and(header("authorization", "Bearer sk-test"))
        .and(body_partial_json(json!({"model": "omni-moderation-latest", "input": ["a", "b"]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "modr-1", "model": "omni-moderation-latest",
            "results": [
                {"flagged": false, "categories": {"violence": false}, "category_scores": {"violence": 0.01},
                 "category_applied_input_types": {"violence": ["text"]}},
                {"flagged": true, "categories": {"violence": true}, "category_scores": {"violence": 0.97},
                 "category_applied_input_types": {"violence": ["text"]}}
            ]})))
        .mount(&server)
        .await;
    let results = client(&server)
        .moderate(&["a".into(), "b".into()])
        .await
        .unwrap();
    assert_eq!(results.len(), 2);
    assert!(!results[0].flagged && results[1].flagged);
    assert!(results[1].categories["violence"]);
    assert!((results[1].scores["violence"] - 0.97).abs() < 1e-12);
}

#[tokio::test]
async fn failures_are_classified() {
    let server = MockServer::start().await;
    let answer =
        |status: u16, body: serde_json::Value| ResponseTemplate::new(status).set_body_json(body);
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"input": ["limited"]})))
        .respond_with(
            answer(
                429,
                json!({"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}),
            )
            .insert_header("retry-after", "2"),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"input": ["bad key"]})))
        .respond_with(answer(
            401,
            json!({"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"input": ["down"]})))
        .respond_with(answer(503, json!({"error": {"message": "overloaded"}})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"input": ["short"]})))
        .respond_with(answer(200, json!({"results": []})))
        .mount(&server)
        .await;
    let moderation = client(&server);
    let call = |text: &str| {
        let moderation = moderation.clone();
        let text = text.to_owned();
        async move { moderation.moderate(&[text]).await.unwrap_err() }
    };
    assert_eq!(
        call("limited").await,
        ModerationError::RateLimited {
            retry_after: Some(Duration::from_secs(2)),
            message: "Rate limit reached (code: rate_limit_exceeded)".into()
        }
    );
    assert!(matches!(
        call("bad key").await,
        ModerationError::Rejected { status: 401, .. }
    ));
    assert!(matches!(
        call("down").await,
        ModerationError::Unavailable(_)
    ));
    assert!(
        matches!(call("short").await, ModerationError::InvalidResponse(m) if m.contains("0 results for 1 texts"))
    );
}
