//! The in-process sentence embedder: all-MiniLM-L6-v2 (384 dimensions) run with candle's BERT and
//! the `tokenizers` crate, with sentence-transformers' pooling: the mean of the token embeddings
//! over the attention mask, L2-normalised. Inference runs on the blocking pool, in batches, with a
//! bound on how many batches run at once.

pub use crate::local_settings::LocalSettings;

mod static_vectors;

pub use static_vectors::StaticEmbedder;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use ragback_application::ports::{EmbedError, Embedder, EmbeddingPurpose};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};
use tokio::sync::Semaphore;

/// Word-pieces per text, [CLS] and [SEP] included (the model's `max_seq_length`).
pub const MAX_TOKENS: usize = 256;

/// Why the model cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LocalModelError {
    /// A file is missing or unreadable.
    #[error(
        "the model in {dir} cannot be loaded ({detail}); get it with `make model` (or `ragback \
         model fetch`), or set RAGBACK_EMBEDDER__PROVIDER to cohere or none"
    )]
    Files {
        /// The model directory.
        dir: String,
        /// What is wrong.
        detail: String,
    },
    /// A setting is out of range.
    #[error("{0}")]
    Settings(String),
}

struct Model {
    bert: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

/// Embeds texts in-process with a BERT sentence-transformer.
#[derive(Clone)]
pub struct LocalEmbedder {
    model: Arc<Model>,
    permits: Arc<Semaphore>,
    model_id: String,
    dimension: usize,
    batch_size: usize,
}

impl LocalEmbedder {
    /// Loads the model from `settings.model_dir` (90 MB of weights).
    pub fn load(settings: &LocalSettings) -> Result<Self, LocalModelError> {
        if settings.batch_size == 0 || settings.max_concurrency == 0 {
            return Err(LocalModelError::Settings(
                "RAGBACK_EMBEDDER__LOCAL__BATCH_SIZE and __MAX_CONCURRENCY must be at least 1"
                    .into(),
            ));
        }
        let dir = &settings.model_dir;
        let files = |detail: String| LocalModelError::Files {
            dir: dir.display().to_string(),
            detail,
        };
        let read =
            |name: &str| std::fs::read(dir.join(name)).map_err(|e| files(format!("{name}: {e}")));
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| files(format!("config.json: {e}")))?;
        let mut tokenizer = truncating_tokenizer(dir)?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        let device = Device::Cpu;
        // Read tensor by tensor, not memory-mapped (mapping is `unsafe`, which this workspace
        // forbids) nor read whole: the file and its tensors never sit in memory together.
        let weights = read_safetensors(&dir.join("model.safetensors"), &device)
            .map_err(|e| files(format!("model.safetensors: {e}")))?;
        let vb = VarBuilder::from_tensors(weights, DType::F32, &device);
        let bert = BertModel::load(vb, &config).map_err(|e| files(format!("weights: {e}")))?;
        let dimension = config.hidden_size;
        Ok(Self {
            model: Arc::new(Model {
                bert,
                tokenizer,
                device,
            }),
            permits: Arc::new(Semaphore::new(settings.max_concurrency)),
            model_id: format!("local/{}", model_name(dir)),
            dimension,
            batch_size: settings.batch_size,
        })
    }

    /// The vector dimension.
    pub fn dimension(&self) -> usize {
        self.dimension
    }
}

/// The model's tokenizer (`tokenizer.json` in `dir`), truncating at [`MAX_TOKENS`].
fn truncating_tokenizer(dir: &Path) -> Result<Tokenizer, LocalModelError> {
    let invalid = |e: tokenizers::Error| LocalModelError::Files {
        dir: dir.display().to_string(),
        detail: format!("tokenizer.json: {e}"),
    };
    let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(invalid)?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: MAX_TOKENS,
            ..TruncationParams::default()
        }))
        .map_err(invalid)?;
    Ok(tokenizer)
}

