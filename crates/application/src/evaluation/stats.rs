//! The statistics of an evaluation: a seeded RNG, the dialogue-clustered bootstrap, the
//! length-controlled win rate, Wilson intervals, normal quantiles and sample sizes.
//!
//! Every random draw comes from ChaCha8 with one stream per bootstrap round and our own
//! rejection sampling over `next_u64`, so results are byte-identical across runs, thread counts
//! and versions of `rand`.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::Serialize;

/// A seeded ChaCha8 stream.
#[derive(Debug, Clone)]
pub struct SeededRng(ChaCha8Rng);

impl SeededRng {
    /// Stream `stream` of `seed`.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Self(rng)
    }

    /// Uniform in `0..n` (Lemire's multiply-and-reject); 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let mut product = u128::from(self.0.next_u64()) * u128::from(n);
        if (product as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (product as u64) < threshold {
                product = u128::from(self.0.next_u64()) * u128::from(n);
            }
        }
        (product >> 64) as u64
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The dialogue-clustered bootstrap: each round draws as many dialogues as there are, with
/// replacement, and every statistic of that round is recomputed on the drawn dialogues' rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bootstrap {
    /// Rounds (2,000 by default).
    pub rounds: u32,
    /// Seed (0 by default).
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Self {
            rounds: 2000,
            seed: 0,
        }
    }
}

impl Bootstrap {
    /// How often each of `clusters` clusters is drawn in round `round`. The same round always
    /// gives the same weights, so every statistic of a report sees the same resamples.
    pub fn weights(&self, round: u32, clusters: usize) -> Vec<u32> {
        let mut rng = SeededRng::new(self.seed, u64::from(round));
        let mut weights = vec![0u32; clusters];
        for _ in 0..clusters {
            weights[rng.below(clusters as u64) as usize] += 1;
        }
        weights
    }

    /// The 2.5 % and 97.5 % percentiles of `statistic` over the rounds; `statistic` gets each
    /// cluster's weight and returns `None` when undefined for the round (no rows drawn), which
    /// leaves the round out.
    pub fn interval(
        &self,
        clusters: usize,
        mut statistic: impl FnMut(&[u32]) -> Option<f64>,
    ) -> Option<Interval> {
        spread(
            (0..self.rounds)
                .filter_map(|round| statistic(&self.weights(round, clusters)))
                .collect(),
        )
    }
}

/// The 2.5 % and 97.5 % percentiles of a statistic's bootstrap `values` and their standard
/// deviation; non-finite values are left out, `None` when none is left.
pub fn spread(mut values: Vec<f64>) -> Option<Interval> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    Some(Interval {
        low: percentile(&values, 0.025),
        high: percentile(&values, 0.975),
        se: variance.sqrt(),
    })
}

/// A 95 % interval and the standard error it came with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
    /// Standard error (of the bootstrap distribution; 0 for Wilson).
    pub se: f64,
}

/// The `q` quantile of sorted `values`, interpolated linearly between order statistics.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let position = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let below = position.floor() as usize;
            let above = (below + 1).min(n - 1);
            let fraction = position - below as f64;
            sorted[below] + (sorted[above] - sorted[below]) * fraction
        }
    }
}

/// z of a two-sided 95 % interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The standard normal quantile (Acklam's rational approximation: relative error below
/// 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The standard normal CDF, from the complementary error function (the Chebyshev fit of
/// Numerical Recipes' `erfcc`: relative error below 1.2e-7).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// Two-sided p-value of `estimate` against `null` with standard error `se`.
pub fn two_sided_p(estimate: f64, null: f64, se: f64) -> f64 {
    if se <= 0.0 {
        return if (estimate - null).abs() < 1e-12 {
            1.0
        } else {
            0.0
        };
    }
    2.0 * (1.0 - normal_cdf(((estimate - null) / se).abs()))
}

/// The Wilson score interval of `k` successes in `n` trials, 95 %.
pub fn wilson(k: u64, n: u64) -> Option<Interval> {
    if n == 0 {
        return None;
    }
    let n = n as f64;
    let p = k as f64 / n;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    Some(Interval {
        low: (centre - half).max(0.0),
        high: (centre + half).min(1.0),
        se: 0.0,
    })
}

