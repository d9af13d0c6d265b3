//! Several samples per window (`replay --samples N`): how much of a pair score's spread is the
//! candidate's own (another draw of the same arms gives another verdict) and how much is the
//! judge's (the same pair in the other order gives another verdict).
//!
//! With `m` the mean of a pair's two order scores: across the samples of one window,
//! `Var(m) = σ²_candidate + σ²_judge / 2`, and the two orders of one pair are two measurements of
//! the same replies, so `σ²_judge ≈ mean((s₁ − s₂)² / 2)`. Hence
//! `σ²_candidate = max(0, mean within-window Var(m) − σ²_judge / 2)`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::scoring::PairRow;

/// The split of a criterion's pair-score variance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SampleVariance {
    /// Windows with at least two judged samples.
    pub windows: u64,
    /// Most samples of one window.
    pub samples: u32,
    /// Mean variance of a window's pair score across its samples.
    pub between_samples: f64,
    /// Variance of one order's verdict on the same pair (the judge's noise).
    pub judge: f64,
    /// The candidate's own variance: what is left of `between_samples` once the judge's share
    /// (`judge / 2`, two orders averaged) is taken off.
    pub candidate: f64,
}

fn variance(values: &[f64]) -> f64 {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64
}

/// The split, when some window has two judged samples or more.
pub fn split(rows: &[&PairRow]) -> Option<SampleVariance> {
    let mut by_window: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for row in rows {
        if let Some(score) = row.order_score {
            by_window.entry(&row.window).or_default().push(score);
        }
    }
    let sampled: Vec<&Vec<f64>> = by_window.values().filter(|v| v.len() >= 2).collect();
    if sampled.is_empty() {
        return None;
    }
    let between = sampled.iter().map(|v| variance(v)).sum::<f64>() / sampled.len() as f64;
    let gaps: Vec<f64> = rows.iter().filter_map(|r| r.order_gap).collect();
    let judge = if gaps.is_empty() {
        0.0
    } else {
        gaps.iter().map(|g| g * g / 2.0).sum::<f64>() / gaps.len() as f64
    };
    Some(SampleVariance {
        windows: sampled.len() as u64,
        samples: rows.iter().map(|r| r.sample + 1).max().unwrap_or(1),
        between_samples: between,
        judge,
        candidate: (between - judge / 2.0).max(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluation::verdict::PairOutcome;

    fn row(window: &str, sample: u32, s1: f64, s2: f64) -> PairRow {
        PairRow {
            dialogue: window.into(),
            window: window.into(),
            bucket: None,
            period: None,
            sample,
            outcome: PairOutcome::Tie,
            order_score: Some((s1 + s2) / 2.0),
            order_gap: Some((s1 - s2).abs()),
            chars: (1, 1),
            tokens: (None, None),
            first_slot: vec![],
            refused: false,
        }
    }

    #[test]
    fn a_steady_judge_leaves_all_the_spread_to_the_candidate() {
        let rows = [row("w", 0, 1.0, 1.0), row("w", 1, 0.0, 0.0)];
        let refs: Vec<&PairRow> = rows.iter().collect();
        let v = split(&refs).unwrap();
        assert_eq!((v.windows, v.samples), (1, 2));
        assert_eq!((v.between_samples, v.judge, v.candidate), (0.5, 0.0, 0.5));
    }

    #[test]
    fn a_coin_flipping_judge_takes_the_spread() {
        // Each order a coin, the samples alike: the spread is the judge's.
        let rows = [row("w", 0, 1.0, 0.0), row("w", 1, 0.0, 1.0)];
        let refs: Vec<&PairRow> = rows.iter().collect();
        let v = split(&refs).unwrap();
        assert_eq!((v.between_samples, v.judge, v.candidate), (0.0, 0.5, 0.0));
        assert!(split(&refs[..1]).is_none());
    }
}
