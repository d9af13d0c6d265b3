//! Time to first token added by ragback to a streamed reply.
//!
//! Runs ragback on a real Qdrant Edge store with the demo facts, a fake Cohere that answers at
//! once, and a raw-socket OpenAI-compatible upstream that streams a reply. For each streamed
//! `/generate` request it compares the instant the upstream wrote its first content chunk with the
//! instant the client read the first `delta` event: the difference is what ragback adds (reading
//! and decoding the upstream chunk, cleaning, SSE framing, HTTP write, client read). It also
//! reports the client's time to first token from the start of the request (retrieval included).
//!
//! With the reply guard on, the first piece waits for the end of the first sentence, checked (and
//! the user's message is checked before the prompt): with and without it, by the rules alone
//! (the fake Cohere embedder) and by the rules and the classifier (the local embedder, when
//! `make model` fetched it), side by side.
//!
//! `cargo bench -p ragback-presentation --bench first_token` (REQUESTS=… to change the count).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures::StreamExt;
use ragback_domain::{FactOwner, UserId};
use ragback_testkit::sse_upstream::{SseUpstream, Step};
use ragback_testkit::{Setup, TestApp, demo_request};

fn report(name: &str, values: Vec<f64>) {
    ragback_testkit::stats::report(name, 36, "ms", &values);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

fn main() {
    let requests: usize = std::env::var("REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        println!("{requests} sequential streamed /generate requests");
        let root = ragback_testkit::repo_root();
        let model = root.join("models/all-MiniLM-L6-v2");
        let classifier = root.join("data/safety/classifier.json");
        let local = vec![
            ("RAGBACK_EMBEDDER__PROVIDER".to_owned(), "local".to_owned()),
            (
                "RAGBACK_EMBEDDER__LOCAL__MODEL_DIR".to_owned(),
                model.display().to_string(),
            ),
            (
                "RAGBACK_GUARD__CLASSIFIER".to_owned(),
                classifier.display().to_string(),
            ),
        ];
        measure(requests, "guard off", vec![guard(false)]).await;
        measure(requests, "guard on, the rules", vec![guard(true)]).await;
        if model.join("model.safetensors").is_file() {
            let mut vars = local.clone();
            vars.push(guard(false));
            measure(requests, "local embedder, guard off", vars).await;
            let mut vars = local;
            vars.push(guard(true));
            measure(
                requests,
                "local embedder, guard on: rules and classifier",
                vars,
            )
            .await;
        } else {
            println!("the classifier: NOT RUN (run `make model` for the local embedder)");
        }
    });
}

fn guard(on: bool) -> (String, String) {
    ("RAGBACK_GUARD__ENABLED".to_owned(), on.to_string())
}

/// One ragback with `vars`, and its times to first token.
async fn measure(requests: usize, label: &str, vars: Vec<(String, String)>) {
    let upstream = SseUpstream::start(vec![
        Step::Delta("*raises"),
        Step::Delta(" glass* No way, bro!"),
        Step::Delta(" A whole marathon?"),
        Step::Done,
    ])
    .await;
    let app = TestApp::spawn_with(Setup {
        vars: std::iter::once(("RAGBACK_LLM__BASE_URL".into(), upstream.base_url.clone()))
            .chain(vars)
            .collect(),
        facts: vec![(
            FactOwner::User(UserId::parse("john").unwrap()),
            vec!["Completed the London marathon in 2024"],
        )],
        ..Setup::default()
    })
    .await;
    let mut request = demo_request();
    request["stream"] = serde_json::json!(true);

    let mut added = Vec::new();
    let mut from_start = Vec::new();
    for round in 0..(requests + 100) {
        let started = Instant::now();
        let response = app.post("/generate", &request).await;
        assert_eq!(response.status(), 200);
        let mut events = response.bytes_stream().eventsource();
        let mut first = None;
        let mut done = false;
        while let Some(event) = events.next().await {
            let event = event.unwrap();
            match event.event.as_str() {
                "delta" if first.is_none() => first = Some(Instant::now()),
                "done" => done = true,
                "error" => panic!("the stream failed: {}", event.data),
                _ => {}
            }
        }
        assert!(done, "the stream ended without `done`");
        let first = first.expect("a delta");
        let written = upstream.first_delta_times()[round];
        if round >= 100 {
            // The first 100 rounds warm up connections and caches.
            added.push(ms(first.duration_since(written)));
            from_start.push(ms(first - started));
        }
    }
    println!("{label} (the first sentence ends in the upstream's second chunk):");
    report("  added to the upstream's first token", added);
    report("  client time to first token", from_start);
    app.stop().await;
}