/// Cohen's κ of two raters' yes/no answers on the same items: their agreement beyond what their
/// own rates give by chance. `None` without items, or when chance alone agrees on every item
/// (both raters always answer the same).
pub fn cohens_kappa(pairs: &[(bool, bool)]) -> Option<f64> {
    if pairs.is_empty() {
        return None;
    }
    let n = pairs.len() as f64;
    let share =
        |f: &dyn Fn(&(bool, bool)) -> bool| pairs.iter().filter(|p| f(p)).count() as f64 / n;
    let agree = share(&|(a, b)| a == b);
    let (pa, pb) = (share(&|(a, _)| *a), share(&|(_, b)| *b));
    let chance = pa * pb + (1.0 - pa) * (1.0 - pb);
    (chance < 1.0).then(|| (agree - chance) / (1.0 - chance))
}

/// What a sample-size calculation needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerQuestion {
    /// The effect to detect: win rate `0.5 + delta`.
    pub delta: f64,
    /// Share of ties (consistent or not): a tie carries no information on the direction.
    pub tie_rate: f64,
    /// Two-sided significance level.
    pub alpha: f64,
    /// Power, `1 − β`.
    pub power: f64,
    /// Windows per dialogue (`m`).
    pub windows_per_dialogue: f64,
    /// Correlation of the pair scores of one dialogue (`ρ`).
    pub icc: f64,
}

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PowerAnswer {
    /// Independent pairs needed.
    pub pairs: u64,
    /// The design effect `1 + (m − 1)ρ`.
    pub design_effect: f64,
    /// Windows needed with that clustering.
    pub windows: u64,
    /// Dialogues needed.
    pub dialogues: u64,
}

/// `n = (z₁₋α/₂ + z₁₋β)² · (1 − t)/4 / δ²`, times the design effect for clustered windows.
pub fn pairs_needed(question: PowerQuestion) -> Option<PowerAnswer> {
    if !(question.delta > 0.0 && question.delta < 0.5) {
        return None;
    }
    let z = normal_quantile(1.0 - question.alpha / 2.0) + normal_quantile(question.power);
    let variance = (1.0 - question.tie_rate.clamp(0.0, 1.0)) / 4.0;
    let pairs = z * z * variance / (question.delta * question.delta);
    let m = question.windows_per_dialogue.max(1.0);
    let design_effect = 1.0 + (m - 1.0) * question.icc.clamp(0.0, 1.0);
    let windows = (pairs * design_effect).ceil();
    Some(PowerAnswer {
        pairs: pairs.ceil() as u64,
        design_effect,
        windows: windows as u64,
        dialogues: (windows / m).ceil() as u64,
    })
}

/// The smallest effect `δ` detectable with `n` pairs (inverse of [`pairs_needed`] without the
/// design effect).
pub fn minimum_detectable_effect(n: f64, tie_rate: f64, alpha: f64, power: f64) -> f64 {
    if n <= 0.0 {
        return f64::NAN;
    }
    let z = normal_quantile(1.0 - alpha / 2.0) + normal_quantile(power);
    z * ((1.0 - tie_rate.clamp(0.0, 1.0)) / 4.0 / n).sqrt()
}

