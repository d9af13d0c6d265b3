//! `ragback facts …` end to end: the binary against a real Qdrant Edge store and a fake Cohere,
//! alone or through the API of a running `ragback serve` that holds the store.

use std::process::Stdio;
use std::time::{Duration, Instant};

use ragback_testkit::process::{ServerProcess, fake_cohere, run};
use ragback_testkit::{FakeCohere, completion};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::ragback;

const DEMO_FACTS: usize = 27;

fn count_of(output: &str) -> usize {
    output
        .rsplit("the store holds ")
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {output}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_server_running_facts_go_through_its_api_and_generate_sees_them() {
    let cohere = fake_cohere().await;
    let llm = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("*grins* Kit!")))
        .mount(&llm)
        .await;
    let store = tempfile::tempdir().unwrap();
    let with_llm = |mut command: std::process::Command| {
        command
            .env("RAGBACK_LLM__BASE_URL", format!("{}/v1", llm.uri()))
            .env("RAGBACK_RETRIEVAL__THRESHOLD", "0.3");
        command
    };
    let server = ServerProcess::start(&mut with_llm(ragback(store.path(), Some(&cohere)))).await;
    let cli = || {
        let mut command = ragback(store.path(), Some(&cohere));
        command.env("RAGBACK_SERVER__ADDR", format!("127.0.0.1:{}", server.port));
        command
    };

    let (ok, out, err) = run(cli().args(["facts", "add"]));
    assert!(ok, "{err}");
    assert!(err.contains("going through its API"), "{err}");
    assert!(
        out.starts_with(&format!("added {DEMO_FACTS}, unchanged 0")),
        "{out}"
    );
    let (ok, again, err) = run(cli().args(["facts", "add"]));
    assert!(ok, "{err}");
    assert!(
        again.starts_with(&format!("added 0, unchanged {DEMO_FACTS}")),
        "{again}"
    );

    let notes = store.path().join("notes.txt");
    std::fs::write(&notes, "Owns a cat named Kit\n").unwrap();
    let (ok, _, err) = run(cli().args(["facts", "add", notes.to_str().unwrap(), "--user", "john"]));
    assert!(ok, "{err}");
    let request = json!({
        "messages": [{"role": "user", "text": "my cat Kit is sick"}],
        "user": {"id": "john", "name": "John"},
        "character": {"name": "Blaze", "description": "Street persona"}
    });
    let reply: Value = ragback_testkit::http_client()
        .post(format!("{}/generate", server.url()))
        .json(&request)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["facts"][0]["text"], "Owns a cat named Kit", "{reply}");

    let (ok, found, err) =
        run(cli().args(["facts", "search", "my cat Kit", "--user", "jane", "--json"]));
    assert!(ok, "{err}");
    let found: Value = serde_json::from_str(&found).unwrap();
    assert!(
        found
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["owner"] == "user" && f["owner_id"] == "jane" && f["score"].is_number()),
        "{found}"
    );

    let (ok, listed, _) = run(cli().args(["facts", "list", "--user", "jane", "--json"]));
    assert!(ok);
    assert_eq!(listed.lines().count(), 5);
    let (ok, out, err) = run(cli().args(["facts", "delete", "--user", "jane", "--all"]));
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "deleted 5 facts of user:jane");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeding_that_fails_midway_keeps_what_it_stored_and_a_rerun_finishes() {
    let flaky = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/embed"))
        .respond_with(FakeCohere)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&flaky)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/embed"))
        .respond_with(
            ResponseTemplate::new(500).set_body_json(json!({"message": "internal server error"})),
        )
        .with_priority(2)
        .mount(&flaky)
        .await;
    let store = tempfile::tempdir().unwrap();
    let batch_of_5 = |cohere: &MockServer| {
        let mut command = ragback(store.path(), Some(cohere));
        command
            .env("RAGBACK_EMBEDDER__COHERE__BATCH_SIZE", "5")
            .env("RAGBACK_EMBEDDER__MAX_ATTEMPTS", "2")
            .env("RAGBACK_EMBEDDER__RETRY_INITIAL_BACKOFF_MS", "10");
        command
    };

    let (ok, out, err) = run(batch_of_5(&flaky).args(["facts", "add"]));

    assert!(!ok);
    assert!(out.starts_with("added 5, unchanged 0"), "{out}");
    assert!(out.contains(&format!("failed {}", DEMO_FACTS - 5)), "{out}");
    assert!(
        err.contains(&format!(
            "stopped after 5 of {DEMO_FACTS} new facts were stored"
        )),
        "{err}"
    );
    assert!(
        err.contains("run the same command again to finish"),
        "{err}"
    );
    assert_eq!(count_of(&out), 5);

    let healthy = fake_cohere().await;
    let (ok, out, err) = run(batch_of_5(&healthy).args(["facts", "add"]));
    assert!(ok, "{err}");
    assert!(
        out.starts_with(&format!("added {}, unchanged 5", DEMO_FACTS - 5)),
        "{out}"
    );
    assert_eq!(count_of(&out), DEMO_FACTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_between_batches_and_a_rerun_finishes() {
    let slow = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/embed"))
        .respond_with(SlowCohere)
        .mount(&slow)
        .await;
    let store = tempfile::tempdir().unwrap();
    let mut child = ragback(store.path(), Some(&slow))
        .env("RAGBACK_EMBEDDER__COHERE__BATCH_SIZE", "5")
        .args(["facts", "add"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while slow.received_requests().await.unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "the seeding never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = tokio::task::spawn_blocking(move || {
        let _ = &mut child;
        child.wait_with_output()
    })
    .await
    .unwrap()
    .unwrap();

    let (out, err) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(130), "{out}\n{err}");
    assert!(err.contains("interrupted"), "{err}");
    let stored = count_of(&out);
    assert!(
        stored > 0 && stored < DEMO_FACTS && stored.is_multiple_of(5),
        "whole batches only: {out}"
    );

    let (ok, out, err) =
        run(ragback(store.path(), Some(&fake_cohere().await)).args(["facts", "add"]));
    assert!(ok, "{err}");
    assert!(
        out.starts_with(&format!(
            "added {}, unchanged {stored}",
            DEMO_FACTS - stored
        )),
        "{out}"
    );
}

