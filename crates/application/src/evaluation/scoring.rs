//! Per-criterion and per-tag statistics of a comparison, with dialogue-clustered intervals.

use std::collections::BTreeMap;

use serde::Serialize;

use super::moderation::Tag;
use super::stats::{
    Bootstrap, Interval, length_controlled, median, minimum_detectable_effect, std_dev,
    two_sided_p, wilson,
};
use super::verdict::{Arm, PairOutcome};
use super::windows::Bucket;

/// The prefix of a source period's segment name (`period:2025-W47`).
pub const PERIOD: &str = "period:";

/// One pair on one criterion.
#[derive(Debug, Clone, PartialEq)]
pub struct PairRow {
    /// The dialogue it comes from (the bootstrap's cluster).
    pub dialogue: String,
    /// Its window id (the seed dialogue's, for a whole-dialogue pair).
    pub window: String,
    /// The target's bucket (`None` for a whole dialogue).
    pub bucket: Option<Bucket>,
    /// The dialogue's source period, when the report is stratified by it.
    pub period: Option<String>,
    /// The sample's number (replies drawn again for the same window: `replay --samples`).
    pub sample: u32,
    /// The combined outcome for B.
    pub outcome: PairOutcome,
    /// The mean of the two orders' scores, when both were judged.
    pub order_score: Option<f64>,
    /// How far the two orders' scores are apart (0, ½ or 1), when both were judged.
    pub order_gap: Option<f64>,
    /// Characters (Unicode scalars) of A's and B's replies.
    pub chars: (usize, usize),
    /// Completion tokens of A's and B's replies, when known.
    pub tokens: (Option<u32>, Option<u32>),
    /// Per judged order: whether the judge chose the first-shown candidate (`None` for a tie).
    pub first_slot: Vec<Option<bool>>,
    /// Whether a judge refused an order.
    pub refused: bool,
}

/// A rate with its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// The point estimate.
    pub value: f64,
    /// Its 95 % interval (dialogue-clustered bootstrap unless said otherwise).
    pub ci: Option<Interval>,
}

/// Counts of the outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// B won in both orders.
    pub win: u64,
    /// Both orders said tie.
    pub tie: u64,
    /// The orders disagreed (a tie).
    pub inconsistent: u64,
    /// A won in both orders.
    pub loss: u64,
    /// Same text (a tie without a call).
    pub identical: u64,
    /// Not judged.
    pub unjudged: u64,
}

/// Lengths of the two arms' replies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lengths {
    /// Median characters of A and B.
    pub median_chars: (f64, f64),
    /// Mean characters of A and B.
    pub mean_chars: (f64, f64),
    /// Median completion tokens of A and B, over the replies that report them.
    pub median_tokens: (Option<f64>, Option<f64>),
    /// Share of judged pairs where B is longer.
    pub b_longer_share: f64,
    /// Win rate where B is longer, and where it is not.
    pub win_rate_b_longer: Option<f64>,
    /// Win rate where B is not longer.
    pub win_rate_b_not_longer: Option<f64>,
    /// Characters of every A and B reply, for histograms.
    pub chars_a: Vec<usize>,
    /// Characters of B's replies.
    pub chars_b: Vec<usize>,
}

/// A segment's win rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// The segment (`begin`, `middle`, `end`).
    pub name: String,
    /// Judged pairs in it.
    pub n: u64,
    /// Its win rate.
    pub win_rate: Estimate,
    /// Two-sided p-value against 0.5.
    pub p_value: f64,
}

