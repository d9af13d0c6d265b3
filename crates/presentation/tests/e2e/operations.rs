//! Production behaviour end to end: configurable limits, CORS, backpressure, per-request
//! deadlines, request ids in errors, and `/metrics`.

use std::time::{Duration, Instant};

use ragback_testkit::fault_upstream::{Fault, FaultUpstream};
use ragback_testkit::sse_upstream::{SseUpstream, Step};
use ragback_testkit::{Setup, TestApp, demo_request};
use serde_json::{Value, json};

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn app_with(upstream_url: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut all = vars(&[("RAGBACK_LLM__BASE_URL", upstream_url)]);
    all.extend(vars(extra));
    TestApp::spawn_with(Setup {
        vars: all,
        ..Setup::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_limits_refuse_before_any_upstream_call() {
    let upstream = FaultUpstream::start().await;
    let app = app_with(
        &upstream.base_url,
        &[
            ("RAGBACK_SERVER__MAX_MESSAGE_CHARS", "40"),
            ("RAGBACK_SERVER__MAX_MESSAGES", "3"),
            ("RAGBACK_SERVER__MAX_FACTS_PER_CALL", "2"),
            ("RAGBACK_SERVER__BODY_LIMIT_BYTES", "4096"),
        ],
    )
    .await;

    let mut long = demo_request();
    long["messages"][2]["text"] = json!("x".repeat(41));
    let (status, body) = app.post_json("/generate", &long).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "messages[2].text");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 40")
    );

    let mut many = demo_request();
    many["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "user", "text": "one more"}));
    let (status, body) = app.post_json("/generate", &many).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "messages");

    let mut big = demo_request();
    big["character"]["description"] = json!("y".repeat(5_000));
    let (status, body) = app.post_json("/generate", &big).await;
    assert_eq!(status, 413, "{body}");

    let facts = json!({"facts": ["one", "two", "three"]});
    let (status, body) = app.post_json("/users/john/facts", &facts).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 2")
    );

    assert_eq!(upstream.connections(), 0, "no LLM call");
    assert!(
        app.cohere.received_requests().await.unwrap().is_empty(),
        "no embedding call"
    );
    let listed = app.get_json("/users/john/facts").await;
    assert_eq!(listed["facts"], json!([]), "nothing stored");
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url("/generate"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_is_off_by_default_and_follows_the_configured_origins() {
    let upstream = FaultUpstream::start().await;
    let off = app_with(&upstream.base_url, &[]).await;
    let response = preflight(&off, "https://app.example.com").await;
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let on = app_with(
        &upstream.base_url,
        &[
            ("RAGBACK_SERVER__CORS_ORIGINS", "https://app.example.com"),
            ("RAGBACK_SERVER__API_KEYS", "reader-key-123-0123456789"),
        ],
    )
    .await;
    // The preflight carries no key and still passes.
    let allowed = preflight(&on, "https://app.example.com").await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let methods = allowed.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let other = preflight(&on, "https://evil.example.net").await;
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // A refused call from the allowed origin is readable by the page.
    let refused = on
        .client
        .post(on.url("/generate"))
        .header("origin", "https://app.example.com")
        .json(&demo_request())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_max_concurrency_requests_wait_then_get_503_with_retry_after() {
    let upstream = FaultUpstream::start().await;
    let app = app_with(
        &upstream.base_url,
        &[
            ("RAGBACK_SERVER__MAX_CONCURRENCY", "1"),
            ("RAGBACK_SERVER__QUEUE_TIMEOUT_MS", "300"),
        ],
    )
    .await;
    upstream.script(vec![Fault::Stall]);
    let slow = {
        let (client, url) = (app.client.clone(), app.url("/generate"));
        tokio::spawn(async move {
            client
                .post(url)
                .header("x-request-timeout", "1500")
                .json(&demo_request())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    while upstream.connections() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let response = app.post("/generate", &demo_request()).await;
    let waited = started.elapsed();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded");
    assert!(
        waited >= Duration::from_millis(300),
        "it queued first: {waited:?}"
    );
    assert_eq!(
        upstream.connections(),
        1,
        "the refused request never reached the LLM"
    );

    // Other routes are not limited.
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    assert_eq!(slow.await.unwrap(), 504);
    upstream.script(vec![Fault::ok("*nods* Free again.")]);
    let (status, body) = app.post_json("/generate", &demo_request()).await;
    assert_eq!(status, 200, "the slot came back: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_holds_its_slot_until_it_ends() {
    let upstream = SseUpstream::start(vec![
        Step::Delta("*waves*"),
        Step::Pause(Duration::from_millis(800)),
        Step::Delta(" Hey"),
        Step::Done,
    ])
    .await;
    let app = app_with(
        &upstream.base_url,
        &[
            ("RAGBACK_SERVER__MAX_CONCURRENCY", "1"),
            ("RAGBACK_SERVER__QUEUE_TIMEOUT_MS", "100"),
        ],
    )
    .await;
    let mut streamed = demo_request();
    streamed["stream"] = json!(true);
    let response = app.post("/generate", &streamed).await;
    assert_eq!(response.status(), 200);
    // Headers are out and the stream is open: the slot is still taken.
    while upstream.first_delta_times().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = app.post_json("/generate", &demo_request()).await;
    assert_eq!(status, 503, "{body}");
    let text = response.text().await.unwrap();
    assert!(text.contains("event: done"), "{text}");
    let (status, _) = app.post_json("/generate", &streamed).await;
    assert_eq!(status, 200, "the stream's end freed the slot");
}

#[tokio::test(flavor = "multi_thread")]
async fn x_request_timeout_shortens_the_deadline_and_is_capped_by_the_configuration() {
    let upstream = FaultUpstream::start().await;
    let app = app_with(
        &upstream.base_url,
        &[("RAGBACK_SERVER__REQUEST_TIMEOUT_MS", "1200")],
    )
    .await;
    upstream.script(vec![Fault::Stall]);
    let timed = |header: Option<&'static str>| {
        let (client, url) = (app.client.clone(), app.url("/generate"));
        async move {
            let mut request = client.post(url).json(&demo_request());
            if let Some(value) = header {
                request = request.header("x-request-timeout", value);
            }
            let started = Instant::now();
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, body, started.elapsed())
        }
    };

    let (status, body, took) = timed(Some("300ms")).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "llm_timeout");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("300 ms"),
        "{body}"
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1_100),
        "{took:?}"
    );

    // Asking for more than configured gets the configured deadline.
    let (status, body, took) = timed(Some("60s")).await;
    assert_eq!(status, 504, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1200 ms"),
        "{body}"
    );
    assert!(took < Duration::from_millis(2_500), "{took:?}");

    let (status, body, _) = timed(Some("soon")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_header");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deadline_covers_retrieval_too() {
    let upstream = FaultUpstream::start().await;
    let app = app_with(&upstream.base_url, &[]).await;
    // The embedder answers after 2 s; the request allows 400 ms in all.
    wiremock::Mock::given(wiremock::matchers::path("/v2/embed"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .with_priority(1)
        .mount(&app.cohere)
        .await;
    let started = Instant::now();
    let response = app
        .client
        .post(app.url("/generate"))
        .header("x-request-timeout", "400")
        .json(&demo_request())
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "llm_timeout", "{body}");
    assert_eq!(body["retrieval"]["status"], "degraded", "{body}");
    assert!(took < Duration::from_millis(1_500), "{took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_name_the_request_id() {
    let upstream = FaultUpstream::start().await;
    let app = app_with(&upstream.base_url, &[]).await;
    let response = app
        .client
        .post(app.url("/generate"))
        .header("x-request-id", "ctx-7f3a")
        .json(&json!({"messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], "ctx-7f3a");

    let response = app.client.get(app.url("/nowhere")).send().await.unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"]["request_id"],
        id.as_str(),
        "a generated id is named too"
    );

    // A streamed error event names it as well.
    upstream.script(vec![Fault::status(401)]);
    let mut streamed = demo_request();
    streamed["stream"] = json!(true);
    let text = app
        .client
        .post(app.url("/generate"))
        .header("x-request-id", "ctx-stream-1")
        .json(&streamed)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = ragback_testkit::sse_events(&text);
    let (_, error) = events.iter().find(|(name, _)| name == "error").unwrap();
    assert_eq!(error["error"]["request_id"], "ctx-stream-1");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_requests_stages_retries_retrieval_and_tokens() {
    let upstream = FaultUpstream::start().await;
    let app = app_with(&upstream.base_url, &[]).await;
    upstream.script(vec![Fault::status(429), Fault::ok("*nods* ok")]);
    let (status, _) = app.post_json("/generate", &demo_request()).await;
    assert_eq!(status, 200);
    let (status, _) = app.post_json("/generate", &json!({})).await;
    assert_eq!(status, 422);

    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for prefix in [
        r#"ragback_http_requests_total{route="/generate",method="POST",status="200"}"#,
        r#"ragback_http_requests_total{route="/generate",method="POST",status="422"}"#,
        r#"ragback_http_request_duration_seconds_bucket{route="/generate",method="POST",status="200",le="+Inf"}"#,
        r#"ragback_stage_duration_seconds_bucket{stage="embed",le="+Inf"}"#,
        r#"ragback_stage_duration_seconds_bucket{stage="search",le="+Inf"}"#,
        r#"ragback_stage_duration_seconds_bucket{stage="llm",variant="default",le="+Inf"}"#,
        r#"ragback_stage_duration_seconds_bucket{stage="total",variant="default",le="+Inf"}"#,
        r#"ragback_upstream_retries_total{operation="model call",cause="rate_limited"}"#,
        r#"ragback_retrievals_total{outcome="ok"}"#,
        r#"ragback_facts_per_reply_count"#,
        r#"ragback_llm_tokens_total{kind="prompt",variant="default"}"#,
        r#"ragback_generations_total{outcome="ok",variant="default"}"#,
    ] {
        let value = ragback_testkit::metric_sample(&text, prefix)
            .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"));
        assert!(value >= 1.0, "{prefix} = {value}");
    }
    assert!(
        text.contains("# HELP ragback_stage_duration_seconds"),
        "{text}"
    );
    assert!(text.contains("ragback_generations_in_flight"), "{text}");
    assert!(text.contains("ragback_http_requests_in_flight"), "{text}");
    assert!(
        !text.contains("/users/john"),
        "raw paths never become labels"
    );
}
