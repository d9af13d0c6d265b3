//! `report.json`: the statistics of the judgments and the moderation tags, and the ship decision,
//! computed from the journals' typed rows (input order never matters).

use std::collections::{BTreeMap, HashMap};

use ragback_application::evaluation::moderation::Tag;
use ragback_application::evaluation::policy::{
    Decision, Policy, combine_studies, decide, invalidate,
};
use ragback_application::evaluation::scoring::{
    CriterionStats, ModerationRow, ModerationStats, PairRow, criterion_stats, moderation_stats,
};
use ragback_application::evaluation::stats::{Bootstrap, cohens_kappa};
use ragback_application::evaluation::verdict::{
    Arm, PairOutcome, SlotVerdict, combine, mean_order_score,
};
use serde::Serialize;

use super::super::rows::{Judgment, Spoken, Status, Tagging, Unit};

/// `report.json`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub(super) schema: &'static str,
    pub(super) judge_models: Vec<String>,
    pub(super) smoke_test_judge: bool,
    pub(super) prompt_sha256: Vec<String>,
    pub(super) bootstrap: BootstrapInfo,
    pub(super) design: &'static str,
    pub(super) criteria: Vec<CriterionStats>,
    pub(super) moderation: Option<ModerationStats>,
    /// Whose tags decide (`judge` when the judge ran).
    pub(super) moderation_source: Option<String>,
    /// Other moderation sources, beside the deciding one.
    pub(super) moderation_others: Vec<OtherModeration>,
    pub(super) cost: Cost,
    /// The decision: of the one study, or of both (replay and simulation) combined.
    pub(super) decision: Decision,
    /// `period` when the segments include the source periods.
    pub(super) strata: Option<&'static str>,
    /// The replay's own decision, when a simulation sits beside it.
    pub(super) replay_decision: Option<Decision>,
    /// The whole-dialogue comparison of simulated conversations.
    pub(super) simulation: Option<Study>,
    /// The judge's A/A check and its agreement with people.
    pub(super) calibration: super::calibration::Calibration,
    /// The simulator's health.
    pub(super) health: Option<super::health::Health>,
    pub(super) lost: Vec<LostPair>,
    /// Pairs without a verdict, with what each order got: the judge's failures, listed.
    pub(super) unjudged: Vec<Unjudged>,
    /// Moderated replies the judge refused or could not tag.
    pub(super) moderation_failures: Vec<Unjudged>,
    pub(super) flagged: Vec<Flagged>,
}

#[derive(Debug, Serialize)]
pub(super) struct BootstrapInfo {
    pub(super) seed: u64,
    pub(super) rounds: u32,
    pub(super) cluster: &'static str,
}

#[derive(Debug, Default, Serialize)]
pub(super) struct Cost {
    pub(super) judge_calls: u64,
    pub(super) prompt_tokens: u64,
    pub(super) completion_tokens: u64,
    pub(super) usd: f64,
}

/// Another moderation source and how far it agrees with the deciding one.
#[derive(Debug, Serialize)]
pub(super) struct OtherModeration {
    pub(super) adapter: String,
    pub(super) stats: ModerationStats,
    /// Cohen's κ per tag over the replies both tagged (`None` when undefined).
    pub(super) kappa: Vec<(Tag, Option<f64>)>,
}

/// A pair (or a moderated reply) that got no verdict.
#[derive(Debug, Serialize)]
pub(super) struct Unjudged {
    pub(super) criterion: String,
    pub(super) pair: String,
    /// Per order (or the one moderation call): its status and error.
    pub(super) statuses: Vec<String>,
}

/// A pair B lost in both orders, for error analysis.
#[derive(Debug, Serialize)]
pub(super) struct LostPair {
    pub(super) criterion: String,
    pub(super) pair: String,
    pub(super) context_tail: Vec<Spoken>,
    pub(super) text_a: String,
    pub(super) text_b: String,
    pub(super) reasons: Vec<String>,
}

/// A flagged message.
#[derive(Debug, Serialize)]
pub(super) struct Flagged {
    pub(super) window: String,
    pub(super) arm: String,
    pub(super) tags: Vec<Tag>,
    pub(super) evidence: String,
    pub(super) text: String,
}

