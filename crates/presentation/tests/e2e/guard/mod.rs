//! The reply guard end to end: a fake LLM scripted to answer unsafe or out-of-character text,
//! the real server, and what reaches the client — checked byte for byte, whole and streamed.

mod adapters;

use ragback_testkit::{ScriptedReplies, Setup, TestApp, demo_request, sse_events, streamed_text};
use serde_json::{Value, json};
use wiremock::Mock;
use wiremock::matchers::{method, path};

const DEFLECTION: &str = "*shakes head slowly* Let's not go there. Tell me something else instead.";
const MEETING: &str =
    "*leans in* Forget the bar. Let's meet in real life, come to 221 Baker Street at 9pm.";

async fn app_answering(texts: &[&str], vars: &[(&str, &str)]) -> TestApp {
    let app = TestApp::spawn_with(Setup {
        vars: vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Setup::default()
    })
    .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .respond_with(ScriptedReplies::new(texts))
        .mount(&app.llm)
        .await;
    app
}

/// The raw bytes of a streamed `/generate`, and its events.
async fn streamed(app: &TestApp, mut request: Value) -> (String, Vec<(String, Value)>) {
    request["stream"] = json!(true);
    let response = app.post("/generate", &request).await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let events = sse_events(&body);
    (body, events)
}

fn done(events: &[(String, Value)]) -> &Value {
    &events
        .iter()
        .find(|(name, _)| name == "done")
        .unwrap_or_else(|| panic!("no done event: {events:?}"))
        .1
}

