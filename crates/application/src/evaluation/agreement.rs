//! How far the judge agrees with people (`ragback eval agree`, and the report's calibration
//! section): on the same pairs and criteria, the share of equal verdicts — with ties, and without
//! (only pairs where both chose a side, as FastChat's `compute_agreement.py`) — and Cohen's κ over
//! the three verdicts, each with a dialogue-clustered bootstrap interval.

use serde::{Deserialize, Serialize};

use super::scoring::clusters;
use super::stats::{Bootstrap, Interval};

/// A verdict on a pair, by arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Label {
    /// A is better.
    #[serde(rename = "A")]
    A,
    /// B is better.
    #[serde(rename = "B")]
    B,
    /// Neither.
    #[serde(rename = "tie")]
    Tie,
}

impl Label {
    /// Every label.
    pub const ALL: [Self; 3] = [Self::A, Self::B, Self::Tie];

    /// Reads `A`, `B` or `tie` (any case).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "a" => Some(Self::A),
            "b" => Some(Self::B),
            "tie" => Some(Self::Tie),
            _ => None,
        }
    }
}

/// One pair both the judge and a person gave a verdict on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rated {
    /// The dialogue it comes from (the bootstrap's cluster).
    pub dialogue: String,
    /// The judge's verdict.
    pub judge: Label,
    /// The person's.
    pub human: Label,
}

/// The agreement on a set of pairs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    /// Pairs both rated.
    pub n: u64,
    /// Dialogues they come from.
    pub n_dialogues: u64,
    /// Share of equal verdicts.
    pub agreement: f64,
    /// Its interval.
    pub agreement_ci: Option<Interval>,
    /// Share of equal verdicts among the pairs where both chose a side.
    pub agreement_without_ties: Option<f64>,
    /// Pairs where both chose a side.
    pub n_without_ties: u64,
    /// Cohen's κ over A / B / tie (`None` when chance alone agrees on every pair).
    pub kappa: Option<f64>,
    /// Its interval.
    pub kappa_ci: Option<Interval>,
}

/// Cohen's κ of two raters' labels, weighted: `(p_o − p_e) / (1 − p_e)`.
fn kappa(rated: &[&Rated], weight: impl Fn(usize) -> f64) -> Option<f64> {
    let total: f64 = (0..rated.len()).map(&weight).sum();
    if total <= 0.0 {
        return None;
    }
    let share = |f: &dyn Fn(&Rated) -> bool| {
        rated
            .iter()
            .enumerate()
            .filter(|(_, r)| f(r))
            .map(|(i, _)| weight(i))
            .sum::<f64>()
            / total
    };
    let observed = share(&|r| r.judge == r.human);
    let chance: f64 = Label::ALL
        .iter()
        .map(|l| share(&|r| r.judge == *l) * share(&|r| r.human == *l))
        .sum();
    (chance < 1.0 - 1e-12).then(|| (observed - chance) / (1.0 - chance))
}

/// The agreement of `rated`, with intervals from the dialogue-clustered `bootstrap`.
pub fn agreement(rated: &[Rated], bootstrap: Bootstrap) -> Agreement {
    let mut rated: Vec<&Rated> = rated.iter().collect();
    rated.sort_by(|a, b| (&a.dialogue, a.judge, a.human).cmp(&(&b.dialogue, b.judge, b.human)));
    let (ids, cluster) = clusters(rated.iter().map(|r| r.dialogue.as_str()));
    let agree_at = |weights: &[u32]| {
        let (mut same, mut all) = (0.0, 0.0);
        for (r, &c) in rated.iter().zip(&cluster) {
            let w = f64::from(weights[c]);
            all += w;
            if r.judge == r.human {
                same += w;
            }
        }
        (all > 0.0).then(|| same / all)
    };
    let kappa_at = |weights: &[u32]| kappa(&rated, |i| f64::from(weights[cluster[i]]));
    let ones = vec![1u32; ids.len()];
    let sided: Vec<&&Rated> = rated
        .iter()
        .filter(|r| r.judge != Label::Tie && r.human != Label::Tie)
        .collect();
    Agreement {
        n: rated.len() as u64,
        n_dialogues: ids.len() as u64,
        agreement: agree_at(&ones).unwrap_or(f64::NAN),
        agreement_ci: bootstrap.interval(ids.len(), agree_at),
        agreement_without_ties: (!sided.is_empty()).then(|| {
            sided.iter().filter(|r| r.judge == r.human).count() as f64 / sided.len() as f64
        }),
        n_without_ties: sided.len() as u64,
        kappa: kappa_at(&ones),
        kappa_ci: bootstrap.interval(ids.len(), kappa_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rated(pairs: &[(Label, Label)]) -> Vec<Rated> {
        pairs
            .iter()
            .enumerate()
            .map(|(i, (judge, human))| Rated {
                dialogue: format!("d{}", i / 2),
                judge: *judge,
                human: *human,
            })
            .collect()
    }

    #[test]
    fn full_agreement_is_kappa_one_and_none_is_negative() {
        use Label::*;
        let judge = [A, B, Tie, B, A, B, B, Tie];
        let same: Vec<_> = judge.iter().map(|l| (*l, *l)).collect();
        let boot = Bootstrap {
            rounds: 200,
            seed: 0,
        };
        let full = agreement(&rated(&same), boot);
        assert_eq!((full.n, full.n_dialogues), (8, 4));
        assert_eq!(full.agreement, 1.0);
        assert!((full.kappa.unwrap() - 1.0).abs() < 1e-12);
        let flip = |l: Label| match l {
            A => B,
            B => A,
            Tie => A,
        };
        let none: Vec<_> = judge.iter().map(|l| (*l, flip(*l))).collect();
        let none = agreement(&rated(&none), boot);
        assert_eq!(none.agreement, 0.0);
        assert!(none.kappa.unwrap() < 0.0, "{none:?}");
        assert_eq!(none.agreement_without_ties, Some(0.0));
    }

    #[test]
    fn kappa_matches_a_hand_computed_table() {
        use Label::*;
        // 10 pairs: 4 A/A, 3 B/B, 1 A/B, 1 B/A, 1 tie/tie: p_o 0.8; judge A .5 B .4 tie .1,
        // human the same: p_e .25 + .16 + .01 = .42; κ = (.8 − .42)/.58.
        let mut pairs = vec![(A, A); 4];
        pairs.extend([(B, B); 3]);
        pairs.extend([(A, B), (B, A), (Tie, Tie)]);
        let a = agreement(
            &rated(&pairs),
            Bootstrap {
                rounds: 50,
                seed: 1,
            },
        );
        assert!((a.kappa.unwrap() - 0.38 / 0.58).abs() < 1e-12);
        assert_eq!(a.n_without_ties, 9);
        assert!((a.agreement_without_ties.unwrap() - 7.0 / 9.0).abs() < 1e-12);
        let ci = a.kappa_ci.unwrap();
        assert!(ci.low <= a.kappa.unwrap() && a.kappa.unwrap() <= ci.high);
    }

    #[test]
    fn labels_read_in_any_case() {
        assert_eq!(Label::parse("a"), Some(Label::A));
        assert_eq!(Label::parse(" TIE "), Some(Label::Tie));
        assert_eq!(Label::parse("C"), None);
    }
}
