//! How much of each turn's prompt repeats the previous turn's, byte for byte: what a provider's
//! prompt cache can serve.
//!
//! Runs ragback on a real Qdrant Edge store seeded with the demo facts, behind a fake OpenRouter,
//! and replays every demo dialogue (`data/eval/dialogues.jsonl`) turn by turn: for each user
//! message, the dialogue up to it. For consecutive turns of one dialogue it compares the
//! messages the provider received: the share of the prompt (in bytes of the messages' roles and
//! contents, ≈ tokens) in the longest prefix identical to the previous turn's.
//!
//! Only HTTP goes in and out: for the before/after of docs/benchmarks.md, this file as of 1c6d5d6
//! (which built the requests itself) ran on 4a9c579.
//!
//! `cargo bench -p ragback-presentation --bench prompt_cache`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use ragback_domain::FactOwner;
use ragback_testkit::{Setup, TestApp};
use serde_json::Value;

/// The prompt as the provider saw it: each message's role and text, in order.
fn flatten(request: &Value) -> Vec<u8> {
    let mut bytes = Vec::new();
    for m in request["messages"].as_array().unwrap() {
        bytes.extend_from_slice(m["role"].as_str().unwrap().as_bytes());
        bytes.push(0);
        let text = match &m["content"] {
            Value::String(text) => text.clone(),
            parts => parts[0]["text"].as_str().unwrap_or_default().to_owned(),
        };
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(0);
    }
    bytes
}

fn shared(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let root = ragback_testkit::repo_root();
        let demo =
            ragback_presentation::cli::read_facts(&root.join("data/facts.json"), None).unwrap();
        let mut by_owner: Vec<(FactOwner, Vec<&'static str>)> = Vec::new();
        for fact in demo.facts {
            let text: &'static str = Box::leak(fact.text.as_str().to_owned().into_boxed_str());
            match by_owner.iter_mut().find(|(o, _)| *o == fact.owner) {
                Some((_, texts)) => texts.push(text),
                None => by_owner.push((fact.owner, vec![text])),
            }
        }
        let app = TestApp::spawn_with(Setup {
            facts: by_owner,
            ..Setup::default()
        })
        .await;
        app.llm_replies("*nods* Sure.").await;
        let dialogues = ragback_testkit::demo_dialogue_turns();
        // (turn number within its dialogue, shared share of the prompt)
        let mut shares: Vec<(usize, f64)> = Vec::new();
        let mut sent = 0;
        for turns in &dialogues {
            let mut previous: Option<Vec<u8>> = None;
            for (turn, request) in turns.iter().enumerate().map(|(i, r)| (i + 1, r)) {
                let (status, body) = app.post_json("/generate", request).await;
                assert_eq!(status, 200, "{body}");
                sent += 1;
                let requests = app.llm_requests().await;
                let prompt = flatten(&requests[sent - 1]);
                if let Some(previous) = previous {
                    let share = shared(&previous, &prompt) as f64 / prompt.len() as f64;
                    shares.push((turn, share));
                }
                previous = Some(prompt);
            }
        }
        let mean = |filter: &dyn Fn(usize) -> bool| {
            let picked: Vec<f64> = shares
                .iter()
                .filter(|(t, _)| filter(*t))
                .map(|(_, s)| *s)
                .collect();
            let n = picked.len();
            (picked.iter().sum::<f64>() / n.max(1) as f64, n)
        };
        let (all, n_all) = mean(&|_| true);
        let (late, n_late) = mean(&|t| t > 5);
        let (early, n_early) = mean(&|t| t <= 5);
        println!("{sent} turns of {} dialogues", dialogues.len());
        println!("prefix shared with the previous turn, share of the prompt (mean):");
        println!("  turns 2-5          {early:.3}  (n={n_early})");
        println!("  turns past the 5th {late:.3}  (n={n_late})");
        println!("  all                {all:.3}  (n={n_all})");
        let mut sorted: Vec<f64> = shares
            .iter()
            .filter(|(t, _)| *t > 5)
            .map(|(_, s)| *s)
            .collect();
        sorted.sort_by(f64::total_cmp);
        if !sorted.is_empty() {
            println!(
                "  past the 5th: min {:.3}, p10 {:.3}, p50 {:.3}",
                sorted[0],
                sorted[sorted.len() / 10],
                sorted[sorted.len() / 2]
            );
        }
    });
}
