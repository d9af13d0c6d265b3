//! The rolling summary end to end: the real server and store (Qdrant Edge on disk, reopened
//! after a restart), the provider faked on the wire.

use std::path::Path;
use std::time::Duration;

use ragback_testkit::{Setup, TestApp, completion};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, ResponseTemplate};

/// What marks the summarizer's calls: its system prompt.
const SUMMARY_CALL: &str = "You keep the running summary";

async fn app(store: &Path) -> TestApp {
    let app = TestApp::spawn_with(Setup {
        vars: vec![
            ("RAGBACK_STORE__PATH".into(), store.display().to_string()),
            // A window of 8 messages, moving 2 at a time.
            ("RAGBACK_PROMPT__HISTORY_MESSAGES".into(), "8".into()),
        ],
        ..Setup::default()
    })
    .await;
    // The summarizer's answers, in order; then an empty one (malformed).
    for (priority, text) in [(1, "SUMMARY-1"), (2, "SUMMARY-2"), (3, "  ")] {
        let mock = Mock::given(method("POST"))
            .and(path("/api/v1/chat/completions"))
            .and(body_string_contains(SUMMARY_CALL))
            .respond_with(ResponseTemplate::new(200).set_body_json(completion(text)))
            .with_priority(priority);
        let mock = if priority < 3 {
            mock.up_to_n_times(1)
        } else {
            mock
        };
        mock.mount(&app.llm).await;
    }
    app.llm_replies("*nods* Aye.").await;
    app
}

/// A conversation of `n` messages (user first, so odd `n` ends with the user's).
fn turn(n: usize, conversation: Option<&str>) -> Value {
    let messages: Vec<Value> = (0..n)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "character" };
            json!({"role": role, "text": format!("message number {i}")})
        })
        .collect();
    let mut request = json!({
        "messages": messages,
        "user": {"id": "john", "name": "John"},
        "character": {"id": "mira", "name": "Mira", "description": "A ship's captain."},
    });
    if let Some(id) = conversation {
        request["conversation_id"] = json!(id);
    }
    request
}

const SUMMARY: &str = "/users/john/conversations/c1/summary";