/// The tensors of a safetensors file, read one at a time: at most the weights and one tensor's
/// bytes are in memory at once.
fn read_safetensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>, String> {
    use std::io::{Read, Seek, SeekFrom};

    #[derive(serde::Deserialize)]
    struct Entry {
        dtype: String,
        shape: Vec<usize>,
        data_offsets: (u64, u64),
    }
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length).map_err(|e| e.to_string())?;
    let length = u64::from_le_bytes(length);
    if length > 100 << 20 {
        return Err(format!(
            "a header of {length} bytes is not a safetensors header"
        ));
    }
    let mut header = vec![0u8; length as usize];
    file.read_exact(&mut header).map_err(|e| e.to_string())?;
    let mut entries: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| format!("header: {e}"))?;
    entries.remove("__metadata__");
    let start = 8 + length;
    let mut tensors = HashMap::with_capacity(entries.len());
    for (name, entry) in entries {
        let entry: Entry = serde_json::from_value(entry).map_err(|e| format!("{name}: {e}"))?;
        let dtype = match entry.dtype.as_str() {
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            "I64" => DType::I64,
            "U32" => DType::U32,
            "U8" => DType::U8,
            other => return Err(format!("{name}: dtype {other} is not supported")),
        };
        let (from, to) = entry.data_offsets;
        let size = to
            .checked_sub(from)
            .ok_or_else(|| format!("{name}: data offsets {from}..{to}"))?;
        file.seek(SeekFrom::Start(start + from))
            .map_err(|e| e.to_string())?;
        let mut bytes = vec![0u8; usize::try_from(size).map_err(|e| e.to_string())?];
        file.read_exact(&mut bytes)
            .map_err(|e| format!("{name}: {e}"))?;
        let tensor = Tensor::from_raw_buffer(&bytes, dtype, &entry.shape, device)
            .map_err(|e| format!("{name}: {e}"))?;
        tensors.insert(name, tensor);
    }
    Ok(tensors)
}

fn model_name(dir: &Path) -> String {
    dir.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model")
        .to_owned()
}

impl Model {
    /// Embeds one batch: tokenise (truncate, pad to the longest), run BERT, mean-pool over the
    /// attention mask, L2-normalise.
    fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| format!("tokenizing: {e}"))?;
        let rows = encodings.len();
        let columns = encodings.first().map_or(0, |e| e.get_ids().len());
        let flat = |get: fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            encodings
                .iter()
                .flat_map(|e| get(e).iter().copied())
                .collect()
        };
        let tensor = |data: Vec<u32>| {
            Tensor::from_vec(data, (rows, columns), &self.device).map_err(|e| e.to_string())
        };
        let ids = tensor(flat(tokenizers::Encoding::get_ids))?;
        let types = tensor(flat(tokenizers::Encoding::get_type_ids))?;
        let mask = tensor(flat(tokenizers::Encoding::get_attention_mask))?;
        let hidden = self
            .bert
            .forward(&ids, &types, Some(&mask))
            .map_err(|e| format!("inference: {e}"))?;
        pool_and_normalise(&hidden, &mask).map_err(|e| format!("pooling: {e}"))
    }
}

/// Mean of the token embeddings where the mask is 1, then L2 normalisation.
fn pool_and_normalise(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
    let mean = summed.broadcast_div(&counts)?;
    let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    mean.broadcast_div(&norms)?.to_vec2::<f32>()
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn max_batch(&self) -> usize {
        self.batch_size
    }

    async fn embed(
        &self,
        texts: &[String],
        _purpose: EmbeddingPurpose,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        // all-MiniLM-L6-v2 embeds queries and documents alike. Batches are padded to their
        // longest text: texts of a like length go together, and come back in their order.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut vectors = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(self.batch_size) {
            let _permit = self
                .permits
                .acquire()
                .await
                .map_err(|_| EmbedError::Unavailable("the embedder is shutting down".into()))?;
            let model = Arc::clone(&self.model);
            let batch: Vec<String> = chunk.iter().map(|&i| texts[i].clone()).collect();
            let embedded = tokio::task::spawn_blocking(move || model.embed_batch(&batch))
                .await
                .map_err(|e| EmbedError::Unavailable(format!("inference task failed: {e}")))?
                .map_err(EmbedError::InvalidInput)?;
            for (&i, vector) in chunk.iter().zip(embedded) {
                vectors[i] = vector;
            }
        }
        Ok(vectors)
    }
}
