//! The fault matrix: every way an upstream fails, with its asserted outcome, against one running
//! server that must keep serving after each.

use std::time::{Duration, Instant};

use ragback_domain::{FactOwner, UserId};
use ragback_testkit::fault_upstream::{Fault, FaultUpstream};
use ragback_testkit::{Setup, TestApp, demo_request};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

/// What a case must end in.
#[derive(Debug)]
enum Outcome {
    /// 200 after this many upstream connections.
    Reply { connections: usize },
    /// This status and error code.
    Error { status: u16, code: &'static str },
}

struct Case {
    name: &'static str,
    script: Vec<Fault>,
    outcome: Outcome,
}

fn cases() -> Vec<Case> {
    use Outcome::{Error, Reply};
    let ok = || Fault::ok("*grins* Nice one, bro.");
    vec![
        Case {
            name: "429 with Retry-After, then a reply",
            script: vec![Fault::status_retry_after(429, 1), ok()],
            outcome: Reply { connections: 2 },
        },
        Case {
            name: "429 without Retry-After, then a reply",
            script: vec![Fault::status(429), ok()],
            outcome: Reply { connections: 2 },
        },
        Case {
            name: "429 every time",
            script: vec![Fault::status(429)],
            outcome: Error {
                status: 502,
                code: "llm_rate_limited",
            },
        },
        Case {
            name: "500, then a reply",
            script: vec![Fault::status(500), ok()],
            outcome: Reply { connections: 2 },
        },
        Case {
            name: "500 every time",
            script: vec![Fault::status(500)],
            outcome: Error {
                status: 502,
                code: "llm_unavailable",
            },
        },
        Case {
            name: "503 every time",
            script: vec![Fault::status_retry_after(503, 0)],
            outcome: Error {
                status: 502,
                code: "llm_unavailable",
            },
        },
        Case {
            name: "connection reset mid-body, then a reply",
            script: vec![Fault::ResetMidBody, ok()],
            outcome: Reply { connections: 2 },
        },
        Case {
            name: "connection reset mid-body every time",
            script: vec![Fault::ResetMidBody],
            outcome: Error {
                status: 502,
                code: "llm_unavailable",
            },
        },
        Case {
            name: "malformed JSON every time",
            script: vec![Fault::Respond(
                200,
                Vec::new(),
                "{\"choices\": [{\"mess".into(),
            )],
            outcome: Error {
                status: 502,
                code: "llm_unavailable",
            },
        },
        Case {
            name: "200 with an error body, then a reply",
            script: vec![
                Fault::body(json!({"error": {"message": "Provider returned error", "code": 502}})),
                ok(),
            ],
            outcome: Reply { connections: 2 },
        },
        Case {
            name: "401 from the provider (not retried)",
            script: vec![Fault::status(401)],
            outcome: Error {
                status: 502,
                code: "llm_rejected",
            },
        },
        Case {
            name: "stall past the deadline",
            script: vec![Fault::Stall],
            outcome: Error {
                status: 504,
                code: "llm_timeout",
            },
        },
    ]
}

/// A good turn still works: the server kept serving.
async fn still_serving(app: &TestApp, upstream: &FaultUpstream) {
    upstream.script(vec![Fault::ok("*waves* Still here.")]);
    let (status, body) = app.post_json("/generate", &demo_request()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["text"], "*waves* Still here.");
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

async fn generate(app: &TestApp, timeout_ms: u64) -> (u16, Value, Duration) {
    let started = Instant::now();
    let response = app
        .client
        .post(app.url("/generate"))
        .header("x-request-timeout", timeout_ms.to_string())
        .json(&demo_request())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_llm_fault_has_its_outcome_and_the_server_keeps_serving() {
    let upstream = FaultUpstream::start().await;
    let app = TestApp::spawn_with(Setup {
        vars: vec![
            ("RAGBACK_LLM__BASE_URL".into(), upstream.base_url.clone()),
            ("RAGBACK_LLM__MAX_ATTEMPTS".into(), "3".into()),
        ],
        facts: vec![(
            FactOwner::User(UserId::parse("john").unwrap()),
            vec!["John ran the London marathon"],
        )],
        ..Setup::default()
    })
    .await;

    for case in cases() {
        upstream.script(case.script.clone());
        let (status, body, took) = generate(&app, 3_000).await;
        match case.outcome {
            Outcome::Reply { connections } => {
                assert_eq!(status, 200, "{}: {body}", case.name);
                assert_eq!(body["text"], "*grins* Nice one, bro.", "{}", case.name);
                assert_eq!(upstream.connections(), connections, "{}", case.name);
                assert_eq!(body["retrieval"], "ok", "{}", case.name);
            }
            Outcome::Error {
                status: expected,
                code,
            } => {
                assert_eq!(status, expected, "{}: {body}", case.name);
                assert_eq!(body["error"]["code"], code, "{}: {body}", case.name);
                assert!(
                    body["error"]["request_id"].is_string(),
                    "{}: {body}",
                    case.name
                );
                // The facts found before the failure are reported with it.
                assert_eq!(body["retrieval"]["status"], "ok", "{}: {body}", case.name);
            }
        }
        if case.name.starts_with("429 with Retry-After") {
            assert!(
                took >= Duration::from_secs(1),
                "Retry-After honoured: {took:?}"
            );
        }
        if case.name.starts_with("stall") {
            assert!(
                took < Duration::from_millis(3_900),
                "the deadline held: {took:?}"
            );
        }
        if case.name.starts_with("401") {
            assert_eq!(upstream.connections(), 1, "a refusal is not retried");
        }
        still_serving(&app, &upstream).await;
    }

    // Nothing listens: connection refused, retried, then a 502.
    upstream.refuse();
    let (status, body, _) = generate(&app, 3_000).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "llm_unavailable");
    upstream.listen().await;
    still_serving(&app, &upstream).await;

    // The embedder is down: the reply comes without facts, and says so.
    Mock::given(method("POST"))
        .and(path("/v2/embed"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"message": "internal"})))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&app.cohere)
        .await;
    let (status, body, _) = generate(&app, 3_000).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retrieval"], "degraded");
    assert_eq!(body["facts"], json!([]));
    still_serving(&app, &upstream).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unavailable_store_degrades_retrieval_and_the_server_keeps_serving() {
    let upstream = FaultUpstream::start().await;
    let app = TestApp::spawn_with(Setup {
        vars: vec![
            ("RAGBACK_LLM__BASE_URL".into(), upstream.base_url.clone()),
            ("RAGBACK_STORE__KIND".into(), "qdrant".into()),
            // Nothing listens there.
            ("RAGBACK_STORE__URL".into(), "http://127.0.0.1:9".into()),
        ],
        ..Setup::default()
    })
    .await;
    for _ in 0..2 {
        let (status, body) = app.post_json("/generate", &demo_request()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["retrieval"], "degraded");
        assert_eq!(body["text"], "*nods* fine");
    }
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "readiness tells the store is down");
}
