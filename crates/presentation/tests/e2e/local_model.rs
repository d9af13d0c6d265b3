//! Replies with no key at all: the real server with the local embedder and the local chat model
//! (SmolLM2-135M-Instruct, Q4_1, on llama.cpp) — no fake anywhere. Needs `make model`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use ragback_domain::{FactOwner, UserId};
use ragback_testkit::process::{ServerProcess, run};
use ragback_testkit::{Setup, TestApp, demo_request, sse_events, streamed_text};
use serde_json::{Value, json};

use crate::ragback;

/// The local model's name, as every reply reports it.
const LOCAL: &str = "local/SmolLM2-135M-Instruct-Q4_1";

/// A ragback with no key: local embedder, local chat model, john's demo facts.
async fn keyless(vars: &[(&str, &str)]) -> TestApp {
    TestApp::spawn_with(Setup {
        keys: false,
        vars: vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        facts: vec![(
            FactOwner::User(UserId::parse("john").unwrap()),
            vec![
                "Completed the London marathon in 2024",
                "Has a golden retriever named Biscuit",
            ],
        )],
    })
    .await
}

/// The demo request, greedy, with a seed.
fn greedy() -> Value {
    let mut request = demo_request();
    request["generation"] = json!({"temperature": 0.0, "seed": 7, "max_tokens": 60});
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_key_the_local_model_replies_with_its_usage_and_repeats_greedily() {
    let app = keyless(&[]).await;

    let (status, first) = app.post_json("/generate", &greedy()).await;
    assert_eq!(status, 200, "{first}");
    let text = first["text"].as_str().unwrap();
    assert!(!text.trim().is_empty(), "{first}");
    assert!(!text.starts_with("Blaze:"), "cleaned: {text}");
    assert_eq!(first["model"], LOCAL);
    assert!(
        first["usage"]["prompt_tokens"].as_u64().unwrap() > 50,
        "{first}"
    );
    let completion = first["usage"]["completion_tokens"].as_u64().unwrap();
    assert!((1..=60).contains(&completion), "{first}");
    assert_eq!(first["retrieval"], "ok");
    assert_eq!(
        first["facts"][0]["text"],
        "Completed the London marathon in 2024"
    );
    assert_eq!(first["prompt"]["dropped_messages"], 0);

    let (_, second) = app.post_json("/generate", &greedy()).await;
    assert_eq!(
        second["text"], first["text"],
        "greedy decoding is repeatable"
    );

    let ready = app.get_json("/ready").await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["llm"]["ok"], true, "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_streamed_deltas_of_the_local_model_are_the_whole_reply() {
    let app = keyless(&[]).await;
    let mut request = greedy();
    request["stream"] = json!(true);

    let response = app.post("/generate", &request).await;
    assert_eq!(response.status(), 200);
    let events = sse_events(&response.text().await.unwrap());

    let (name, done) = events.last().unwrap();
    assert_eq!(name, "done", "{events:?}");
    assert!(!streamed_text(&events).is_empty());
    assert_eq!(streamed_text(&events), done["text"].as_str().unwrap());
    assert_eq!(done["model"], LOCAL);
    assert!(done["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert!(
        done["timings_ms"]["first_token"].as_f64().is_some(),
        "{done}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_over_the_token_budget_is_trimmed_oldest_first_and_still_answered() {
    let app = keyless(&[("RAGBACK_PROMPT__MAX_PROMPT_TOKENS", "400")]).await;
    let mut request = greedy();
    let long =
        "We talked about the weather, the bar, the music and the people around us. ".repeat(4);
    let mut messages: Vec<Value> = (0..12)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "character" };
            json!({"role": role, "text": format!("({i}) {long}")})
        })
        .collect();
    messages.push(json!({"role": "user", "text": "I finally ran the London marathon!"}));
    request["messages"] = json!(messages);

    let (status, body) = app.post_json("/generate", &request).await;

    assert_eq!(status, 200, "{body}");
    assert!(!body["text"].as_str().unwrap().trim().is_empty());
    let dropped = body["prompt"]["dropped_messages"].as_u64().unwrap();
    let kept = body["prompt"]["messages"].as_u64().unwrap();
    assert!(dropped > 0 && kept >= 1, "{body}");
    assert_eq!(dropped + kept, 13, "{body}");
    assert!(body["prompt"]["tokens"].as_u64().unwrap() <= 400, "{body}");
    assert!(
        body["usage"]["prompt_tokens"].as_u64().unwrap() <= 400 + 4,
        "the model saw the trimmed prompt: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_requests_at_once_with_one_worker_both_succeed() {
    let app = keyless(&[("RAGBACK_LLM__LOCAL__MAX_CONCURRENCY", "1")]).await;
    let request = greedy();

    let (a, b) = tokio::join!(
        app.post_json("/generate", &request),
        app.post_json("/generate", &request)
    );

    assert_eq!(a.0, 200, "{}", a.1);
    assert_eq!(b.0, 200, "{}", b.1);
    assert_eq!(a.1["text"], b.1["text"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_stops_the_decoding() {
    // A process of its own, so that its decoded-token count is this test's alone.
    let store = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&mut ragback(store.path(), None)).await;
    let client = ragback_testkit::http_client();
    let decoded = || async {
        let text = client
            .get(format!("{}/metrics", server.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        ragback_testkit::metric_sample(&text, "ragback_local_llm_tokens_total{kind=\"decoded\"}")
            .unwrap_or(0.0)
    };
    let mut request = demo_request();
    request["messages"] = json!([{"role": "user", "text":
        "Write a long story about a dragon who learns to cook, with many details."}]);
    request["generation"] = json!({"temperature": 0.0, "seed": 5, "max_tokens": 300});

    let whole: Value = client
        .post(format!("{}/generate", server.url()))
        .json(&request)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let full = whole["usage"]["completion_tokens"].as_f64().unwrap();
    assert!(full >= 100.0, "the check needs a long reply: {whole}");

    let before = decoded().await;
    request["stream"] = json!(true);
    let mut response = client
        .post(format!("{}/generate", server.url()))
        .json(&request)
        .send()
        .await
        .unwrap();
    let started = Instant::now();
    let mut seen = String::new();
    while !seen.contains("event: delta") {
        let chunk = response.chunk().await.unwrap().expect("a delta");
        seen.push_str(&String::from_utf8_lossy(&chunk));
        assert!(started.elapsed() < Duration::from_secs(30));
    }
    drop(response);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped = decoded().await - before;
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(decoded().await - before, stopped, "decoding went on");
    assert!(
        stopped < full / 2.0,
        "{stopped} of {full} tokens decoded after the client left"
    );
}

#[test]
fn a_missing_or_wrong_model_file_stops_the_start_naming_it() {
    let store = tempfile::tempdir().unwrap();
    let wrong = store.path().join("notes.gguf");
    std::fs::write(&wrong, "not a model").unwrap();
    for path in [store.path().join("missing.gguf"), wrong] {
        let (ok, _, err) = run(ragback(store.path(), None)
            .env("RAGBACK_LLM__PROVIDER", "local")
            .env("RAGBACK_LLM__LOCAL__MODEL_PATH", &path)
            .arg("serve")
            .stdout(Stdio::null()));
        assert!(!ok);
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("make model"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Memory extraction with no key: the local model, held to the answer's JSON schema, always
/// answers with decisions (what they are worth is the 135M model's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_key_memory_extraction_answers_with_decisions() {
    let app = keyless(&[]).await;
    for text in [
        "I moved to Lisbon last month and I adopted a cat called Pixel",
        "lol no",
    ] {
        let request = json!({
            "messages": [
                {"role": "character", "text": "*wipes the counter* Where have you been?"},
                {"role": "user", "text": text}
            ],
            "dry_run": true
        });
        let (status, body) = app
            .post_json("/users/john/memories:extract", &request)
            .await;
        assert_eq!(status, 200, "{text}: {body}");
        assert!(body["decisions"].is_array(), "{body}");
    }
}

/// A generation whose deadline passed frees the one worker at once (the prompt is decoded in
/// small batches, each after checking that someone still waits): the next request is answered
/// within its own deadline. The 504 names the local model's threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_generation_frees_the_worker_and_the_504_names_the_threads() {
    let app = keyless(&[("RAGBACK_LLM__LOCAL__MAX_CONCURRENCY", "1")]).await;
    let ask = |timeout_ms: &'static str| {
        app.client
            .post(app.url("/generate"))
            .header("X-Request-Timeout", timeout_ms)
            .json(&greedy())
            .send()
    };
    let late = ask("50").await.unwrap();
    assert_eq!(late.status(), 504);
    let body: Value = late.json().await.unwrap();
    assert_eq!(body["error"]["code"], "llm_timeout", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("RAGBACK_LLM__LOCAL__THREADS"), "{message}");
    let next = ask("10000").await.unwrap();
    assert_eq!(next.status(), 200, "{:?}", next.text().await);
}
