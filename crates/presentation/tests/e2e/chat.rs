//! `ragback chat` end to end: the binary, fed through a pipe, talking to the real server (Qdrant
//! Edge store, fake Cohere) whose LLM is a fake OpenAI-compatible streaming upstream.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use ragback_domain::{FactOwner, UserId};
use ragback_testkit::sse_upstream::chunk;
use ragback_testkit::{Setup, TestApp, repo_root};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

/// Streams `Blaze: *grins* You said: <last message>` in small pieces (a greeting while the
/// character has not spoken); refuses a message containing "fail" the way a provider refuses a bad request.
struct EchoingLlm;

impl Respond for EchoingLlm {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let messages = body["messages"].as_array().unwrap();
        let last = messages.last().unwrap()["content"].as_str().unwrap();
        if last.contains("fail") {
            return ResponseTemplate::new(400)
                .set_body_json(json!({"error": {"code": 400, "message": "bad request"}}));
        }
        let greeting = !messages.iter().any(|m| m["role"] == "assistant");
        let reply = if greeting {
            "*waves* Yo John!".to_owned()
        } else {
            format!("Blaze: *grins* You said: {last}")
        };
        let pieces: Vec<String> = reply
            .as_bytes()
            .chunks(4)
            .map(|c| chunk(std::str::from_utf8(c).unwrap()))
            .collect();
        ResponseTemplate::new(200)
            .insert_header("content-type", "text/event-stream")
            .set_body_string(pieces.concat() + "data: [DONE]\n\n")
    }
}

/// A running ragback whose LLM is [`EchoingLlm`].
async fn app_with_echoing_llm(setup: Setup) -> TestApp {
    let app = TestApp::spawn_with(setup).await;
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .respond_with(EchoingLlm)
        .mount(&app.llm)
        .await;
    app
}

/// Runs `ragback chat` with `args`, `input` piped in; returns (success, stdout, stderr).
async fn chat(args: Vec<String>, input: String) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ragback"))
            .env_clear()
            .current_dir(repo_root())
            .arg("chat")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