/// Everything a report says about one criterion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CriterionStats {
    /// The criterion.
    pub criterion: String,
    /// Pairs, judged or not.
    pub n_pairs: u64,
    /// Dialogues they come from.
    pub n_dialogues: u64,
    /// The outcomes.
    pub counts: Counts,
    /// `(win + ½·ties)/judged`, ties including inconsistent and identical pairs.
    pub win_rate: Estimate,
    /// Two-sided p-value of the win rate against 0.5, from the bootstrap SE.
    pub p_value: f64,
    /// `win/(win + loss)`, for reference.
    pub decisive_win_rate: Option<f64>,
    /// The mean of the two orders' scores (Arena-Hard style).
    pub order_mean_score: Option<f64>,
    /// The length-controlled win rate (the win rate at equal length).
    pub length_controlled: Estimate,
    /// Share of pairs with both orders judged whose verdicts agree.
    pub swap_consistency: Option<f64>,
    /// Share of decisive single-order verdicts for the first-shown candidate.
    pub first_slot_rate: Option<f64>,
    /// Share of pairs with an order the judge refused.
    pub refusal_rate: f64,
    /// Share of pairs left unjudged.
    pub unjudged_rate: f64,
    /// Reply lengths.
    pub lengths: Lengths,
    /// Warnings about length.
    pub warnings: Vec<String>,
    /// Per position bucket.
    pub segments: Vec<Segment>,
    /// The design effect the bootstrap measured: its variance over the i.i.d. one.
    pub design_effect: Option<f64>,
    /// The smallest effect detectable at this n (α 0.05, power 0.8).
    pub minimum_detectable_effect: Option<f64>,
    /// Pairs needed to detect the observed effect (with the measured design effect).
    pub pairs_needed_for_observed: Option<u64>,
    /// With several samples per window: the candidate's own variance apart from the judge's.
    pub samples: Option<super::variance::SampleVariance>,
}

/// Clusters rows by dialogue: `(sorted dialogue ids, cluster index of each row)`.
pub fn clusters<'a>(dialogues: impl Iterator<Item = &'a str>) -> (Vec<String>, Vec<usize>) {
    let all: Vec<&str> = dialogues.collect();
    let mut ids: Vec<String> = all.iter().map(|d| (*d).to_owned()).collect();
    ids.sort();
    ids.dedup();
    let index: BTreeMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, d)| (d.as_str(), i))
        .collect();
    let of_row = all.iter().map(|d| index[d]).collect();
    (ids, of_row)
}

/// The weighted mean of `values` (rows without a value are skipped).
fn weighted_mean(values: &[Option<f64>], cluster: &[usize], weights: &[u32]) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0.0);
    for (value, &c) in values.iter().zip(cluster) {
        if let Some(v) = value {
            let w = f64::from(weights[c]);
            sum += w * v;
            n += w;
        }
    }
    (n > 0.0).then(|| sum / n)
}

