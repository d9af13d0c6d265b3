//! The Cohere adapter against a local server speaking Cohere's `v2/embed` wire format.

use std::time::Duration;

use ragback_application::ports::{EmbedError, Embedder, EmbeddingPurpose};
use ragback_integrations::cohere::{CohereEmbedder, CohereSettings};
use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{bearer_token, body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn embedder(server: &MockServer) -> CohereEmbedder {
    CohereEmbedder::new(&CohereSettings {
        base_url: server.uri(),
        api_key: Some(SecretString::from("co-test-key")),
        model: "embed-multilingual-v3.0".into(),
        request_timeout: Duration::from_millis(500),
        batch_size: 96,
    })
    .unwrap()
}

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A 200 answer as Cohere sends it.
fn embeddings(vectors: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "5807ee2e-0cda-445a-9ec8-864c60a06606",
        "embeddings": {"float": vectors},
        "texts": ["..."],
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 3}},
        "response_type": "embeddings_by_type"
    }))
}

#[tokio::test]
async fn queries_and_documents_are_embedded_with_the_right_input_type() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/embed"))
        .and(bearer_token("co-test-key"))
        .and(body_partial_json(json!({
            "model": "embed-multilingual-v3.0",
            "texts": ["I ran a marathon"],
            "input_type": "search_query",
            "embedding_types": ["float"]
        })))
        .respond_with(embeddings(json!([[0.1, 0.2, 0.3]])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/embed"))
        .and(body_partial_json(json!({"input_type": "search_document"})))
        .respond_with(embeddings(json!([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])))
        .expect(1)
        .mount(&server)
        .await;
    let cohere = embedder(&server);

    let query = cohere
        .embed(&texts(&["I ran a marathon"]), EmbeddingPurpose::Query)
        .await
        .unwrap();
    let docs = cohere
        .embed(&texts(&["a", "b"]), EmbeddingPurpose::Document)
        .await
        .unwrap();

    assert_eq!(query, vec![vec![0.1, 0.2, 0.3]]);
    assert_eq!(docs.len(), 2);
    assert_eq!(cohere.model_id(), "cohere/embed-multilingual-v3.0");
}

#[tokio::test]
async fn error_statuses_are_classified() {
    let cases = [
        (
            ResponseTemplate::new(429)
                .insert_header("retry-after", "2")
                .set_body_json(json!({"id": "x", "message": "You are using a Trial key"})),
            EmbedError::RateLimited {
                retry_after: Some(Duration::from_secs(2)),
            },
        ),
        (
            ResponseTemplate::new(401)
                .set_body_json(json!({"id": "x", "message": "invalid api token"})),
            EmbedError::Unauthorized("invalid api token".into()),
        ),
        (
            ResponseTemplate::new(400).set_body_json(
                json!({"id": "x", "message": "invalid request: texts must not be empty"}),
            ),
            EmbedError::InvalidInput(
                "400 Bad Request: invalid request: texts must not be empty".into(),
            ),
        ),
        (
            ResponseTemplate::new(500)
                .set_body_json(json!({"id": "x", "message": "internal server error"})),
            EmbedError::Unavailable("500 Internal Server Error: internal server error".into()),
        ),
    ];
    for (response, expected) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(response)
            .mount(&server)
            .await;

        let result = embedder(&server)
            .embed(&texts(&["hi"]), EmbeddingPurpose::Query)
            .await;

        assert_eq!(result, Err(expected));
    }
}

