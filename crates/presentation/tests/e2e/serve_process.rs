//! The `ragback serve` process: draining on SIGTERM within the drain timeout, and JSON logs that
//! carry the request id on every line of a request.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ragback_testkit::completion;
use ragback_testkit::process::{fake_cohere, free_port, wait_healthy};
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// An LLM that answers after `delay`.
async fn slow_llm(delay: Duration) -> MockServer {
    let llm = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(completion("*stretches* Almost closing time."))
                .set_delay(delay),
        )
        .mount(&llm)
        .await;
    llm
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn wait_exit(child: &mut Child, limit: Duration) -> (std::process::ExitStatus, Duration) {
    let started = Instant::now();
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            return (exit, started.elapsed());
        }
        assert!(started.elapsed() < limit, "the server did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Running {
    child: Child,
    port: u16,
    _store: tempfile::TempDir,
    _cohere: MockServer,
}

async fn serve(llm: &MockServer, vars: &[(&str, &str)], stderr: Stdio) -> Running {
    serve_configured(llm, vars, stderr, Path::new("/nonexistent/ragback.toml")).await
}

/// [`serve`] with the configuration file at `config`.
async fn serve_configured(
    llm: &MockServer,
    vars: &[(&str, &str)],
    stderr: Stdio,
    config: &Path,
) -> Running {
    let cohere = fake_cohere().await;
    let store = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = ragback_testkit::process::ragback_configured(
        env!("CARGO_BIN_EXE_ragback"),
        store.path(),
        Some(&cohere),
        config,
    );
    command
        .env("RAGBACK_LLM__BASE_URL", format!("{}/api/v1", llm.uri()))
        .env("RAGBACK_LLM__API_KEY", "sk-test")
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(stderr);
    for (key, value) in vars {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    wait_healthy(port, &mut child).await;
    Running {
        child,
        port,
        _store: store,
        _cohere: cohere,
    }
}

fn generate(port: u16, request_id: &str) -> tokio::task::JoinHandle<Result<u16, String>> {
    let request_id = request_id.to_owned();
    tokio::spawn(async move {
        ragback_testkit::http_client()
            .post(format!("http://127.0.0.1:{port}/generate"))
            .header("x-request-id", request_id)
            .json(&ragback_testkit::demo_request())
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    })
}

async fn wait_llm_called(llm: &MockServer) {
    while llm.received_requests().await.unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_sigterm_in_flight_requests_finish_new_ones_are_refused_and_the_exit_is_clean() {
    let llm = slow_llm(Duration::from_millis(1_200)).await;
    let mut server = serve(&llm, &[], Stdio::null()).await;
    let in_flight = generate(server.port, "draining-1");
    wait_llm_called(&llm).await;

    sigterm(&server.child);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late = ragback_testkit::http_client()
        .get(format!("http://127.0.0.1:{}/health", server.port))
        .send()
        .await;
    assert!(late.is_err(), "no new connections while draining");

    assert_eq!(
        in_flight.await.unwrap(),
        Ok(200),
        "the in-flight reply was delivered"
    );
    let (exit, _) = wait_exit(&mut server.child, Duration::from_secs(10)).await;
    assert!(exit.success(), "exit status {exit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_drain_timeout_cuts_requests_that_take_longer() {
    let llm = slow_llm(Duration::from_secs(30)).await;
    let mut server = serve(
        &llm,
        &[("RAGBACK_SERVER__DRAIN_TIMEOUT_SECS", "1")],
        Stdio::null(),
    )
    .await;
    let in_flight = generate(server.port, "too-slow-1");
    wait_llm_called(&llm).await;

    sigterm(&server.child);
    let (exit, took) = wait_exit(&mut server.child, Duration::from_secs(10)).await;
    assert!(exit.success(), "exit status {exit}");
    assert!(
        took >= Duration::from_millis(900),
        "it drained first: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "then stopped: {took:?}");
    assert!(
        in_flight.await.unwrap().is_err(),
        "the cut request saw the connection close"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_json_log_line_of_a_request_carries_its_request_id() {
    let llm = MockServer::start().await;
    // One 500 first, so the request logs a retry too.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&llm)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("*nods* Sure.")))
        .mount(&llm)
        .await;
    // A file, not a pipe: nobody reads a pipe while the server runs, and a full one blocks it.
    let log_dir = tempfile::tempdir().unwrap();
    let log_path = log_dir.path().join("ragback.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = serve(
        &llm,
        &[("RAGBACK_LOG_FORMAT", "json"), ("RUST_LOG", "debug")],
        Stdio::from(log),
    )
    .await;
    assert_eq!(generate(server.port, "trace-me-42").await.unwrap(), Ok(200));
    sigterm(&server.child);
    let (exit, _) = wait_exit(&mut server.child, Duration::from_secs(10)).await;
    assert!(exit.success());
    let output = std::fs::read_to_string(&log_path).unwrap();

    let lines: Vec<Value> = output
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let of_request: Vec<&Value> = lines
        .iter()
        .filter(|l| l.to_string().contains("trace-me-42"))
        .collect();
    for message in ["retrying", "reply generated", "finished processing request"] {
        assert!(
            of_request.iter().any(|l| l["fields"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(message)),
            "no `{message}` line with the request id in:\n{output}"
        );
    }
    // Every line emitted inside the generation's request span names it (the only `/generate`).
    let in_generation = |line: &&Value| {
        line["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|s| s["path"] == "/generate"))
    };
    let lines_of_generation: Vec<&Value> = lines.iter().filter(in_generation).collect();
    assert!(lines_of_generation.len() >= 3, "{output}");
    for line in lines_of_generation {
        assert!(line.to_string().contains("trace-me-42"), "{line}");
    }
}

/// The variant of a `/generate` reply for `user`, or the error.
async fn variant_of(port: u16, user: &str) -> Result<String, String> {
    let mut request = ragback_testkit::demo_request();
    request["user"]["id"] = serde_json::json!(user);
    let response = ragback_testkit::http_client()
        .post(format!("http://127.0.0.1:{port}/generate"))
        .json(&request)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    body["variant"]
        .as_str()
        .map(str::to_owned)
        .ok_or(body.to_string())
}

fn sighup(child: &Child) {
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn split_toml(default: u32, b: u32) -> String {
    format!(
        "[variants.b]\nmodel = \"model/b\"\n\n[experiment]\nsalt = \"hup\"\nvariants = {{ default = {default}, b = {b} }}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_split_without_dropping_requests_and_refuses_a_bad_file() {
    let llm = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .respond_with(|request: &wiremock::Request| {
            use wiremock::Respond as _;
            let answer = ragback_testkit::EchoModel {
                text: "*nods* Sure.",
            }
            .respond(request);
            answer.set_delay(Duration::from_millis(800))
        })
        .mount(&llm)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ragback.toml");
    std::fs::write(&config, split_toml(100, 0)).unwrap();
    let log_path = dir.path().join("ragback.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = serve_configured(&llm, &[], Stdio::from(log), &config).await;
    let port = server.port;
    assert_eq!(variant_of(port, "john").await.unwrap(), "default");

    // A request in flight while the split changes finishes, with the variant it started with.
    let before = llm.received_requests().await.unwrap().len();
    let in_flight = tokio::spawn(async move { variant_of(port, "john").await });
    while llm.received_requests().await.unwrap().len() == before {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::fs::write(&config, split_toml(0, 100)).unwrap();
    sighup(&server.child);
    let started = Instant::now();
    loop {
        if variant_of(port, "john").await.unwrap() == "b" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the split never changed: {}",
            std::fs::read_to_string(&log_path).unwrap()
        );
    }
    assert_eq!(in_flight.await.unwrap().unwrap(), "default");

    // Bad files change nothing: a split naming no variant, then not TOML at all.
    for bad in [
        "[experiment]\nvariants = { default = 50, c = 50 }\n",
        "[experiment\nvariants = ",
    ] {
        let refusals = |log: &str| log.matches("the configuration was refused").count();
        // Counted before the signal: the server may log its refusal at once.
        let expected = refusals(&std::fs::read_to_string(&log_path).unwrap()) + 1;
        std::fs::write(&config, bad).unwrap();
        sighup(&server.child);
        let started = Instant::now();
        while refusals(&std::fs::read_to_string(&log_path).unwrap()) < expected {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no error logged for {bad:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            variant_of(port, "john").await.unwrap(),
            "b",
            "after {bad:?}"
        );
    }
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("RAGBACK_EXPERIMENT__VARIANTS__C"), "{log}");
    sigterm(&server.child);
    let (exit, _) = wait_exit(&mut server.child, Duration::from_secs(10)).await;
    assert!(exit.success(), "{exit}: {log}");
}
