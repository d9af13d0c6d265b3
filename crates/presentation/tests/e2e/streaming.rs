//! `POST /generate` with `"stream": true`, end to end: the real server and Qdrant Edge store, and
//! fake upstreams speaking OpenAI's streaming format (wiremock for whole bodies, a raw socket
//! server for pauses, stalls and hang-ups).

use std::time::Duration;

use ragback_domain::{FactOwner, UserId};
use ragback_testkit::sse_upstream::{SseUpstream, Step, chunk};
use ragback_testkit::{Setup, TestApp, demo_request, sse_events, streamed_text};
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, ResponseTemplate};

fn stream_request() -> Value {
    let mut request = demo_request();
    request["stream"] = json!(true);
    request
}

fn john_facts() -> Vec<(FactOwner, Vec<&'static str>)> {
    vec![(
        FactOwner::User(UserId::parse("john").unwrap()),
        vec![
            "Completed the London marathon in 2024",
            "Has a golden retriever named Biscuit",
        ],
    )]
}

/// An event-stream body as wiremock sends it: all at once.
fn sse_body(events: &[String]) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/event-stream")
        .set_body_string(events.concat())
}

fn usage_chunk() -> String {
    let body = json!({
        "id": "gen-1", "object": "chat.completion.chunk", "model": "mistralai/mistral-nemo",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 812, "completion_tokens": 24, "total_tokens": 836}
    });
    format!("data: {body}\n\n")
}

/// A ragback whose LLM is the raw upstream. These tests are about the stream's transport, piece
/// by piece: the reply guard, which releases whole sentences only, is off (`guard.rs` tests it).
async fn app_streaming_from(upstream: &SseUpstream, timeout_secs: u64) -> TestApp {
    TestApp::spawn_with(Setup {
        vars: vec![
            ("RAGBACK_LLM__BASE_URL".into(), upstream.base_url.clone()),
            ("RAGBACK_LLM__TIMEOUT_SECS".into(), timeout_secs.to_string()),
            ("RAGBACK_GUARD__ENABLED".into(), "false".into()),
        ],
        facts: john_facts(),
        ..Setup::default()
    })
    .await
}

