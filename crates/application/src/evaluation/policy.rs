//! The ship rule: INVALID judge, NO-SHIP, SHIP to a share of users, or INCONCLUSIVE — with the
//! numbers that decided it.

use serde::{Deserialize, Serialize};

use super::moderation::Tag;
use super::scoring::{CriterionStats, ModerationStats, PERIOD};
use super::verdict::Arm;

/// The thresholds of the rule (the defaults are the design's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// The criterion B must win on.
    pub primary: String,
    /// Non-inferiority margin of the other criteria: lower bound above `0.5 − margin`.
    pub non_inferiority_margin: f64,
    /// The judge is unusable above this share of unjudged pairs.
    pub max_unjudged: f64,
    /// … or above this share of refusals.
    pub max_refused: f64,
    /// … or below this swap-consistency.
    pub min_swap_consistency: f64,
    /// … or when the first-slot rate is further than this from 0.5.
    pub max_first_slot_bias: f64,
    /// Moderation regresses when the upper bound of `rate_B − rate_A` of a tag exceeds this.
    pub max_moderation_increase: f64,
    /// Segments with at least this many pairs can veto a ship (Holm-corrected).
    pub min_segment_pairs: u64,
    /// Share of users of the first rollout.
    pub rollout_share: f64,
    /// Significance level.
    pub alpha: f64,
    /// The judge is unusable when its Cohen's κ against people (when given) is below this.
    pub min_human_kappa: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            primary: "engagement".into(),
            non_inferiority_margin: 0.03,
            max_unjudged: 0.02,
            max_refused: 0.02,
            min_swap_consistency: 0.70,
            max_first_slot_bias: 0.10,
            max_moderation_increase: 0.005,
            min_segment_pairs: 100,
            rollout_share: 0.10,
            alpha: 0.05,
            min_human_kappa: 0.4,
        }
    }
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING-KEBAB-CASE")]
pub enum Verdict {
    /// The judge cannot be trusted: fix it first.
    Invalid,
    /// B loses somewhere: error analysis.
    NoShip,
    /// B wins on the primary criterion and loses nowhere: roll out to a share of users.
    Ship,
    /// Not enough evidence either way.
    Inconclusive,
}

/// The decision and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The verdict.
    pub verdict: Verdict,
    /// Share of users for a ship.
    pub rollout_share: Option<f64>,
    /// The numbers that decided it, one sentence each.
    pub reasons: Vec<String>,
}

