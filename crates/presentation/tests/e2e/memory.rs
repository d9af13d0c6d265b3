//! Memory extraction end to end: the real server and Qdrant Edge store, a fake OpenRouter
//! scripted per prompt, the fake Cohere's bag-of-words embeddings.

use ragback_testkit::{TestApp, completion, demo_request};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, ResponseTemplate};

/// The fake model answers the extraction prompt with `answer`.
async fn extraction_answers(app: &TestApp, answer: &Value) {
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .and(body_string_contains("What should be remembered?"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(&answer.to_string())))
        .mount(&app.llm)
        .await;
}

fn said(text: &str, dry_run: bool) -> Value {
    json!({
        "messages": [
            {"role": "character", "text": "*wipes the counter* Long time no see. Where have you been?"},
            {"role": "user", "text": text}
        ],
        "character_id": "blaze",
        "dry_run": dry_run
    })
}

async fn facts_of_john(app: &TestApp) -> Vec<Value> {
    let response = app
        .client
        .get(app.url("/users/john/facts"))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    body["facts"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_fact_is_stored_with_its_provenance_and_used_by_the_next_turn() {
    let app = TestApp::spawn().await;
    extraction_answers(
        &app,
        &json!({"facts": [{"owner": "user", "text": "Moved to Lisbon last month", "kind": "fact"}]}),
    )
    .await;
    let message = "I moved to Lisbon last month, still unpacking";

    let (status, dry) = app
        .post_json("/users/john/memories:extract", &said(message, true))
        .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["decisions"][0]["action"], "add", "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert!(
        facts_of_john(&app).await.is_empty(),
        "a dry run stores nothing"
    );

    let (status, learned) = app
        .post_json("/users/john/memories:extract", &said(message, false))
        .await;
    assert_eq!(status, 200, "{learned}");
    let decision = &learned["decisions"][0];
    assert_eq!(
        (
            &decision["action"],
            &decision["text"],
            &decision["owner_id"]
        ),
        (
            &json!("add"),
            &json!("Moved to Lisbon last month"),
            &json!("john")
        ),
        "{learned}"
    );
    let facts = facts_of_john(&app).await;
    assert_eq!(facts.len(), 1, "{facts:?}");
    assert_eq!(facts[0]["source"], "extracted");
    assert_eq!(facts[0]["message_hash"], learned["message_hash"]);
    assert!(
        facts[0]["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{}",
        facts[0]
    );
    assert_eq!(facts[0]["id"], decision["fact_id"]);

    // The same message again (a retried request): the model is not asked, nothing changes.
    let asked = app.llm_requests().await.len();
    let (status, again) = app
        .post_json("/users/john/memories:extract", &said(message, false))
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["already_extracted"], true, "{again}");
    assert_eq!(app.llm_requests().await.len(), asked);
    assert_eq!(facts_of_john(&app).await.len(), 1);

    // The next turn retrieves what was learned.
    app.llm_replies("*grins* Lisbon suits you.").await;
    let mut request = demo_request();
    request["messages"] =
        json!([{"role": "user", "text": "my first month in Lisbon since I moved, so sunny"}]);
    let (status, reply) = app.post_json("/generate", &request).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["facts"][0]["text"], "Moved to Lisbon last month",
        "{reply}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answers_and_bad_requests_change_nothing() {
    let app = TestApp::spawn().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("Sure! The user moved.")))
        .mount(&app.llm)
        .await;
    let (status, body) = app
        .post_json(
            "/users/john/memories:extract",
            &said("I moved to Lisbon", false),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "llm_invalid_output", "{body}");
    assert!(facts_of_john(&app).await.is_empty());
    let metrics = app.metrics().await;
    let prefix = "ragback_memory_extractions_total{outcome=\"invalid_output\"}";
    assert!(
        ragback_testkit::metric_sample(&metrics, prefix).is_some(),
        "counted: {metrics}"
    );

    for (body, field) in [
        (json!({"messages": [], "bogus": 1}), None),
        (
            json!({"messages": [{"role": "user", "text": ""}]}),
            Some("messages[0].text"),
        ),
        (
            json!({"messages": [], "character_id": "bad\nid"}),
            Some("character_id"),
        ),
    ] {
        let (status, answer) = app.post_json("/users/john/memories:extract", &body).await;
        assert_eq!(status, 422, "{body} -> {answer}");
        if let Some(field) = field {
            assert_eq!(answer["error"]["field"], field, "{answer}");
        }
    }
    let (status, answer) = app
        .post_json("/users/bad%0Aid/memories:extract", &said("hi", false))
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(facts_of_john(&app).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_with_memory_extract_learns_after_the_reply() {
    let app = TestApp::spawn().await;
    extraction_answers(
        &app,
        &json!({"facts": [{"owner": "user", "text": "Adopted a parrot named Pico", "kind": "fact"}]}),
    )
    .await;
    app.llm_replies("*raises an eyebrow* A parrot?").await;
    let mut request = demo_request();
    request["messages"] = json!([{"role": "user", "text": "I adopted a parrot named Pico today"}]);
    request["memory"] = json!({"extract": true});
    let (status, reply) = app.post_json("/generate", &request).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["text"], "*raises an eyebrow* A parrot?");

    let mut learned = Vec::new();
    for _ in 0..100 {
        learned = facts_of_john(&app).await;
        if !learned.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(learned.len(), 1, "learned after the reply: {learned:?}");
    assert_eq!(learned[0]["text"], "Adopted a parrot named Pico");
    assert_eq!(learned[0]["source"], "extracted");

    // Without the flag (and RAGBACK_MEMORY__AUTO off), nothing is extracted.
    let asked = app.llm_requests().await.len();
    request["messages"] =
        json!([{"role": "user", "text": "Pico learned a new word, parrot genius"}]);
    request["memory"] = json!({"extract": false});
    let (status, reply) = app.post_json("/generate", &request).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["facts"][0]["text"], "Adopted a parrot named Pico",
        "{reply}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        app.llm_requests().await.len(),
        asked + 1,
        "the reply's call only"
    );
    let (status, bad) = app
        .post_json("/generate", &json!({"memory": {"extract": "yes"}}))
        .await;
    assert_eq!(status, 422, "{bad}");
}

