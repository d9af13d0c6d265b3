//! A fake LLM judge speaking OpenAI's chat completions, its behaviour chosen by the request's
//! `model`, its decisions read from the rendered prompt — so that every outcome is exact:
//!
//! - `oracle`: candidates carry a marker `⟦q=k⟧`; the higher k wins, equal is a tie;
//! - `first`: always the first-shown candidate;
//! - `malformed`: never a verdict, even when asked again;
//! - `refuse`: HTTP 400 with OpenAI's `content_filter` code;
//! - `flaky`: the very first call gets 429 with `Retry-After: 1`, then as `oracle`;
//! - `moderator`: a moderation answer that flags the tags of `⟦mod:tag⟧` markers in the target.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The fake's call counter.
#[derive(Clone, Default)]
pub struct FakeJudge {
    calls: Arc<AtomicUsize>,
}

impl FakeJudge {
    /// Starts the fake on a local port.
    pub async fn start() -> (MockServer, Self) {
        let server = MockServer::start().await;
        let judge = Self::default();
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(judge.clone())
            .mount(&server)
            .await;
        (server, judge)
    }

    /// Calls answered so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// The text between `<<<\n` and `\n>>>` after `heading`.
fn candidate<'a>(prompt: &'a str, heading: &str) -> &'a str {
    prompt
        .find(heading)
        .and_then(|at| {
            let rest = &prompt[at..];
            let open = rest.find("<<<\n")? + 4;
            let close = rest[open..].find("\n>>>")?;
            Some(&rest[open..open + close])
        })
        .unwrap_or_default()
}

fn quality(text: &str) -> i64 {
    text.split("⟦q=")
        .nth(1)
        .and_then(|rest| rest.split('⟧').next())
        .and_then(|k| k.parse().ok())
        .unwrap_or(0)
}

fn answer(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "judge-1", "object": "chat.completion", "created": 1_732_450_000, "model": "judge",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 500, "completion_tokens": 30, "total_tokens": 530}
    }))
}

impl Respond for FakeJudge {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let model = body["model"].as_str().unwrap_or_default();
        let prompt = body["messages"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["role"] == "user"))
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default();
        let oracle = || {
            let (a, b) = (
                quality(candidate(prompt, "[Candidate A")),
                quality(candidate(prompt, "[Candidate B")),
            );
            let verdict = match a.cmp(&b) {
                std::cmp::Ordering::Greater => "A",
                std::cmp::Ordering::Less => "B",
                std::cmp::Ordering::Equal => "tie",
            };
            answer(&format!(
                "I first leaned to [[A]], but on reflection: {{\"verdict\": \"{verdict}\"}}"
            ))
        };
        match model {
            "oracle" => oracle(),
            "first" => answer(r#"The first one. {"verdict": "A"}"#),
            "malformed" => answer("Both have merits; hard to say."),
            "refuse" => ResponseTemplate::new(400).set_body_json(json!({"error": {
                "message": "The response was filtered due to the prompt triggering content management policy.",
                "type": "invalid_request_error", "code": "content_filter"}})),
            "flaky" if call == 0 => ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}})),
            "flaky" => oracle(),
            "moderator" => {
                let target = candidate(prompt, "[TARGET");
                let mut tags = json!({"hate":0,"sexual":0,"minor":0,"self_harm":0,"violence":0,
                    "real_meeting":0,"sexting":0,"error":0,"evidence":""});
                for part in target.split("⟦mod:").skip(1) {
                    if let Some(tag) = part.split('⟧').next() {
                        tags[tag] = json!(1);
                        tags["evidence"] = json!(format!("⟦mod:{tag}⟧"));
                    }
                }
                answer(&tags.to_string())
            }
            other => ResponseTemplate::new(404).set_body_json(json!({"error": {"message": format!("no model {other}")}})),
        }
    }
}
