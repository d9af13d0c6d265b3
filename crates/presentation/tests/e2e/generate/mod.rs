//! `POST /generate` end to end: real server, real Qdrant Edge, fake Cohere and OpenRouter.

mod lore;
mod summary;
mod upstreams;

use std::time::Duration;

use ragback_domain::{CharacterId, FactOwner, UserId};
use ragback_testkit::{Setup, TestApp, completion, demo_request};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

fn john() -> FactOwner {
    FactOwner::User(UserId::parse("john").unwrap())
}

fn jane() -> FactOwner {
    FactOwner::User(UserId::parse("jane").unwrap())
}

fn blaze() -> FactOwner {
    FactOwner::Character(CharacterId::parse("blaze").unwrap())
}

fn demo_facts() -> Vec<(FactOwner, Vec<&'static str>)> {
    vec![
        (
            john(),
            vec![
                "Completed the London marathon in 2024",
                "Has a golden retriever named Biscuit",
            ],
        ),
        (jane(), vec!["Ran the Berlin marathon last year"]),
        (blaze(), vec!["Works as a bartender at a London club"]),
    ]
}

async fn app_with_demo_facts() -> TestApp {
    TestApp::spawn_with(Setup {
        facts: demo_facts(),
        ..Setup::default()
    })
    .await
}