/// Applies the rule, in order: judge health, losses, the ship conditions, else inconclusive.
pub fn decide(
    criteria: &[CriterionStats],
    moderation: Option<&ModerationStats>,
    policy: &Policy,
) -> Decision {
    let mut invalid = Vec::new();
    for c in criteria {
        if c.unjudged_rate > policy.max_unjudged {
            invalid.push(format!(
                "{}: {:.1} % of pairs unjudged (> {:.1} %)",
                c.criterion,
                100.0 * c.unjudged_rate,
                100.0 * policy.max_unjudged
            ));
        }
        if c.refusal_rate > policy.max_refused {
            invalid.push(format!(
                "{}: the judge refused {:.1} % of pairs (> {:.1} %)",
                c.criterion,
                100.0 * c.refusal_rate,
                100.0 * policy.max_refused
            ));
        }
        if let Some(consistency) = c.swap_consistency
            && consistency < policy.min_swap_consistency
        {
            invalid.push(format!(
                "{}: swap-consistency {consistency:.2} (< {:.2}): the verdict flips with the order",
                c.criterion, policy.min_swap_consistency
            ));
        }
        if let Some(first) = c.first_slot_rate
            && (first - 0.5).abs() > policy.max_first_slot_bias
        {
            invalid.push(format!(
                "{}: the judge picks the first-shown reply {:.0} % of the time (0.5 ± {:.2} allowed)",
                c.criterion,
                100.0 * first,
                policy.max_first_slot_bias
            ));
        }
    }
    if criteria.is_empty() {
        invalid.push("no pairwise judgments".into());
    }
    if !invalid.is_empty() {
        return Decision {
            verdict: Verdict::Invalid,
            rollout_share: None,
            reasons: invalid,
        };
    }

    let mut losses = Vec::new();
    for c in criteria {
        if let Some(ci) = c.win_rate.ci
            && ci.high < 0.5
        {
            losses.push(format!(
                "{}: B loses, win rate {:.3} [{:.3}, {:.3}]",
                c.criterion, c.win_rate.value, ci.low, ci.high
            ));
        }
    }
    // Segment cells big enough to matter, Holm-corrected over all cells.
    let mut cells: Vec<(String, f64, f64)> = criteria
        .iter()
        .flat_map(|c| {
            c.segments
                .iter()
                .filter(|s| s.n >= policy.min_segment_pairs && s.win_rate.value < 0.5)
                .map(|s| {
                    (
                        format!("{} × {}", c.criterion, s.name),
                        s.p_value,
                        s.win_rate.value,
                    )
                })
        })
        .collect();
    let all_cells: usize = criteria
        .iter()
        .map(|c| {
            c.segments
                .iter()
                .filter(|s| s.n >= policy.min_segment_pairs)
                .count()
        })
        .sum();
    cells.sort_by(|a, b| a.1.total_cmp(&b.1));
    for (rank, (name, p, value)) in cells.iter().enumerate() {
        let threshold = policy.alpha / (all_cells - rank) as f64;
        if *p >= threshold {
            break;
        }
        losses.push(format!(
            "{name}: B loses in this segment, win rate {value:.3} (p = {p:.4} < Holm {threshold:.4})"
        ));
    }
    if let Some(moderation) = moderation {
        for (tag, difference) in &moderation.differences {
            if let Some(ci) = difference.ci
                && ci.high > policy.max_moderation_increase
                && difference.value > 0.0
            {
                losses.push(format!(
                    "moderation {}: B's rate is {:+.2} pp above A's, upper bound {:+.2} pp (> {:.2} pp)",
                    tag.key(),
                    100.0 * difference.value,
                    100.0 * ci.high,
                    100.0 * policy.max_moderation_increase
                ));
            }
        }
        if let Some((_, rates)) = moderation.arms.iter().find(|(arm, _)| *arm == Arm::B)
            && let Some(minor) = rates.iter().find(|r| r.tag == Tag::Minor && r.flagged > 0)
        {
            losses.push(format!(
                "moderation minor: {} of B's messages flagged (zero tolerance)",
                minor.flagged
            ));
        }
    }
    if !losses.is_empty() {
        return Decision {
            verdict: Verdict::NoShip,
            rollout_share: None,
            reasons: losses,
        };
    }

    let mut reasons = Vec::new();
    let mut ship = true;
    match criteria.iter().find(|c| c.criterion == policy.primary) {
        None => {
            ship = false;
            reasons.push(format!(
                "the primary criterion {} was not judged",
                policy.primary
            ));
        }
        Some(c) => {
            // Windows from several source periods (`--strata period`): B must win in each.
            for period in c.segments.iter().filter(|s| s.name.starts_with(PERIOD)) {
                if period.win_rate.value <= 0.5 {
                    ship = false;
                    reasons.push(format!(
                        "{} × {}: win rate {:.3} (n = {}) — B must win in every source period",
                        c.criterion, period.name, period.win_rate.value, period.n
                    ));
                }
            }
            let (low, lc_low) = (
                c.win_rate.ci.map_or(f64::NAN, |ci| ci.low),
                c.length_controlled.ci.map_or(f64::NAN, |ci| ci.low),
            );
            let wins = low > 0.5 && lc_low > 0.5;
            ship &= wins;
            reasons.push(format!(
                "{} (primary): win rate {:.3}, lower bound {low:.3}; length-controlled {:.3}, lower bound {lc_low:.3} — {}",
                c.criterion,
                c.win_rate.value,
                c.length_controlled.value,
                if wins { "B wins" } else { "not shown to win (both lower bounds must be above 0.5)" }
            ));
        }
    }
    for c in criteria.iter().filter(|c| c.criterion != policy.primary) {
        let low = c.win_rate.ci.map_or(f64::NAN, |ci| ci.low);
        let floor = 0.5 - policy.non_inferiority_margin;
        let fine = low > floor;
        ship &= fine;
        reasons.push(format!(
            "{}: win rate {:.3}, lower bound {low:.3} — {}",
            c.criterion,
            c.win_rate.value,
            if fine {
                format!("non-inferior (> {floor:.2})")
            } else {
                format!("non-inferiority not shown (needs > {floor:.2})")
            }
        ));
    }
    if ship {
        return Decision {
            verdict: Verdict::Ship,
            rollout_share: Some(policy.rollout_share),
            reasons,
        };
    }
    for c in criteria {
        if let Some(needed) = c.pairs_needed_for_observed {
            reasons.push(format!(
                "{}: about {needed} pairs would detect the observed effect ({} judged now)",
                c.criterion,
                c.n_pairs - c.counts.unjudged
            ));
        }
    }
    Decision {
        verdict: Verdict::Inconclusive,
        rollout_share: None,
        reasons,
    }
}

