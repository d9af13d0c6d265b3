//! Local stand-ins for the vendors, speaking their real wire formats.

use ragback_application::testing::WordEmbedder;
use serde_json::{Value, json};
use wiremock::{Request, Respond, ResponseTemplate};

/// Answers Cohere `v2/embed` calls with bag-of-words vectors of the texts sent: texts sharing
/// words are similar, so retrieval behaves like a real (if simple) embedding model.
pub struct FakeCohere;

impl Respond for FakeCohere {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let Some(texts) = body["texts"].as_array() else {
            return ResponseTemplate::new(400)
                .set_body_json(json!({"message": "invalid request: texts required"}));
        };
        let vectors: Vec<Vec<f32>> = texts
            .iter()
            .map(|t| WordEmbedder::vector(t.as_str().unwrap_or_default()))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({
            "id": "b2d3c4e5-0000-4000-8000-000000000000",
            "embeddings": {"float": vectors},
            "texts": texts,
            "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 10}},
            "response_type": "embeddings_by_type"
        }))
    }
}

/// A chat completion as OpenRouter sends it.
pub fn completion(text: &str) -> Value {
    json!({
        "id": "gen-1",
        "provider": "Mistral",
        "model": "mistralai/mistral-nemo",
        "object": "chat.completion",
        "created": 1_732_450_000,
        "choices": [{
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": text}
        }],
        "usage": {"prompt_tokens": 812, "completion_tokens": 24, "total_tokens": 836,
                  "prompt_tokens_details": {"cached_tokens": 512}}
    })
}

/// Answers the n-th chat completion with the n-th of its texts (the last one again after that),
/// whole or streamed as the request asks; a streamed text comes in pieces of a few characters,
/// as a model writes it.
pub struct ScriptedReplies {
    texts: Vec<String>,
    calls: std::sync::atomic::AtomicUsize,
}

impl ScriptedReplies {
    /// Answers with `texts`, in order.
    pub fn new(texts: &[&str]) -> Self {
        Self {
            texts: texts.iter().map(|t| (*t).to_owned()).collect(),
            calls: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl Respond for ScriptedReplies {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let text = &self.texts[n.min(self.texts.len().saturating_sub(1))];
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        if body["stream"] != json!(true) {
            return ResponseTemplate::new(200).set_body_json(completion(text));
        }
        let chunk = |delta: Value, finish: Value| {
            let chunk = json!({"id": "gen-1", "object": "chat.completion.chunk",
                "model": "mistralai/mistral-nemo",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
            format!("data: {chunk}\n\n")
        };
        let chars: Vec<char> = text.chars().collect();
        let mut events: Vec<String> = chars
            .chunks(5)
            .map(|piece| {
                chunk(
                    json!({"content": piece.iter().collect::<String>()}),
                    Value::Null,
                )
            })
            .collect();
        events.push(chunk(json!({}), json!("stop")));
        events.push("data: [DONE]\n\n".to_owned());
        ResponseTemplate::new(200)
            .insert_header("content-type", "text/event-stream")
            .set_body_string(events.concat())
    }
}

/// Answers chat completions as OpenRouter does, whole or streamed as the request asks, naming the
/// model the request asked for: what variant tests need to tell replies apart.
pub struct EchoModel {
    /// The reply.
    pub text: &'static str,
}

impl Respond for EchoModel {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let model = body["model"].as_str().unwrap_or("unknown").to_owned();
        if body["stream"] != json!(true) {
            let mut whole = completion(self.text);
            whole["model"] = json!(model);
            return ResponseTemplate::new(200).set_body_json(whole);
        }
        let chunk = |delta: Value, finish: Value, usage: Value| {
            let chunk = json!({"id": "gen-1", "object": "chat.completion.chunk", "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": usage});
            format!("data: {chunk}\n\n")
        };
        let events = [
            chunk(
                json!({"role": "assistant", "content": self.text}),
                Value::Null,
                Value::Null,
            ),
            chunk(
                json!({}),
                json!("stop"),
                json!({"prompt_tokens": 812, "completion_tokens": 24, "total_tokens": 836,
                       "prompt_tokens_details": {"cached_tokens": 512}}),
            ),
            "data: [DONE]\n\n".to_owned(),
        ];
        ResponseTemplate::new(200)
            .insert_header("content-type", "text/event-stream")
            .set_body_string(events.concat())
    }
}