/// `order 2: refused — …` for a list of failures.
fn status_line(order: Option<u8>, status: Status, detail: Option<&str>) -> String {
    let what = order.map_or(String::new(), |order| format!("order {order}: "));
    let detail: String = detail.unwrap_or_default().chars().take(160).collect();
    format!("{what}{} {detail}", status.as_str())
        .trim_end()
        .to_owned()
}

fn judgment_status(row: &Judgment) -> String {
    let detail = row.error.as_deref().or(row.reason.as_deref());
    status_line(Some(row.order), row.status, detail)
}

fn tagging_status(row: &Tagging) -> String {
    let detail = row.error.as_deref().or(row.answer.as_deref());
    status_line(None, row.status, detail)
}

fn moderation_row(r: &Tagging) -> ModerationRow {
    ModerationRow {
        dialogue: r.dialogue.clone(),
        window: r.window.clone(),
        arm: if r.arm == "A" { Arm::A } else { Arm::B },
        tags: (r.status == Status::Ok).then(|| r.tags.clone()).flatten(),
        refused: r.status == Status::Refused,
    }
}

/// Cohen's κ of two taggings, per tag, over the (window, arm) both tagged.
fn kappa(primary: &[ModerationRow], other: &[ModerationRow]) -> Vec<(Tag, Option<f64>)> {
    let index: BTreeMap<(&str, u8), &Vec<Tag>> = other
        .iter()
        .filter_map(|r| Some(((r.window.as_str(), r.arm as u8), r.tags.as_ref()?)))
        .collect();
    Tag::ALL
        .into_iter()
        .map(|tag| {
            let pairs: Vec<(bool, bool)> = primary
                .iter()
                .filter_map(|r| {
                    let theirs = index.get(&(r.window.as_str(), r.arm as u8))?;
                    Some((r.tags.as_ref()?.contains(&tag), theirs.contains(&tag)))
                })
                .collect();
            (tag, cohens_kappa(&pairs))
        })
        .collect()
}

/// What one set of judgments (one unit, main or A/A) gives.
pub(super) struct StudyParts {
    pub(super) criteria: Vec<CriterionStats>,
    pub(super) lost: Vec<LostPair>,
    pub(super) unjudged: Vec<Unjudged>,
    /// Per (criterion, pair): B's outcome, and the pair's dialogue.
    pub(super) outcomes: BTreeMap<(String, String), (PairOutcome, String)>,
}

/// The statistics of `rows` (one unit; `strata`: segments by source period too).
pub(super) fn study(rows: &[&Judgment], bootstrap: Bootstrap, strata: bool) -> StudyParts {
    // Judgments by (criterion, pair), both orders; sorted, so input order never matters.
    let mut by_pair: BTreeMap<(&str, &str), Vec<&Judgment>> = BTreeMap::new();
    for row in rows {
        by_pair
            .entry((row.criterion.as_str(), row.pair.as_str()))
            .or_default()
            .push(row);
    }
    let mut per_criterion: BTreeMap<String, Vec<PairRow>> = BTreeMap::new();
    let mut lost = Vec::new();
    let mut unjudged = Vec::new();
    let mut outcomes = BTreeMap::new();
    for ((criterion, pair), mut judged) in by_pair {
        judged.sort_by_key(|r| r.order);
        let first = judged[0];
        let verdict = |n: u8| {
            judged
                .iter()
                .find(|r| r.order == n && r.status == Status::Ok)
                .copied()
        };
        let (o1, o2) = (verdict(1), verdict(2));
        let (v1, v2) = (
            o1.and_then(|r| r.verdict_arm),
            o2.and_then(|r| r.verdict_arm),
        );
        let outcome = if first.status == Status::Identical {
            PairOutcome::Identical
        } else {
            combine(v1, v2)
        };
        outcomes.insert(
            (criterion.to_owned(), pair.to_owned()),
            (outcome, first.dialogue.clone()),
        );
        let (order_score, order_gap) = match (v1, v2) {
            (Some(a), Some(b)) => (
                Some(mean_order_score(a, b)),
                Some((mean_order_score(a, a) - mean_order_score(b, b)).abs()),
            ),
            _ => (None, None),
        };
        let first_slot = [o1, o2]
            .into_iter()
            .flatten()
            .map(|r| match r.verdict_slot {
                Some(SlotVerdict::First) => Some(true),
                Some(SlotVerdict::Second) => Some(false),
                _ => None,
            })
            .collect();
        if outcome == PairOutcome::Unjudged {
            unjudged.push(Unjudged {
                criterion: criterion.to_owned(),
                pair: pair.to_owned(),
                statuses: judged.iter().map(|r| judgment_status(r)).collect(),
            });
        }
        if outcome == PairOutcome::Loss {
            lost.push(LostPair {
                criterion: criterion.to_owned(),
                pair: pair.to_owned(),
                context_tail: first.context_tail.clone(),
                text_a: first.text_a.clone(),
                text_b: first.text_b.clone(),
                reasons: judged.iter().filter_map(|r| r.reason.clone()).collect(),
            });
        }
        let tokens = |t: Option<u64>| t.and_then(|t| u32::try_from(t).ok());
        // A later sample of a window is the same window (`w@2` is `w`).
        let window = match first.sample {
            0 => pair,
            k => pair.strip_suffix(&format!("@{k}")).unwrap_or(pair),
        };
        per_criterion
            .entry(criterion.to_owned())
            .or_default()
            .push(PairRow {
                dialogue: first.dialogue.clone(),
                window: window.to_owned(),
                bucket: first.bucket,
                period: first.period.clone().filter(|_| strata),
                sample: first.sample,
                outcome,
                order_score,
                order_gap,
                chars: (first.chars_a, first.chars_b),
                tokens: (tokens(first.tokens_a), tokens(first.tokens_b)),
                first_slot,
                refused: judged.iter().any(|r| r.status == Status::Refused),
            });
    }
    StudyParts {
        criteria: per_criterion
            .iter()
            .map(|(name, rows)| criterion_stats(name, rows, bootstrap))
            .collect(),
        lost,
        unjudged,
        outcomes,
    }
}