/// A fake OpenRouter answering each dialogue of `data/memory_eval.jsonl` as a labeller would;
/// `wrong` makes it store the joke of m12 as a fact and miss m10's.
async fn memory_oracle(wrong: bool) -> wiremock::MockServer {
    let llm = wiremock::MockServer::start().await;
    let facts = |facts: Value| json!({ "facts": facts }).to_string();
    let mut extraction: Vec<(&str, String)> = vec![
        (
            "rescue greyhound",
            facts(json!([{"owner": "user", "text": "Has a rescue greyhound named Pixel"}])),
        ),
        (
            "from London to Berlin",
            facts(json!([{"owner": "user", "text": "Lives in Berlin"}])),
        ),
        (
            "still can't believe it",
            facts(
                json!([{"owner": "user", "text": "Dog Biscuit passed away", "kind": "retraction"}]),
            ),
        ),
        ("learn the guitar", facts(json!([]))),
        ("million dollars", facts(json!([]))),
        ("sounds cold", facts(json!([]))),
        (
            "night shift as a nurse",
            facts(json!([{"owner": "user", "text": "Works as a nurse"}])),
        ),
        (
            "sister Mia",
            facts(json!([{"owner": "user", "text": "Has a sister named Mia"}])),
        ),
        (
            "senior developer",
            facts(json!([{"owner": "user", "text": "Works as a senior developer"}])),
        ),
        (
            "sold my car",
            facts(json!([
                {"owner": "user", "text": "Sold the car", "kind": "retraction"},
                {"owner": "user", "text": "Cycles everywhere"}
            ])),
        ),
    ];
    if wrong {
        extraction.push(("vegetarian", facts(json!([]))));
        extraction.push((
            "napper",
            facts(json!([{"owner": "user", "text": "Is a professional napper"}])),
        ));
    } else {
        extraction.push((
            "vegetarian",
            facts(json!([{"owner": "user", "text": "Is vegetarian"}])),
        ));
        extraction.push(("napper", facts(json!([]))));
    }
    // Reconciliation: the new statement is in the prompt; the first stored fact is the one.
    let reconcile = [
        (
            "<<<Lives in Berlin>>>",
            json!({"action": "update", "fact": 1}),
        ),
        (
            "<<<Dog Biscuit passed away>>>",
            json!({"action": "delete", "fact": 1}),
        ),
        (
            "<<<Works as a senior developer>>>",
            json!({"action": "update", "fact": 1}),
        ),
        ("<<<Sold the car>>>", json!({"action": "delete", "fact": 1})),
        ("<<<Works as a nurse>>>", json!({"action": "noop"})),
        ("<<<Cycles everywhere>>>", json!({"action": "add"})),
    ];
    for (needle, answer) in reconcile {
        Mock::given(method("POST"))
            .and(body_string_contains("[Stored facts]"))
            .and(body_string_contains(needle))
            .respond_with(ResponseTemplate::new(200).set_body_json(completion(&answer.to_string())))
            .with_priority(1)
            .mount(&llm)
            .await;
    }
    for (needle, answer) in extraction {
        Mock::given(method("POST"))
            .and(body_string_contains("What should be remembered?"))
            .and(body_string_contains(needle))
            .respond_with(ResponseTemplate::new(200).set_body_json(completion(&answer)))
            .mount(&llm)
            .await;
    }
    llm
}

fn eval_memory(llm: &wiremock::MockServer) -> (bool, Value, String) {
    let store = tempfile::tempdir().unwrap();
    let (ok, out, err) = ragback_testkit::process::run(
        crate::ragback(store.path(), None)
            .args(["eval", "memory", "--json"])
            .env("RAGBACK_LLM__BASE_URL", format!("{}/api/v1", llm.uri()))
            .env("RAGBACK_LLM__API_KEY", "sk-or-test-key")
            .env("RAGBACK_LLM__PROVIDER", "openai"),
    );
    (ok, serde_json::from_str(&out).unwrap_or(Value::Null), err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_memory_scores_a_labeller_fully_and_a_careless_model_less() {
    let (ok, report, err) = eval_memory(&memory_oracle(false).await);
    assert!(ok, "{err}");
    assert_eq!(report["dialogues"], 12, "{report}");
    assert_eq!(report["failed"], 0, "{err}");
    assert_eq!(report["precision"], 1.0, "{report}\n{err}");
    assert_eq!(report["recall"], 1.0, "{report}\n{err}");
    assert_eq!(report["decision_accuracy"], 1.0, "{report}\n{err}");
    assert_eq!(report["false_memory_rate"], 0.0, "{report}\n{err}");

    let (ok, report, err) = eval_memory(&memory_oracle(true).await);
    assert!(ok, "{err}");
    assert_eq!(
        report["false_memory_rate"], 0.2,
        "one of five quiet dialogues: {report}"
    );
    assert_eq!(report["recall"], 5.0 / 6.0, "m10 missed: {report}");
    assert_eq!(report["precision"], 5.0 / 6.0, "the nap stored: {report}");
}