/// A logistic fit of pair scores on the length gap, AlpacaEval-style: `logit P = θ + β·x` with
/// `x = tanh(Δ/sd(Δ))`, scaled but not centred, so that `σ(θ)` is the win rate at equal length.
/// Scores are fractional targets (a tie is 0.5); `weights` weight rows (bootstrap multiplicity).
/// Newton's method with a small L2 penalty on β keeps a separated sample finite.
pub fn length_controlled(scores: &[f64], gaps: &[f64], weights: &[f64], sd: f64) -> Option<f64> {
    let total: f64 = weights.iter().sum();
    if total <= 0.0 || scores.len() != gaps.len() || scores.len() != weights.len() {
        return None;
    }
    let sd = if sd > 0.0 { sd } else { 1.0 };
    let xs: Vec<f64> = gaps.iter().map(|g| (g / sd).tanh()).collect();
    let ridge = 1e-3 * total;
    let (mut theta, mut beta) = (0.0f64, 0.0f64);
    for _ in 0..100 {
        let (mut g0, mut g1, mut h00, mut h01, mut h11) = (0.0, -ridge * beta, 0.0, 0.0, ridge);
        for ((&y, &x), &w) in scores.iter().zip(&xs).zip(weights) {
            if w == 0.0 {
                continue;
            }
            let p = sigmoid(theta + beta * x);
            let r = w * (y - p);
            let v = w * p * (1.0 - p);
            g0 += r;
            g1 += r * x;
            h00 += v;
            h01 += v * x;
            h11 += v * x * x;
        }
        let det = h00 * h11 - h01 * h01;
        if det.abs() < 1e-300 {
            break;
        }
        let step0 = (h11 * g0 - h01 * g1) / det;
        let step1 = (h00 * g1 - h01 * g0) / det;
        theta += step0.clamp(-5.0, 5.0);
        beta += step1.clamp(-5.0, 5.0);
        if step0.abs() < 1e-12 && step1.abs() < 1e-12 {
            break;
        }
    }
    Some(sigmoid(theta))
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The population standard deviation of `values`.
pub fn std_dev(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt()
}

/// The median of `values` (NaN when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile(&sorted, 0.5)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::float_cmp)]

    use super::*;

    fn round4(x: f64) -> f64 {
        (x * 1e4).round() / 1e4
    }

    #[test]
    fn wilson_matches_the_reference_values() {
        let zero = wilson(0, 100).unwrap();
        assert_eq!((round4(zero.low), round4(zero.high)), (0.0, 0.037));
        let five = wilson(5, 100).unwrap();
        assert_eq!((round4(five.low), round4(five.high)), (0.0215, 0.1118));
        assert!(wilson(0, 0).is_none());
    }

    #[test]
    fn sample_sizes_match_the_reference_values() {
        let question = PowerQuestion {
            delta: 0.05,
            tie_rate: 0.3,
            alpha: 0.05,
            power: 0.8,
            windows_per_dialogue: 4.0,
            icc: 0.3,
        };
        let answer = pairs_needed(question).unwrap();
        assert_eq!(answer.pairs, 550);
        assert_eq!(answer.windows, 1044);
        assert_eq!(answer.dialogues, 261);
        assert_eq!(round4(answer.design_effect), 1.9);
        let pairs = |delta| {
            pairs_needed(PowerQuestion {
                delta,
                icc: 0.0,
                ..question
            })
            .unwrap()
            .pairs
        };
        assert_eq!(pairs(0.03), 1527);
        assert_eq!(pairs(0.10), 138);
        assert!(
            pairs_needed(PowerQuestion {
                delta: 0.0,
                ..question
            })
            .is_none()
        );
        let mde = minimum_detectable_effect(549.4, 0.3, 0.05, 0.8);
        assert!((mde - 0.05).abs() < 1e-4, "{mde}");
    }

    #[test]
    fn normal_quantiles_are_exact_to_many_decimals() {
        assert!((normal_quantile(0.975) - Z95).abs() < 1e-8);
        assert!((normal_quantile(0.8) - 0.841_621_233_572_914).abs() < 1e-8);
        assert!((normal_quantile(0.001) + 3.090_232_306_167_813).abs() < 1e-8);
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
    }

    #[test]
    fn bounded_draws_are_uniform_and_repeatable() {
        let mut rng = SeededRng::new(3, 1);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[rng.below(6) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_500..10_500).contains(&c)),
            "{counts:?}"
        );
        let a: Vec<u64> = (0..5).map(|_| SeededRng::new(9, 4).below(1000)).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let b = Bootstrap::default();
        assert_eq!(b.weights(17, 40), b.weights(17, 40));
        assert_eq!(b.weights(17, 40).iter().sum::<u32>(), 40);
        assert_ne!(b.weights(17, 40), b.weights(18, 40));
    }

    /// Windows of one dialogue share a random effect (ICC ⅓). The dialogue-clustered interval
    /// covers the true win rate about 95 % of the time; resampling rows as if they were
    /// independent does not.
    #[test]
    fn the_clustered_interval_covers_the_truth_where_row_resampling_does_not() {
        let (datasets, dialogues, windows) = (200u64, 100usize, 5usize);
        let bootstrap = Bootstrap {
            rounds: 300,
            seed: 1,
        };
        let (mut clustered, mut rows) = (0u32, 0u32);
        for dataset in 0..datasets {
            let mut rng = SeededRng::new(1, 1_000_000 + dataset);
            // P(win) of a dialogue is uniform in [0, 1]: Var(p) = 1/12, so the intra-dialogue
            // correlation of the 0/1 scores is Var(p) / (½·½) = ⅓.
            let half_width = 0.5;
            let scores: Vec<Vec<f64>> = (0..dialogues)
                .map(|_| {
                    let p = 0.5 + (rng.unit() * 2.0 - 1.0) * half_width;
                    (0..windows)
                        .map(|_| if rng.unit() < p { 1.0 } else { 0.0 })
                        .collect()
                })
                .collect();
            let by_cluster = bootstrap
                .interval(dialogues, |w| {
                    let (mut sum, mut n) = (0.0, 0.0);
                    for (d, &weight) in w.iter().enumerate() {
                        sum += f64::from(weight) * scores[d].iter().sum::<f64>();
                        n += f64::from(weight) * windows as f64;
                    }
                    Some(sum / n)
                })
                .unwrap();
            let flat: Vec<f64> = scores.concat();
            let by_row = bootstrap
                .interval(flat.len(), |w| {
                    let sum: f64 = w.iter().zip(&flat).map(|(&w, s)| f64::from(w) * s).sum();
                    Some(sum / flat.len() as f64)
                })
                .unwrap();
            clustered += u32::from(by_cluster.low <= 0.5 && 0.5 <= by_cluster.high);
            rows += u32::from(by_row.low <= 0.5 && 0.5 <= by_row.high);
        }
        let clustered = f64::from(clustered) / datasets as f64;
        let rows = f64::from(rows) / datasets as f64;
        assert!(
            (0.91..=0.98).contains(&clustered),
            "clustered coverage {clustered}"
        );
        assert!(rows < 0.88, "row-resampling coverage {rows}");
    }

    #[test]
    fn the_length_controlled_rate_removes_a_length_bias() {
        // 4,000 pairs, B longer in 75 %; quality is independent of length and the judge picks
        // the longer reply 75 % of the time.
        let mut rng = SeededRng::new(5, 0);
        let (mut scores, mut gaps) = (Vec::new(), Vec::new());
        for _ in 0..4000 {
            let b_longer = rng.unit() < 0.75;
            let gap = 20.0 + rng.unit() * 200.0;
            let picks_longer = rng.unit() < 0.75;
            let b_wins = b_longer == picks_longer;
            scores.push(if b_wins { 1.0 } else { 0.0 });
            gaps.push(if b_longer { gap } else { -gap });
        }
        let raw = scores.iter().sum::<f64>() / scores.len() as f64;
        let weights = vec![1.0; scores.len()];
        let lc = length_controlled(&scores, &gaps, &weights, std_dev(&gaps)).unwrap();
        assert!((0.60..0.64).contains(&raw), "raw {raw}");
        assert!((lc - 0.5).abs() < 0.05, "lc {lc}");
        // No length effect: LC ≈ raw.
        let flat: Vec<f64> = gaps.iter().map(|_| 0.0).collect();
        let same = length_controlled(&scores, &flat, &weights, 1.0).unwrap();
        assert!((same - raw).abs() < 1e-6);
    }

    #[test]
    fn percentiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 2.5);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[7.0], 0.9), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn kappa_is_one_for_agreement_zero_for_chance_and_undefined_without_spread() {
        let (t, f) = (true, false);
        assert_eq!(cohens_kappa(&[(t, t), (f, f), (t, t), (f, f)]), Some(1.0));
        // Each says yes half the time, independently: agreement is what chance gives.
        assert_eq!(cohens_kappa(&[(t, t), (t, f), (f, t), (f, f)]), Some(0.0));
        assert_eq!(cohens_kappa(&[(t, f), (f, t)]), Some(-1.0));
        assert_eq!(cohens_kappa(&[(f, f), (f, f)]), None);
        assert_eq!(cohens_kappa(&[]), None);
    }
}
