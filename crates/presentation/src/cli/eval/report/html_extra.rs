//! The report page's sections beyond the replay: the simulated conversations' comparison, the
//! judge's calibration (A/A, agreement with people), the simulator's health, the source periods
//! and the split of variance across samples. Numbers are formatted here.

use ragback_application::evaluation::scoring::{CriterionStats, PERIOD};
use serde::Serialize;

use super::build::Report;
use super::html::{cells, ci, fmt, opt, verdict_names};
use crate::cli::eval::rows::Unit;

/// What the extra sections show.
#[derive(Serialize)]
pub(super) struct Extra {
    replay_verdict: Option<String>,
    simulation: Option<SimulationView>,
    aa: Vec<AaView>,
    human: Vec<[String; 4]>,
    human_unmatched: u64,
    health: Option<HealthView>,
    /// criterion, then per period (name, win rate (n)).
    periods: Vec<(String, Vec<[String; 2]>)>,
    /// criterion, windows, samples, between samples, judge, candidate.
    variance: Vec<[String; 6]>,
}

#[derive(Serialize)]
struct SimulationView {
    verdict: String,
    verdict_class: &'static str,
    reasons: Vec<String>,
    design: &'static str,
    criteria: Vec<(String, Vec<String>)>,
    lost: Vec<[String; 4]>,
    unjudged: usize,
}

#[derive(Serialize)]
struct AaView {
    unit: &'static str,
    passed: bool,
    /// criterion, win rate, CI, first-slot rate, swap-consistency, inconsistent share.
    rows: Vec<[String; 6]>,
    failures: Vec<String>,
}

#[derive(Serialize)]
struct HealthView {
    summary: String,
    drifts: Vec<[String; 3]>,
    excluded: Vec<[String; 2]>,
    smoke_test: bool,
}

fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::Reply => "replies (replay)",
        Unit::Dialogue => "whole conversations (simulation)",
    }
}

fn variance_rows(criteria: &[CriterionStats], label: &str, rows: &mut Vec<[String; 6]>) {
    for c in criteria {
        if let Some(v) = &c.samples {
            rows.push([
                format!("{label}{}", c.criterion),
                v.windows.to_string(),
                v.samples.to_string(),
                fmt(v.between_samples),
                fmt(v.judge),
                fmt(v.candidate),
            ]);
        }
    }
}

impl Extra {
    pub(super) fn of(report: &Report) -> Self {
        let simulation = report.simulation.as_ref().map(|s| {
            let (verdict, verdict_class) = s
                .decision
                .as_ref()
                .map_or(("—".into(), "inconclusive"), |d| verdict_names(d.verdict));
            SimulationView {
                verdict,
                verdict_class,
                reasons: s
                    .decision
                    .as_ref()
                    .map(|d| d.reasons.clone())
                    .unwrap_or_default(),
                design: s.design,
                criteria: s
                    .criteria
                    .iter()
                    .map(|c| (c.criterion.clone(), cells(c)))
                    .collect(),
                lost: s
                    .lost
                    .iter()
                    .take(20)
                    .map(|l| {
                        [
                            format!("{} · {}", l.pair, l.criterion),
                            l.text_a.clone(),
                            l.text_b.clone(),
                            l.reasons.join(" / "),
                        ]
                    })
                    .collect(),
                unjudged: s.unjudged.len(),
            }
        });
        let aa = report
            .calibration
            .aa
            .iter()
            .map(|check| AaView {
                unit: unit_name(check.unit),
                passed: check.passed,
                rows: check
                    .criteria
                    .iter()
                    .map(|c| {
                        let judged = c.n_pairs - c.counts.unjudged - c.counts.identical;
                        [
                            c.criterion.clone(),
                            fmt(c.win_rate.value),
                            ci(&c.win_rate),
                            opt(c.first_slot_rate),
                            opt(c.swap_consistency),
                            if judged > 0 {
                                fmt(c.counts.inconsistent as f64 / judged as f64)
                            } else {
                                "—".into()
                            },
                        ]
                    })
                    .collect(),
                failures: check.failures.clone(),
            })
            .collect();
        let human = report
            .calibration
            .human
            .iter()
            .map(|h| {
                [
                    unit_name(h.unit).to_owned(),
                    h.criterion.clone(),
                    h.summary.clone(),
                    h.agreement.agreement_without_ties.map_or("—".into(), |a| {
                        format!("{:.0} % of {}", 100.0 * a, h.agreement.n_without_ties)
                    }),
                ]
            })
            .collect();
        let health = report.health.as_ref().map(|h| HealthView {
            summary: format!(
                "{} conversations by {}: {} complete, {} ended early by the simulator; {} user turns, median {} characters (mean {}, longest {}).",
                h.dialogues,
                h.simulators.join(", "),
                h.complete,
                h.ended_early,
                h.user_turns,
                fmt(h.median_user_chars),
                fmt(h.mean_user_chars),
                h.max_user_chars
            ),
            drifts: h
                .drifts
                .iter()
                .map(|d| [d.drift.to_owned(), d.turns.to_string(), d.dialogues.to_string()])
                .collect(),
            excluded: h
                .excluded
                .iter()
                .map(|(id, why)| [id.clone(), why.join("; ")])
                .collect(),
            smoke_test: h.smoke_test,
        });
        let mut periods = Vec::new();
        for c in &report.criteria {
            let cells: Vec<[String; 2]> = c
                .segments
                .iter()
                .filter_map(|s| {
                    let name = s.name.strip_prefix(PERIOD)?;
                    Some([
                        name.to_owned(),
                        format!("{} (n {})", fmt(s.win_rate.value), s.n),
                    ])
                })
                .collect();
            if !cells.is_empty() {
                periods.push((c.criterion.clone(), cells));
            }
        }
        let mut variance = Vec::new();
        variance_rows(&report.criteria, "", &mut variance);
        if let Some(s) = &report.simulation {
            variance_rows(&s.criteria, "simulation: ", &mut variance);
        }
        Self {
            replay_verdict: report
                .replay_decision
                .as_ref()
                .map(|d| verdict_names(d.verdict).0),
            simulation,
            aa,
            human,
            human_unmatched: report.calibration.human_unmatched,
            health,
            periods,
            variance,
        }
    }
}