/// Cohere answering each call after 300 ms.
struct SlowCohere;

impl wiremock::Respond for SlowCohere {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        FakeCohere
            .respond(request)
            .set_delay(Duration::from_millis(300))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing_and_replace_removes_what_the_file_no_longer_has() {
    let cohere = fake_cohere().await;
    let store = tempfile::tempdir().unwrap();
    let cli = || ragback(store.path(), Some(&cohere));

    let (ok, out, _) = run(cli().args(["facts", "add", "--dry-run"]));
    assert!(ok);
    assert!(
        out.contains(&format!(
            "would delete 0, add {DEMO_FACTS}, leave 0 unchanged"
        )),
        "{out}"
    );
    let (_, listed, _) = run(cli().args(["facts", "list", "--json"]));
    assert_eq!(listed.lines().count(), 0, "a dry run stores nothing");

    run(cli().args(["facts", "add"]));
    let notes = store.path().join("extra.txt");
    std::fs::write(&notes, "Collects vinyl records\n").unwrap();
    let (ok, _, err) = run(cli().args(["facts", "add", notes.to_str().unwrap(), "--user", "john"]));
    assert!(ok, "{err}");

    let (_, out, _) = run(cli().args(["facts", "add", "--replace", "--dry-run"]));
    assert!(
        out.contains(&format!(
            "would delete {}, add {DEMO_FACTS}",
            DEMO_FACTS + 1
        )),
        "{out}"
    );
    let (ok, out, err) = run(cli().args(["facts", "add", "--replace"]));
    assert!(ok, "{err}");
    assert!(out.contains("deleted 13 facts of user:john"), "{out}");
    assert_eq!(count_of(&out), DEMO_FACTS);
    let (_, listed, _) = run(cli().args(["facts", "list", "--user", "john"]));
    assert!(!listed.contains("vinyl"), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_move_between_stores_with_their_vectors() {
    let cohere = fake_cohere().await;
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    run(ragback(source.path(), Some(&cohere)).args(["facts", "add"]));
    let export = source.path().join("facts.jsonl");

    let (ok, _, err) =
        run(ragback(source.path(), None).args(["facts", "export", "-o", export.to_str().unwrap()]));
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("exported {DEMO_FACTS} facts")),
        "{err}"
    );
    let first: Value = serde_json::from_str(
        std::fs::read_to_string(&export)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(
        first["vector"].as_array().is_some_and(|v| !v.is_empty()),
        "{first}"
    );
    assert_eq!(first["source"], "seeded", "{first}");
    assert!(first["created_at"].as_str().is_some(), "{first}");

    // No embedder in the target: the vectors come from the export.
    let (ok, out, err) =
        run(ragback(target.path(), None).args(["facts", "import", export.to_str().unwrap()]));
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("added {DEMO_FACTS}, unchanged 0")),
        "{out}"
    );
    let (_, source_list, _) = run(ragback(source.path(), None).args(["facts", "list", "--json"]));
    let (_, target_list, _) = run(ragback(target.path(), None).args(["facts", "list", "--json"]));
    assert_eq!(source_list, target_list, "texts, ids and provenance alike");
    assert!(
        source_list.contains("\"source\":\"seeded\""),
        "{source_list}"
    );