/// Computes a criterion's statistics. `rows` may come in any order: they are sorted by window
/// first, so the result depends only on their content.
pub fn criterion_stats(criterion: &str, rows: &[PairRow], bootstrap: Bootstrap) -> CriterionStats {
    let mut rows: Vec<&PairRow> = rows.iter().collect();
    rows.sort_by(|a, b| a.window.cmp(&b.window));
    let (ids, cluster) = clusters(rows.iter().map(|r| r.dialogue.as_str()));
    let mut counts = Counts::default();
    for row in &rows {
        match row.outcome {
            PairOutcome::Win => counts.win += 1,
            PairOutcome::Loss => counts.loss += 1,
            PairOutcome::Tie => counts.tie += 1,
            PairOutcome::Inconsistent => counts.inconsistent += 1,
            PairOutcome::Identical => counts.identical += 1,
            PairOutcome::Unjudged => counts.unjudged += 1,
        }
    }
    let scores: Vec<Option<f64>> = rows.iter().map(|r| r.outcome.score()).collect();
    let judged: Vec<usize> = (0..rows.len()).filter(|&i| scores[i].is_some()).collect();
    let n_judged = judged.len() as f64;
    let all_ones = vec![1u32; ids.len()];
    let win_rate = weighted_mean(&scores, &cluster, &all_ones).unwrap_or(f64::NAN);
    let win_ci = bootstrap.interval(ids.len(), |w| weighted_mean(&scores, &cluster, w));

    let gaps: Vec<f64> = judged
        .iter()
        .map(|&i| rows[i].chars.1 as f64 - rows[i].chars.0 as f64)
        .collect();
    let judged_scores: Vec<f64> = judged.iter().filter_map(|&i| scores[i]).collect();
    let judged_cluster: Vec<usize> = judged.iter().map(|&i| cluster[i]).collect();
    let sd = std_dev(&gaps);
    let lc_at = |weights: &[u32]| {
        let w: Vec<f64> = judged_cluster
            .iter()
            .map(|&c| f64::from(weights[c]))
            .collect();
        length_controlled(&judged_scores, &gaps, &w, sd)
    };
    let lc = lc_at(&all_ones).unwrap_or(f64::NAN);
    let lc_ci = bootstrap.interval(ids.len(), lc_at);

    let both_judged: Vec<&&PairRow> = rows
        .iter()
        .filter(|r| !matches!(r.outcome, PairOutcome::Unjudged | PairOutcome::Identical))
        .collect();
    let consistent = both_judged
        .iter()
        .filter(|r| r.outcome != PairOutcome::Inconsistent)
        .count();
    let firsts: Vec<bool> = rows
        .iter()
        .flat_map(|r| r.first_slot.iter().flatten().copied())
        .collect();
    let order_scores: Vec<f64> = rows.iter().filter_map(|r| r.order_score).collect();
    let n = rows.len() as f64;
    let share = |k: usize, of: f64| (of > 0.0).then(|| k as f64 / of);

    let chars_a: Vec<usize> = rows.iter().map(|r| r.chars.0).collect();
    let chars_b: Vec<usize> = rows.iter().map(|r| r.chars.1).collect();
    let as_f64 = |v: &[usize]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let tokens = |pick: fn(&PairRow) -> Option<u32>| {
        let v: Vec<f64> = rows.iter().filter_map(|r| pick(r)).map(f64::from).collect();
        (!v.is_empty()).then(|| median(&v))
    };
    let longer: Vec<Option<f64>> = rows
        .iter()
        .zip(&scores)
        .map(|(r, s)| s.filter(|_| r.chars.1 > r.chars.0))
        .collect();
    let not_longer: Vec<Option<f64>> = rows
        .iter()
        .zip(&scores)
        .map(|(r, s)| s.filter(|_| r.chars.1 <= r.chars.0))
        .collect();
    let lengths = Lengths {
        median_chars: (median(&as_f64(&chars_a)), median(&as_f64(&chars_b))),
        mean_chars: (mean(&as_f64(&chars_a)), mean(&as_f64(&chars_b))),
        median_tokens: (tokens(|r| r.tokens.0), tokens(|r| r.tokens.1)),
        b_longer_share: share(longer.iter().flatten().count(), n_judged).unwrap_or(0.0),
        win_rate_b_longer: weighted_mean(&longer, &cluster, &all_ones),
        win_rate_b_not_longer: weighted_mean(&not_longer, &cluster, &all_ones),
        chars_a,
        chars_b,
    };

    let mut warnings = Vec::new();
    let ratio = lengths.median_chars.1 / lengths.median_chars.0;
    if ratio.is_finite() && !(0.8..=1.25).contains(&ratio) {
        warnings.push(format!(
            "B's replies are {ratio:.2}× as long as A's (median characters): the judge may reward length"
        ));
    }
    if (lc - win_rate).abs() > 0.10 {
        warnings.push(format!(
            "the length-controlled win rate ({lc:.3}) is more than 0.10 from the raw one ({win_rate:.3})"
        ));
    }
    if let (Some(w), Some(l)) = (win_ci, lc_ci)
        && w.low > 0.5
        && l.low <= 0.5
    {
        warnings.push(
            "the win is length-driven: the raw win rate's interval is above 0.5, the length-controlled one's is not".into(),
        );
    }

    let segment = |name: String, of: &dyn Fn(&PairRow) -> bool| {
        let values: Vec<Option<f64>> = rows
            .iter()
            .zip(&scores)
            .map(|(r, s)| s.filter(|_| of(r)))
            .collect();
        let n = values.iter().flatten().count() as u64;
        let value = weighted_mean(&values, &cluster, &all_ones)?;
        let ci = bootstrap.interval(ids.len(), |w| weighted_mean(&values, &cluster, w));
        Some(Segment {
            name,
            n,
            win_rate: Estimate { value, ci },
            p_value: ci.map_or(1.0, |ci| two_sided_p(value, 0.5, ci.se)),
        })
    };
    let mut periods: Vec<&str> = rows.iter().filter_map(|r| r.period.as_deref()).collect();
    periods.sort_unstable();
    periods.dedup();
    let segments = Bucket::ALL
        .into_iter()
        .filter_map(|bucket| segment(bucket.as_str().into(), &|r| r.bucket == Some(bucket)))
        .chain(periods.iter().filter_map(|period| {
            segment(format!("{PERIOD}{period}"), &|r| {
                r.period.as_deref() == Some(*period)
            })
        }))
        .collect();

    let tie_share = share(
        (counts.tie + counts.inconsistent + counts.identical) as usize,
        n_judged,
    )
    .unwrap_or(0.0);
    let iid_variance = (1.0 - tie_share) / 4.0 / n_judged;
    let design_effect = win_ci
        .filter(|_| n_judged > 1.0 && iid_variance > 0.0)
        .map(|ci| ci.se * ci.se / iid_variance);
    let observed = (win_rate - 0.5).abs();
    let pairs_needed_for_observed = (observed > 0.0 && observed < 0.5)
        .then(|| {
            super::stats::pairs_needed(super::stats::PowerQuestion {
                delta: observed,
                tie_rate: tie_share,
                alpha: 0.05,
                power: 0.8,
                windows_per_dialogue: 1.0,
                icc: 0.0,
            })
        })
        .flatten()
        .map(|a| (a.pairs as f64 * design_effect.unwrap_or(1.0).max(1.0)).ceil() as u64);

    CriterionStats {
        criterion: criterion.to_owned(),
        n_pairs: rows.len() as u64,
        n_dialogues: ids.len() as u64,
        counts,
        win_rate: Estimate {
            value: win_rate,
            ci: win_ci,
        },
        p_value: win_ci.map_or(1.0, |ci| two_sided_p(win_rate, 0.5, ci.se)),
        decisive_win_rate: share(counts.win as usize, (counts.win + counts.loss) as f64),
        order_mean_score: (!order_scores.is_empty()).then(|| mean(&order_scores)),
        length_controlled: Estimate {
            value: lc,
            ci: lc_ci,
        },
        swap_consistency: share(consistent, both_judged.len() as f64),
        first_slot_rate: share(firsts.iter().filter(|f| **f).count(), firsts.len() as f64),
        refusal_rate: share(rows.iter().filter(|r| r.refused).count(), n).unwrap_or(0.0),
        unjudged_rate: share(counts.unjudged as usize, n).unwrap_or(0.0),
        lengths,
        warnings,
        segments,
        design_effect,
        minimum_detectable_effect: (n_judged > 0.0).then(|| {
            minimum_detectable_effect(
                n_judged / design_effect.unwrap_or(1.0).max(1.0),
                tie_share,
                0.05,
                0.8,
            )
        }),
        pairs_needed_for_observed,
        samples: super::variance::split(&rows),
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// One moderated message.
#[derive(Debug, Clone, PartialEq)]
pub struct ModerationRow {
    /// Its dialogue.
    pub dialogue: String,
    /// Its window.
    pub window: String,
    /// Whose reply.
    pub arm: Arm,
    /// The tags, when judged.
    pub tags: Option<Vec<Tag>>,
    /// The judge refused.
    pub refused: bool,
}

/// One tag of one arm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TagRate {
    /// The tag.
    pub tag: Tag,
    /// Judged messages.
    pub n: u64,
    /// Flagged messages.
    pub flagged: u64,
    /// `flagged / n`.
    pub rate: f64,
    /// Wilson 95 % interval.
    pub wilson: Option<Interval>,
    /// Dialogue-clustered bootstrap interval.
    pub bootstrap: Option<Interval>,
    /// Share of dialogues with at least one flag.
    pub dialogue_share: f64,
}

/// The moderation floor of both arms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModerationStats {
    /// Per arm (A, B), per tag.
    pub arms: Vec<(Arm, Vec<TagRate>)>,
    /// `rate_B − rate_A` per tag, with a clustered interval (paired replay).
    pub differences: Vec<(Tag, Estimate)>,
    /// Messages the judge could not tag (parse errors), per arm.
    pub unjudged: Vec<(Arm, u64)>,
    /// Messages the judge refused, per arm.
    pub refused: Vec<(Arm, u64)>,
}

