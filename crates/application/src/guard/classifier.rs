//! The guard's learned classifier, the design's next step after the judge: one logistic
//! regression per tag on a text's embedding, trained on labelled texts (the judge's tags, or a
//! hand-labelled set), with a threshold per tag chosen on held-out scores for a target recall:
//! each text scored by a model fitted without its fold ([`FOLDS`]-fold cross-validation), the
//! final model fitted on every text. Pure computation: the adapter embeds, this scores; training
//! is deterministic (no randomness: the same data gives the same file, byte for byte).

use serde::{Deserialize, Serialize};

use crate::ports::{GuardTag, Speaker};

/// The file format's version.
pub const CLASSIFIER_VERSION: u32 = 1;

/// A labelled text, embedded.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The text's embedding (unit length).
    pub vector: Vec<f32>,
    /// Whose text.
    pub speaker: Speaker,
    /// Its tags.
    pub tags: Vec<GuardTag>,
    /// Its fold, below [`FOLDS`] (texts of one group share a fold).
    pub fold: usize,
}

/// The folds of the cross-validation that chooses the thresholds.
pub const FOLDS: usize = 5;

/// Whose texts a head reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// User messages (the crisis head).
    User,
    /// Replies.
    Character,
}

impl Role {
    /// The role of a speaker.
    pub fn of(speaker: Speaker) -> Self {
        match speaker {
            Speaker::User => Self::User,
            Speaker::Character => Self::Character,
        }
    }
}

/// Precision, recall and F1 on a set, with its counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Texts with the tag.
    pub positives: usize,
    /// Texts without it.
    pub negatives: usize,
    /// Flagged with the tag.
    pub true_positives: usize,
    /// Flagged without it.
    pub false_positives: usize,
    /// Of the flagged, the share that has the tag.
    pub precision: f64,
    /// Of those with the tag, the share flagged.
    pub recall: f64,
    /// Their harmonic mean.
    pub f1: f64,
}

impl Metrics {
    /// The metrics of `scored` (score, has the tag) at `threshold`.
    pub fn at(scored: &[(f32, bool)], threshold: f32) -> Self {
        let positives = scored.iter().filter(|(_, y)| *y).count();
        let negatives = scored.len() - positives;
        let true_positives = scored.iter().filter(|(s, y)| *y && *s >= threshold).count();
        let false_positives = scored
            .iter()
            .filter(|(s, y)| !*y && *s >= threshold)
            .count();
        let flagged = true_positives + false_positives;
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let precision = ratio(true_positives, flagged);
        let recall = ratio(true_positives, positives);
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Self {
            positives,
            negatives,
            true_positives,
            false_positives,
            precision,
            recall,
            f1,
        }
    }
}

/// One tag's logistic regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// The tag it raises.
    pub tag: GuardTag,
    /// Whose texts it reads.
    pub role: Role,
    /// One weight per embedding dimension.
    pub weights: Vec<f32>,
    /// The intercept.
    pub bias: f32,
    /// The score from which the tag is raised.
    pub threshold: f32,
    /// How it did on the held-out scores at its threshold.
    pub validation: Metrics,
}

impl Head {
    /// The probability the text has the tag.
    pub fn score(&self, vector: &[f32]) -> f32 {
        let z: f32 = self
            .weights
            .iter()
            .zip(vector)
            .map(|(w, x)| w * x)
            .sum::<f32>()
            + self.bias;
        sigmoid(z)
    }
}

/// A trained classifier: what `guard train` writes and the `classifier` guard loads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierModel {
    /// [`CLASSIFIER_VERSION`].
    pub version: u32,
    /// The embedder its vectors come from (`local/all-MiniLM-L6-v2`): another one's vectors
    /// mean nothing to it.
    pub embedder: String,
    /// The vectors' length.
    pub dimension: usize,
    /// The SHA-256 of the labelled data it was trained on.
    pub data_sha256: String,
    /// The recall each threshold was chosen for.
    pub target_recall: f64,
    /// The precision no threshold goes below.
    pub min_precision: f64,
    /// The heads.
    pub heads: Vec<Head>,
    /// Tags whose head could not keep `min_precision`: left to the rules.
    pub dropped: Vec<(GuardTag, Role)>,
}