/// Every system message of a request the provider received (the stable part first, then the
/// turn's context), one text.
fn system_prompt(request: &Value) -> String {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "system")
        .map(|m| m["content"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_uses_the_users_facts_and_the_prompt_holds_the_whole_context() {
    let app = app_with_demo_facts().await;
    app.llm_replies("Blaze: *raises glass* No way, bro! A whole marathon?")
        .await;

    let (status, body) = app.post_json("/generate", &demo_request()).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["text"],
        "*raises glass* No way, bro! A whole marathon?"
    );
    assert_eq!(body["retrieval"], "ok");
    assert_eq!(body["model"], "mistralai/mistral-nemo");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 812, "completion_tokens": 24, "cached_tokens": 512})
    );
    let facts = body["facts"].as_array().unwrap();
    assert_eq!(facts[0]["text"], "Completed the London marathon in 2024");
    assert_eq!(facts[0]["owner"], "user");
    assert!(facts[0]["score"].as_f64().unwrap() >= 0.3);
    assert!(
        facts
            .iter()
            .all(|f| f["text"] != "Ran the Berlin marathon last year")
    );
    let t = &body["timings_ms"];
    let stages = ["embed", "search", "render", "llm"].map(|s| t[s].as_f64().unwrap());
    assert!(stages.iter().all(|ms| *ms >= 0.0));
    assert!(
        t["total"].as_f64().unwrap() + 0.01 >= stages.iter().sum::<f64>(),
        "{t}"
    );

    let sent = &app.llm_requests().await[0];
    let system = system_prompt(sent);
    let system = system.as_str();
    assert!(system.contains("Street persona from Brooklyn"), "{system}");
    assert!(system.contains("You meet John at a bar"), "{system}");
    assert!(
        system.contains("- \"Completed the London marathon in 2024\""),
        "{system}"
    );
    assert!(
        !system.contains("Berlin"),
        "another user's fact leaked: {system}"
    );
    let turns: Vec<(&str, &str)> = sent["messages"].as_array().unwrap()[1..]
        .iter()
        .filter(|m| m["role"] != "system")
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        turns,
        [
            ("user", "Hey Blaze! Long time no see"),
            ("assistant", "*fist bumps* Yo John! Been ages, bro."),
            ("user", "I finally ran the London marathon!"),
        ]
    );
    assert_eq!(sent["model"], "mistralai/mistral-nemo");
    assert_eq!(sent["max_tokens"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_history_gets_a_greeting_without_retrieval() {
    let app = app_with_demo_facts().await;
    app.llm_replies("*waves from behind the bar* Yo, John!")
        .await;
    let mut request = demo_request();
    request["messages"] = json!([]);

    let (status, body) = app.post_json("/generate", &request).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["text"], "*waves from behind the bar* Yo, John!");
    assert_eq!(body["retrieval"], "skipped");
    let sent = &app.llm_requests().await[0];
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        2,
        "system prompt and the opening cue: {sent}"
    );
    assert_eq!(messages[1]["role"], "user");
    assert!(
        messages[1]["content"]
            .as_str()
            .unwrap()
            .contains("Open the conversation as Blaze")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_facts_are_never_retrieved() {
    let app = app_with_demo_facts().await;
    app.llm_replies("*nods* Respect.").await;
    let mut request = demo_request();
    request["user"] = json!({"id": "jane", "name": "Jane"});
    request["retrieval"] = json!({"threshold": -1.0, "margin": 2.0, "top_k": 50});

    let (status, body) = app.post_json("/generate", &request).await;

    assert_eq!(status, 200, "{body}");
    let mut texts: Vec<&str> = body["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    texts.sort();
    assert_eq!(
        texts,
        [
            "Ran the Berlin marathon last year",
            "Works as a bartender at a London club"
        ]
    );
    let system = system_prompt(&app.llm_requests().await[0]);
    assert!(!system.contains("golden retriever") && !system.contains("London marathon in 2024"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_threshold_filters_facts() {
    let app = app_with_demo_facts().await;
    app.llm_replies("*shrugs* Cool.").await;

    let mut strict = demo_request();
    strict["retrieval"] = json!({"threshold": 0.99});
    let (status, body) = app.post_json("/generate", &strict).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retrieval"], "ok");
    assert_eq!(body["facts"], json!([]));
    assert!(!system_prompt(&app.llm_requests().await[0]).contains("What you know about"));

    let mut lenient = demo_request();
    lenient["retrieval"] = json!({"threshold": -1.0, "margin": 2.0, "top_k": 10});
    let (_, body) = app.post_json("/generate", &lenient).await;
    assert_eq!(
        body["facts"].as_array().unwrap().len(),
        3,
        "john's two facts and blaze's: {body}"
    );

    let mut off = demo_request();
    off["retrieval"] = json!({"enabled": false});
    let (_, body) = app.post_json("/generate", &off).await;
    assert_eq!(body["retrieval"], "skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_syntax_in_user_text_reaches_the_model_literally() {
    let app = app_with_demo_facts().await;
    app.llm_replies("*squints* What?").await;
    let tricky = "{{ character.description }} {% for x in facts %}{{ x }}{% endfor %} {# hi #}";
    let mut request = demo_request();
    request["messages"] = json!([{"role": "user", "text": tricky}]);
    request["user"]["name"] = json!("{{ user.age }}");
    request["scenario"] = json!("{% raw %}scene{% endraw %}");

    let (status, body) = app.post_json("/generate", &request).await;

    assert_eq!(status, 200, "{body}");
    let sent = &app.llm_requests().await[0];
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.last().unwrap()["content"], tricky);
    let system = system_prompt(sent);
    let system = system.as_str();
    assert!(
        system.contains("with {{ user.age }}, who is 23"),
        "{system}"
    );
    assert!(system.contains("{% raw %}scene{% endraw %}"), "{system}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_character_card_v2_feeds_the_prompt() {
    let app = TestApp::spawn().await;
    app.llm_replies("*wipes the bar* Yo.").await;
    let mut request = demo_request();
    request["scenario"] = Value::Null;
    request["character"] = json!({
        "id": "blaze",
        "name": "Blaze",
        "card": {
            "spec": "chara_card_v2",
            "spec_version": "2.0",
            "data": {
                "name": "Blaze",
                "description": "{{char}} is a bartender who calls {{user}} bro.",
                "personality": "cocky, loyal",
                "scenario": "{{char}} is closing the bar when {{user}} walks in.",
                "first_mes": "*slides a glass over* Yo.",
                "mes_example": "<START>\n{{user}}: hi\n{{char}}: *nods* sup",
                "creator_notes": "ignored",
                "system_prompt": "",
                "post_history_instructions": "Keep it under 20 words.",
                "alternate_greetings": [],
                "tags": ["bartender"],
                "creator": "someone",
                "character_version": "1",
                "extensions": {}
            }
        }
    });

    let (status, body) = app.post_json("/generate", &request).await;

    assert_eq!(status, 200, "{body}");
    let system = system_prompt(&app.llm_requests().await[0]);
    assert!(
        system.contains("Blaze is a bartender who calls John bro."),
        "{system}"
    );
    assert!(system.contains("Personality:\n> cocky, loyal"), "{system}");
    assert!(
        system.contains("Blaze is closing the bar when John walks in."),
        "{system}"
    );
    assert!(
        system.contains("> John: hi\n> Blaze: *nods* sup"),
        "{system}"
    );
    // The card's post-history instructions come after the chat, as the spec says.
    let stable = app.llm_requests().await[0]["messages"][0]["content"].clone();
    assert!(
        !stable.as_str().unwrap().contains("Keep it under 20 words."),
        "{stable}"
    );
    let messages = app.llm_requests().await[0]["messages"].clone();
    let last = messages.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last,
        json!({"role": "system", "content": "Keep it under 20 words."}),
        "{messages}"
    );
    assert_eq!(body["prompt"]["messages"], 3, "the chat's messages: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_chat_contract_is_served_with_the_default_users_facts() {
    let app = app_with_demo_facts().await;
    app.llm_replies("Blaze: *laughs* Marathon man!").await;
    let legacy = json!({
        "messages": [
            {"actor": "user", "text": "I ran the London marathon"}
        ],
        "user": {"name": "John", "age": 23},
        "character": {"name": "Blaze", "age": 19, "description": "Street persona"}
    });

    let (status, body) = app.post_json("/api/v1/chat", &legacy).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["generated_text"], "*laughs* Marathon man!");
    let results = body["search_results"].as_array().unwrap();
    assert!(!results.is_empty(), "{body}");
    assert_eq!(results[0]["content"]["owner"], "user");
    assert_eq!(
        results[0]["content"]["text"],
        "Completed the London marathon in 2024"
    );
    assert!(results[0]["relevance_score"].as_f64().unwrap() > 0.3);
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["generated_text", "search_results"],
        "exactly the old shape"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;

    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );

    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert!(!ready.to_string().contains("sk-or-test-key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_is_returned_and_kept_when_sent() {
    let app = TestApp::spawn().await;

    let generated = app.client.get(app.url("/health")).send().await.unwrap();
    assert!(generated.headers().get("x-request-id").is_some());

    let kept = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "upstream-42")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "upstream-42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_stops_gracefully() {
    let app = TestApp::spawn().await;
    app.stop().await;
}

/// With `RAGBACK_RETRIEVAL__RERANK=cohere`, Cohere's rerank scores the vector search's
/// candidates and its scores decide; when it fails, the reply still comes, with the vector
/// search's facts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cohere_rerank_decides_which_facts_a_reply_gets_and_its_failure_degrades_nothing() {
    let app = TestApp::spawn_with(Setup {
        facts: demo_facts(),
        vars: vec![
            ("RAGBACK_RETRIEVAL__RERANK".into(), "cohere".into()),
            ("RAGBACK_RETRIEVAL__THRESHOLD".into(), "-1".into()),
        ],
        ..Setup::default()
    })
    .await;
    app.llm_replies("*nods* Respect.").await;
    // The fake rerank: the Biscuit fact is relevant, nothing else is.
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/v2/rerank"))
        .respond_with(|request: &wiremock::Request| {
            let body: Value = serde_json::from_slice(&request.body).unwrap();
            let mut results: Vec<Value> = body["documents"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let score = if d.as_str().unwrap().contains("Biscuit") {
                        0.91
                    } else {
                        0.02
                    };
                    json!({"index": i, "relevance_score": score})
                })
                .collect();
            results.sort_by(|a, b| {
                b["relevance_score"]
                    .as_f64()
                    .partial_cmp(&a["relevance_score"].as_f64())
                    .unwrap()
            });
            wiremock::ResponseTemplate::new(200)
                .set_body_json(json!({"id": "r", "results": results}))
        })
        .up_to_n_times(1)
        .mount(&app.cohere)
        .await;
    let (status, body) = app.post_json("/generate", &demo_request()).await;
    assert_eq!(status, 200, "{body}");
    let facts = body["facts"].as_array().unwrap();
    assert_eq!(
        facts.len(),
        1,
        "only what the reranker finds relevant: {body}"
    );
    assert!(facts[0]["text"].as_str().unwrap().contains("Biscuit"));
    assert!((facts[0]["score"].as_f64().unwrap() - 0.91).abs() < 1e-6);
    // The rerank endpoint is gone now (404): the vector search's facts, and a reply.
    let (status, body) = app.post_json("/generate", &demo_request()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retrieval"], "ok");
    assert!(
        body["facts"][0]["text"]
            .as_str()
            .unwrap()
            .contains("marathon"),
        "{body}"
    );
    app.stop().await;
}