/// Posts the streamed demo request and reads the whole stream: status, content type, events.
async fn stream(app: &TestApp) -> (u16, String, Vec<(String, Value)>) {
    let response = app.post("/generate", &stream_request()).await;
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.unwrap();
    (status, content_type, sse_events(&body))
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    let mut names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    names.dedup();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_then_deltas_then_done_and_the_deltas_add_up_to_the_reply() {
    let app = TestApp::spawn_with(Setup {
        facts: john_facts(),
        ..Setup::default()
    })
    .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .and(body_partial_json(json!({"stream": true})))
        .respond_with(sse_body(&[
            ": OPENROUTER PROCESSING\n\n".into(),
            chunk("Bla"),
            chunk("ze:"),
            chunk(" *raises glass*"),
            chunk(" No way, bro!"),
            chunk(" A whole marathon?"),
            usage_chunk(),
            "data: [DONE]\n\n".into(),
        ]))
        .mount(&app.llm)
        .await;

    let (status, content_type, events) = stream(&app).await;

    assert_eq!(status, 200);
    assert_eq!(content_type, "text/event-stream");
    assert_eq!(names(&events), ["facts", "delta", "done"], "{events:?}");
    let facts = &events[0].1;
    assert_eq!(facts["retrieval"], "ok");
    assert_eq!(
        facts["facts"][0]["text"],
        "Completed the London marathon in 2024"
    );
    let done = &events.last().unwrap().1;
    // The `Bla` + `ze:` prefix split across chunks is stripped; what streamed is the reply.
    assert_eq!(
        done["text"],
        "*raises glass* No way, bro! A whole marathon?"
    );
    assert_eq!(streamed_text(&events), done["text"].as_str().unwrap());
    assert_eq!(done["model"], "mistralai/mistral-nemo");
    assert_eq!(done["usage"]["completion_tokens"], 24);
    assert_eq!(done["retrieval"], "ok");
    assert_eq!(done["facts"], facts["facts"]);
    let timings = &done["timings_ms"];
    assert!(timings["first_token"].as_f64().unwrap() <= timings["llm"].as_f64().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_before_the_first_token_is_retried_unseen() {
    let app = TestApp::spawn().await;
    let endpoint = || Mock::given(method("POST")).and(path("/api/v1/chat/completions"));
    endpoint()
        .respond_with(
            ResponseTemplate::new(503).set_body_json(json!({"error": {"message": "overloaded"}})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.llm)
        .await;
    endpoint()
        .respond_with(sse_body(&[chunk("*nods* Sup."), "data: [DONE]\n\n".into()]))
        .mount(&app.llm)
        .await;

    let (_, _, events) = stream(&app).await;

    assert_eq!(names(&events), ["facts", "delta", "done"], "{events:?}");
    assert_eq!(streamed_text(&events), "*nods* Sup.");
    assert_eq!(app.llm_requests().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_chunk_after_the_first_token_ends_with_an_error_event_and_no_retry() {
    // Piece by piece: the guard, which holds text to a sentence's end, is off.
    let app = TestApp::spawn_with(Setup {
        vars: vec![("RAGBACK_GUARD__ENABLED".into(), "false".into())],
        ..Setup::default()
    })
    .await;
    let error = json!({
        "id": "gen-1", "object": "chat.completion.chunk", "model": "mistralai/mistral-nemo",
        "error": {"code": 502, "message": "Provider returned error"},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]
    });
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .respond_with(sse_body(&[
            chunk("*grins* Yo"),
            chunk(" bro,"),
            format!("data: {error}\n\n"),
        ]))
        .mount(&app.llm)
        .await;

    let (_, _, events) = stream(&app).await;

    assert_eq!(names(&events), ["facts", "delta", "error"], "{events:?}");
    assert_eq!(streamed_text(&events), "*grins* Yo bro,");
    let error = &events.last().unwrap().1;
    assert_eq!(error["error"]["code"], "llm_unavailable", "{error}");
    assert_eq!(
        app.llm_requests().await.len(),
        1,
        "no retry once tokens went out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upstream_ends_with_a_timeout_error_event() {
    let upstream = SseUpstream::start(vec![Step::Delta("*leans in* Listen"), Step::Stall]).await;
    let app = app_streaming_from(&upstream, 1).await;

    let started = std::time::Instant::now();
    let (_, _, events) = stream(&app).await;

    assert_eq!(names(&events), ["facts", "delta", "error"], "{events:?}");
    assert_eq!(streamed_text(&events), "*leans in* Listen");
    assert_eq!(events.last().unwrap().1["error"]["code"], "llm_timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pieces_arrive_as_the_upstream_writes_them() {
    let pause = Duration::from_millis(300);
    let upstream = SseUpstream::start(vec![
        Step::Delta("*waves*"),
        Step::Pause(pause),
        Step::Delta(" Hey"),
        Step::Done,
    ])
    .await;
    let app = app_streaming_from(&upstream, 10).await;

    let started = std::time::Instant::now();
    let mut response = app.post("/generate", &stream_request()).await;
    let mut seen = String::new();
    while !seen.contains("event: delta") {
        let piece = response
            .chunk()
            .await
            .unwrap()
            .expect("a delta before the end");
        seen.push_str(&String::from_utf8_lossy(&piece));
    }
    let first_delta = started.elapsed();
    while let Some(piece) = response.chunk().await.unwrap() {
        seen.push_str(&String::from_utf8_lossy(&piece));
    }

    // The first piece was sent before the upstream's pause ended, not with the whole reply.
    assert!(
        first_delta < started.elapsed() - pause / 2,
        "first delta after {first_delta:?}"
    );
    let events = sse_events(&seen);
    assert_eq!(streamed_text(&events), "*waves* Hey");
    assert_eq!(events.last().unwrap().0, "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_closes_the_upstream_request() {
    let upstream = SseUpstream::start(vec![Step::Endless(" la", Duration::from_millis(20))]).await;
    let app = app_streaming_from(&upstream, 30).await;

    let mut response = app.post("/generate", &stream_request()).await;
    let mut seen = String::new();
    while !seen.contains("event: delta") {
        let piece = response.chunk().await.unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&piece));
    }
    drop(response);

    assert!(
        upstream.wait_closed_by_client(Duration::from_secs(5)).await,
        "the upstream request stayed open after the client left"
    );
    assert_eq!(upstream.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_plain_json_error_before_any_stream() {
    let app = TestApp::spawn().await;
    let mut request = stream_request();
    request["messages"][0]["role"] = json!("narrator");

    let response = app.post("/generate", &request).await;

    assert_eq!(response.status(), 422);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], "messages[0].role");
    assert!(app.llm_requests().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_the_stream_says_so_after_the_facts() {
    let app = TestApp::spawn_with(Setup {
        keys: false,
        // The API chosen without its key (auto would answer with the local model).
        vars: vec![("RAGBACK_LLM__PROVIDER".into(), "openai".into())],
        facts: john_facts(),
    })
    .await;

    let (_, _, events) = stream(&app).await;

    assert_eq!(names(&events), ["facts", "error"], "{events:?}");
    assert_eq!(events[0].1["retrieval"], "ok");
    let error = &events[1].1["error"];
    assert_eq!(error["code"], "llm_not_configured");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("RAGBACK_LLM__API_KEY")
    );
}
