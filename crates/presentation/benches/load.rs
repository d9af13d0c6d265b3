//! Load generator: `/generate` under many concurrent requests, against a fake OpenAI-compatible
//! upstream with a fixed latency.
//!
//! Starts the real `ragback serve` binary (built with the bench profile) as its own process, on a
//! Qdrant Edge store holding a few facts, with a fake upstream in this process that answers
//! Cohere's `v2/embed` at once and chat completions after `LATENCY_MS`. Then it keeps
//! `CONCURRENCY` requests in flight until `REQUESTS` are done (or for `DURATION_SECS`, for a
//! soak), and reports throughput, latency percentiles, errors, and the server's RSS (sampled
//! every 100 ms, plus the kernel's peak). Latencies are reported for all requests and for those
//! sent after `WARMUP_SECS` (2: connections opened, caches warm).
//!
//! ```text
//! cargo bench -p ragback-presentation --bench load                      # 1000 × 200 ms
//! CONCURRENCY=200 DURATION_SECS=600 cargo bench -p ragback-presentation --bench load   # soak
//! ```
//!
//! On one small machine the generator and the fake upstream take CPU from the server. To measure
//! a server on a host of its own, give its address in `SERVER_URL` (and `API_KEY` if it needs
//! one), bind the fake upstream where that server can reach it with `UPSTREAM_ADDR`
//! (`0.0.0.0:9100`), and start the server with its LLM and Cohere base URLs pointing there (the
//! bench prints the variables). `SERVER_PID`, when the server runs on this host, adds its CPU and
//! RSS to the report. `QDRANT_URL` puts the facts on a Qdrant server instead of the embedded store
//! (`target/release/fake-qdrant` prints one's URL: docs/deployment.md's sizing).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::routing::post;
use bytes::Bytes;
use ragback_application::testing::WordEmbedder;
use ragback_testkit::process::{ServerProcess, cpu_time, ragback, rss_mib};
use ragback_testkit::{completion, demo_request};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// The load generator shares the machine with the server: keep its own allocation cheap too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The fake upstream: Cohere embeddings at once, chat completions after `latency`. It does as
/// little as it can per request (the completion is serialised once, embeddings once per text), so
/// that the CPU it shares with the server goes to the server.
async fn start_upstream(latency: Duration, addr: &str) -> String {
    let embeddings = Arc::new(std::sync::Mutex::new(HashMap::<Bytes, Bytes>::new()));
    let completion = Bytes::from(
        serde_json::to_vec(&completion("*raises glass* No way, bro! A whole marathon?")).unwrap(),
    );
    let app = Router::new()
        .route(
            "/v2/embed",
            post(move |body: Bytes| async move {
                let cached = embeddings.lock().unwrap().get(&body).cloned();
                let reply = cached.unwrap_or_else(|| {
                    let request: Value = serde_json::from_slice(&body).unwrap();
                    let texts = request["texts"].as_array().cloned().unwrap_or_default();
                    let vectors: Vec<Vec<f32>> = texts
                        .iter()
                        .map(|t| WordEmbedder::vector(t.as_str().unwrap_or_default()))
                        .collect();
                    let reply = Bytes::from(
                        serde_json::to_vec(&json!({
                            "id": "load", "texts": texts, "response_type": "embeddings_by_type",
                            "embeddings": {"float": vectors},
                            "meta": {"api_version": {"version": "2"}}
                        }))
                        .unwrap(),
                    );
                    embeddings.lock().unwrap().insert(body, reply.clone());
                    reply
                });
                ([(CONTENT_TYPE, "application/json")], reply)
            }),
        )
        .route(
            "/api/v1/chat/completions",
            post(move || async move {
                tokio::time::sleep(latency).await;
                ([(CONTENT_TYPE, "application/json")], completion)
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// The server under load: one this bench starts, or one given by `SERVER_URL`.
struct Target {
    url: String,
    /// For CPU and RSS, when the server runs on this host.
    pid: Option<u32>,
    _server: Option<(ServerProcess, tempfile::TempDir)>,
}

impl Target {
    async fn start(upstream: &str, concurrency: usize) -> Self {
        if let Ok(url) = std::env::var("SERVER_URL") {
            let pid = std::env::var("SERVER_PID")
                .ok()
                .and_then(|p| p.parse().ok());
            // Bound to every interface: the server reaches it by this host's name.
            let upstream = upstream.replace("0.0.0.0", "<this host>");
            println!(
                "driving {url}; it must run on a fresh store with\n  \
                 RAGBACK_LLM__BASE_URL={upstream}/api/v1 RAGBACK_LLM__API_KEY=sk-load \
                 RAGBACK_EMBEDDER__PROVIDER=cohere RAGBACK_EMBEDDER__COHERE__BASE_URL={upstream} \
                 COHERE_API_KEY=co-load RAGBACK_SERVER__MAX_CONCURRENCY={concurrency}"
            );
            return Self {
                url: url.trim_end_matches('/').to_owned(),
                pid,
                _server: None,
            };
        }
        let store = tempfile::tempdir().unwrap();
        let mut command = ragback(env!("CARGO_BIN_EXE_ragback"), store.path(), None);
        command
            .env("RAGBACK_LLM__BASE_URL", format!("{upstream}/api/v1"))
            .env("RAGBACK_LLM__API_KEY", "sk-load")
            .env("RAGBACK_EMBEDDER__COHERE__BASE_URL", upstream)
            .env("COHERE_API_KEY", "co-load")
            .env(
                "RAGBACK_SERVER__MAX_CONCURRENCY",
                concurrency.max(1).to_string(),
            )
            .env("RUST_LOG", "error");
        // `QDRANT_URL`: the facts on a Qdrant server (the testkit's `fake-qdrant`, say) instead
        // of the embedded store.
        if let Ok(qdrant) = std::env::var("QDRANT_URL") {
            command
                .env("RAGBACK_STORE__KIND", "qdrant")
                .env("RAGBACK_STORE__URL", qdrant)
                .env(
                    "RAGBACK_STORE__COLLECTION",
                    format!("load_{}", std::process::id()),
                );
        }
        let server = ServerProcess::start(&mut command).await;
        Self {
            url: server.url(),
            pid: Some(server.child.id()),
            _server: Some((server, store)),
        }
    }
}

fn main() {
    let concurrency = env("CONCURRENCY", 1_000) as usize;
    let requests = env("REQUESTS", 20_000) as usize;
    let duration = env("DURATION_SECS", 0);
    let latency = Duration::from_millis(env("LATENCY_MS", 200));
    let warmup = Duration::from_secs(env("WARMUP_SECS", 2));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(concurrency, requests, duration, latency, warmup));
}

async fn run(
    concurrency: usize,
    requests: usize,
    duration: u64,
    latency: Duration,
    warmup: Duration,
) {
    let upstream_addr = std::env::var("UPSTREAM_ADDR").unwrap_or_else(|_| "127.0.0.1:0".into());
    let upstream = start_upstream(latency, &upstream_addr).await;
    let target = Target::start(&upstream, concurrency).await;
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(key) = std::env::var("API_KEY") {
        headers.insert(AUTHORIZATION, format!("Bearer {key}").parse().unwrap());
    }
    let client = ragback_integrations::http::client_builder()
        .pool_max_idle_per_host(concurrency)
        .default_headers(headers)
        .build()
        .unwrap();
    let seeded = client
        .post(format!("{}/users/john/facts", target.url))
        .json(&json!({"facts": ["Ran the London marathon last spring", "Has a dog named Rex"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(seeded.status(), 200, "seeding facts");

    let body = Bytes::from(serde_json::to_vec(&demo_request()).unwrap());
    let url = Arc::new(format!("{}/generate", target.url));
    let pid = target.pid;
    let rss_before = pid.and_then(rss_mib).map_or(0.0, |(rss, _)| rss);
    let cpu_before = pid.and_then(cpu_time).unwrap_or_default();
    let own_cpu_before = cpu_time(std::process::id()).unwrap_or_default();
    println!(
        "load: {concurrency} concurrent, upstream latency {} ms, {}{}",
        latency.as_millis(),
        if duration > 0 {
            format!("{duration} s")
        } else {
            format!("{requests} requests")
        },
        if pid.is_some() {
            format!("; server RSS before {rss_before:.1} MiB")
        } else {
            String::new()
        }
    );

    // RSS sampler: every 100 ms; every 10 s a line for soaks.
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::<(Duration, f64)>::new()));
    let started = Instant::now();
    let sampler = {
        let (stop, samples) = (stop.clone(), samples.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(100));
            while !stop.load(Ordering::Relaxed) {
                every.tick().await;
                if let Some((rss, _)) = pid.and_then(rss_mib) {
                    samples.lock().await.push((started.elapsed(), rss));
                }
            }
        })
    };

    let issued = Arc::new(AtomicUsize::new(0));
    let deadline = (duration > 0).then(|| started + Duration::from_secs(duration));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, url, body, issued) =
            (client.clone(), url.clone(), body.clone(), issued.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors: BTreeMap<String, usize> = BTreeMap::new();
            loop {
                match deadline {
                    Some(end) if Instant::now() >= end => break,
                    None if issued.fetch_add(1, Ordering::Relaxed) >= requests => break,
                    _ => {}
                }
                let sent = Instant::now();
                let outcome = client
                    .post(url.as_str())
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match outcome {
                    Ok(response) if response.status() == 200 => {
                        let _ = response.bytes().await;
                        let at = sent.duration_since(started);
                        latencies.push((at, sent.elapsed().as_secs_f64() * 1_000.0));
                    }
                    Ok(response) => {
                        *errors.entry(response.status().to_string()).or_default() += 1;
                    }
                    Err(error) => {
                        *errors.entry(format!("client: {error}")).or_default() += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for worker in workers {
        let (l, e) = worker.await.unwrap();
        latencies.extend(l);
        for (k, v) in e {
            *errors.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed();
    let server_cpu = pid
        .and_then(cpu_time)
        .unwrap_or_default()
        .saturating_sub(cpu_before);
    let own_cpu = cpu_time(std::process::id())
        .unwrap_or_default()
        .saturating_sub(own_cpu_before);
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();

    let ok = latencies.len();
    let failed: usize = errors.values().sum();
    println!(
        "done: {ok} ok, {failed} errors in {:.1} s = {:.0} req/s",
        elapsed.as_secs_f64(),
        ok as f64 / elapsed.as_secs_f64()
    );
    let per_request = |cpu: Duration| cpu.as_secs_f64() * 1e6 / (ok + failed).max(1) as f64;
    if pid.is_some() {
        println!(
            "server CPU: {:.1} s of {:.1} s on {} cores ({:.0} µs per request)",
            server_cpu.as_secs_f64(),
            elapsed.as_secs_f64(),
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            per_request(server_cpu)
        );
    }
    println!(
        "load generator and fake upstream CPU: {:.1} s ({:.0} µs per request)",
        own_cpu.as_secs_f64(),
        per_request(own_cpu)
    );
    for (kind, count) in &errors {
        println!("  error {kind}: {count}");
    }
    // Steady state: requests sent after the warm-up (connections opened, caches warm).
    let steady: Vec<f64> = latencies
        .iter()
        .filter(|(at, _)| *at >= warmup)
        .map(|(_, l)| *l)
        .collect();
    let upstream_ms = latency.as_secs_f64() * 1_000.0;
    for (name, values) in [
        (
            "all requests",
            latencies.iter().map(|(_, l)| *l).collect::<Vec<_>>(),
        ),
        ("after warm-up", steady),
    ] {
        if values.is_empty() {
            continue;
        }
        println!("{name} (n={}):", values.len());
        let overhead: Vec<f64> = values.iter().map(|l| l - upstream_ms).collect();
        ragback_testkit::stats::report("  latency (whole response)", 34, "ms", &values);
        ragback_testkit::stats::report("  minus upstream latency", 34, "ms", &overhead);
    }
    if pid.is_none() {
        println!("server CPU and RSS: not measured (SERVER_PID names a server on this host)");
        return;
    }
    let samples = samples.lock().await;
    let peak_sampled = samples.iter().map(|(_, r)| *r).fold(0.0, f64::max);
    let peak_kernel = pid.and_then(rss_mib).map_or(0.0, |(_, hwm)| hwm);
    println!("server RSS: peak {peak_kernel:.1} MiB (VmHWM), sampled peak {peak_sampled:.1} MiB");
    if duration > 0 {
        // Soak: the RSS at one minute (after warm-up) against the last ten seconds.
        let at = |from: f64, to: f64| {
            let window: Vec<f64> = samples
                .iter()
                .filter(|(t, _)| (from..to).contains(&t.as_secs_f64()))
                .map(|(_, r)| *r)
                .collect();
            window.iter().sum::<f64>() / window.len().max(1) as f64
        };
        let total = elapsed.as_secs_f64();
        for minute in 1..=(total as u64 / 60) {
            let t = minute as f64 * 60.0;
            println!("  RSS at {t:>4.0} s: {:.1} MiB", at(t - 5.0, t));
        }
        if total < 75.0 {
            println!("soak: too short for the RSS growth (the warm-up mark is at one minute)");
            return;
        }
        let warm = at(55.0, 65.0);
        let end = at(total - 10.0, total);
        println!(
            "soak: RSS after warm-up {warm:.1} MiB, at the end {end:.1} MiB: growth {:+.1} %",
            (end - warm) / warm * 100.0
        );
    }
}