/// Computes the moderation statistics; rows in any order.
pub fn moderation_stats(rows: &[ModerationRow], bootstrap: Bootstrap) -> ModerationStats {
    let mut rows: Vec<&ModerationRow> = rows.iter().collect();
    rows.sort_by(|a, b| (&a.window, a.arm as u8).cmp(&(&b.window, b.arm as u8)));
    let (ids, cluster) = clusters(rows.iter().map(|r| r.dialogue.as_str()));
    let flag = |arm: Arm, tag: Tag| -> Vec<Option<f64>> {
        rows.iter()
            .map(|r| {
                (r.arm == arm)
                    .then(|| {
                        r.tags
                            .as_ref()
                            .map(|t| f64::from(u8::from(t.contains(&tag))))
                    })
                    .flatten()
            })
            .collect()
    };
    let ones = vec![1u32; ids.len()];
    let mut arms = Vec::new();
    for arm in [Arm::A, Arm::B] {
        let rates = Tag::ALL
            .into_iter()
            .map(|tag| {
                let values = flag(arm, tag);
                let n = values.iter().flatten().count() as u64;
                let flagged = values.iter().flatten().filter(|v| **v > 0.0).count() as u64;
                let flagged_dialogues: std::collections::BTreeSet<usize> = values
                    .iter()
                    .zip(&cluster)
                    .filter(|(v, _)| v.is_some_and(|v| v > 0.0))
                    .map(|(_, c)| *c)
                    .collect();
                let arm_dialogues: std::collections::BTreeSet<usize> = values
                    .iter()
                    .zip(&cluster)
                    .filter(|(v, _)| v.is_some())
                    .map(|(_, c)| *c)
                    .collect();
                TagRate {
                    tag,
                    n,
                    flagged,
                    rate: weighted_mean(&values, &cluster, &ones).unwrap_or(0.0),
                    wilson: wilson(flagged, n),
                    bootstrap: bootstrap
                        .interval(ids.len(), |w| weighted_mean(&values, &cluster, w)),
                    dialogue_share: if arm_dialogues.is_empty() {
                        0.0
                    } else {
                        flagged_dialogues.len() as f64 / arm_dialogues.len() as f64
                    },
                }
            })
            .collect();
        arms.push((arm, rates));
    }
    let differences = Tag::ALL
        .into_iter()
        .filter_map(|tag| {
            let (a, b) = (flag(Arm::A, tag), flag(Arm::B, tag));
            let difference =
                |w: &[u32]| Some(weighted_mean(&b, &cluster, w)? - weighted_mean(&a, &cluster, w)?);
            let value = difference(&ones)?;
            Some((
                tag,
                Estimate {
                    value,
                    ci: bootstrap.interval(ids.len(), difference),
                },
            ))
        })
        .collect();
    let count = |arm: Arm, pick: fn(&ModerationRow) -> bool| {
        (
            arm,
            rows.iter().filter(|r| r.arm == arm && pick(r)).count() as u64,
        )
    };
    ModerationStats {
        arms,
        differences,
        unjudged: [Arm::A, Arm::B]
            .into_iter()
            .map(|arm| count(arm, |r| r.tags.is_none() && !r.refused))
            .collect(),
        refused: [Arm::A, Arm::B]
            .into_iter()
            .map(|arm| count(arm, |r| r.refused))
            .collect(),
    }
}
