//! The local model's prefill saved by keeping the KV cache of the prefix a turn shares with the
//! previous one (`RAGBACK_LLM__LOCAL__REUSE_PREFIX`).
//!
//! Two servers side by side in one process (local embedder, local chat model, no key), one
//! reusing the prefix and one not, replay the same demo dialogues turn by turn, alternating
//! requests so that the machine's drift hits both alike. Each turn asks for one token, so the
//! model stage is the prompt's prefill and one step; reported: that stage's time
//! (`timings_ms.llm`) and the prompt tokens reused (`usage.cached_tokens`). Needs `make model`.
//!
//! `cargo bench -p ragback-presentation --bench local_prefix --features local-llm`
//! (`DIALOGUES=…`, default 6).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use ragback_testkit::stats::{env_count, report};
use ragback_testkit::{Setup, TestApp};
use serde_json::json;

async fn server(reuse: bool) -> TestApp {
    TestApp::spawn_with(Setup {
        keys: false,
        vars: vec![(
            "RAGBACK_LLM__LOCAL__REUSE_PREFIX".to_owned(),
            reuse.to_string(),
        )],
        facts: Vec::new(),
    })
    .await
}

fn main() {
    let dialogues = env_count("DIALOGUES", 6);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let (on, off) = (server(true).await, server(false).await);
        let (mut llm_on, mut llm_off, mut reused, mut prompt) = (vec![], vec![], 0u64, 0u64);
        for turns in ragback_testkit::demo_dialogue_turns()
            .iter()
            .take(dialogues)
        {
            for request in turns {
                let mut request = request.clone();
                request["generation"] = json!({"max_tokens": 1, "temperature": 0.0});
                request["retrieval"] = json!({"enabled": false});
                for (app, times) in [(&on, &mut llm_on), (&off, &mut llm_off)] {
                    let (status, body) = app.post_json("/generate", &request).await;
                    // One token may be cleaned away to nothing: a 502 after retries is
                    // possible; its time is not a prefill's.
                    if status != 200 {
                        continue;
                    }
                    times.push(body["timings_ms"]["llm"].as_f64().unwrap());
                    if std::ptr::eq(app, &on) {
                        reused += body["usage"]["cached_tokens"].as_u64().unwrap();
                        prompt += body["usage"]["prompt_tokens"].as_u64().unwrap();
                    }
                }
            }
        }
        println!(
            "{} turns; prompt tokens reused: {reused} of {prompt} ({:.0} %)",
            llm_on.len(),
            100.0 * reused as f64 / prompt.max(1) as f64
        );
        report("model stage, prefix reused", 30, "ms", &llm_on);
        report("model stage, prefix decoded", 30, "ms", &llm_off);
    });
}
