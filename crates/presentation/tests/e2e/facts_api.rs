//! The facts API end to end: real server, real Qdrant Edge, fake Cohere.

use ragback_testkit::{Setup, TestApp, demo_request};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn delete(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.client.delete(app.url(path)).send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_facts_are_idempotent_and_used_by_generate_at_once() {
    let app = TestApp::spawn().await;
    app.llm_replies("*grins* Kit, huh?").await;
    let body =
        json!({"facts": ["Owns a cat named Kit", "Plays the drums", "Owns a cat named Kit"]});

    let (status, first) = app.post_json("/users/john/facts", &body).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (first["added"].as_u64(), first["unchanged"].as_u64()),
        (Some(2), Some(1))
    );
    let ids = first["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], ids[2], "the same fact has the same id");
    let (_, second) = app.post_json("/users/john/facts", &body).await;
    assert_eq!(
        (second["added"].as_u64(), second["unchanged"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(second["ids"], first["ids"]);

    // Provenance: stored through the API, now; adding again keeps the first record.
    let (_, listed) = get(&app, "/users/john/facts").await;
    let facts = listed["facts"].as_array().unwrap();
    assert_eq!(facts.len(), 2, "{listed}");
    for fact in facts {
        assert_eq!(fact["source"], "api", "{fact}");
        let created = fact["created_at"].as_str().unwrap();
        assert!(
            created.starts_with("20") && created.ends_with('Z'),
            "{fact}"
        );
        assert_eq!(fact["updated_at"], fact["created_at"]);
        assert!(fact.get("request_id").is_none(), "{fact}");
    }
    let (status, seeded) = app
        .post_json(
            "/users/john/facts",
            &json!({"facts": ["Plays the drums", "Hates olives"], "source": "seeded"}),
        )
        .await;
    assert_eq!(status, 200, "{seeded}");
    let (_, again) = get(&app, "/users/john/facts").await;
    let source_of = |text: &str| {
        again["facts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["text"] == text)
            .map(|f| (f["source"].clone(), f["created_at"].clone()))
    };
    let drums = facts
        .iter()
        .find(|f| f["text"] == "Plays the drums")
        .unwrap();
    assert_eq!(
        source_of("Plays the drums"),
        Some((json!("api"), drums["created_at"].clone()))
    );
    assert_eq!(source_of("Hates olives").unwrap().0, "seeded");
    let (status, refused) = app
        .post_json(
            "/users/john/facts",
            &json!({"facts": ["Lives in Berlin"], "source": "extracted"}),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["field"], "source", "{refused}");
    let (_, after) = get(&app, "/users/john/facts").await;
    assert_eq!(after["facts"].as_array().unwrap().len(), 3, "nothing added");

    let mut request = demo_request();
    request["messages"] = json!([{"role": "user", "text": "my cat Kit says hi"}]);
    let (status, reply) = app.post_json("/generate", &request).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["facts"][0]["text"], "Owns a cat named Kit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_at_the_cap_gets_409_and_nothing_changes() {
    let app = TestApp::spawn_with(Setup {
        vars: vec![("RAGBACK_STORE__MAX_FACTS_PER_OWNER".into(), "3".into())],
        ..Setup::default()
    })
    .await;
    let (status, body) = app
        .post_json("/users/john/facts", &json!({"facts": ["one", "two"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_json(
            "/users/john/facts",
            &json!({"facts": ["two", "three", "four"]}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "fact_limit_reached", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("user:john has 2 facts and the cap is 3"),
        "{message}"
    );
    let (_, listed) = get(&app, "/users/john/facts").await;
    assert_eq!(listed["facts"].as_array().unwrap().len(), 2, "{listed}");
    let (status, _) = app
        .post_json(
            "/characters/blaze/facts",
            &json!({"facts": ["a", "b", "c"]}),
        )
        .await;
    assert_eq!(status, 200, "another owner has its own cap");
    let (status, _) = app
        .post_json("/users/john/facts", &json!({"facts": ["three"]}))
        .await;
    assert_eq!(status, 200, "up to the cap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_are_listed_in_pages_and_deleted_per_owner() {
    let app = TestApp::spawn().await;
    let texts: Vec<String> = (0..5).map(|i| format!("fact number {i}")).collect();
    app.post_json("/users/john/facts", &json!({"facts": texts}))
        .await;
    let (_, jane) = app
        .post_json("/users/jane/facts", &json!({"facts": ["jane's secret"]}))
        .await;
    app.post_json("/characters/blaze/facts", &json!({"facts": ["tends bar"]}))
        .await;

    let mut listed = Vec::new();
    let mut url = "/users/john/facts?limit=2".to_owned();
    loop {
        let (status, page) = get(&app, &url).await;
        assert_eq!(status, 200, "{page}");
        let facts = page["facts"].as_array().unwrap();
        assert!(facts.len() <= 2);
        for fact in facts {
            assert_eq!(
                (fact["owner"].as_str(), fact["owner_id"].as_str()),
                (Some("user"), Some("john"))
            );
            listed.push(fact["text"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => url = format!("/users/john/facts?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    listed.sort();
    assert_eq!(
        listed,
        (0..5)
            .map(|i| format!("fact number {i}"))
            .collect::<Vec<_>>()
    );
    let (_, chars) = get(&app, "/characters/blaze/facts").await;
    assert_eq!(chars["facts"][0]["text"], "tends bar");

    let janes_id = jane["ids"][0].as_str().unwrap();
    let (status, body) = delete(&app, &format!("/users/john/facts/{janes_id}")).await;
    assert_eq!(status, 404, "john cannot delete jane's fact: {body}");
    assert_eq!(body["error"]["code"], "fact_not_found");
    let (status, _) = delete(&app, &format!("/users/jane/facts/{janes_id}")).await;
    assert_eq!(status, 204);
    let (status, _) = delete(&app, &format!("/users/jane/facts/{janes_id}")).await;
    assert_eq!(status, 404);

    let (status, body) = delete(&app, "/users/john/facts").await;
    assert_eq!((status, body["deleted"].as_u64()), (200, Some(5)));
    let (_, after) = get(&app, "/users/john/facts").await;
    assert_eq!(after, json!({"facts": [], "next_cursor": null}));
    let (_, chars) = get(&app, "/characters/blaze/facts").await;
    assert_eq!(
        chars["facts"].as_array().unwrap().len(),
        1,
        "other owners untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_scores_facts_of_the_named_owners_only() {
    let app = TestApp::spawn().await;
    app.post_json(
        "/users/john/facts",
        &json!({"facts": ["ran the London marathon", "likes jazz"]}),
    )
    .await;
    app.post_json(
        "/users/jane/facts",
        &json!({"facts": ["ran the Berlin marathon"]}),
    )
    .await;

    let (status, body) = app
        .post_json(
            "/facts/search",
            &json!({"user_id": "john", "query": "I ran a marathon", "top_k": 5}),
        )
        .await;

    assert_eq!(status, 200, "{body}");
    let facts = body["facts"].as_array().unwrap();
    assert_eq!(facts[0]["text"], "ran the London marathon");
    assert!(facts[0]["score"].as_f64().unwrap() > 0.3);
    assert!(facts.iter().all(|f| f["owner_id"] == "john"));
    let (_, strict) = app
        .post_json(
            "/facts/search",
            &json!({"user_id": "john", "query": "I ran a marathon", "threshold": 0.99}),
        )
        .await;
    assert_eq!(strict["facts"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let app = TestApp::spawn().await;
    let too_many: Vec<String> = (0..257).map(|i| format!("fact {i}")).collect();
    let cases = [
        (
            "/users/john/facts",
            json!({"facts": ["fine", "  "]}),
            422,
            "facts[1]",
        ),
        (
            "/users/john/facts",
            json!({"facts": too_many}),
            422,
            "facts",
        ),
        ("/users/john/facts", json!({"facts": []}), 422, "facts"),
        ("/users/john/facts", json!({"fact": ["typo"]}), 422, "fact"),
        (
            "/users/bad%0Aid/facts",
            json!({"facts": ["x"]}),
            422,
            "user_id",
        ),
        ("/facts/search", json!({"query": "x"}), 422, "user_id"),
        (
            "/facts/search",
            json!({"user_id": "john", "query": " "}),
            422,
            "query",
        ),
        (
            "/facts/search",
            json!({"user_id": "john", "query": "x", "top_k": 0}),
            422,
            "top_k",
        ),
    ];
    for (path, body, status, field) in cases {
        let (got, response) = app.post_json(path, &body).await;
        assert_eq!(got, status, "{path} {body}: {response}");
        assert_eq!(response["error"]["field"], field, "{response}");
    }
    let (status, response) = app
        .post_json("/robots/r2/facts", &json!({"facts": ["x"]}))
        .await;
    assert_eq!(
        (status, response["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    for bad in [
        "/users/john/facts?limit=0",
        "/users/john/facts?limit=x",
        "/users/john/facts?cursor=nope",
        "/users/john/facts?page=2",
    ] {
        let (status, response) = get(&app, bad).await;
        assert_eq!(status, 422, "{bad}: {response}");
    }
    let (status, response) = delete(&app, "/users/john/facts/not-a-uuid").await;
    assert_eq!(
        (status, response["error"]["field"].as_str()),
        (422, Some("fact_id"))
    );
    let (_, listed) = get(&app, "/users/john/facts").await;
    assert_eq!(listed["facts"], json!([]), "nothing was stored");
    assert_eq!(
        app.cohere.received_requests().await.unwrap().len(),
        0,
        "nothing was embedded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedder_failures_and_absence_are_reported() {
    let app = TestApp::spawn().await;
    Mock::given(method("POST"))
        .and(path("/v2/embed"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({"message": "overloaded"})))
        .with_priority(1)
        .mount(&app.cohere)
        .await;
    let (status, body) = app
        .post_json("/users/john/facts", &json!({"facts": ["x"]}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("embedder_unavailable")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("send the same facts again")
    );

    let none = TestApp::spawn_with(Setup {
        vars: vec![("RAGBACK_EMBEDDER__PROVIDER".into(), "none".into())],
        ..Setup::default()
    })
    .await;
    let (status, body) = none
        .post_json("/users/john/facts", &json!({"facts": ["x"]}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("embedder_not_configured")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("COHERE_API_KEY")
    );
}
