//! Attacks on the transport and the input's shape: slow senders, hostile paths, headers and
//! models, unsafe start-up settings, and generated paths and bodies.

use super::*;

/// Opens a connection that sends a `/generate` head announcing `length` bytes of body, then only
/// `sent` of them.
fn trickle(addr: std::net::SocketAddr, length: usize, sent: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    .unwrap();
    stream.write_all(sent).unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_senders_hold_no_generation_slot_and_are_cut_off() {
    let app = TestApp::spawn_with(Setup {
        vars: vec![
            ("RAGBACK_SERVER__MAX_CONCURRENCY".into(), "2".into()),
            ("RAGBACK_SERVER__QUEUE_TIMEOUT_MS".into(), "300".into()),
            ("RAGBACK_SERVER__BODY_TIMEOUT_MS".into(), "1500".into()),
            ("RAGBACK_SERVER__HEADER_TIMEOUT_MS".into(), "1500".into()),
        ],
        ..Setup::default()
    })
    .await;
    app.llm_replies("*nods* Yo.").await;
    let slow: Vec<TcpStream> = (0..6)
        .map(|_| trickle(app.addr, 4_000, b"{\"mess"))
        .collect();
    let mut half_head = TcpStream::connect(app.addr).unwrap();
    half_head
        .write_all(b"POST /generate HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (status, body) = app.post_json("/generate", &demo_request()).await;
    assert_eq!(
        status, 200,
        "a valid request is served while six bodies trickle: {body}"
    );

    let started = Instant::now();
    for mut stream in slow {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"request_timeout\""), "{answer}");
    }
    assert!(started.elapsed() < Duration::from_secs(8));
    half_head
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let closed = half_head.read_to_end(&mut rest);
    assert!(
        closed.is_ok(),
        "the header timeout closes the connection: {closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paths_headers_and_models_get_json_errors() {
    let app = TestApp::spawn().await;
    app.llm_replies("*nods* Yo.").await;
    for path in [
        "/users/%FF%FE/facts",
        "/users/jo%C3hn/facts",
        "/%FFsers/john/facts",
    ] {
        let (status, body) = call(&app, Method::GET, path, None, None).await;
        assert!(status == 400 || status == 404, "{path}: {status} {body}");
        assert!(
            body["error"]["code"].is_string(),
            "{path}: JSON error, got {body}"
        );
    }
    let (status, body) = call(&app, Method::GET, "/users/jo%E2%80%AEhn/facts", None, None).await;
    assert_eq!(status, 422, "a bidi control in an id: {body}");

    let mut request = demo_request();
    request["generation"] = json!({"model": "openai/o1-pro"});
    let (status, body) = app.post_json("/generate", &request).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "generation.model");
    assert!(app.llm_requests().await.is_empty(), "no model was called");

    for hostile in [
        "x".repeat(500),
        "id with spaces".into(),
        "evil\u{202e}id".into(),
    ] {
        let response = app
            .client
            .get(app.url("/health"))
            .header("x-request-id", hostile.as_bytes())
            .send()
            .await
            .unwrap();
        let echoed = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_ne!(echoed.as_bytes(), hostile.as_bytes());
        assert_eq!(echoed.len(), 36, "a fresh UUID: {echoed}");
    }

    let ready = app.get_json("/ready").await;
    let text = ready.to_string();
    assert!(
        !text.contains(app.store_dir.path().to_str().unwrap()),
        "{text}"
    );
    assert!(!text.contains(" facts\""), "no fact count: {text}");
}

#[test]
fn unsafe_configurations_are_refused_at_start_up() {
    let store = tempfile::tempdir().unwrap();
    let serve = |vars: &[(&str, &str)]| {
        let mut command = ragback(&store.path().join("store"), None);
        command
            .arg("serve")
            .env("RAGBACK_SERVER__ADDR", format!("127.0.0.1:{}", free_port()));
        for (k, v) in vars {
            command.env(k, v);
        }
        command.stdout(Stdio::null());
        run(&mut command)
    };
    for (vars, variable) in [
        (
            vec![("RAGBACK_SERVER__API_KEYS", ", ")],
            "RAGBACK_SERVER__API_KEYS",
        ),
        (
            vec![("RAGBACK_SERVER__ADMIN_API_KEYS", "admin,,")],
            "RAGBACK_SERVER__ADMIN_API_KEYS",
        ),
        (
            vec![("RAGBACK_SERVER__API_KEYS", "short-key")],
            "RAGBACK_SERVER__API_KEYS",
        ),
        (
            vec![("RAGBACK_SERVER__ADDR", "0.0.0.0:0")],
            "RAGBACK_SERVER__ADDR",
        ),
    ] {
        let (ok, _, err) = serve(&vars);
        assert!(!ok, "{vars:?} started");
        assert!(err.contains(variable), "{vars:?}: {err}");
    }
}

/// Paths near the routes: encoded, overlong, odd Unicode, traversal.
fn hostile_path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("users".to_owned()),
        Just("%75sers".to_owned()),
        Just("characters".to_owned()),
        Just("%63haracters".to_owned()),
        Just("facts".to_owned()),
        Just("john".to_owned()),
        Just("memories:extract".to_owned()),
        Just("memories%3Aextract".to_owned()),
        Just("generate".to_owned()),
        Just("..".to_owned()),
        Just("%2e%2e".to_owned()),
        Just("%2F".to_owned()),
        Just("%FF%FE".to_owned()),
        Just("%E2%80%AE".to_owned()),
        Just("%00".to_owned()),
        "[a-z0-9_%-]{0,12}",
        "x{200,400}",
    ];
    prop::collection::vec(segment, 1..5).prop_map(|s| format!("/{}", s.join("/")))
}

fn any_body() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,30}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("facts".to_owned()),
                    Just("messages".to_owned()),
                    Just("user".to_owned()),
                    Just("memory".to_owned()),
                    Just("query".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_paths_and_bodies_get_json_4xx_and_change_nothing() {
    let app = TestApp::spawn_with(keyed(&[])).await;
    app.llm_replies("*nods* Yo.").await;
    let before = facts(&app, "users/john").await;
    let strategy = (
        prop_oneof![
            Just(Method::GET),
            Just(Method::POST),
            Just(Method::DELETE),
            Just(Method::PUT)
        ],
        hostile_path(),
        any_body(),
        prop_oneof![Just(None), Just(Some(READER)), Just(Some(LEARNER))],
    );
    let cases: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases,
        ..Default::default()
    });
    let mut generated: Vec<(Method, String, Value, Option<&str>)> = Vec::new();
    for _ in 0..cases {
        let tree = strategy.new_tree(&mut runner).unwrap();
        generated.push(proptest::strategy::ValueTree::current(&tree));
    }
    for (method, path, body, key) in generated {
        let body = (method != Method::GET).then_some(&body);
        let (status, answer) = call(&app, method.clone(), &path, key, body).await;
        assert!(status < 500, "{method} {path} {body:?}: {status} {answer}");
        if status >= 400 {
            assert!(
                answer["error"]["code"].is_string(),
                "{method} {path}: not the JSON error body: {answer}"
            );
        }
    }
    assert_eq!(
        facts(&app, "users/john").await,
        before,
        "the store is unchanged"
    );
    let (_, metrics) = call(&app, Method::GET, "/metrics", Some(READER), None).await;
    let metrics = metrics["not_json"].as_str().unwrap_or_default().to_owned();
    assert!(metrics.contains("ragback_http_requests_total"), "{metrics}");
    assert!(!metrics.contains("status=\"500\""), "{metrics}");
}