fn with_last_message(text: &str) -> Value {
    let mut request = demo_request();
    request["messages"][2]["text"] = json!(text);
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsafe_reply_never_reaches_the_client_whole_or_streamed() {
    let app = app_answering(&[MEETING], &[]).await;
    let (status, body) = app.post_json("/generate", &demo_request()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["text"], DEFLECTION);
    assert_eq!(body["safety"]["action"], "replaced");
    assert_eq!(body["safety"]["flags"], json!(["real_meeting"]));
    assert_eq!(body["safety"]["crisis"], false);
    assert!(!body.to_string().contains("Baker"), "{body}");
    let requests = app.llm_requests().await;
    assert_eq!(requests.len(), 2, "asked again once, then replaced");
    let correction = requests[1]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(correction["role"], "system");
    assert!(
        correction["content"]
            .as_str()
            .unwrap()
            .contains("never propose meeting in real life"),
        "{correction}"
    );

    let (raw, events) = streamed(&app, demo_request()).await;
    assert!(
        !raw.contains("Baker") && !raw.contains("real life"),
        "{raw}"
    );
    let done = done(&events);
    assert_eq!(done["safety"]["action"], "replaced");
    assert_eq!(streamed_text(&events), done["text"].as_str().unwrap());
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"ragback_guard_flags_total{tag="real_meeting"}"#)
            && metrics.contains(r#"ragback_guard_actions_total{action="replaced"}"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_character_is_written_again_once() {
    let app = app_answering(
        &[
            "*sighs* As an AI, I can't go to bars.",
            "*grins* A marathon? No way, bro!",
        ],
        &[],
    )
    .await;
    let (status, body) = app.post_json("/generate", &demo_request()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["text"], "*grins* A marathon? No way, bro!");
    assert_eq!(body["safety"]["action"], "regenerated");
    assert_eq!(body["safety"]["flags"], json!(["assistant"]));
    assert_eq!(app.llm_requests().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_blocked_after_its_first_sentences_ends_with_the_deflection() {
    let reply = "*grins* Nice run, bro! Let's meet in real life, 221 Baker Street at 9pm.";
    let app = app_answering(&[reply], &[]).await;
    let (raw, events) = streamed(&app, demo_request()).await;
    assert!(
        !raw.contains("Baker") && !raw.contains("real life"),
        "{raw}"
    );
    let done = done(&events);
    let text = streamed_text(&events);
    assert_eq!(text, done["text"].as_str().unwrap());
    assert!(text.starts_with("*grins* Nice run, bro!"), "{text}");
    assert!(text.ends_with(DEFLECTION), "{text}");
    assert_eq!(done["safety"]["action"], "replaced");
    assert_eq!(
        app.llm_requests().await.len(),
        1,
        "the stream was not asked again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stream_passes_sentence_by_sentence() {
    let reply = "*raises glass* No way, bro! A whole marathon? That's wild.";
    let app = app_answering(&[reply], &[]).await;
    let (_, events) = streamed(&app, demo_request()).await;
    let deltas = events.iter().filter(|(name, _)| name == "delta").count();
    assert!(deltas >= 3, "one piece per sentence at least: {events:?}");
    assert_eq!(streamed_text(&events), reply);
    assert_eq!(done(&events)["safety"]["action"], "pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crisis_protocol_answers_intent_not_sadness() {
    let app = app_answering(&["*sits down next to you* Hey. I'm here. Talk to me."], &[]).await;
    let (_, body) = app
        .post_json(
            "/generate",
            &with_last_message("I don't want to be alive anymore"),
        )
        .await;
    assert_eq!(body["safety"]["crisis"], true, "{body}");
    assert!(body["safety"]["referral"].as_str().unwrap().contains("988"));
    let prompt = app.llm_requests().await[0]["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(prompt.contains("may be in crisis"), "{prompt}");

    let (_, events) = streamed(&app, with_last_message("I want to die")).await;
    assert_eq!(done(&events)["safety"]["crisis"], true);

    let (_, body) = app
        .post_json(
            "/generate",
            &with_last_message("I feel so sad and tired today"),
        )
        .await;
    assert_eq!(body["safety"]["crisis"], false, "{body}");
    assert!(body["safety"].get("referral").is_none(), "{body}");
    assert!(app.metrics().await.contains("ragback_guard_crises_total 2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minors_turn_is_stricter() {
    let explicit = "*blushes* You're so hot, let's have sex.";
    let app = app_answering(&[explicit, "*laughs* Fine, fine."], &[]).await;
    let mut minor = demo_request();
    minor["user"]["age"] = json!(15);
    let (_, body) = app.post_json("/generate", &minor).await;
    assert_eq!(body["text"], DEFLECTION, "{body}");
    assert_eq!(body["safety"]["action"], "replaced");
    let requests = app.llm_requests().await;
    assert_eq!(requests.len(), 1, "a minor's sexual flag replaces at once");
    assert!(
        requests[0]["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("under 18"),
        "the prompt says so"
    );

    let adult = app_answering(&[explicit, "*laughs* Fine, fine."], &[]).await;
    let (_, body) = adult.post_json("/generate", &demo_request()).await;
    assert_eq!(body["safety"]["action"], "regenerated", "{body}");
    assert_eq!(body["text"], "*laughs* Fine, fine.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_and_the_switch_are_the_operators() {
    let app = app_answering(
        &[MEETING],
        &[
            ("RAGBACK_GUARD__ACTIONS__REAL_MEETING", "replace"),
            (
                "RAGBACK_GUARD__DEFLECTIONS__REAL_MEETING",
                "*laughs* Nice try, stranger.",
            ),
        ],
    )
    .await;
    let (_, body) = app.post_json("/generate", &demo_request()).await;
    assert_eq!(body["text"], "*laughs* Nice try, stranger.");
    assert_eq!(
        app.llm_requests().await.len(),
        1,
        "replaced without asking again"
    );

    let legacy = json!({
        "messages": [{"role": "user", "text": "See you around?"}],
        "user": {"name": "John"},
        "character": {"name": "Blaze", "description": "A bartender."}
    });
    let (status, body) = app.post_json("/api/v1/chat", &legacy).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.to_string().contains("Baker"),
        "the legacy contract is guarded too: {body}"
    );

    let off = app_answering(&[MEETING], &[("RAGBACK_GUARD__ENABLED", "false")]).await;
    let (_, body) = off.post_json("/generate", &demo_request()).await;
    assert_eq!(body["text"], MEETING);
    assert!(body.get("safety").is_none(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_stream_that_fails_mid_sentence_sends_nothing_unchecked() {
    use ragback_testkit::sse_upstream::chunk;
    let app = TestApp::spawn().await;
    let error = json!({
        "id": "gen-1", "object": "chat.completion.chunk", "model": "mistralai/mistral-nemo",
        "error": {"code": 502, "message": "Provider returned error"},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]
    });
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(
                    [
                        chunk("*grins* Yo bro."),
                        chunk(" Come to 221 Baker"),
                        format!("data: {error}\n\n"),
                    ]
                    .concat(),
                ),
        )
        .mount(&app.llm)
        .await;
    let (raw, events) = streamed(&app, demo_request()).await;
    assert!(
        !raw.contains("Baker"),
        "an unfinished sentence is never sent: {raw}"
    );
    assert_eq!(streamed_text(&events), "*grins* Yo bro.");
    assert_eq!(events.last().unwrap().0, "error", "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_on_sentence_still_streams_and_a_client_leaving_closes_the_upstream() {
    use ragback_testkit::sse_upstream::{SseUpstream, Step};
    let upstream = SseUpstream::start(vec![Step::Endless(
        " la",
        std::time::Duration::from_millis(5),
    )])
    .await;
    let app = TestApp::spawn_with(Setup {
        vars: vec![("RAGBACK_LLM__BASE_URL".into(), upstream.base_url.clone())],
        ..Setup::default()
    })
    .await;
    let mut request = demo_request();
    request["stream"] = json!(true);
    let mut response = app.post("/generate", &request).await;
    let mut seen = String::new();
    while !seen.contains("event: delta") {
        let piece = response.chunk().await.unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&piece));
    }
    drop(response);
    assert!(
        upstream
            .wait_closed_by_client(std::time::Duration::from_secs(5))
            .await,
        "the upstream request stayed open after the client left"
    );
}

#[test]
fn guard_check_writes_one_verdict_per_text() {
    use ragback_testkit::process::run;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("texts.jsonl");
    std::fs::write(
        &input,
        [
            json!({"id": "a", "text": "*grins* A marathon? No way, bro!"}),
            json!({"id": "b", "text": "*winks* Let's meet in real life, just us."}),
            json!({"id": "c", "text": "I want to die", "role": "user"}),
            json!({"id": "d", "text": "I feel so sad today", "role": "user"}),
        ]
        .iter()
        .map(|line| format!("{line}\n"))
        .collect::<String>(),
    )
    .unwrap();
    let (ok, stdout, stderr) = run(crate::ragback(&dir.path().join("store"), None).args([
        "guard",
        "check",
        input.to_str().unwrap(),
    ]));
    assert!(ok, "{stderr}");
    let verdicts: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let flags: Vec<(Value, Value)> = verdicts
        .iter()
        .map(|v| (v["id"].clone(), v["flags"].clone()))
        .collect();
    assert_eq!(
        flags,
        [
            (json!("a"), json!([])),
            (json!("b"), json!(["real_meeting"])),
            (json!("c"), json!(["self_harm"])),
            (json!("d"), json!([])),
        ]
    );
    assert_eq!(
        verdicts[1]["tags"]["real_meeting"],
        json!({"score": 1.0, "flagged": true})
    );
    assert_eq!(
        verdicts[0]["tags"].as_object().unwrap().len(),
        11,
        "every tag, scored"
    );
    assert!(stderr.contains("4 texts checked, 2 flagged"), "{stderr}");

    std::fs::write(&input, "{\"text\": \"hi\", \"role\": \"narrator\"}\n").unwrap();
    let (ok, _, stderr) = run(crate::ragback(&dir.path().join("store"), None).args([
        "guard",
        "check",
        input.to_str().unwrap(),
    ]));
    assert!(!ok && stderr.contains(":1: role `narrator`"), "{stderr}");
}

#[test]
fn training_is_deterministic_and_writes_a_classifier_the_guard_loads() {
    use ragback_testkit::process::run;
    let dir = tempfile::tempdir().unwrap();
    let all = std::fs::read_to_string(ragback_testkit::repo_root().join("data/safety/train.jsonl"))
        .unwrap();
    // Every fourth labelled text: each tag keeps a few positives.
    let some: String = all
        .lines()
        .step_by(4)
        .map(|line| format!("{line}\n"))
        .collect();
    let labels = dir.path().join("labels.jsonl");
    std::fs::write(&labels, some).unwrap();
    let train = |out: &str| {
        let out = dir.path().join(out);
        let (ok, stdout, stderr) = run(crate::ragback(&dir.path().join("store"), None).args([
            "guard",
            "train",
            "--labels",
            labels.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]));
        assert!(ok, "{stderr}");
        assert!(stdout.contains("held-out scores"), "{stdout}");
        std::fs::read(out).unwrap()
    };
    let (first, second) = (train("a.json"), train("b.json"));
    assert_eq!(
        first, second,
        "the same labels give the same file, byte for byte"
    );
    let model: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(model["embedder"], "local/all-MiniLM-L6-v2");
    assert_eq!(model["dimension"], 384);
    assert!(!model["heads"].as_array().unwrap().is_empty(), "{model}");

    // The guard uses the file it names.
    let input = dir.path().join("texts.jsonl");
    std::fs::write(&input, "{\"text\": \"*smiles* Another round?\"}\n").unwrap();
    let (ok, stdout, stderr) = run(crate::ragback(&dir.path().join("store"), None)
        .env("RAGBACK_GUARD__CLASSIFIER", dir.path().join("a.json"))
        .args(["guard", "check", input.to_str().unwrap()]));
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("classifier is off"), "{stderr}");
    let verdict: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(verdict["flagged"], false, "{verdict}");
}
