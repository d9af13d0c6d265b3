//! A judge calibrated before it is trusted: its A/A check (an arm against a second sample of
//! itself: the win rate must hold 0.5, the position bias and the inconsistency stay in bounds)
//! and its agreement with people on the same pairs (`--human`: agreement and Cohen's κ per
//! criterion). Either failing makes the decision INVALID.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use ragback_application::evaluation::agreement::{Agreement, Label, Rated, agreement};
use ragback_application::evaluation::policy::{Policy, aa_failures, human_failures};
use ragback_application::evaluation::scoring::CriterionStats;
use ragback_application::evaluation::stats::Bootstrap;
use ragback_application::evaluation::verdict::PairOutcome;
use serde::{Deserialize, Serialize};

use super::super::journal::read_lines;
use super::super::rows::Unit;
use super::build::{Options, StudyParts};

/// One person's verdict on a pair and a criterion.
#[derive(Debug, Clone, PartialEq)]
pub struct HumanLabel {
    /// A window's replies (`window_id`) or a seed conversation's simulated dialogues
    /// (`dialogue_id`).
    pub unit: Unit,
    /// The pair: the window or the seed conversation.
    pub pair: String,
    /// The criterion.
    pub criterion: String,
    /// A, B or tie.
    pub verdict: Label,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelLine {
    window_id: Option<String>,
    dialogue_id: Option<String>,
    criterion: String,
    verdict: String,
    /// Who labelled (kept for the record; each label is compared on its own).
    #[serde(default)]
    #[allow(dead_code)]
    annotator: Option<String>,
}

/// Reads human labels: JSONL `{"window_id" | "dialogue_id", "criterion", "verdict":
/// "A" | "B" | "tie", "annotator"?}`; every error names its line.
pub fn read_labels(path: &Path) -> anyhow::Result<Vec<HumanLabel>> {
    read_lines::<LabelLine>(path)?
        .into_iter()
        .map(|(line, l)| {
            let at = || format!("{}:{line}", path.display());
            let (unit, pair) = match (l.window_id, l.dialogue_id) {
                (Some(w), None) => (Unit::Reply, w),
                (None, Some(d)) => (Unit::Dialogue, d),
                _ => bail!("{}: give window_id or dialogue_id, one of them", at()),
            };
            let verdict = Label::parse(&l.verdict)
                .with_context(|| format!("{}: the verdict {:?} is A, B or tie", at(), l.verdict))?;
            Ok(HumanLabel {
                unit,
                pair,
                criterion: l.criterion,
                verdict,
            })
        })
        .collect()
}

/// The A/A check of one unit.
#[derive(Debug, Serialize)]
pub struct AaCheck {
    pub unit: Unit,
    pub criteria: Vec<CriterionStats>,
    pub passed: bool,
    pub failures: Vec<String>,
}

/// The judge against people, on one unit and criterion (`all`: every criterion at once).
#[derive(Debug, Serialize)]
pub struct HumanCheck {
    pub unit: Unit,
    pub criterion: String,
    pub agreement: Agreement,
    /// "judge agrees with people on 78 % of pairs, κ 0.55 [0.41, 0.68]".
    pub summary: String,
}

/// Both checks, as far as they were run.
#[derive(Debug, Default, Serialize)]
pub struct Calibration {
    pub aa: Vec<AaCheck>,
    pub human: Vec<HumanCheck>,
    /// Labels that matched no judged pair (another id, or a pair without a verdict).
    pub human_unmatched: u64,
    /// Why the judge is not to be trusted (empty when every check run passed).
    pub failures: Vec<String>,
}

/// The judge's verdict on a pair, as a label.
fn label(outcome: PairOutcome) -> Option<Label> {
    match outcome {
        PairOutcome::Win => Some(Label::B),
        PairOutcome::Loss => Some(Label::A),
        PairOutcome::Tie | PairOutcome::Inconsistent | PairOutcome::Identical => Some(Label::Tie),
        PairOutcome::Unjudged => None,
    }
}

/// The sentence of an agreement.
pub fn summary(a: &Agreement) -> String {
    let kappa = a
        .kappa
        .map_or("undefined".to_owned(), |k| format!("{k:.2}"));
    let interval = a.kappa_ci.map_or(String::new(), |ci| {
        format!(" [{:.2}, {:.2}]", ci.low, ci.high)
    });
    format!(
        "judge agrees with people on {:.0} % of {} pairs, κ {kappa}{interval}",
        100.0 * a.agreement,
        a.n
    )
}

/// The agreement of `labels` with the judge's outcomes in `parts`, per unit and criterion, and
/// the labels that matched nothing.
pub fn human_checks(
    labels: &[HumanLabel],
    parts: &BTreeMap<(Unit, bool), StudyParts>,
    bootstrap: Bootstrap,
) -> (Vec<HumanCheck>, u64) {
    let mut rated: BTreeMap<(Unit, String), Vec<Rated>> = BTreeMap::new();
    let mut unmatched = 0;
    for l in labels {
        let judged = parts
            .get(&(l.unit, false))
            .and_then(|p| p.outcomes.get(&(l.criterion.clone(), l.pair.clone())))
            .and_then(|(outcome, dialogue)| Some((label(*outcome)?, dialogue)));
        let Some((judge, dialogue)) = judged else {
            unmatched += 1;
            continue;
        };
        let item = Rated {
            dialogue: dialogue.clone(),
            judge,
            human: l.verdict,
        };
        rated
            .entry((l.unit, l.criterion.clone()))
            .or_default()
            .push(item.clone());
        rated.entry((l.unit, "all".into())).or_default().push(item);
    }
    let checks = rated
        .into_iter()
        .map(|((unit, criterion), items)| {
            let agreement = agreement(&items, bootstrap);
            HumanCheck {
                unit,
                criterion,
                summary: summary(&agreement),
                agreement,
            }
        })
        .collect();
    (checks, unmatched)
}

impl Calibration {
    /// The checks of the A/A sets in `parts` and of the human labels in `options`.
    pub(super) fn of(
        parts: &BTreeMap<(Unit, bool), StudyParts>,
        options: &Options,
        policy: &Policy,
        bootstrap: Bootstrap,
    ) -> anyhow::Result<Self> {
        let mut calibration = Self::default();
        for ((unit, aa), part) in parts {
            if !aa {
                continue;
            }
            let failures = aa_failures(&part.criteria, policy);
            calibration.failures.extend(failures.iter().cloned());
            calibration.aa.push(AaCheck {
                unit: *unit,
                criteria: part.criteria.clone(),
                passed: failures.is_empty(),
                failures,
            });
        }
        if let Some(labels) = &options.human {
            let (checks, unmatched) = human_checks(labels, parts, bootstrap);
            let kappas: Vec<(String, Option<f64>)> = checks
                .iter()
                .filter(|c| c.criterion != "all")
                .map(|c| {
                    (
                        format!("{:?} {}", c.unit, c.criterion).to_lowercase(),
                        c.agreement.kappa,
                    )
                })
                .collect();
            calibration.failures.extend(human_failures(&kappas, policy));
            if checks.is_empty() {
                bail!("no human label matches a judged pair ({unmatched} labels)");
            }
            calibration.human = checks;
            calibration.human_unmatched = unmatched;
        }
        Ok(calibration)
    }
}
