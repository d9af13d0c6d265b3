//! The `ragback` binary itself: seeding twice, serving and stopping on SIGTERM, refusing bad
//! configuration and a store another process holds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::{fake_cohere, free_port, ragback, run, wait_healthy};

#[tokio::test]
async fn seeding_twice_keeps_the_same_facts() {
    let cohere = fake_cohere().await;
    let store = tempfile::tempdir().unwrap();

    let (ok, first, err) =
        run(ragback(store.path(), Some(&cohere)).args(["facts", "add", "data/facts.json"]));
    assert!(ok, "{err}");
    let (ok, second, err) =
        run(ragback(store.path(), Some(&cohere)).args(["facts", "add", "data/facts.json"]));
    assert!(ok, "{err}");

    let total = first
        .lines()
        .last()
        .unwrap()
        .rsplit("holds ")
        .next()
        .unwrap()
        .to_owned();
    assert!(first.starts_with("added 21, unchanged 0"), "{first}");
    assert!(second.starts_with("added 0, unchanged 21"), "{second}");
    assert!(second.trim_end().ends_with(&total), "{first} / {second}");
    let document_calls = cohere
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("search_document"))
        .count();
    assert_eq!(document_calls, 1, "the second run embeds no fact");
    assert!(
        second.contains("check: searching"),
        "a verification search ends each run: {second}"
    );

    let (ok, found, err) = run(ragback(store.path(), Some(&cohere)).args([
        "facts",
        "search",
        "I ran the London Marathon",
        "--user",
        "john",
        "--top-k",
        "2",
        "--json",
    ]));
    assert!(ok, "{err}");
    let found: serde_json::Value = serde_json::from_str(&found).unwrap();
    assert_eq!(found[0]["text"], "Completed the London Marathon in 2024");
    assert_eq!(found[0]["owner"], "user:john");
}

#[tokio::test]
async fn seeding_without_an_embedder_says_what_to_set() {
    let store = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(ragback(store.path(), None).args(["facts", "add"]));
    assert!(!ok);
    assert!(err.contains("no embedder is configured"), "{err}");
}

#[tokio::test]
async fn serve_answers_and_stops_cleanly_on_sigterm_and_holds_the_store() {
    let cohere = fake_cohere().await;
    let store = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = ragback(store.path(), Some(&cohere))
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--seed",
            "data/facts.json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_healthy(port, &mut server).await;

    let ready: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/ready"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready["checks"]["store"]["message"], "21 facts",
        "seeded at start-up: {ready}"
    );

    let (ok, _, err) = run(ragback(store.path(), Some(&cohere)).args(["facts", "add"]));
    assert!(!ok, "a second process must not open the store");
    assert!(err.contains("one process per directory"), "{err}");

    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = server.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit}");

    let (ok, out, err) = run(ragback(store.path(), Some(&cohere)).args(["facts", "add"]));
    assert!(ok, "the store reopens after a clean stop: {err}");
    assert!(out.starts_with("added 0, unchanged 21"), "{out}");
}

#[test]
fn bad_configuration_fails_at_start_naming_the_variable() {
    let store = tempfile::tempdir().unwrap();
    let cases = [
        (
            "RAGBACK_LLM__TIMEOUT_SECS",
            "soon",
            "RAGBACK_LLM__TIMEOUT_SECS",
        ),
        (
            "RAGBACK_RETRIEVAL__THRESHOLD",
            "2",
            "RAGBACK_RETRIEVAL__THRESHOLD",
        ),
        ("RAGBACK_LLM__BASE_URL", "not a url", "RAGBACK_LLM__"),
        (
            "RAGBACK_PROMPT__TEMPLATE",
            "/nonexistent.tera",
            "RAGBACK_PROMPT__TEMPLATE",
        ),
        ("RAGBACK_SERVR__ADDR", "0.0.0.0:1", "servr"),
    ];
    for (name, value, expected) in cases {
        let (ok, _, err) = run(ragback(store.path(), None).env(name, value).args([
            "serve",
            "--addr",
            "127.0.0.1:0",
        ]));
        assert!(!ok, "{name}={value} must be refused");
        assert!(err.contains(expected), "{name}={value}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
