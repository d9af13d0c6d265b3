//! The harness of ragback's integration tests and benches (dev-only, never published).
//!
//! - [`app`]: the real server on port 0 over a real Qdrant Edge store in a temporary directory,
//!   with local fakes of Cohere and OpenRouter ([`TestApp`]).
//! - [`vendors`]: the vendors' wire formats (Cohere `v2/embed`, OpenRouter chat completions).
//! - [`sse_upstream`], [`fault_upstream`]: raw-socket upstreams that stream, pause, stall, fail
//!   and see the connection closed — what wiremock cannot show.
//! - [`fake_qdrant`]: a Qdrant server (real gRPC, Qdrant's own engine behind it).
//! - [`process`]: running the `ragback` binary.
//! - [`sse`]: reading ragback's own Server-Sent Events.
//! - [`stats`]: percentiles for benches.

// A harness: failing loudly is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod app;
pub mod browser;
pub mod fake_openai;
pub mod fake_qdrant;
pub mod fault_upstream;
pub mod process;
pub mod sse;
pub mod sse_upstream;
pub mod stats;
pub mod vendors;

use std::path::PathBuf;

use serde_json::{Value, json};

pub use app::{Setup, TestApp};
pub use sse::{sse_events, streamed_text};
pub use vendors::{EchoModel, FakeCohere, ScriptedReplies, completion};

/// The value of the first sample line of a Prometheus text that starts with `prefix` (a metric
/// name with some of its labels).
pub fn metric_sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The local embedder's model, relative to the repository root (`make model` fetches it).
pub const MODEL_DIR: &str = "models/all-MiniLM-L6-v2";
/// The local chat model, relative to the repository root (`make model` fetches it).
pub const CHAT_MODEL: &str = "models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The repository root (templates, demo data and models live there).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An HTTP client (with the TLS provider the service uses installed).
pub fn http_client() -> reqwest::Client {
    ragback_integrations::http::client_builder()
        .build()
        .unwrap()
}

/// The demo request of the README.
pub fn demo_request() -> Value {
    json!({
        "messages": [
            {"role": "user", "text": "Hey Blaze! Long time no see"},
            {"role": "character", "text": "*fist bumps* Yo John! Been ages, bro."},
            {"role": "user", "text": "I finally ran the London marathon!"}
        ],
        "user": {"id": "john", "name": "John", "age": 23},
        "character": {"id": "blaze", "name": "Blaze", "age": 19, "description": "Street persona from Brooklyn, talks in slang."},
        "scenario": "You meet John at a bar after a long time apart."
    })
}

/// The demo dialogues (`data/eval/dialogues.jsonl`) as `/generate` requests, turn by turn: for
/// each dialogue, one request per user message, holding the dialogue up to it.
pub fn demo_dialogue_turns() -> Vec<Vec<Value>> {
    let text = std::fs::read_to_string(repo_root().join("data/eval/dialogues.jsonl")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let dialogue: Value = serde_json::from_str(line).unwrap();
            let messages = dialogue["messages"].as_array().cloned().unwrap_or_default();
            messages
                .iter()
                .enumerate()
                .filter(|(_, m)| m["role"] == "user")
                .map(|(i, _)| {
                    let history: Vec<Value> = messages[..=i]
                        .iter()
                        .map(|m| json!({"role": m["role"], "text": m["text"]}))
                        .collect();
                    json!({
                        "messages": history,
                        "user": dialogue["user"],
                        "character": dialogue["character"],
                        "scenario": dialogue["scenario"],
                    })
                })
                .collect()
        })
        .collect()
}
