//! The `classifier` guard: the text's embedding (the configured embedder: the local
//! all-MiniLM-L6-v2 by default) scored by the trained heads of a classifier file
//! (`data/safety/classifier.json`, written by `ragback guard train`).

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use ragback_application::guard::classifier::{CLASSIFIER_VERSION, ClassifierModel, Role};
use ragback_application::ports::{
    Embedder, EmbeddingPurpose, Finding, Guard, GuardError, GuardInput, GuardTag,
};

/// With a user under 18, the `sexual` and `minor` heads flag from this share of their threshold.
const MINOR_THRESHOLD_FACTOR: f32 = 0.5;

/// Why a classifier file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    /// Unreadable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not a classifier file.
    #[error("{path} is not a classifier file: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Written for other vectors, or of another version.
    #[error("{path}: {problem}")]
    Mismatch {
        /// The file.
        path: String,
        /// What does not fit.
        problem: String,
    },
}

/// Reads a classifier file.
pub fn load_classifier(path: &Path) -> Result<ClassifierModel, ClassifierError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ClassifierError::Read {
        path: shown.clone(),
        source,
    })?;
    let model: ClassifierModel =
        serde_json::from_str(&text).map_err(|source| ClassifierError::Parse {
            path: shown.clone(),
            source,
        })?;
    let mismatch = |problem: String| ClassifierError::Mismatch {
        path: shown.clone(),
        problem,
    };
    if model.version != CLASSIFIER_VERSION {
        return Err(mismatch(format!(
            "version {} (this ragback reads {CLASSIFIER_VERSION}): train it again",
            model.version
        )));
    }
    if let Some(head) = model
        .heads
        .iter()
        .find(|h| h.weights.len() != model.dimension)
    {
        return Err(mismatch(format!(
            "the {} head has {} weights for {}-dimensional vectors",
            head.tag.key(),
            head.weights.len(),
            model.dimension
        )));
    }
    Ok(model)
}

/// Scores texts with a trained classifier.
pub struct ClassifierGuard {
    model: ClassifierModel,
    embedder: Arc<dyn Embedder>,
}

impl ClassifierGuard {
    /// The guard of `model` over `embedder`, which must be the one it was trained with.
    pub fn new(model: ClassifierModel, embedder: Arc<dyn Embedder>) -> Result<Self, String> {
        if embedder.model_id() != model.embedder {
            return Err(format!(
                "the classifier was trained on {}'s vectors, the configured embedder is {}: \
                 train it again with `ragback guard train`",
                model.embedder,
                embedder.model_id()
            ));
        }
        Ok(Self { model, embedder })
    }

    /// Every head's score of `vector` for `role`, with whether it flags (stricter for a minor).
    pub fn scores(&self, vector: &[f32], role: Role, minor: bool) -> Vec<(GuardTag, f32, bool)> {
        self.model
            .heads
            .iter()
            .filter(|head| head.role == role)
            .map(|head| {
                let score = head.score(vector);
                let strict = minor && matches!(head.tag, GuardTag::Sexual | GuardTag::Minor);
                let threshold = if strict {
                    head.threshold * MINOR_THRESHOLD_FACTOR
                } else {
                    head.threshold
                };
                (head.tag, score, score >= threshold)
            })
            .collect()
    }
}

#[async_trait]
impl Guard for ClassifierGuard {
    fn name(&self) -> &str {
        "classifier"
    }

    async fn check(&self, input: &GuardInput<'_>) -> Result<Vec<Finding>, GuardError> {
        self.check_many(std::slice::from_ref(input))
            .await?
            .pop()
            .ok_or_else(|| GuardError::InvalidResponse("the embedder returned no vector".into()))
    }

    /// One batch of embeddings for all of `inputs` (the embedder splits it by its batch size).
    async fn check_many(&self, inputs: &[GuardInput<'_>]) -> Result<Vec<Vec<Finding>>, GuardError> {
        let texts: Vec<String> = inputs.iter().map(|i| i.text.to_owned()).collect();
        let vectors = self
            .embedder
            .embed(&texts, EmbeddingPurpose::Query)
            .await
            .map_err(|e| GuardError::Unavailable(format!("the embedder failed: {e}")))?;
        if vectors.len() != inputs.len() || vectors.iter().any(|v| v.len() != self.model.dimension)
        {
            return Err(GuardError::InvalidResponse(
                "the embedder returned no vector of the size for every text".into(),
            ));
        }
        Ok(inputs
            .iter()
            .zip(&vectors)
            .map(|(input, vector)| {
                self.scores(vector, Role::of(input.speaker), input.minor)
                    .into_iter()
                    .filter(|(_, _, flagged)| *flagged)
                    .map(|(tag, score, _)| Finding { tag, score })
                    .collect()
            })
            .collect())
    }
}