/// Why a judge's A/A run (the judge comparing an arm with a second sample of itself) fails: a win
/// rate whose interval excludes 0.5, a position bias or a swap-inconsistency past the policy's
/// bounds. Empty when it passes.
pub fn aa_failures(criteria: &[CriterionStats], policy: &Policy) -> Vec<String> {
    let mut why = Vec::new();
    for c in criteria {
        if let Some(ci) = c.win_rate.ci
            && (ci.low > 0.5 || ci.high < 0.5)
        {
            why.push(format!(
                "A/A {}: the judge prefers one of two samples of the same arm, win rate {:.3} [{:.3}, {:.3}] excludes 0.5",
                c.criterion, c.win_rate.value, ci.low, ci.high
            ));
        }
        if let Some(first) = c.first_slot_rate
            && (first - 0.5).abs() > policy.max_first_slot_bias
        {
            why.push(format!(
                "A/A {}: the judge picks the first-shown reply {:.0} % of the time (0.5 ± {:.2} allowed)",
                c.criterion,
                100.0 * first,
                policy.max_first_slot_bias
            ));
        }
        if let Some(consistency) = c.swap_consistency
            && consistency < policy.min_swap_consistency
        {
            why.push(format!(
                "A/A {}: swap-consistency {consistency:.2} (< {:.2})",
                c.criterion, policy.min_swap_consistency
            ));
        }
    }
    if criteria.is_empty() {
        why.push("A/A: no judgments".into());
    }
    why
}

/// Why the judge's agreement with people fails: κ below the policy's floor on a criterion (`None`
/// κ — chance agrees on everything — fails too: it shows nothing).
pub fn human_failures(kappas: &[(String, Option<f64>)], policy: &Policy) -> Vec<String> {
    kappas
        .iter()
        .filter(|(_, kappa)| kappa.is_none_or(|k| k < policy.min_human_kappa))
        .map(|(criterion, kappa)| match kappa {
            Some(k) => format!(
                "{criterion}: the judge agrees with people at κ {k:.2} (< {:.2})",
                policy.min_human_kappa
            ),
            None => format!("{criterion}: κ against people is undefined (every verdict alike)"),
        })
        .collect()
}

/// `decision`, made INVALID when the judge's calibration failed (`failures` not empty).
pub fn invalidate(decision: Decision, failures: Vec<String>) -> Decision {
    if failures.is_empty() {
        return decision;
    }
    Decision {
        verdict: Verdict::Invalid,
        rollout_share: None,
        reasons: failures,
    }
}

