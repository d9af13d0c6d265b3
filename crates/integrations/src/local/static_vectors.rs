//! [`StaticEmbedder`]: the local model's word-piece embeddings, averaged — no transformer layers.
//! A text's vector is the mean of the input embeddings of its word pieces, L2-normalised: a
//! bag of word pieces in 384 dimensions, about a thousand times cheaper than the model and far
//! blunter. It serves the guard's bulk classifier (`ragback eval moderate --adapter classifier`
//! over a week of replies), whose heads are trained on these vectors; retrieval never uses it.

use std::path::Path;

use async_trait::async_trait;
use ragback_application::ports::{EmbedError, Embedder, EmbeddingPurpose};
use tokenizers::Tokenizer;

use super::{LocalModelError, model_name, read_safetensors, truncating_tokenizer};

/// The tensor of the word-piece embeddings in a BERT safetensors file.
const WORD_EMBEDDINGS: &str = "embeddings.word_embeddings.weight";

/// Averages the word-piece embeddings of a BERT model.
pub struct StaticEmbedder {
    tokenizer: Tokenizer,
    /// One row of `dimension` values per word piece.
    table: Vec<f32>,
    dimension: usize,
    model_id: String,
}

impl StaticEmbedder {
    /// Reads the tokenizer and the word-piece embeddings of the model in `dir`.
    pub fn load(dir: &Path) -> Result<Self, LocalModelError> {
        let files = |detail: String| LocalModelError::Files {
            dir: dir.display().to_string(),
            detail,
        };
        let mut tokenizer = truncating_tokenizer(dir)?;
        tokenizer.with_padding(None);
        let tensors = read_safetensors(&dir.join("model.safetensors"), &candle_core::Device::Cpu)
            .map_err(|e| files(format!("model.safetensors: {e}")))?;
        let words = tensors
            .get(WORD_EMBEDDINGS)
            .ok_or_else(|| files(format!("model.safetensors has no {WORD_EMBEDDINGS}")))?;
        let (_, dimension) = words
            .dims2()
            .map_err(|e| files(format!("{WORD_EMBEDDINGS}: {e}")))?;
        let table = words
            .to_dtype(candle_core::DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| files(format!("{WORD_EMBEDDINGS}: {e}")))?;
        Ok(Self {
            tokenizer,
            table,
            dimension,
            model_id: format!("static/{}", model_name(dir)),
        })
    }

    /// The vector of one text: the mean of its word pieces' rows, L2-normalised (zero for a
    /// text without word pieces).
    fn vector(&self, text: &str) -> Result<Vec<f32>, String> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| format!("tokenizing: {e}"))?;
        let mut sum = vec![0f32; self.dimension];
        let mut pieces = 0usize;
        for &id in encoding.get_ids() {
            let from = id as usize * self.dimension;
            let Some(row) = self.table.get(from..from + self.dimension) else {
                continue;
            };
            for (total, value) in sum.iter_mut().zip(row) {
                *total += value;
            }
            pieces += 1;
        }
        let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt();
        if pieces > 0 && norm > 0.0 {
            for value in &mut sum {
                *value /= norm;
            }
        }
        Ok(sum)
    }
}

#[async_trait]
impl Embedder for StaticEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn max_batch(&self) -> usize {
        1024
    }

    async fn embed(
        &self,
        texts: &[String],
        _purpose: EmbeddingPurpose,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        texts
            .iter()
            .map(|text| self.vector(text))
            .collect::<Result<_, _>>()
            .map_err(EmbedError::InvalidInput)
    }
}
