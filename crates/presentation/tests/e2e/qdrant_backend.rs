//! The whole service on the Qdrant server backend (`RAGBACK_STORE__KIND=qdrant`), against a
//! server speaking Qdrant's gRPC protocol (the fake of `ragback-integrations`' tests, backed by
//! Qdrant's own engine).

use ragback_testkit::{Setup, TestApp, demo_request};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_added_through_the_api_are_stored_in_qdrant_and_used_by_generate() {
    let qdrant = ragback_testkit::fake_qdrant::start().await;
    let app = TestApp::spawn_with(Setup {
        vars: vec![
            ("RAGBACK_STORE__KIND".into(), "qdrant".into()),
            ("RAGBACK_STORE__URL".into(), qdrant),
            ("RAGBACK_STORE__COLLECTION".into(), "facts".into()),
        ],
        ..Setup::default()
    })
    .await;
    app.llm_replies("*grins* Kit!").await;

    let (status, body) = app
        .post_json(
            "/users/john/facts",
            &json!({"facts": ["Owns a cat named Kit"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.post_json(
        "/users/jane/facts",
        &json!({"facts": ["Owns a cat named Salt"]}),
    )
    .await;
    let mut request = demo_request();
    request["messages"] = json!([{"role": "user", "text": "my cat Kit is sick"}]);
    request["retrieval"] = json!({"threshold": -1.0, "top_k": 10});

    let (status, reply) = app.post_json("/generate", &request).await;

    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["retrieval"], "ok");
    let texts: Vec<&str> = reply["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["Owns a cat named Kit"], "only john's fact");
    let ready = app.get_json("/ready").await;
    assert_eq!(ready["checks"]["store"]["ok"], true, "{ready}");
    assert!(!ready.to_string().contains("facts\""), "no count: {ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_qdrant_degrades_retrieval_and_fails_readiness() {
    let app = TestApp::spawn_with(Setup {
        vars: vec![
            ("RAGBACK_STORE__KIND".into(), "qdrant".into()),
            ("RAGBACK_STORE__URL".into(), "http://127.0.0.1:9".into()),
            ("RAGBACK_STORE__TIMEOUT_SECS".into(), "1".into()),
        ],
        ..Setup::default()
    })
    .await;
    app.llm_replies("*grins* Yo.").await;

    let (status, reply) = app.post_json("/generate", &demo_request()).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["retrieval"], "degraded");

    let response = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let (status, body) = app
        .post_json("/users/john/facts", &json!({"facts": ["x"]}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("store_unavailable")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_summaries_are_kept_on_the_qdrant_server_for_every_replica() {
    let qdrant = ragback_testkit::fake_qdrant::start().await;
    let replica = || {
        TestApp::spawn_with(Setup {
            vars: vec![
                ("RAGBACK_STORE__KIND".into(), "qdrant".into()),
                ("RAGBACK_STORE__URL".into(), qdrant.clone()),
                ("RAGBACK_STORE__COLLECTION".into(), "facts".into()),
                ("RAGBACK_PROMPT__HISTORY_MESSAGES".into(), "8".into()),
            ],
            ..Setup::default()
        })
    };
    let (one, two) = (replica().await, replica().await);
    one.llm_replies("They talked about boats.").await;
    let messages: Vec<_> = (0..9)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "character" };
            json!({"role": role, "text": format!("message number {i}")})
        })
        .collect();
    let request = json!({
        "messages": messages,
        "user": {"id": "john", "name": "John"},
        "character": {"id": "mira", "name": "Mira", "description": "A captain."},
        "conversation_id": "c1",
    });
    let (status, body) = one.post_json("/generate", &request).await;
    assert_eq!(status, 200, "{body}");

    // Written by the first replica's worker, read through the second.
    let path = "/users/john/conversations/c1/summary";
    let mut summary = serde_json::Value::Null;
    for _ in 0..100 {
        let response = two.client.get(two.url(path)).send().await.unwrap();
        if response.status() == 200 {
            summary = response.json().await.unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(summary["covers"], 2, "{summary}");
    assert_eq!(summary["text"], "They talked about boats.");
    let deleted = two.client.delete(two.url(path)).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let missing = one.client.get(one.url(path)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}