#[tokio::test]
async fn malformed_or_inconsistent_answers_are_invalid_responses() {
    let answers = [
        ResponseTemplate::new(200).set_body_string("{not json"),
        embeddings(json!([[0.1, 0.2]])), // two texts, one vector
        embeddings(json!([[0.1, 0.2], [0.3]])),
    ];
    for answer in answers {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(answer)
            .mount(&server)
            .await;

        let result = embedder(&server)
            .embed(&texts(&["a", "b"]), EmbeddingPurpose::Document)
            .await;

        assert!(
            matches!(result, Err(EmbedError::InvalidResponse(_))),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn a_slow_or_absent_server_is_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(embeddings(json!([[0.1]])).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let slow = embedder(&server)
        .embed(&texts(&["hi"]), EmbeddingPurpose::Query)
        .await;
    assert!(
        matches!(slow, Err(EmbedError::Unavailable(ref m)) if m.contains("timed out")),
        "{slow:?}"
    );

    let closed = CohereEmbedder::new(&CohereSettings {
        base_url: "http://127.0.0.1:9".into(),
        api_key: Some(SecretString::from("k")),
        ..CohereSettings::default()
    })
    .unwrap();
    let refused = closed.embed(&texts(&["hi"]), EmbeddingPurpose::Query).await;
    assert!(
        matches!(refused, Err(EmbedError::Unavailable(_))),
        "{refused:?}"
    );
}

#[test]
fn settings_are_checked() {
    let no_key = CohereSettings::default();
    assert!(CohereEmbedder::new(&no_key).is_err());
    let big_batch = CohereSettings {
        api_key: Some(SecretString::from("k")),
        batch_size: 97,
        ..CohereSettings::default()
    };
    assert!(CohereEmbedder::new(&big_batch).is_err());
}

fn reranker(server: &MockServer) -> ragback_integrations::cohere::CohereReranker {
    ragback_integrations::cohere::CohereReranker::new(
        &CohereSettings {
            base_url: server.uri(),
            api_key: Some(SecretString::from("co-test-key")),
            model: "embed-multilingual-v3.0".into(),
            request_timeout: Duration::from_millis(500),
            batch_size: 96,
        },
        "rerank-v3.5",
    )
    .unwrap()
}

#[tokio::test]
async fn rerank_scores_come_back_in_the_documents_order() {
    use ragback_application::ports::Reranker;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/rerank"))
        .and(bearer_token("co-test-key"))
        .and(body_partial_json(json!({
            "model": "rerank-v3.5", "query": "my dog", "documents": ["likes jazz", "has a dog"], "top_n": 2
        })))
        // Cohere answers best first, with each document's index.
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "r-1",
            "results": [{"index": 1, "relevance_score": 0.93}, {"index": 0, "relevance_score": 0.01}],
            "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}
        })))
        .mount(&server)
        .await;
    let scores = reranker(&server)
        .rerank("my dog", &texts(&["likes jazz", "has a dog"]))
        .await
        .unwrap();
    assert_eq!(scores, vec![0.01, 0.93]);
}

#[tokio::test]
async fn rerank_failures_are_classified() {
    use ragback_application::ports::{RerankError, Reranker};
    let server = MockServer::start().await;
    let answer =
        |status: u16, body: serde_json::Value| ResponseTemplate::new(status).set_body_json(body);
    Mock::given(body_partial_json(json!({"query": "limited"})))
        .respond_with(
            answer(429, json!({"message": "trial key limit"})).insert_header("retry-after", "3"),
        )
        .mount(&server)
        .await;
    Mock::given(body_partial_json(json!({"query": "bad key"})))
        .respond_with(answer(401, json!({"message": "invalid api token"})))
        .mount(&server)
        .await;
    Mock::given(body_partial_json(json!({"query": "partial"})))
        .respond_with(answer(
            200,
            json!({"results": [{"index": 0, "relevance_score": 0.5}]}),
        ))
        .mount(&server)
        .await;
    Mock::given(body_partial_json(json!({"query": "down"})))
        .respond_with(answer(503, json!({"message": "overloaded"})))
        .mount(&server)
        .await;
    let reranker = reranker(&server);
    let docs = texts(&["a", "b"]);
    assert_eq!(
        reranker.rerank("limited", &docs).await.unwrap_err(),
        RerankError::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
            message: "trial key limit".into()
        }
    );
    assert!(matches!(
        reranker.rerank("bad key", &docs).await.unwrap_err(),
        RerankError::Rejected { status: 401, .. }
    ));
    assert!(
        matches!(reranker.rerank("partial", &docs).await.unwrap_err(), RerankError::InvalidResponse(m) if m.contains("not every document"))
    );
    assert!(matches!(
        reranker.rerank("down", &docs).await.unwrap_err(),
        RerankError::Unavailable(_)
    ));
    assert_eq!(
        reranker.rerank("anything", &[]).await.unwrap(),
        Vec::<f32>::new()
    );
}

/// A `Retry-After` no one should wait for is capped, whatever its spelling.
#[tokio::test]
async fn hostile_retry_after_values_are_capped_or_ignored() {
    use ragback_integrations::http::MAX_RETRY_AFTER;
    for (value, expected) in [
        ("18446744073709551616", Some(MAX_RETRY_AFTER)),
        ("1e20", Some(MAX_RETRY_AFTER)),
        ("Fri, 31 Dec 9999 23:59:59 GMT", Some(MAX_RETRY_AFTER)),
        ("-5", None),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", value)
                    .set_body_json(json!({"message": "slow"})),
            )
            .mount(&server)
            .await;
        let result = embedder(&server)
            .embed(&texts(&["hi"]), EmbeddingPurpose::Query)
            .await;
        assert_eq!(
            result,
            Err(EmbedError::RateLimited {
                retry_after: expected
            }),
            "Retry-After: {value}"
        );
    }
}
