//! Variants end to end: the real server and Qdrant Edge store, a fake OpenRouter that answers as
//! the model asked for. Each variant's model, sampling, routing and template reach the upstream,
//! whole and streamed; replies and metrics say which variant wrote them; the split is sticky
//! across turns and restarts; an unknown variant is a 422 that calls nothing.

use ragback_testkit::{EchoModel, Setup, TestApp, demo_request, sse_events};
use serde_json::{Value, json};
use wiremock::Mock;
use wiremock::matchers::{method, path};

/// b's template: one line that says it is b's.
const B_TEMPLATE: &str = "{% block system %}TEMPLATE-B. You are {{ character.name }}, talking to {{ user.name }}.{% endblock %}";

/// Variables of a ragback with a default and a `b` variant, split `default_share` to the default.
fn variant_vars(template_dir: &std::path::Path, default_share: u32) -> Vec<(String, String)> {
    let template = template_dir.join("b.tera");
    std::fs::write(&template, B_TEMPLATE).unwrap();
    [
        ("RAGBACK_LLM__MODEL", "mistralai/mistral-nemo".to_owned()),
        ("RAGBACK_LLM__TEMPERATURE", "0.8".to_owned()),
        (
            "RAGBACK_VARIANTS__B__MODEL",
            "anthropic/claude-3.5-haiku".to_owned(),
        ),
        ("RAGBACK_VARIANTS__B__TEMPERATURE", "0.3".to_owned()),
        ("RAGBACK_VARIANTS__B__MAX_TOKENS", "77".to_owned()),
        (
            "RAGBACK_VARIANTS__B__TEMPLATE",
            template.display().to_string(),
        ),
        (
            "RAGBACK_VARIANTS__B__ROUTING__FALLBACK_MODELS",
            "openai/gpt-4o-mini".to_owned(),
        ),
        (
            "RAGBACK_VARIANTS__B__ROUTING__REASONING_MAX_TOKENS",
            "64".to_owned(),
        ),
        ("RAGBACK_EXPERIMENT__SALT", "e2e-salt".to_owned()),
        (
            "RAGBACK_EXPERIMENT__VARIANTS__DEFAULT",
            default_share.to_string(),
        ),
        (
            "RAGBACK_EXPERIMENT__VARIANTS__B",
            (100 - default_share).to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn app(vars: Vec<(String, String)>) -> TestApp {
    let app = TestApp::spawn_with(Setup {
        vars,
        ..Setup::default()
    })
    .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .respond_with(EchoModel {
            text: "*grins* No way, bro!",
        })
        .mount(&app.llm)
        .await;
    app
}

fn request(user: &str, variant: Option<&str>, stream: bool) -> Value {
    let mut request = demo_request();
    request["user"]["id"] = json!(user);
    request["stream"] = json!(stream);
    if let Some(variant) = variant {
        request["variant"] = json!(variant);
    }
    request
}

/// The reply's JSON, or the streamed `done` event's.
async fn reply(app: &TestApp, request: &Value) -> Value {
    let response = app.post("/generate", request).await;
    assert_eq!(response.status(), 200);
    if request["stream"] == json!(true) {
        let events = sse_events(&response.text().await.unwrap());
        let (_, done) = events.iter().find(|(name, _)| name == "done").unwrap();
        done.clone()
    } else {
        response.json().await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_variant_sends_its_model_sampling_routing_and_template_whole_and_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let mut vars = variant_vars(dir.path(), 50);
    vars.push(("RAGBACK_LLM__DIALECT".into(), "openrouter".into()));
    let app = app(vars).await;

    for stream in [false, true] {
        let b = reply(&app, &request("john", Some("b"), stream)).await;
        assert_eq!(b["variant"], "b", "stream {stream}");
        assert_eq!(
            b["model"], "anthropic/claude-3.5-haiku",
            "the resolved model"
        );
        let default = reply(&app, &request("john", Some("default"), stream)).await;
        assert_eq!(default["variant"], "default");
        assert_eq!(default["model"], "mistralai/mistral-nemo");
    }

    let bodies = app.llm_requests().await;
    assert_eq!(bodies.len(), 4);
    for (body, stream) in [(&bodies[0], false), (&bodies[2], true)] {
        assert_eq!(body["stream"], json!(stream));
        assert_eq!(body["model"], "anthropic/claude-3.5-haiku");
        assert_eq!(body["temperature"], json!(0.3));
        assert_eq!(body["max_tokens"], json!(77));
        assert_eq!(
            body["models"],
            json!(["anthropic/claude-3.5-haiku", "openai/gpt-4o-mini"])
        );
        assert_eq!(body["reasoning"], json!({"max_tokens": 64}));
        let system = body["messages"][0]["content"].as_str().unwrap();
        assert_eq!(system, "TEMPLATE-B. You are Blaze, talking to John.");
    }
    for (body, stream) in [(&bodies[1], false), (&bodies[3], true)] {
        assert_eq!(body["stream"], json!(stream));
        assert_eq!(body["model"], "mistralai/mistral-nemo");
        assert_eq!(body["temperature"], json!(0.8));
        assert!(
            body.get("models").is_none() && body.get("reasoning").is_none(),
            "{body}"
        );
        let system = body["messages"][0]["content"].as_str().unwrap();
        assert!(
            system.starts_with("You are Blaze"),
            "the default template: {system}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_is_not_openrouter_gets_no_routing_fields() {
    let dir = tempfile::tempdir().unwrap();
    // The fake's address is not openrouter.ai: `auto` speaks plain OpenAI.
    let app = app(variant_vars(dir.path(), 50)).await;
    for stream in [false, true] {
        assert_eq!(
            reply(&app, &request("john", Some("b"), stream)).await["variant"],
            "b"
        );
    }
    let bodies = app.llm_requests().await;
    assert_eq!(bodies.len(), 2);
    for body in &bodies {
        assert_eq!(body["model"], "anthropic/claude-3.5-haiku");
        for field in ["models", "provider", "reasoning"] {
            assert!(body.get(field).is_none(), "{field}: {body}");
        }
    }
    let headers = app.llm.received_requests().await.unwrap();
    assert!(headers.iter().all(|r| r.headers.get("x-title").is_none()));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_split_is_sticky_across_turns_and_restarts_and_an_override_wins() {
    let dir = tempfile::tempdir().unwrap();
    let users: Vec<String> = (0..40).map(|i| format!("user-{i}")).collect();
    let mut first = Vec::new();
    {
        let app = app(variant_vars(dir.path(), 50)).await;
        for user in &users {
            let once = reply(&app, &request(user, None, false)).await["variant"].clone();
            let again = reply(&app, &request(user, None, true)).await["variant"].clone();
            assert_eq!(once, again, "{user} keeps their variant");
            first.push(once);
        }
        let b = first.iter().filter(|v| *v == "b").count();
        assert!((8..=32).contains(&b), "{b} of 40 in b with a 50/50 split");
        // The override wins over the split, for a user in either variant.
        for (user, assigned) in users.iter().zip(&first) {
            let other = if assigned == "b" { "default" } else { "b" };
            assert_eq!(
                reply(&app, &request(user, Some(other), false)).await["variant"],
                other
            );
        }
        app.stop().await;
    }
    let restarted = app(variant_vars(dir.path(), 50)).await;
    for (user, before) in users.iter().zip(&first) {
        assert_eq!(
            &reply(&restarted, &request(user, None, false)).await["variant"],
            before,
            "{user} after a restart"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_variant_is_a_422_naming_it_and_calls_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(variant_vars(dir.path(), 50)).await;
    for stream in [false, true] {
        let (status, body) = app
            .post_json("/generate", &request("john", Some("shiny-new"), stream))
            .await;
        assert_eq!(status, 422, "stream {stream}: {body}");
        assert_eq!(body["error"]["code"], "invalid_field");
        assert_eq!(body["error"]["field"], "variant");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("`shiny-new`"), "{message}");
        assert!(message.contains("b, default"), "{message}");
    }
    let (status, _) = app
        .post_json(
            "/generate",
            &request("john", Some(&"x".repeat(5_000)), false),
        )
        .await;
    assert_eq!(status, 422);
    assert!(app.llm_requests().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_carry_the_variant_label() {
    let dir = tempfile::tempdir().unwrap();
    // Everyone in b by the split; anonymous users get the default.
    let app = app(variant_vars(dir.path(), 0)).await;
    assert_eq!(
        reply(&app, &request("john", None, false)).await["variant"],
        "b"
    );
    let mut anonymous = request("john", None, false);
    anonymous["user"].as_object_mut().unwrap().remove("id");
    assert_eq!(reply(&app, &anonymous).await["variant"], "default");

    let metrics = app.metrics().await;
    // The recorder is the process's: other tests count too.
    for prefix in [
        r#"ragback_generations_total{outcome="ok",variant="b"} "#,
        r#"ragback_generations_total{outcome="ok",variant="default"} "#,
    ] {
        let count = ragback_testkit::metric_sample(&metrics, prefix)
            .unwrap_or_else(|| panic!("no `{prefix}` in:\n{metrics}"));
        assert!(count >= 1.0, "{prefix}{count}");
    }
    assert!(
        metrics.contains(r#"ragback_stage_duration_seconds_count{stage="llm",variant="b"}"#),
        "{metrics}"
    );
}
