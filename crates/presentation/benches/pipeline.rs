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
use ragback_testkit::{Setup, TestApp, completion, demo_request};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, ResponseTemplate};

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
        let app_facts = by_owner.clone();
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

        // Memory extraction after the reply, side by side with none: turns alternate, each with
        // its own message, so every extraction asks the model, embeds and searches. A third arm
        // is a second server whose queue is in memory only (RAGBACK_JOBS__DURABLE=false): what
        // storing the job before the reply costs.
        let volatile = TestApp::spawn_with(Setup {
            vars: vec![("RAGBACK_JOBS__DURABLE".into(), "false".into())],
            facts: app_facts.clone(),
            ..Setup::default()
        })
        .await;
        volatile
            .llm_replies("Blaze: *raises glass* No way, bro! A whole marathon? That's dope for real.")
            .await;
        for server in [&app, &volatile] {
            Mock::given(method("POST"))
                .and(path("/api/v1/chat/completions"))
                .and(body_string_contains("What should be remembered?"))
                .respond_with(ResponseTemplate::new(200).set_body_json(completion(
                    r#"{"facts": [{"owner": "user", "text": "Ran a marathon", "kind": "fact"}]}"#,
                )))
                .with_priority(1)
                .mount(&server.llm)
                .await;
        }
        let mut arms: [Vec<f64>; 3] = Default::default();
        for i in 0..requests {
            let arm = i % 3;
            let mut turn = request.clone();
            turn["messages"] =
                serde_json::json!([{"role": "user", "text": format!("I ran a marathon, day {i}")}]);
            turn["memory"] = serde_json::json!({"extract": arm > 0});
            let server = if arm == 2 { &volatile } else { &app };
            let started = Instant::now();
            let (status, body) = server.post_json("/generate", &turn).await;
            let observed = started.elapsed().as_secs_f64() * 1_000.0;
            assert_eq!(status, 200, "{body}");
            arms[arm].push(observed);
        }
        println!("{requests} more, alternating: client latency of a reply");
        let [without, stored, in_memory] = arms;
        report("without memory.extract", without);
        report("with it, job stored first", stored);
        report("with it, job in memory only", in_memory);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let mut extractions = 0;
        for server in [&app, &volatile] {
            extractions += server
                .llm_requests()
                .await
                .iter()
                .filter(|r| r.to_string().contains("What should be remembered?"))
                .count();
        }
        println!("  extractions that asked the model after their reply: {extractions}");
        volatile.stop().await;

        // Variants side by side with none: a second server with an experiment (two variants, a
        // 50/50 split by user, OpenRouter's routing fields in every body); turns alternate
        // between the two servers, each turn with its own user.
        let split = TestApp::spawn_with(Setup {
            vars: [
                ("RAGBACK_LLM__DIALECT", "openrouter"),
                ("RAGBACK_VARIANTS__B__MODEL", "anthropic/claude-3.5-haiku"),
                ("RAGBACK_VARIANTS__B__TEMPERATURE", "0.6"),
                ("RAGBACK_VARIANTS__B__ROUTING__FALLBACK_MODELS", "openai/gpt-4o-mini"),
                ("RAGBACK_VARIANTS__B__ROUTING__REASONING_MAX_TOKENS", "256"),
                ("RAGBACK_LLM__ROUTING__DATA_COLLECTION", "deny"),
                ("RAGBACK_EXPERIMENT__SALT", "bench"),
                ("RAGBACK_EXPERIMENT__VARIANTS__DEFAULT", "50"),
                ("RAGBACK_EXPERIMENT__VARIANTS__B", "50"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
            facts: app_facts,
            ..Setup::default()
        })
        .await;
        split
            .llm_replies("Blaze: *raises glass* No way, bro! A whole marathon? That's dope for real.")
            .await;
        let (mut single, mut assigned, mut in_b) = (Vec::new(), Vec::new(), 0);
        for i in 0..requests {
            let mut turn = request.clone();
            turn["user"]["id"] = serde_json::json!(format!("user-{i}"));
            let target = if i % 2 == 0 { &app } else { &split };
            let started = Instant::now();
            let (status, body) = target.post_json("/generate", &turn).await;
            let observed = started.elapsed().as_secs_f64() * 1_000.0;
            assert_eq!(status, 200, "{body}");
            if i % 2 == 0 {
                single.push(observed);
            } else {
                assigned.push(observed);
                in_b += usize::from(body["variant"] == "b");
            }
        }
        println!(
            "{requests} more, alternating between two servers: client latency of a reply ({in_b} of \
             {} split turns in b)",
            requests / 2
        );
        report("one variant", single);
        report("two variants, 50/50 split", assigned);
        split.stop().await;
        app.stop().await;
    });
}
