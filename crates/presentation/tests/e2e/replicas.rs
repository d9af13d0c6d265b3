//! Several ragback replicas on one Qdrant server (the testkit's fake: Qdrant's engine behind the
//! real gRPC API), as `docker compose --profile replicas` and the Kubernetes example run them:
//! what one replica writes the other serves, a user gets the same variant from both, a replica
//! that goes away takes no acknowledged write with it, and an old collection is migrated once
//! when both start on it together — at start-up, before either says it is ready.

use ragback_testkit::{Setup, TestApp, demo_request};
use serde_json::{Value, json};

/// A replica on the server at `url`, collection `facts`, with a 50/50 experiment.
async fn replica(url: &str) -> TestApp {
    TestApp::spawn_with(Setup {
        vars: [
            ("RAGBACK_STORE__KIND", "qdrant"),
            ("RAGBACK_STORE__URL", url),
            ("RAGBACK_STORE__COLLECTION", "facts"),
            ("RAGBACK_VARIANTS__B__TEMPERATURE", "0.3"),
            ("RAGBACK_EXPERIMENT__SALT", "replicas"),
            ("RAGBACK_EXPERIMENT__VARIANTS__DEFAULT", "50"),
            ("RAGBACK_EXPERIMENT__VARIANTS__B", "50"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        ..Setup::default()
    })
    .await
}

/// Waits until `/ready` says yes (the store prepared at start-up).
async fn ready(app: &TestApp) -> Value {
    for _ in 0..200 {
        let ready = app.get_json("/ready").await;
        if ready["status"] == "ready" {
            return ready;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{} never got ready", app.url("/ready"));
}

fn texts(reply: &Value) -> Vec<String> {
    reply["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_store_and_one_split() {
    let (url, seen) = ragback_testkit::fake_qdrant::start_seen().await;
    // A collection written before lexical vectors, which both replicas start on together.
    let old: Vec<String> = (0..40).map(|i| format!("Old fact number {i}")).collect();
    ragback_testkit::fake_qdrant::old_collection(
        &url,
        "facts",
        &old.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    let (a, b) = tokio::join!(replica(&url), replica(&url));
    ready(&a).await;
    ready(&b).await;
    assert_eq!(
        seen.starting("write facts update_vectors").len(),
        1,
        "the 40 old facts got their words once: {:?}",
        seen.lines()
    );
    assert_eq!(seen.starting("drop facts__migration_lock").len(), 1);

    // The sticky split: the same user gets the same variant from either replica. (The old
    // collection's vectors are 2-dimensional, not the test embedder's: retrieval stays off.)
    a.llm_replies("*grins* Yo.").await;
    b.llm_replies("*grins* Yo.").await;
    let mut request = demo_request();
    request["retrieval"] = json!({"enabled": false});
    let mut variants = std::collections::BTreeSet::new();
    for user in ["john", "jane", "kai", "lena", "ana", "mira", "odo", "zed"] {
        request["user"]["id"] = json!(user);
        let (sa, ra) = a.post_json("/generate", &request).await;
        let (sb, rb) = b.post_json("/generate", &request).await;
        assert_eq!((sa, sb), (200, 200), "{ra} {rb}");
        assert_eq!(ra["variant"], rb["variant"], "{user}: {ra} {rb}");
        variants.insert(ra["variant"].as_str().unwrap().to_owned());
    }
    assert_eq!(variants.len(), 2, "both variants drawn: {variants:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_replica_acknowledged_the_other_serves_after_it_is_gone() {
    let url = ragback_testkit::fake_qdrant::start().await;
    let (a, b) = tokio::join!(replica(&url), replica(&url));
    ready(&a).await;
    ready(&b).await;
    let (status, body) = a
        .post_json(
            "/users/john/facts",
            &json!({"facts": ["Owns a cat named Kit"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The replica that acknowledged the write goes away.
    a.stop().await;
    b.llm_replies("*grins* Kit!").await;
    let mut request = demo_request();
    request["messages"] = json!([{"role": "user", "text": "my cat Kit is sick"}]);
    request["retrieval"] = json!({"threshold": -1.0, "top_k": 10});
    let (status, reply) = b.post_json("/generate", &request).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(texts(&reply), ["Owns a cat named Kit"]);
    let listed = b.get_json("/users/john/facts").await;
    assert_eq!(
        listed["facts"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
}