/// How a classifier is trained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Training {
    /// Passes of full-batch gradient descent.
    pub epochs: usize,
    /// The step.
    pub learning_rate: f32,
    /// L2 penalty on the weights.
    pub l2: f32,
    /// The recall each threshold aims for on the held-out scores.
    pub target_recall: f64,
    /// The precision a head must keep on them, or it is not shipped.
    pub min_precision: f64,
}

impl Default for Training {
    fn default() -> Self {
        Self {
            epochs: 400,
            learning_rate: 2.0,
            l2: 1e-3,
            target_recall: 0.95,
            min_precision: 0.7,
        }
    }
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// The heads worth training: each tag with positives among the texts of its role.
fn heads_of(examples: &[Example]) -> Vec<(GuardTag, Role)> {
    let mut heads = Vec::new();
    for role in [Role::Character, Role::User] {
        for tag in GuardTag::ALL {
            let positives = examples
                .iter()
                .filter(|e| Role::of(e.speaker) == role && e.tags.contains(&tag))
                .count();
            if positives >= 2 {
                heads.push((tag, role));
            }
        }
    }
    heads
}

/// Fits one logistic regression (positives and negatives weighted to count alike).
fn fit(points: &[(&[f32], bool)], dimension: usize, training: Training) -> (Vec<f32>, f32) {
    let positives = points.iter().filter(|(_, y)| *y).count().max(1) as f32;
    let negatives = points.iter().filter(|(_, y)| !*y).count().max(1) as f32;
    let total = positives + negatives;
    let (wp, wn) = (total / (2.0 * positives), total / (2.0 * negatives));
    let mut weights = vec![0.0f32; dimension];
    let mut bias = 0.0f32;
    let mut gradient = vec![0.0f32; dimension];
    for _ in 0..training.epochs {
        gradient.iter_mut().for_each(|g| *g = 0.0);
        let mut bias_gradient = 0.0f32;
        for (x, y) in points {
            let z: f32 = weights.iter().zip(*x).map(|(w, v)| w * v).sum::<f32>() + bias;
            let error = sigmoid(z) - if *y { 1.0 } else { 0.0 };
            let weight = if *y { wp } else { wn };
            for (g, v) in gradient.iter_mut().zip(*x) {
                *g += weight * error * v;
            }
            bias_gradient += weight * error;
        }
        let n = total;
        for (w, g) in weights.iter_mut().zip(&gradient) {
            *w -= training.learning_rate * (g / n + training.l2 * *w);
        }
        bias -= training.learning_rate * bias_gradient / n;
    }
    (weights, bias)
}

/// The threshold of a head, from its held-out scores: among the thresholds that keep
/// `min_precision`, the one of best F1 that also keeps `target` recall, else the one of best F1.
/// `None` when no threshold flags anything at that precision: the head is not worth shipping.
/// Ties go to the higher threshold (fewer clean texts flagged).
fn threshold_for(scored: &[(f32, bool)], target: f64, min_precision: f64) -> Option<f32> {
    let mut candidates: Vec<f32> = scored.iter().filter(|(_, y)| *y).map(|(s, _)| *s).collect();
    candidates.sort_by(f32::total_cmp);
    candidates.dedup();
    let best = |keep: &dyn Fn(&Metrics) -> bool| {
        candidates
            .iter()
            // Just below a positive's score, so that it is flagged.
            .map(|t| {
                (
                    (t - 1e-4).max(0.0),
                    Metrics::at(scored, (t - 1e-4).max(0.0)),
                )
            })
            .filter(|(_, m)| m.true_positives > 0 && m.precision >= min_precision && keep(m))
            .max_by(|(ta, a), (tb, b)| a.f1.total_cmp(&b.f1).then(ta.total_cmp(tb)))
            .map(|(t, _)| t)
    };
    best(&|m| m.recall >= target).or_else(|| best(&|_| true))
}

/// Trains a classifier on `examples` (their vectors from `embedder`, of `dimension`).
pub fn train(
    examples: &[Example],
    embedder: &str,
    dimension: usize,
    data_sha256: &str,
    training: Training,
) -> ClassifierModel {
    let mut dropped = Vec::new();
    let heads = heads_of(examples)
        .into_iter()
        .filter_map(|(tag, role)| {
            let of_role: Vec<&Example> = examples
                .iter()
                .filter(|e| Role::of(e.speaker) == role)
                .collect();
            let points = |keep: &dyn Fn(&Example) -> bool| -> Vec<(&[f32], bool)> {
                of_role
                    .iter()
                    .filter(|e| keep(e))
                    .map(|e| (e.vector.as_slice(), e.tags.contains(&tag)))
                    .collect()
            };
            // Every text scored by a model that did not see its fold.
            let mut held_out = Vec::with_capacity(of_role.len());
            for fold in 0..FOLDS {
                let fitting = points(&|e| e.fold != fold);
                if fitting.is_empty() {
                    continue;
                }
                let (weights, bias) = fit(&fitting, dimension, training);
                let fold_head = Head {
                    tag,
                    role,
                    weights,
                    bias,
                    threshold: 0.5,
                    validation: Metrics::at(&[], 0.5),
                };
                held_out.extend(
                    of_role
                        .iter()
                        .filter(|e| e.fold == fold)
                        .map(|e| (fold_head.score(&e.vector), e.tags.contains(&tag))),
                );
            }
            let Some(threshold) =
                threshold_for(&held_out, training.target_recall, training.min_precision)
            else {
                dropped.push((tag, role));
                return None;
            };
            let (weights, bias) = fit(&points(&|_| true), dimension, training);
            Some(Head {
                tag,
                role,
                weights,
                bias,
                threshold,
                validation: Metrics::at(&held_out, threshold),
            })
        })
        .collect();
    ClassifierModel {
        version: CLASSIFIER_VERSION,
        embedder: embedder.to_owned(),
        dimension,
        data_sha256: data_sha256.to_owned(),
        target_recall: training.target_recall,
        min_precision: training.min_precision,
        heads,
        dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two-dimensional texts: the tag is "x is large".
    fn examples() -> Vec<Example> {
        (0..40)
            .map(|i| {
                let x = i as f32 / 40.0;
                let norm = (x * x + 0.25f32).sqrt();
                Example {
                    vector: vec![x / norm, 0.5 / norm],
                    speaker: Speaker::Character,
                    tags: if x > 0.6 {
                        vec![GuardTag::Hate]
                    } else {
                        vec![]
                    },
                    fold: i % FOLDS,
                }
            })
            .collect()
    }

    #[test]
    fn training_separates_a_separable_tag_and_is_deterministic() {
        let model = train(&examples(), "test/2d", 2, "abc", Training::default());
        assert_eq!(model.heads.len(), 1);
        let head = &model.heads[0];
        assert_eq!((head.tag, head.role), (GuardTag::Hate, Role::Character));
        assert!(head.validation.recall >= 0.9, "{:?}", head.validation);
        let again = train(&examples(), "test/2d", 2, "abc", Training::default());
        assert_eq!(
            serde_json::to_string(&model).unwrap(),
            serde_json::to_string(&again).unwrap(),
            "same data, same file"
        );
    }

    #[test]
    fn metrics_and_thresholds_follow_their_definitions() {
        let scored = [(0.9, true), (0.8, false), (0.7, true), (0.2, false)];
        let m = Metrics::at(&scored, 0.75);
        assert_eq!((m.true_positives, m.false_positives), (1, 1));
        assert_eq!((m.precision, m.recall), (0.5, 0.5));
        let t = threshold_for(&scored, 1.0, 0.5).unwrap();
        assert!(t < 0.7 && t > 0.69, "full recall needs 0.7: {t}");
        let t = threshold_for(&scored, 1.0, 0.9).unwrap();
        assert!(
            t < 0.9 && t > 0.89,
            "precision first: half the recall, none wrong: {t}"
        );
        assert_eq!(
            threshold_for(&[(0.1, false)], 0.9, 0.8),
            None,
            "no positives"
        );
        assert_eq!(
            threshold_for(&[(0.9, false), (0.2, true)], 0.9, 0.8),
            None,
            "never precise enough"
        );
    }
}