    let (ok, found, err) = run(ragback(target.path(), Some(&cohere)).args([
        "facts",
        "search",
        "London Marathon",
        "--user",
        "john",
        "--top-k",
        "1",
        "--json",
    ]));
    assert!(ok, "{err}");
    assert!(
        found.contains("Completed the London Marathon in 2024"),
        "{found}"
    );
}

/// Moving off Qdrant Edge to a Qdrant server (docs/deployment.md): `facts export` from the
/// embedded store, `facts import` into the server with the vectors as they are.
#[cfg(feature = "qdrant-server")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_move_from_qdrant_edge_to_a_qdrant_server() {
    let cohere = fake_cohere().await;
    let edge = tempfile::tempdir().unwrap();
    let url = ragback_testkit::fake_qdrant::start().await;
    let server = |dir: &std::path::Path| {
        let mut command = ragback(dir, None);
        command
            .env("RAGBACK_STORE__KIND", "qdrant")
            .env("RAGBACK_STORE__URL", &url)
            .env("RAGBACK_STORE__COLLECTION", "moved");
        command
    };
    let (ok, _, err) = run(ragback(edge.path(), Some(&cohere)).args(["facts", "add"]));
    assert!(ok, "{err}");
    let export = edge.path().join("facts.jsonl");
    let (ok, _, err) =
        run(ragback(edge.path(), None).args(["facts", "export", "-o", export.to_str().unwrap()]));
    assert!(ok, "{err}");
    let (ok, out, err) =
        run(server(edge.path()).args(["facts", "import", export.to_str().unwrap()]));
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("added {DEMO_FACTS}, unchanged 0")),
        "{out}"
    );
    let (_, on_edge, _) = run(ragback(edge.path(), None).args(["facts", "list", "--json"]));
    let (ok, on_server, err) = run(server(edge.path()).args(["facts", "list", "--json"]));
    assert!(ok, "{err}");
    assert_eq!(on_edge, on_server, "texts, ids and provenance alike");
    // Imported again: nothing changes.
    let (ok, out, err) =
        run(server(edge.path()).args(["facts", "import", export.to_str().unwrap()]));
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("added 0, unchanged {DEMO_FACTS}")),
        "{out}"
    );
}

/// A command on an existing store, with the default log filter and stderr piped: what it prints
/// and its own warnings, no library bookkeeping (Qdrant Edge's WAL), no colour codes.
#[tokio::test]
async fn commands_are_quiet_and_plain_when_piped() {
    let cohere = fake_cohere().await;
    let store = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(ragback(store.path(), Some(&cohere)).args(["facts", "add"]));
    assert!(ok, "{err}");
    let (ok, out, err) = run(ragback(store.path(), None)
        .env_remove("RUST_LOG")
        .args(["facts", "list"]));
    assert!(ok, "{err}");
    assert!(out.lines().count() >= DEMO_FACTS, "{out}");
    assert!(!err.contains('\u{1b}'), "colour codes on a pipe: {err:?}");
    assert!(
        !err.contains("qdrant_edge") && !err.contains(" INFO "),
        "library logs: {err}"
    );
}
