//! `POST /generate` when an upstream fails: degraded retrieval, retries, 502, 504, no key.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_embedder_degrades_retrieval_but_the_reply_comes() {
    let app = app_with_demo_facts().await;
    Mock::given(method("POST"))
        .and(path("/v2/embed"))
        .respond_with(
            ResponseTemplate::new(500).set_body_json(json!({"message": "internal server error"})),
        )
        .with_priority(1)
        .mount(&app.cohere)
        .await;
    app.llm_replies("*grins* Yo.").await;

    let (status, body) = app.post_json("/generate", &demo_request()).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retrieval"], "degraded");
    assert_eq!(body["facts"], json!([]));
    assert_eq!(body["text"], "*grins* Yo.");
    let embed_calls = app.cohere.received_requests().await.unwrap().len();
    assert!(
        embed_calls >= 2,
        "the query embedding was retried ({embed_calls} calls)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cohere_key_means_retrieval_is_skipped() {
    let app = TestApp::spawn_with(Setup {
        vars: vec![("RAGBACK_EMBEDDER__PROVIDER".into(), "none".into())],
        ..Setup::default()
    })
    .await;
    app.llm_replies("*grins* Yo.").await;

    let (status, body) = app.post_json("/generate", &demo_request()).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retrieval"], "skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried_then_succeed() {
    let app = TestApp::spawn().await;
    let endpoint = || Mock::given(method("POST")).and(path("/api/v1/chat/completions"));
    endpoint()
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"error": {"code": 429, "message": "Rate limit exceeded"}})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.llm)
        .await;
    endpoint()
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"error": {"code": 500, "message": "oops"}})),
        )
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&app.llm)
        .await;
    app.llm_replies("*grins* Third time lucky.").await;

    let started = std::time::Instant::now();
    let (status, body) = app.post_json("/generate", &demo_request()).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["text"], "*grins* Third time lucky.");
    assert_eq!(app.llm_requests().await.len(), 3);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_in_a_200_body_is_retried_and_then_a_502() {
    let app = TestApp::spawn().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"error": {"code": 502, "message": "Provider returned error"}}),
            ),
        )
        .mount(&app.llm)
        .await;

    let (status, body) = app.post_json("/generate", &demo_request()).await;

    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "llm_unavailable");
    assert_eq!(
        app.llm_requests().await.len(),
        3,
        "the configured 3 attempts"
    );
    assert!(
        !body.to_string().contains("Provider returned error"),
        "5xx bodies stay opaque"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_request_is_not_retried_and_says_why() {
    let app = TestApp::spawn_with(Setup {
        vars: vec![("RAGBACK_LLM__ALLOWED_MODELS".into(), "nope/model".into())],
        ..Setup::default()
    })
    .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": {"code": 400, "message": "nope/model is not a valid model ID"}}),
        ))
        .mount(&app.llm)
        .await;
    let mut request = demo_request();
    request["generation"] = json!({"model": "nope/model"});

    let (status, body) = app.post_json("/generate", &request).await;

    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "llm_rejected");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a valid model ID")
    );
    assert_eq!(app.llm_requests().await.len(), 1);
    assert_eq!(app.llm_requests().await[0]["model"], "nope/model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_llm_is_a_502_after_retries() {
    let app = TestApp::spawn_with(Setup {
        vars: vec![(
            "RAGBACK_LLM__BASE_URL".into(),
            "http://127.0.0.1:9/api/v1".into(),
        )],
        ..Setup::default()
    })
    .await;

    let (status, body) = app.post_json("/generate", &demo_request()).await;

    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "llm_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("3 attempt")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_llm_hits_the_deadline_and_gets_a_504() {
    let app = TestApp::spawn_with(Setup {
        vars: vec![("RAGBACK_LLM__TIMEOUT_SECS".into(), "1".into())],
        ..Setup::default()
    })
    .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(completion("late"))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&app.llm)
        .await;

    let started = std::time::Instant::now();
    let (status, body) = app.post_json("/generate", &demo_request()).await;

    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "llm_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered at the deadline, not after the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_api_chosen_and_no_key_retrieval_runs_locally_and_generate_is_a_503_naming_the_variable()
 {
    // No key at all: the local embedder (all-MiniLM-L6-v2) embeds the facts and the query.
    let app = TestApp::spawn_with(Setup {
        keys: false,
        // The API chosen without its key (auto would answer with the local model).
        vars: vec![("RAGBACK_LLM__PROVIDER".into(), "openai".into())],
        facts: demo_facts(),
    })
    .await;

    let (status, body) = app.post_json("/generate", &demo_request()).await;

    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "llm_not_configured");
    // The failure says retrieval worked, and what it found.
    assert_eq!(body["retrieval"]["status"], "ok", "{body}");
    let facts = body["retrieval"]["facts"].as_array().unwrap();
    assert_eq!(facts[0]["text"], "Completed the London marathon in 2024");
    assert_eq!(facts[0]["owner"], "user");
    // Jane's marathon is as close to the query, and is never John's.
    assert!(
        facts
            .iter()
            .all(|f| f["text"] != "Ran the Berlin marathon last year"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("RAGBACK_LLM__API_KEY")
    );
    let (status, ready) = {
        let response = app.client.get(app.url("/ready")).send().await.unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    };
    assert_eq!(status, 503);
    assert_eq!(ready["checks"]["llm"]["ok"], false);
    assert_eq!(ready["checks"]["store"]["ok"], true);
}