/// The report of `judgments` and, when moderation ran, of its `taggings`.
pub(super) fn build(
    judgments: &HashMap<String, Judgment>,
    taggings: Option<Vec<Tagging>>,
    policy: &Policy,
    bootstrap: Bootstrap,
    seed: u64,
    options: &Options,
) -> anyhow::Result<Report> {
    let mut cost = Cost::default();
    let (mut models, mut hashes, mut smoke) = (Vec::new(), Vec::new(), false);
    let mut sets: BTreeMap<(Unit, bool), Vec<&Judgment>> = BTreeMap::new();
    for row in judgments.values() {
        sets.entry((row.unit, row.aa)).or_default().push(row);
        if row.status != Status::Identical {
            cost.judge_calls += 1;
        }
        let usage = row.usage.unwrap_or_default();
        cost.prompt_tokens += usage.prompt_tokens;
        cost.completion_tokens += usage.completion_tokens;
        cost.usd += row.cost_usd.unwrap_or(0.0);
        models.push(row.judge_model.clone());
        hashes.push(row.prompt_sha256.clone());
        smoke |= row.smoke_test_judge;
    }
    for list in [&mut models, &mut hashes] {
        list.retain(|s| !s.is_empty());
        list.sort();
        list.dedup();
    }
    let strata = options.strata_period;
    let mut parts: BTreeMap<(Unit, bool), StudyParts> = sets
        .iter()
        .map(|(set, rows)| (*set, study(rows, bootstrap, strata)))
        .collect();
    let mut flagged = Vec::new();
    let mut moderation_failures = Vec::new();
    let mut moderation_others = Vec::new();
    let mut moderation_source = None;
    let moderation = taggings.map(|mut rows| {
        rows.sort_by(|a, b| (&a.adapter, &a.key).cmp(&(&b.adapter, &b.key)));
        let mut by_adapter: BTreeMap<&str, Vec<&Tagging>> = BTreeMap::new();
        for row in &rows {
            by_adapter.entry(&row.adapter).or_default().push(row);
        }
        let source = if by_adapter.contains_key("judge") {
            "judge"
        } else {
            by_adapter.keys().next().copied().unwrap_or("judge")
        };
        moderation_source = Some(source.to_owned());
        let parsed: BTreeMap<&str, Vec<ModerationRow>> = by_adapter
            .iter()
            .map(|(name, rows)| (*name, rows.iter().map(|r| moderation_row(r)).collect()))
            .collect();
        for r in by_adapter.get(source).into_iter().flatten() {
            if r.status != Status::Ok {
                moderation_failures.push(Unjudged {
                    criterion: "moderation".into(),
                    pair: r.key.clone(),
                    statuses: vec![tagging_status(r)],
                });
            }
            if let Some(tags) = moderation_row(r).tags.filter(|t| !t.is_empty()) {
                flagged.push(Flagged {
                    window: r.window.clone(),
                    arm: r.arm.clone(),
                    tags,
                    evidence: r.evidence.clone().unwrap_or_default(),
                    text: r.text.clone(),
                });
            }
        }
        let primary = parsed.get(source).cloned().unwrap_or_default();
        for (name, rows) in &parsed {
            if *name != source {
                moderation_others.push(OtherModeration {
                    adapter: (*name).to_owned(),
                    stats: moderation_stats(rows, bootstrap),
                    kappa: kappa(&primary, rows),
                });
            }
        }
        moderation_stats(&primary, bootstrap)
    });
    // One judge: a failed calibration (of either unit) invalidates every study.
    let calibration = super::calibration::Calibration::of(&parts, options, policy, bootstrap)?;
    let replay = parts.remove(&(Unit::Reply, false));
    let simulated = parts.remove(&(Unit::Dialogue, false));
    let mut studies: Vec<(&str, Decision)> = Vec::new();
    for (name, part) in [("replay", &replay), ("simulation", &simulated)] {
        if let Some(part) = part {
            let decision = decide(&part.criteria, moderation.as_ref(), policy);
            studies.push((name, invalidate(decision, calibration.failures.clone())));
        }
    }
    let decision = match studies.as_slice() {
        [] => invalidate(
            decide(&[], moderation.as_ref(), policy),
            calibration.failures.clone(),
        ),
        [(_, only)] => only.clone(),
        many => combine_studies(&many.iter().map(|(n, d)| (*n, d)).collect::<Vec<_>>()),
    };
    let simulation = simulated.map(|part| Study {
        decision: studies
            .iter()
            .find(|(n, _)| *n == "simulation")
            .map(|(_, d)| d.clone()),
        design: "on-policy simulation: each arm talked its own way through conversations with a simulated user from the same seed conversations; whole conversations judged, one pair per seed",
        criteria: part.criteria,
        lost: part.lost,
        unjudged: part.unjudged,
    });
    let replay_decision = studies
        .iter()
        .find(|(n, _)| *n == "replay")
        .map(|(_, d)| d.clone())
        .filter(|_| simulation.is_some());
    let replay = replay.unwrap_or(StudyParts {
        criteria: Vec::new(),
        lost: Vec::new(),
        unjudged: Vec::new(),
        outcomes: BTreeMap::new(),
    });
    cost.usd = (cost.usd * 1e6).round() / 1e6;
    Ok(Report {
        schema: "ragback.eval.report/2",
        judge_models: models,
        smoke_test_judge: smoke,
        prompt_sha256: hashes,
        bootstrap: BootstrapInfo {
            seed,
            rounds: bootstrap.rounds,
            cluster: "dialogue",
        },
        design: "offline replay: each window's last reply regenerated by both arms in contexts written with A answering (B is judged off-policy, one turn deep)",
        strata: strata.then_some("period"),
        criteria: replay.criteria,
        moderation,
        moderation_source,
        moderation_others,
        cost,
        decision,
        replay_decision,
        simulation,
        calibration,
        health: options.health.clone(),
        lost: replay.lost,
        unjudged: replay.unjudged.into_iter().collect(),
        moderation_failures,
        flagged,
    })
}

/// What the report is asked for beyond the journals.
#[derive(Debug, Default)]
pub(super) struct Options {
    /// Segments by source period, and the rule that B wins in each.
    pub(super) strata_period: bool,
    /// Human verdicts to compare the judge with.
    pub(super) human: Option<Vec<super::calibration::HumanLabel>>,
    /// The simulator's health over the simulated conversations.
    pub(super) health: Option<super::health::Health>,
}

/// The whole-dialogue comparison of simulated conversations.
#[derive(Debug, Serialize)]
pub(super) struct Study {
    pub(super) design: &'static str,
    pub(super) criteria: Vec<CriterionStats>,
    pub(super) decision: Option<Decision>,
    pub(super) lost: Vec<LostPair>,
    pub(super) unjudged: Vec<Unjudged>,
}
