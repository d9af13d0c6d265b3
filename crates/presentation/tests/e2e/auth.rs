//! Bearer-token authentication, end to end: the in-process server for the access rules, and the
//! `ragback` binary for "no secret ever reaches the log".

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ragback_testkit::process::{fake_cohere, free_port, run, wait_healthy};
use ragback_testkit::{Setup, TestApp, completion, demo_request};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::ragback;

const READER: &str = "reader-key-7Hq2x9";
const ADMIN: &str = "admin-key-K4p8Zr";

async fn app_with_keys() -> TestApp {
    let app = TestApp::spawn_with(Setup {
        vars: vec![
            (
                "RAGBACK_SERVER__API_KEYS".into(),
                format!("{READER}, other-reader-key"),
            ),
            ("RAGBACK_SERVER__ADMIN_API_KEYS".into(), ADMIN.into()),
        ],
        ..Setup::default()
    })
    .await;
    app.llm_replies("*nods* Yo.").await;
    app
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Option<String>, Value) {
    let mut request = app.client.request(method, app.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        challenge,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_guard_every_route_but_health_and_ready() {
    let app = app_with_keys().await;
    use reqwest::Method;

    assert_eq!(call(&app, Method::GET, "/health", None, None).await.0, 200);
    assert_ne!(call(&app, Method::GET, "/ready", None, None).await.0, 401);

    let (status, challenge, body) =
        call(&app, Method::POST, "/generate", None, Some(&demo_request())).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(challenge.as_deref(), Some("Bearer"));
    assert_eq!(body["error"]["code"], "unauthorized");
    let wrong = Some("reader-key-7Hq2x8");
    let (status, _, _) = call(
        &app,
        Method::POST,
        "/generate",
        wrong,
        Some(&demo_request()),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        app.llm_requests().await.is_empty(),
        "refused before any upstream call"
    );

    let (status, _, body) = call(
        &app,
        Method::POST,
        "/generate",
        Some(READER),
        Some(&demo_request()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = call(
        &app,
        Method::POST,
        "/generate",
        Some("other-reader-key"),
        Some(&demo_request()),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_keys_read_facts_and_admin_keys_change_them() {
    let app = app_with_keys().await;
    use reqwest::Method;
    let facts = json!({"facts": ["Has a golden retriever named Biscuit"]});

    let (status, _, body) = call(
        &app,
        Method::POST,
        "/users/john/facts",
        Some(READER),
        Some(&facts),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("RAGBACK_SERVER__ADMIN_API_KEYS")
    );
    let (status, _, _) = call(&app, Method::POST, "/users/john/facts", None, Some(&facts)).await;
    assert_eq!(status, 401);
    let (status, _, listed) =
        call(&app, Method::GET, "/users/john/facts", Some(READER), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        listed["facts"],
        json!([]),
        "the refused writes changed nothing"
    );

    let (status, _, body) = call(
        &app,
        Method::POST,
        "/users/john/facts",
        Some(ADMIN),
        Some(&facts),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, _, listed) = call(&app, Method::GET, "/users/john/facts", Some(READER), None).await;
    assert_eq!(listed["facts"].as_array().unwrap().len(), 1);
    let search = json!({"user_id": "john", "query": "my dog Biscuit", "threshold": 0.0});
    let (status, _, _) = call(
        &app,
        Method::POST,
        "/facts/search",
        Some(READER),
        Some(&search),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = call(
        &app,
        Method::DELETE,
        "/users/john/facts",
        Some(READER),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = call(&app, Method::DELETE, "/users/john/facts", Some(ADMIN), None).await;
    assert_eq!(status, 200);
}

/// Every secret of a full run — API keys, a guessed key, the LLM and Cohere keys — stays out of
/// the log, even at debug level, through generation, refused calls, and seeding through the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_of_a_full_run() {
    const LLM_KEY: &str = "sk-or-v1-llm-secret-Qm3v";
    const COHERE_KEY: &str = "co-secret-Jx8w";
    const GUESS: &str = "guessed-key-Lp0s";
    let cohere = fake_cohere().await;
    let llm = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("*nods* Yo.")))
        .mount(&llm)
        .await;
    let store = tempfile::tempdir().unwrap();
    let log_path = store.path().join("server.log");
    let port = free_port();
    let with_secrets = |command: &mut Command| {
        command
            .env("RUST_LOG", "debug")
            .env("RAGBACK_SERVER__ADDR", format!("127.0.0.1:{port}"))
            .env("RAGBACK_SERVER__API_KEYS", READER)
            .env("RAGBACK_SERVER__ADMIN_API_KEYS", ADMIN)
            .env("RAGBACK_LLM__BASE_URL", format!("{}/api/v1", llm.uri()))
            .env("RAGBACK_LLM__API_KEY", LLM_KEY)
            .env("COHERE_API_KEY", COHERE_KEY);
    };
    let mut command = ragback(&store.path().join("store"), Some(&cohere));
    with_secrets(&mut command);
    let mut server = command
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    wait_healthy(port, &mut server).await;

    let client = ragback_testkit::http_client();
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    for key in [READER, GUESS] {
        client
            .post(url("/generate"))
            .bearer_auth(key)
            .json(&demo_request())
            .send()
            .await
            .unwrap();
    }
    client.get(url("/ready")).send().await.unwrap();
    // The CLI finds the server holding the store and goes through its API with the admin key.
    let mut add = ragback(&store.path().join("store"), Some(&cohere));
    with_secrets(&mut add);
    let (ok, out, err) = run(add.args(["facts", "add"]));
    assert!(ok, "{err}");
    assert!(out.starts_with("added 27"), "{out}");

    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the server did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("API keys required") && log.contains("/generate"),
        "the log is the server's: {log}"
    );
    for secret in [READER, ADMIN, LLM_KEY, COHERE_KEY, GUESS] {
        assert!(!log.contains(secret), "{secret} appears in the log");
    }
}