/// The summary once it covers `covers` messages (the worker runs after the reply).
async fn summary_covering(app: &TestApp, covers: u64) -> Value {
    for _ in 0..100 {
        let response = app.client.get(app.url(SUMMARY)).send().await.unwrap();
        if response.status() == 200 {
            let body: Value = response.json().await.unwrap();
            if body["covers"] == covers {
                return body;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no summary covering {covers} messages");
}

/// The bodies of the summarizer's calls.
async fn summary_calls(app: &TestApp) -> Vec<String> {
    app.llm_requests()
        .await
        .iter()
        .map(|r| r.to_string())
        .filter(|body| body.contains(SUMMARY_CALL))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_covers_what_left_the_window_is_extended_and_survives_a_restart() {
    let store = tempfile::tempdir().unwrap();
    let app = app(store.path()).await;

    // 9 messages, a window of 8 moving by 2: messages 0 and 1 are left out.
    let (status, body) = app.post_json("/generate", &turn(9, Some("c1"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["prompt"]["summarized_messages"], 0, "none yet: {body}");
    let first = summary_covering(&app, 2).await;
    assert_eq!(first["text"], "SUMMARY-1");
    assert_eq!(first["conversation_id"], "c1");
    assert_eq!(first["character_id"], "mira");
    assert_eq!(first["prompt_hash"].as_str().unwrap().len(), 64);
    let calls = summary_calls(&app).await;
    assert_eq!(calls.len(), 1);
    assert!(calls[0].contains("message number 1") && !calls[0].contains("message number 2"));

    // Two messages on, the window has moved to message 4: the summary of 0..2 is in the
    // prompt, and is extended with messages 2 and 3 only.
    let (status, body) = app.post_json("/generate", &turn(11, Some("c1"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["prompt"]["summarized_messages"], 2, "{body}");
    let sent = app.llm_requests().await;
    let reply_call = sent
        .iter()
        .rev()
        .find(|r| !r.to_string().contains(SUMMARY_CALL))
        .unwrap();
    let context = reply_call["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "system")
        .map(|m| m["content"].as_str().unwrap())
        .find(|c| c.contains("## Earlier in this conversation"))
        .unwrap_or_else(|| panic!("no summary in the prompt: {reply_call}"));
    assert!(context.contains("> SUMMARY-1"), "{context}");
    let second = summary_covering(&app, 4).await;
    assert_eq!(second["text"], "SUMMARY-2");
    let calls = summary_calls(&app).await;
    assert_eq!(calls.len(), 2);
    assert!(
        calls[1].contains("<<<SUMMARY-1>>>"),
        "extended: {}",
        calls[1]
    );
    for i in [0, 1, 4] {
        assert!(
            !calls[1].contains(&format!("message number {i}")),
            "{}",
            calls[1]
        );
    }
    assert!(calls[1].contains("message number 2") && calls[1].contains("message number 3"));

    // A malformed summary changes nothing.
    app.post_json("/generate", &turn(13, Some("c1"))).await;
    for _ in 0..100 {
        if app.metrics().await.contains("outcome=\"malformed\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(app.metrics().await.contains("outcome=\"malformed\""));
    assert_eq!(summary_covering(&app, 4).await["text"], "SUMMARY-2");

    // Without a conversation id, nothing is summarized.
    let (_, body) = app.post_json("/generate", &turn(13, None)).await;
    assert_eq!(body["prompt"]["summarized_messages"], 0);
    let before = summary_calls(&app).await.len();

    // The summary is in the store: a restarted ragback reads it.
    app.stop().await;
    let restarted = reopen(store.path()).await;
    assert_eq!(summary_covering(&restarted, 4).await["text"], "SUMMARY-2");
    assert_eq!(summary_calls(&restarted).await.len(), 0);
    assert!(before >= 3);

    // Another conversation's summary, deleted through the API.
    restarted.post_json("/generate", &turn(9, Some("c2"))).await;
    let other = "/users/john/conversations/c2/summary";
    for _ in 0..100 {
        let response = restarted
            .client
            .get(restarted.url(other))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deleted = restarted
        .client
        .delete(restarted.url(other))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let missing = restarted
        .client
        .get(restarted.url(other))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "summary_not_found");
    let (status, body) = restarted
        .post_json(
            "/generate",
            &json!({"conversation_id": "c1", "messages": [],
            "user": {"name": "John"}, "character": {"name": "Mira", "description": "x"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "user.id");

    // `ragback summary`: through the server that holds the store, then on the store itself.
    let cli = |args: &[&str]| {
        let mut command = crate::ragback(store.path(), None);
        command.args(["summary"]).args(args);
        ragback_testkit::process::run(&mut command)
    };
    let server = format!("http://{}", restarted.addr);
    let (ok, stdout, stderr) = cli(&[
        "show",
        "--user",
        "john",
        "--conversation",
        "c1",
        "--server",
        &server,
    ]);
    assert!(ok, "{stderr}");
    let record: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (record["text"].as_str(), record["covers"].as_u64()),
        (Some("SUMMARY-2"), Some(4))
    );
    restarted.stop().await;
    wait_free(store.path()).await;
    let (ok, _, stderr) = cli(&["delete", "--user", "john", "--conversation", "c1"]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = cli(&["show", "--user", "john", "--conversation", "c1"]);
    assert!(
        !ok && stderr.contains("has no summary of conversation `c1`"),
        "{stderr}"
    );
}

/// Waits until no process holds the store (a stopped server's workers let go after it).
async fn wait_free(store: &Path) {
    for _ in 0..100 {
        if ragback_integrations::edge::EdgeFactStore::open(store).is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the store stayed locked");
}

/// A ragback on `store` once the last one let go of it (its workers drop their hold after the
/// server stops).
async fn reopen(store: &Path) -> TestApp {
    wait_free(store).await;
    app(store).await
}
