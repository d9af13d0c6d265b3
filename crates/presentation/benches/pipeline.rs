//! The pipeline's own overhead, measured on the real server.
//!
//! Runs ragback on a real Qdrant Edge store seeded with the demo facts, behind local fake Cohere
//! and OpenRouter servers that answer at once, sends `/generate` requests one after another and
//! reports percentiles of each stage from the response's `timings_ms`, plus the overhead: total
//! minus embed and llm (search + render + cleaning + bookkeeping), and the client-observed latency
//! minus embed and llm (adds HTTP parsing, validation and serialisation).
//!
//! `cargo bench -p ragback-presentation --bench pipeline` (REQUESTS=… to change the count).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use ragback_domain::{CharacterId, FactOwner, UserId};
use ragback_testkit::{Setup, TestApp, demo_request};

fn report(name: &str, values: Vec<f64>) {
    ragback_testkit::stats::report(name, 28, "ms", &values);
}

fn main() {
    let requests: usize = std::env::var("REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let demo = ragback_presentation::cli::read_facts(
            &ragback_testkit::repo_root().join("data/facts.json"),
            None,
        )
        .unwrap();
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
        app.llm_replies(
            "Blaze: *raises glass* No way, bro! A whole marathon? That's dope for real.",
        )
        .await;
        let request = demo_request();
        let _ = (UserId::parse("john"), CharacterId::parse("blaze"));

        for _ in 0..200 {
            assert_eq!(app.post("/generate", &request).await.status(), 200);
        }
        let mut stage: [Vec<f64>; 5] = Default::default();
        let (mut overhead, mut client_overhead, mut facts) = (Vec::new(), Vec::new(), 0);
        for _ in 0..requests {
            let started = Instant::now();
            let (status, body) = app.post_json("/generate", &request).await;
            let observed = started.elapsed().as_secs_f64() * 1_000.0;
            assert_eq!(status, 200, "{body}");
            let t = &body["timings_ms"];
            let get = |k: &str| t[k].as_f64().unwrap();
            for (i, key) in ["embed", "search", "render", "llm", "total"]
                .iter()
                .enumerate()
            {
                stage[i].push(get(key));
            }
            overhead.push(get("total") - get("embed") - get("llm"));
            client_overhead.push(observed - get("embed") - get("llm"));
            facts += body["facts"].as_array().unwrap().len();
        }
        println!(
            "{requests} sequential /generate requests, {:.1} facts per reply on average",
            facts as f64 / requests as f64
        );
        for (i, key) in [
            "embed (fake Cohere)",
            "search (Qdrant Edge)",
            "render (Tera)",
            "llm (fake OpenRouter)",
            "total",
        ]
        .iter()
        .enumerate()
        {
            report(key, std::mem::take(&mut stage[i]));
        }
        report("overhead: total-embed-llm", overhead);
        report("client latency-embed-llm", client_overhead);
        app.stop().await;
    });
}
