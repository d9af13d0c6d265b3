//! Embedders for tests: words as vectors, and one that is down.

// Test helpers: failing loudly is their job.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use crate::ports::{EmbedError, Embedder, EmbeddingPurpose};

/// Dimension of [`WordEmbedder`] vectors.
pub const WORD_DIMENSION: usize = 64;

/// Embeds a text as its normalised bag of lower-cased words hashed into 64 buckets: texts that
/// share words are similar, texts that share none are orthogonal.
#[derive(Debug, Default)]
pub struct WordEmbedder {
    calls: AtomicUsize,
}

impl WordEmbedder {
    /// How many `embed` calls were made.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The vector of one text.
    pub fn vector(text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; WORD_DIMENSION];
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let bucket = word.to_lowercase().bytes().fold(17usize, |h, b| {
                h.wrapping_mul(31).wrapping_add(usize::from(b))
            });
            v[bucket % WORD_DIMENSION] += 1.0;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

#[async_trait]
impl Embedder for WordEmbedder {
    fn model_id(&self) -> &str {
        "test/words"
    }

    fn max_batch(&self) -> usize {
        4
    }

    async fn embed(
        &self,
        texts: &[String],
        _purpose: EmbeddingPurpose,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(texts.iter().map(|t| Self::vector(t)).collect())
    }
}

/// An embedder whose provider is down.
#[derive(Debug, Default)]
pub struct FailingEmbedder {
    calls: AtomicUsize,
}

impl FailingEmbedder {
    /// How many `embed` calls were made.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Embedder for FailingEmbedder {
    fn model_id(&self) -> &str {
        "test/failing"
    }

    fn max_batch(&self) -> usize {
        4
    }

    async fn embed(&self, _: &[String], _: EmbeddingPurpose) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(EmbedError::Unavailable("connection refused".into()))
    }
}
