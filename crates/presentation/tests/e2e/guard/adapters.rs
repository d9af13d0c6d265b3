//! The guards behind HTTP (a Llama Guard model, OpenAI's moderation endpoint) in front of real
//! replies: their verdicts followed, their failures and timeouts decided by the policy (fail
//! closed by default), and a variant's own banned phrases and actions.

use ragback_testkit::fake_openai::FakeOpenAi;
use serde_json::{Value, json};

use super::{DEFLECTION, app_answering, done, streamed};

/// A ragback whose replies are checked by the rules and the `llm` guard serving `model` on
/// `guard` (the fake's Llama Guard), with `vars` besides.
async fn with_llama_guard(
    replies: &[&str],
    guard: &wiremock::MockServer,
    model: &str,
    vars: &[(&str, &str)],
) -> ragback_testkit::TestApp {
    let base = format!("{}/v1", guard.uri());
    let mut all = vec![
        ("RAGBACK_GUARD__ADAPTERS", "rules,llm"),
        ("RAGBACK_GUARD__LLM__BASE_URL", base.as_str()),
        ("RAGBACK_GUARD__LLM__MODEL", model),
        ("RAGBACK_GUARD__TIMEOUT_MS", "1000"),
    ];
    all.extend_from_slice(vars);
    app_answering(replies, &all).await
}

fn generate_safety(body: &Value) -> (&str, &Value, Option<&str>) {
    (
        body["safety"]["action"].as_str().unwrap_or_default(),
        &body["safety"]["flags"],
        body["safety"]["unchecked_reason"].as_str(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_llama_guard_verdict_is_followed_whole_and_streamed() {
    let (guard, fake) = FakeOpenAi::start().await;
    let unsafe_reply = "⟦lg:S10⟧ *narrows eyes* People like that are a plague.";
    let app = with_llama_guard(
        &[unsafe_reply, "*grins* A marathon? No way, bro!"],
        &guard,
        "llama-guard",
        &[],
    )
    .await;
    let (status, body) = app
        .post_json("/generate", &ragback_testkit::demo_request())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["text"], "*grins* A marathon? No way, bro!");
    assert_eq!(
        generate_safety(&body),
        ("regenerated", &json!(["hate"]), None)
    );
    // The user's message once, then each attempt, in its context.
    assert_eq!(fake.calls(), 3, "the screen and two replies");

    let app = with_llama_guard(&[unsafe_reply], &guard, "llama-guard", &[]).await;
    let (raw, events) = streamed(&app, ragback_testkit::demo_request()).await;
    assert!(!raw.contains("plague") && !raw.contains("⟦lg"), "{raw}");
    let done = done(&events);
    assert_eq!(done["safety"]["action"], "replaced");
    assert_eq!(done["text"], DEFLECTION);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_that_is_down_or_late_replaces_the_reply_unless_the_policy_fails_open() {
    let (guard, _fake) = FakeOpenAi::start().await;
    let reply = "*raises glass* No way, bro!";
    for model in ["llama-guard-down", "llama-guard-slow"] {
        let app = with_llama_guard(&[reply], &guard, model, &[]).await;
        let (status, body) = app
            .post_json("/generate", &ragback_testkit::demo_request())
            .await;
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(body["text"], DEFLECTION, "{model}: closed");
        let (action, flags, unchecked) = generate_safety(&body);
        assert_eq!((action, flags), ("replaced", &json!([])), "{model}");
        let expected = if model.ends_with("down") {
            "unavailable"
        } else {
            "timeout"
        };
        assert_eq!(unchecked, Some(expected), "{model}: {body}");
        assert_eq!(body["safety"]["unchecked"], true);
        let (raw, events) = streamed(&app, ragback_testkit::demo_request()).await;
        assert!(!raw.contains("No way"), "{model}: {raw}");
        assert_eq!(done(&events)["safety"]["action"], "replaced", "{model}");
        let metrics = app.metrics().await;
        assert!(
            metrics.contains(&format!(
                r#"ragback_guard_failures_total{{guard="llm",kind="{expected}"}}"#
            )),
            "{metrics}"
        );
    }
    let app = with_llama_guard(
        &[reply],
        &guard,
        "llama-guard-down",
        &[("RAGBACK_GUARD__FAIL_CLOSED", "false")],
    )
    .await;
    let (_, body) = app
        .post_json("/generate", &ragback_testkit::demo_request())
        .await;
    assert_eq!(body["text"], reply, "open: {body}");
    assert_eq!(body["safety"]["action"], "pass");
    assert_eq!(body["safety"]["unchecked_reason"], "unavailable", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openais_moderation_flags_what_the_rules_cannot_see() {
    let (moderation, fake) = FakeOpenAi::start().await;
    let base = format!("{}/v1", moderation.uri());
    let unsafe_reply = "*smirks* You know what you deserve. ⟦mod:self_harm⟧";
    let vars = [
        ("RAGBACK_GUARD__ADAPTERS", "rules,openai"),
        ("RAGBACK_GUARD__OPENAI__BASE_URL", base.as_str()),
        ("RAGBACK_GUARD__OPENAI__API_KEY", "sk-test-moderation-key"),
    ];
    let app = app_answering(&[unsafe_reply], &vars).await;
    let (status, body) = app
        .post_json("/generate", &ragback_testkit::demo_request())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["text"], DEFLECTION);
    assert_eq!(
        generate_safety(&body),
        ("replaced", &json!(["self_harm"]), None)
    );
    assert!(
        fake.calls() >= 3,
        "the screen and both attempts were moderated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variant_bans_its_own_phrases_and_keeps_the_houses() {
    let vars = [
        ("RAGBACK_VARIANTS__PIRATE__MODEL", "pirate/model"),
        ("RAGBACK_VARIANTS__PIRATE__GUARD__BANNED", r"\bbro\b"),
        (
            "RAGBACK_VARIANTS__PIRATE__GUARD__ACTIONS__BANNED",
            "replace",
        ),
        (
            "RAGBACK_VARIANTS__PIRATE__GUARD__DEFLECTIONS__BANNED",
            "*adjusts eyepatch* Arr, mind yer tongue.",
        ),
    ];
    let reply = "*raises glass* No way, bro!";
    let app = app_answering(&[reply], &vars).await;
    let mut request = ragback_testkit::demo_request();
    let (_, body) = app.post_json("/generate", &request).await;
    assert_eq!(body["text"], reply, "the default variant bans nothing");
    assert_eq!(body["safety"]["action"], "pass");
    request["variant"] = json!("pirate");
    let (_, body) = app.post_json("/generate", &request).await;
    assert_eq!(body["text"], "*adjusts eyepatch* Arr, mind yer tongue.");
    assert_eq!(
        generate_safety(&body),
        ("replaced", &json!(["banned"]), None)
    );
    let app = app_answering(&["*grins* As an AI, I cannot drink."], &vars).await;
    let (_, body) = app.post_json("/generate", &request).await;
    assert_eq!(
        body["safety"]["flags"],
        json!(["assistant"]),
        "the house's rules still check the variant: {body}"
    );
}