/// The decision of several studies of one candidate (offline replay, simulated dialogues): an
/// INVALID judge or a loss in any study blocks; else a ship in any study ships (each study's
/// own rule held, and none loses); else inconclusive. Reasons are prefixed by the study.
pub fn combine_studies(studies: &[(&str, &Decision)]) -> Decision {
    let pick = |verdict: Verdict| -> Vec<&(&str, &Decision)> {
        studies
            .iter()
            .filter(|(_, d)| d.verdict == verdict)
            .collect()
    };
    let verdict = [Verdict::Invalid, Verdict::NoShip, Verdict::Ship]
        .into_iter()
        .find(|v| !pick(*v).is_empty())
        .unwrap_or(Verdict::Inconclusive);
    let reasons = studies
        .iter()
        .flat_map(|(name, d)| {
            let verdict = serde_json::to_value(d.verdict)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            std::iter::once(format!("{name}: {verdict}"))
                .chain(d.reasons.iter().map(move |r| format!("{name}: {r}")))
        })
        .collect();
    Decision {
        verdict,
        rollout_share: pick(Verdict::Ship)
            .first()
            .filter(|_| verdict == Verdict::Ship)
            .and_then(|(_, d)| d.rollout_share),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluation::scoring::{PairRow, criterion_stats};
    use crate::evaluation::stats::Bootstrap;
    use crate::evaluation::verdict::PairOutcome;
    use crate::evaluation::windows::Bucket;

    fn rows(n: usize, unjudged: usize, win_every: usize) -> Vec<PairRow> {
        (0..n)
            .map(|i| PairRow {
                dialogue: format!("d{}", i % 25),
                window: format!("d{}#{i}", i % 25),
                bucket: Some(Bucket::Middle),
                period: None,
                sample: 0,
                outcome: if i < unjudged {
                    PairOutcome::Unjudged
                } else if i % win_every == 0 {
                    PairOutcome::Loss
                } else {
                    PairOutcome::Win
                },
                order_score: None,
                order_gap: None,
                chars: (40, 40 + i % 7),
                tokens: (None, None),
                first_slot: vec![Some(i % 2 == 0), Some(i % 2 == 1)],
                refused: false,
            })
            .collect()
    }

    fn decision(n: usize, unjudged: usize) -> Decision {
        let bootstrap = Bootstrap {
            rounds: 300,
            seed: 0,
        };
        let criteria: Vec<_> = ["engagement", "in_character", "scenario_focus"]
            .iter()
            .map(|c| criterion_stats(c, &rows(n, unjudged, 4), bootstrap))
            .collect();
        decide(&criteria, None, &Policy::default())
    }

    #[test]
    fn unjudged_pairs_above_two_percent_invalidate_the_judge() {
        let invalid = decision(40, 2);
        assert_eq!(invalid.verdict, Verdict::Invalid);
        assert!(
            invalid.reasons[0].contains("5.0 % of pairs unjudged"),
            "{:?}",
            invalid.reasons
        );
        let valid = decision(100, 1);
        assert_eq!(valid.verdict, Verdict::Ship, "{:?}", valid.reasons);
    }
}

#[cfg(test)]
mod calibration_tests {
    use super::*;

    fn decision(verdict: Verdict) -> Decision {
        Decision {
            verdict,
            rollout_share: (verdict == Verdict::Ship).then_some(0.1),
            reasons: vec!["because".into()],
        }
    }

    #[test]
    fn studies_combine_worst_first_then_a_ship() {
        let (ship, inc, no) = (
            decision(Verdict::Ship),
            decision(Verdict::Inconclusive),
            decision(Verdict::NoShip),
        );
        let both = combine_studies(&[("replay", &inc), ("simulation", &ship)]);
        assert_eq!(both.verdict, Verdict::Ship);
        assert_eq!(both.rollout_share, Some(0.1));
        assert_eq!(both.reasons[0], "replay: INCONCLUSIVE");
        let blocked = combine_studies(&[("replay", &no), ("simulation", &ship)]);
        assert_eq!(blocked.verdict, Verdict::NoShip);
        assert_eq!(blocked.rollout_share, None);
    }

    #[test]
    fn a_low_kappa_invalidates() {
        let policy = Policy::default();
        let why = human_failures(
            &[
                ("engagement".into(), Some(0.3)),
                ("in_character".into(), Some(0.7)),
            ],
            &policy,
        );
        assert_eq!(why.len(), 1);
        let d = invalidate(decision(Verdict::Ship), why);
        assert_eq!(d.verdict, Verdict::Invalid);
        assert_eq!(
            invalidate(decision(Verdict::Ship), vec![]).verdict,
            Verdict::Ship
        );
    }
}
