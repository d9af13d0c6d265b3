//! Queued background work outlives the process that acknowledged it: a replica killed with
//! `kill -9` after its replies leaves its memory extractions in the store, and the replicas left
//! finish every one of them, each once (and none while it lived: it renewed their leases); the
//! embedded store's own restart finishes them too.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use ragback_testkit::process::{ServerProcess, fake_cohere};
use ragback_testkit::{Setup, TestApp, completion, demo_request};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::ragback;

/// What the extraction prompt asks; its requests are told apart from replies by it.
const EXTRACTION: &str = "What should be remembered?";
const USERS: usize = 12;

/// A fake OpenRouter that replies at once and answers extractions after `delay` (a long one:
/// the extraction is under way when its process is killed) with one fact.
async fn llm(delay: Duration) -> MockServer {
    let llm = MockServer::start().await;
    extraction_answers(&llm, delay).await;
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("*grins* Noted.")))
        .mount(&llm)
        .await;
    llm
}

async fn extraction_answers(llm: &MockServer, delay: Duration) {
    let fact = json!({"facts": [{"owner": "user", "text": "Has a lucky number", "kind": "fact"}]});
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .and(body_string_contains(EXTRACTION))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(completion(&fact.to_string()))
                .set_delay(delay),
        )
        .mount(llm)
        .await;
}

fn said(n: usize) -> String {
    format!("My lucky number is {n} today")
}

/// A turn of user `u{n}` that asks for its facts to be learned.
fn turn(n: usize) -> Value {
    let mut request = demo_request();
    request["user"]["id"] = json!(format!("u{n}"));
    request["messages"] = json!([{"role": "user", "text": said(n)}]);
    request["memory"] = json!({"extract": true});
    request
}

/// A `ragback serve` process and the fake Cohere it embeds with.
struct Process {
    server: ServerProcess,
    _cohere: MockServer,
}

impl Process {
    /// `serve` on the fake LLM at `llm`, with `vars`.
    async fn serve(store: &std::path::Path, llm: &MockServer, vars: &[(&str, &str)]) -> Self {
        let cohere = fake_cohere().await;
        let mut command: Command = ragback(store, Some(&cohere));
        command
            .env("RAGBACK_LLM__BASE_URL", format!("{}/api/v1", llm.uri()))
            .env("RAGBACK_LLM__API_KEY", "sk-test")
            .envs(vars.iter().copied());
        Self {
            server: ServerProcess::start(&mut command).await,
            _cohere: cohere,
        }
    }

    /// `kill -9`: the queue in its memory is gone with it.
    fn kill(mut self) {
        self.server.child.kill().unwrap();
        self.server.child.wait().unwrap();
    }
}

/// Acknowledged turns of `USERS` users, each asking for an extraction.
async fn acknowledge_turns(base: &str) {
    let client = ragback_testkit::http_client();
    for n in 0..USERS {
        let response = client
            .post(format!("{base}/generate"))
            .json(&turn(n))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "turn {n}");
    }
}

/// The user messages of the extractions `llms` received, counted.
async fn extractions(llms: &[&MockServer]) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for llm in llms {
        for request in llm.received_requests().await.unwrap() {
            let body = String::from_utf8_lossy(&request.body).into_owned();
            if !body.contains(EXTRACTION) {
                continue;
            }
            let turn = (0..USERS)
                .map(said)
                .find(|said| body.contains(said.as_str()))
                .unwrap_or_else(|| panic!("an extraction of no known turn: {body}"));
            *seen.entry(turn).or_insert(0) += 1;
        }
    }
    seen
}

/// Waits until every user has the fact learned from their turn, as `base` lists them.
async fn every_user_learned(base: &str) {
    let client = ragback_testkit::http_client();
    let started = Instant::now();
    'users: for n in 0..USERS {
        loop {
            let listed: Value = client
                .get(format!("{base}/users/u{n}/facts"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if listed["facts"].as_array().is_some_and(|f| f.len() == 1) {
                continue 'users;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "u{n}'s extraction was never finished: {listed}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(feature = "qdrant-server")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replicas_queued_extractions_are_finished_once_by_the_two_left() {
    let qdrant = ragback_testkit::fake_qdrant::start().await;
    let on_qdrant = [
        ("RAGBACK_STORE__KIND", "qdrant"),
        ("RAGBACK_STORE__URL", qdrant.as_str()),
        ("RAGBACK_STORE__COLLECTION", "facts"),
    ];
    // The first replica's extractions hang; it renews its short leases every second, until it
    // is killed.
    let hanging = llm(Duration::from_secs(600)).await;
    let store = tempfile::tempdir().unwrap();
    let mut vars = on_qdrant.to_vec();
    vars.extend([
        ("RAGBACK_JOBS__LEASE_SECS", "3"),
        ("RAGBACK_JOBS__SWEEP_SECS", "1"),
    ]);
    let first = Process::serve(store.path(), &hanging, &vars).await;
    acknowledge_turns(&first.server.url()).await;

    // Two replicas join, and take the backlog over once the first is gone, two jobs at a time
    // each, so that both drain it.
    let mut vars: Vec<(String, String)> = on_qdrant
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    vars.extend(
        [
            ("RAGBACK_JOBS__SWEEP_SECS", "1"),
            ("RAGBACK_MEMORY__QUEUE_CAPACITY", "2"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let replica = || {
        TestApp::spawn_with(Setup {
            vars: vars.clone(),
            ..Setup::default()
        })
    };
    let (a, b) = tokio::join!(replica(), replica());
    extraction_answers(&a.llm, Duration::ZERO).await;
    extraction_answers(&b.llm, Duration::ZERO).await;
    // Past the first replica's lease, twice over: it renewed its jobs, which stayed its own.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let taken = extractions(&[&a.llm, &b.llm]).await;
    assert!(
        taken.is_empty(),
        "a live replica's jobs were taken: {taken:?}"
    );
    first.kill();
    every_user_learned(&a.url("")).await;
    // Two more sweeps: nothing is taken again.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let done = extractions(&[&a.llm, &b.llm]).await;
    assert_eq!(done.len(), USERS, "every turn's extraction ran: {done:?}");
    assert!(
        done.values().all(|&times| times == 1),
        "each extraction ran once: {done:?}"
    );
    let by_a = extractions(&[&a.llm]).await.len();
    println!(
        "{USERS} queued extractions of a killed replica finished by the two left ({by_a} and {})",
        USERS - by_a
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_stores_queued_extractions_are_finished_after_a_kill_9_and_a_restart() {
    let store = tempfile::tempdir().unwrap();
    let hanging = llm(Duration::from_secs(600)).await;
    let first = Process::serve(store.path(), &hanging, &[]).await;
    acknowledge_turns(&first.server.url()).await;
    first.kill();

    let answering = llm(Duration::ZERO).await;
    let restarted = Process::serve(store.path(), &answering, &[]).await;
    every_user_learned(&restarted.server.url()).await;
    let done = extractions(&[&answering]).await;
    assert_eq!(done.len(), USERS, "{done:?}");
    assert!(done.values().all(|&times| times == 1), "{done:?}");
}
