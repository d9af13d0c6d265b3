//! What the reply guard costs: one check of a whole reply and of one streamed sentence, by the
//! rules and by the classifier (the local embedder's vector, scored by the shipped
//! `data/safety/classifier.json`), on role-play replies of 80 to 400 characters; and the
//! throughput of checking replies one after another (the design's "check bigger volumes").
//!
//! `cargo bench -p ragback-integrations --bench guard --features local-embedder` (`REPLIES=…`,
//! `CLASSIFIED=…`). Needs `make model` for the classifier's part.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ragback_application::guard::split_sentences;
use ragback_application::ports::{Guard, GuardInput, Speaker};
use ragback_integrations::guard::{ClassifierGuard, RuleGuard, load_classifier};
use ragback_integrations::local::{LocalEmbedder, LocalSettings, StaticEmbedder};
use ragback_testkit::stats::{env_count, report};

const PIECES: [&str; 12] = [
    "*raises glass* No way, bro!",
    "A whole marathon? That's wild.",
    "*leans on the bar* So what's next, the Berlin one?",
    "I remember when you couldn't run for the bus.",
    "*grins* Biscuit must've been proud of you.",
    "Tell me everything, from the start.",
    "*slides a drink over* This one's on me.",
    "The crowd at mile twenty must have been insane.",
    "*laughs* You look like you could sleep for a week.",
    "Don't tell me you're quitting now.",
    "As an AI, I can't have opinions.",
    "Let's meet in real life, 221 Baker Street at 9pm.",
];

fn main() {
    let replies = env_count("REPLIES", 20_000);
    let guard = RuleGuard::new(&["\\bvibes\\b".into()]).unwrap();
    let texts: Vec<String> = (0..replies)
        .map(|i| {
            let n = 3 + i % 9;
            (0..n)
                .map(|k| PIECES[(i * 7 + k * 5) % PIECES.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let input = |text| GuardInput {
        text,
        speaker: Speaker::Character,
        user_name: "John",
        character_name: "Blaze",
        minor: false,
        replying_to: None,
    };
    let (mut whole_us, mut sentence_us) = (Vec::new(), Vec::new());
    let mut flagged = 0;
    let started = Instant::now();
    futures::executor::block_on(async {
        for text in &texts {
            let t = Instant::now();
            let findings = guard.check(&input(text)).await.unwrap();
            whole_us.push(t.elapsed().as_secs_f64() * 1e6);
            flagged += usize::from(!findings.is_empty());
        }
    });
    let elapsed = started.elapsed();
    futures::executor::block_on(async {
        for text in texts.iter().take(2_000) {
            for sentence in split_sentences(text) {
                let t = Instant::now();
                guard.check(&input(sentence)).await.unwrap();
                sentence_us.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
    });
    let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
    println!(
        "{replies} replies, {:.0} characters on average, {flagged} raising a tag:",
        chars as f64 / replies as f64
    );
    report("  whole reply", 16, "µs", &whole_us);
    report("  one sentence", 16, "µs", &sentence_us);
    println!(
        "  throughput: {:.0} replies/s on one core",
        replies as f64 / elapsed.as_secs_f64()
    );

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let settings = LocalSettings {
        model_dir: root.join("models/all-MiniLM-L6-v2"),
        ..LocalSettings::default()
    };
    let (Ok(embedder), Ok(model)) = (
        LocalEmbedder::load(&settings),
        load_classifier(&root.join("data/safety/classifier.json")),
    ) else {
        println!("classifier: NOT RUN (run `make model` for the local embedder)");
        return;
    };
    let classifier = ClassifierGuard::new(model, Arc::new(embedder)).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let classified = env_count("CLASSIFIED", 1_000).min(replies);
    let (mut whole_us, mut sentence_us) = (Vec::new(), Vec::new());
    let started = Instant::now();
    runtime.block_on(async {
        for text in texts.iter().take(classified) {
            let t = Instant::now();
            classifier.check(&input(text)).await.unwrap();
            whole_us.push(t.elapsed().as_secs_f64() * 1e6);
        }
    });
    let elapsed = started.elapsed();
    runtime.block_on(async {
        for text in texts.iter().take(classified / 5) {
            for sentence in split_sentences(text) {
                let t = Instant::now();
                classifier.check(&input(sentence)).await.unwrap();
                sentence_us.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
    });
    println!("{classified} replies through the classifier (embedding + heads):");
    report("  whole reply", 16, "µs", &whole_us);
    report("  one sentence", 16, "µs", &sentence_us);
    println!(
        "  throughput: {:.0} replies/s, one at a time",
        classified as f64 / elapsed.as_secs_f64()
    );
    // What `eval moderate --adapter classifier` and `guard check` do: batches of 64 texts (the
    // embedder pads each of its batches of 32 to the longest, texts of a like length together).
    let inputs: Vec<GuardInput<'_>> = texts
        .iter()
        .take(classified)
        .map(|t| input(t.as_str()))
        .collect();
    let started = Instant::now();
    let flagged_batched: usize = runtime.block_on(async {
        let mut flagged = 0;
        for batch in inputs.chunks(64) {
            let all = classifier.check_many(batch).await.unwrap();
            flagged += all.iter().filter(|f| !f.is_empty()).count();
        }
        flagged
    });
    println!(
        "  throughput: {:.0} replies/s in batches of 64 ({flagged_batched} raising a tag)",
        classified as f64 / started.elapsed().as_secs_f64()
    );

    // The bulk classifier: static vectors (the word pieces' embeddings, averaged).
    let (Ok(embedder), Ok(model)) = (
        StaticEmbedder::load(&settings.model_dir),
        load_classifier(&root.join("data/safety/classifier-static.json")),
    ) else {
        println!("static classifier: NOT RUN (no data/safety/classifier-static.json)");
        return;
    };
    let fast = ClassifierGuard::new(model, Arc::new(embedder)).unwrap();
    let all: Vec<GuardInput<'_>> = texts.iter().map(|t| input(t.as_str())).collect();
    let mut whole_us = Vec::new();
    runtime.block_on(async {
        for one in all.iter().take(2_000) {
            let t = Instant::now();
            fast.check(one).await.unwrap();
            whole_us.push(t.elapsed().as_secs_f64() * 1e6);
        }
    });
    let started = Instant::now();
    let flagged: usize = runtime.block_on(async {
        let mut flagged = 0;
        for batch in all.chunks(256) {
            let verdicts = fast.check_many(batch).await.unwrap();
            flagged += verdicts.iter().filter(|f| !f.is_empty()).count();
        }
        flagged
    });
    println!("{replies} replies through the static classifier (`classifier-static.json`):");
    report("  whole reply", 16, "µs", &whole_us);
    println!(
        "  throughput: {:.0} replies/s in batches of 256 ({flagged} raising a tag)",
        replies as f64 / started.elapsed().as_secs_f64()
    );
}
