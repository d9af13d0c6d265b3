//! The local embedder against reference vectors of sentence-transformers (the fixture made by
//! `scripts/reference_embeddings.py`). Needs the model files: `make model` (CI fetches them).

use std::path::PathBuf;
use std::sync::Arc;

use ragback_application::ports::{Embedder, EmbeddingPurpose};
use ragback_integrations::local::{LocalEmbedder, LocalSettings};
use ragback_integrations::models::{EMBEDDER, verify_dir};
use serde_json::Value;

fn model_dir() -> PathBuf {
    std::env::var_os("RAGBACK_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2")
        })
}

fn embedder() -> LocalEmbedder {
    let dir = model_dir();
    if let Err(problems) = verify_dir(&EMBEDDER, &dir) {
        panic!(
            "the local embedder tests need the model files in {} (run `make model`): {problems:?}",
            dir.display()
        );
    }
    LocalEmbedder::load(&LocalSettings {
        model_dir: dir,
        ..LocalSettings::default()
    })
    .unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_match_sentence_transformers() {
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/minilm_reference.json")).unwrap();
    let sentences = fixture["sentences"].as_array().unwrap();
    let texts: Vec<String> = sentences
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_owned())
        .collect();
    let local = embedder();

    let vectors = local
        .embed(&texts, EmbeddingPurpose::Document)
        .await
        .unwrap();

    assert_eq!(vectors.len(), texts.len());
    for (sentence, vector) in sentences.iter().zip(&vectors) {
        let reference: Vec<f32> = sentence["vector"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(vector.len(), 384);
        let similarity = cosine(vector, &reference);
        assert!(
            similarity >= 0.999,
            "{:?}: cosine {similarity}",
            sentence["text"]
        );
        let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "normalised: {norm}");
    }
    assert_eq!(local.model_id(), "local/all-MiniLM-L6-v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_at_a_time_equals_batched() {
    let local = embedder();
    let texts: Vec<String> = ["short", "a somewhat longer sentence about marathons", ""]
        .map(String::from)
        .to_vec();
    let batched = local.embed(&texts, EmbeddingPurpose::Query).await.unwrap();
    for (text, expected) in texts.iter().zip(&batched) {
        let alone = local
            .embed(std::slice::from_ref(text), EmbeddingPurpose::Query)
            .await
            .unwrap();
        assert!(
            cosine(&alone[0], expected) > 0.99999,
            "padding must not change {text:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn related_texts_are_closer() {
    let local = embedder();
    let texts: Vec<String> = [
        "I finally ran the marathon!",
        "Completed the London Marathon in 2024",
        "Has a golden retriever named Biscuit",
    ]
    .map(String::from)
    .to_vec();
    let v = local.embed(&texts, EmbeddingPurpose::Query).await.unwrap();
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_calls_all_complete() {
    let local = Arc::new(embedder());
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let local = Arc::clone(&local);
            tokio::spawn(async move {
                local
                    .embed(&[format!("message number {i}")], EmbeddingPurpose::Query)
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap()[0].len(), 384);
    }
}

#[test]
fn a_missing_model_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = LocalEmbedder::load(&LocalSettings {
        model_dir: dir.path().to_path_buf(),
        ..LocalSettings::default()
    })
    .err()
    .unwrap();
    assert!(err.to_string().contains("make model"), "{err}");
}