fn no_crash(stderr: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_piped_chat_streams_replies_shows_facts_survives_errors_and_saves() {
    let app = app_with_echoing_llm(Setup {
        facts: vec![(
            FactOwner::User(UserId::parse("john").unwrap()),
            vec!["Completed the London marathon in 2024"],
        )],
        ..Setup::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("chat.jsonl");
    let input = format!(
        "I finally ran the London marathon!\n/facts\n/scenario A rainy rooftop.\n\
         this will fail\nhow are you\n/dance\n/save {}\nbye\nnever sent\n",
        saved.display()
    );

    let (ok, stdout, stderr) = chat(vec!["--url".into(), app.url("")], input).await;

    assert!(ok, "{stderr}");
    no_crash(&stderr);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "Blaze: *waves* Yo John!", "{stdout}");
    assert_eq!(lines[1], "John: I finally ran the London marathon!");
    assert!(
        lines[2].starts_with("  · 0.")
            && lines[2].ends_with("Completed the London marathon in 2024"),
        "the fact, with its score: {stdout}"
    );
    // The name prefix, split over pieces, is cleaned as it streams.
    assert_eq!(
        lines[3],
        "Blaze: *grins* You said: I finally ran the London marathon!"
    );
    assert!(stdout.contains("scenario set"), "{stdout}");
    assert!(stdout.contains("John: this will fail"));
    assert!(stdout.contains("Blaze: *grins* You said: how are you"));
    assert!(stdout.contains("5 messages saved"), "{stdout}");
    assert!(!stdout.contains("never sent"));
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 2, "{stderr}");
    assert!(errors[0].contains("llm_rejected"), "{stderr}");
    assert!(errors[1].contains("/dance"), "{stderr}");

    let requests = app.llm_requests().await;
    assert_eq!(
        requests.len(),
        4,
        "greeting, three messages; nothing after bye"
    );
    let last = &requests[3];
    assert!(
        last["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("A rainy rooftop.")
    );
    let sent: Vec<&str> = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert!(
        !sent.iter().any(|m| m.contains("this will fail")),
        "a failed turn is not kept: {sent:?}"
    );

    let saved: Vec<Value> = std::fs::read_to_string(&saved)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(saved.len(), 6, "who and where, then five messages");
    assert_eq!(saved[0]["session"]["scenario"], "A rainy rooftop.");
    assert_eq!(saved[0]["session"]["character"]["name"], "Blaze");
    assert_eq!(saved[0]["session"]["user"]["name"], "John");
    assert_eq!(
        saved[2],
        json!({"role": "user", "text": "I finally ran the London marathon!"})
    );
    assert_eq!(
        saved[3]["facts"][0]["text"],
        "Completed the London marathon in 2024"
    );
    // `eval import` keeps the scene and the parties the chat had.
    let imported = std::process::Command::new(env!("CARGO_BIN_EXE_ragback"))
        .current_dir(ragback_testkit::repo_root())
        .args([
            "eval",
            "import",
            "--model-label",
            "m",
            "--id",
            "c1",
            "--chat-log",
        ])
        .arg(dir.path().join("chat.jsonl"))
        .output()
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");
    let dialogue: Value = serde_json::from_slice(&imported.stdout).unwrap();
    assert_eq!(dialogue["scenario"], "A rainy rooftop.");
    assert_eq!(dialogue["character"]["name"], "Blaze");
    assert_eq!(dialogue["messages"].as_array().unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_or_slow_gets_one_line_and_the_chat_goes_on() {
    let port = ragback_testkit::process::free_port();
    let (ok, stdout, stderr) = chat(
        vec!["--url".into(), format!("http://127.0.0.1:{port}")],
        "hello\n/facts\nbye\n".into(),
    )
    .await;

    assert!(ok, "{stderr}");
    no_crash(&stderr);
    let errors: Vec<&str> = stderr.lines().collect();
    assert_eq!(errors.len(), 2, "greeting and message: {stderr}");
    assert!(
        errors
            .iter()
            .all(|l| l.starts_with("error: cannot reach ragback at")),
        "{stderr}"
    );
    assert!(stdout.contains("no reply yet"), "{stdout}");

    let app = TestApp::spawn().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(chunk("late") + "data: [DONE]\n\n")
                .set_delay(Duration::from_secs(4)),
        )
        .mount(&app.llm)
        .await;
    let (ok, _, stderr) = chat(
        vec!["--url".into(), app.url(""), "--timeout".into(), "1".into()],
        String::new(),
    )
    .await;

    assert!(ok, "{stderr}");
    no_crash(&stderr);
    assert!(stderr.contains("sent nothing for 1s"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_api_keys_needs_the_key() {
    let app = app_with_echoing_llm(Setup {
        vars: vec![(
            "RAGBACK_SERVER__API_KEYS".into(),
            "chat-key-Wd3s-0123456789".into(),
        )],
        ..Setup::default()
    })
    .await;

    let (ok, _, stderr) = chat(vec!["--url".into(), app.url("")], String::new()).await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("error: ragback answered unauthorized"),
        "{stderr}"
    );

    let args = vec![
        "--url".into(),
        app.url(""),
        "--api-key".into(),
        "chat-key-Wd3s-0123456789".into(),
    ];
    let (ok, stdout, stderr) = chat(args, String::new()).await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "Blaze: *waves* Yo John!");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_can_ask_for_a_variant_and_an_unknown_one_is_named() {
    let app = app_with_echoing_llm(Setup {
        vars: vec![("RAGBACK_VARIANTS__B__MODEL".into(), "model/b".into())],
        ..Setup::default()
    })
    .await;
    let args = |variant: &str| {
        vec![
            "--url".into(),
            app.url(""),
            "--variant".into(),
            variant.into(),
        ]
    };

    let (ok, stdout, stderr) = chat(args("b"), "hey\n".into()).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("You said: hey"), "{stdout}");
    let models: Vec<Value> = app
        .llm_requests()
        .await
        .iter()
        .map(|b| b["model"].clone())
        .collect();
    assert_eq!(
        models,
        [json!("model/b"), json!("model/b")],
        "the greeting and the turn"
    );

    let (ok, _, stderr) = chat(args("nope"), String::new()).await;
    assert!(ok, "{stderr}");
    assert!(stderr.contains("unknown variant `nope`"), "{stderr}");
}
