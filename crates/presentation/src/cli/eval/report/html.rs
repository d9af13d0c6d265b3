//! `report.html`: one self-contained page (inline CSS and SVG, no script, no external URL),
//! rendered from `report.html.tera` with autoescaping on. Numbers are formatted here; the
//! template only places them.

use ragback_application::evaluation::policy::{Policy, Verdict};
use ragback_application::evaluation::scoring::{CriterionStats, Estimate, ModerationStats};
use ragback_application::evaluation::windows::Bucket;
use serde::Serialize;
use tera::{Context, Tera};

use super::build::{Report, Unjudged};
use super::svg::{forest, histogram, moderation_bars};
use crate::cli::eval::rows::Spoken;

/// The page's template, built into the binary.
const TEMPLATE: &str = include_str!("report.html.tera");

/// The page of `report`.
pub(super) fn html(report: &Report, policy: &Policy) -> anyhow::Result<String> {
    let mut tera = Tera::new();
    tera.autoescape_on([".html"]);
    tera.add_raw_template("report.html", TEMPLATE)?;
    let page = Page::of(report, policy);
    let html = tera.render("report.html", &Context::from_serialize(&page)?)?;
    Ok(html)
}

/// A number with three decimals, or `—` when undefined.
pub(super) fn fmt(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "—".into()
    }
}

pub(super) fn opt(v: Option<f64>) -> String {
    v.map_or("—".into(), fmt)
}

pub(super) fn ci(e: &Estimate) -> String {
    e.ci.map_or("—".into(), |ci| {
        format!("[{}, {}]", fmt(ci.low), fmt(ci.high))
    })
}

/// A criterion's counts and rates, as the tables show them: pairs, dialogues, win, tie,
/// inconsistent, loss, identical, unjudged, win rate, CI, p, LC, LC CI.
pub(super) fn cells(c: &CriterionStats) -> Vec<String> {
    let k = &c.counts;
    vec![
        c.n_pairs.to_string(),
        c.n_dialogues.to_string(),
        k.win.to_string(),
        k.tie.to_string(),
        k.inconsistent.to_string(),
        k.loss.to_string(),
        k.identical.to_string(),
        k.unjudged.to_string(),
        fmt(c.win_rate.value),
        ci(&c.win_rate),
        format!("{:.4}", c.p_value),
        fmt(c.length_controlled.value),
        ci(&c.length_controlled),
    ]
}

/// A verdict's name and its banner's class.
pub(super) fn verdict_names(verdict: Verdict) -> (String, &'static str) {
    let name = serde_json::to_value(verdict)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let class = match verdict {
        Verdict::Ship => "ship",
        Verdict::NoShip => "noship",
        Verdict::Invalid => "invalid",
        Verdict::Inconclusive => "inconclusive",
    };
    (name, class)
}

/// What the template shows.
#[derive(Serialize)]
struct Page<'a> {
    smoke_test_judge: bool,
    verdict: String,
    verdict_class: &'static str,
    rollout: Option<String>,
    reasons: &'a [String],
    judges: String,
    prompts: String,
    rounds: u32,
    seed: u64,
    design: &'a str,
    forest: String,
    criteria: Vec<CriterionRow<'a>>,
    warnings: Vec<String>,
    buckets: Vec<&'static str>,
    cost: String,
    lengths: Option<LengthsView>,
    moderation: Option<ModerationView<'a>>,
    failures_count: usize,
    /// criterion, pair, what the judge did: the first 200.
    failures: Vec<[String; 3]>,
    lost_count: usize,
    lost: Vec<LostView<'a>>,
    /// Simulation, calibration, health, periods and samples.
    extra: super::html_extra::Extra,
}

#[derive(Serialize)]
struct CriterionRow<'a> {
    name: &'a str,
    /// pairs, dialogues, win, tie, inconsistent, loss, identical, unjudged, win rate, CI, p,
    /// LC, LC CI.
    cells: Vec<String>,
    segments: Vec<SegmentCell>,
    /// swap-consistency, first-slot rate, refusals, unjudged, order-mean score, design effect,
    /// MDE, pairs for the observed effect.
    health: Vec<String>,
}

#[derive(Serialize)]
struct SegmentCell {
    text: String,
    colour: &'static str,
}

#[derive(Serialize)]
struct LengthsView {
    caption: String,
    criterion: String,
    plot: String,
}

#[derive(Serialize)]
struct ModerationView<'a> {
    plot: String,
    differences: Vec<[String; 3]>,
    others: Vec<OtherView>,
    flagged: Vec<FlaggedView<'a>>,
}

#[derive(Serialize)]
struct OtherView {
    title: String,
    plot: String,
    kappa: Vec<[String; 2]>,
}

#[derive(Serialize)]
struct FlaggedView<'a> {
    window: &'a str,
    arm: &'a str,
    tags: String,
    evidence: &'a str,
    text: &'a str,
}

#[derive(Serialize)]
struct LostView<'a> {
    pair: &'a str,
    criterion: &'a str,
    context: &'a [Spoken],
    text_a: &'a str,
    text_b: &'a str,
    reasons: &'a [String],
}

impl<'a> Page<'a> {
    fn of(report: &'a Report, policy: &Policy) -> Self {
        let (verdict, verdict_class) = verdict_names(report.decision.verdict);
        let criteria = report.criteria.iter().map(|c| {
            let cells = cells(c);
            let segments = Bucket::ALL
                .iter()
                .map(|b| match c.segments.iter().find(|s| s.name == b.as_str()) {
                    Some(s) => SegmentCell {
                        text: format!("{} (n {})", fmt(s.win_rate.value), s.n),
                        colour: match s.win_rate.ci {
                            Some(ci) if ci.low > 0.5 => "#d9f2dc",
                            Some(ci) if ci.high < 0.5 => "#f9d6d5",
                            _ => "#fff",
                        },
                    },
                    None => SegmentCell {
                        text: "—".into(),
                        colour: "#fff",
                    },
                })
                .collect();
            let health = vec![
                opt(c.swap_consistency),
                opt(c.first_slot_rate),
                format!("{:.1} %", 100.0 * c.refusal_rate),
                format!("{:.1} %", 100.0 * c.unjudged_rate),
                opt(c.order_mean_score),
                opt(c.design_effect),
                opt(c.minimum_detectable_effect),
                c.pairs_needed_for_observed
                    .map_or("—".into(), |n| n.to_string()),
            ];
            CriterionRow {
                name: &c.criterion,
                cells,
                segments,
                health,
            }
        });
        let lengths = report.criteria.first().map(|c| {
            let l = &c.lengths;
            LengthsView {
                caption: format!(
                    "median characters {} vs {}, B longer in {:.0} % of pairs",
                    fmt(l.median_chars.0),
                    fmt(l.median_chars.1),
                    100.0 * l.b_longer_share
                ),
                criterion: format!(
                    "win rate ({}) when B is longer {}, otherwise {}",
                    c.criterion,
                    opt(l.win_rate_b_longer),
                    opt(l.win_rate_b_not_longer)
                ),
                plot: histogram(&l.chars_a, &l.chars_b),
            }
        });
        Self {
            smoke_test_judge: report.smoke_test_judge,
            verdict,
            verdict_class,
            rollout: report
                .decision
                .rollout_share
                .map(|s| format!(" to {:.0} % of users", 100.0 * s)),
            reasons: &report.decision.reasons,
            judges: report.judge_models.join(", "),
            prompts: report
                .prompt_sha256
                .iter()
                // By characters: a crafted row's hash may hold anything.
                .map(|s| s.chars().take(12).collect::<String>())
                .collect::<Vec<_>>()
                .join(", "),
            rounds: report.bootstrap.rounds,
            seed: report.bootstrap.seed,
            design: report.design,
            forest: forest(&report.criteria, policy),
            criteria: criteria.collect(),
            warnings: report
                .criteria
                .iter()
                .flat_map(|c| c.warnings.iter().map(|w| format!("{}: {w}", c.criterion)))
                .collect(),
            buckets: Bucket::ALL.iter().map(|b| b.as_str()).collect(),
            cost: format!(
                "{} judge calls, {} prompt and {} completion tokens, ${:.6}.",
                report.cost.judge_calls,
                report.cost.prompt_tokens,
                report.cost.completion_tokens,
                report.cost.usd
            ),
            lengths,
            moderation: report
                .moderation
                .as_ref()
                .map(|m| ModerationView::of(report, m)),
            failures_count: report.unjudged.len() + report.moderation_failures.len(),
            failures: report
                .unjudged
                .iter()
                .chain(&report.moderation_failures)
                .take(200)
                .map(|f: &Unjudged| [f.criterion.clone(), f.pair.clone(), f.statuses.join(" · ")])
                .collect(),
            lost_count: report.lost.len(),
            lost: report
                .lost
                .iter()
                .take(50)
                .map(|l| LostView {
                    pair: &l.pair,
                    criterion: &l.criterion,
                    context: &l.context_tail,
                    text_a: &l.text_a,
                    text_b: &l.text_b,
                    reasons: &l.reasons,
                })
                .collect(),
            extra: super::html_extra::Extra::of(report),
        }
    }
}

impl<'a> ModerationView<'a> {
    fn of(report: &'a Report, m: &ModerationStats) -> Self {
        let source = report.moderation_source.as_deref().unwrap_or("judge");
        Self {
            plot: moderation_bars(m),
            differences: m
                .differences
                .iter()
                .map(|(tag, d)| {
                    [
                        tag.key().to_owned(),
                        format!("{:+.2} pp", 100.0 * d.value),
                        d.ci.map_or("—".into(), |ci| {
                            format!("[{:+.2}, {:+.2}] pp", 100.0 * ci.low, 100.0 * ci.high)
                        }),
                    ]
                })
                .collect(),
            others: report
                .moderation_others
                .iter()
                .map(|other| OtherView {
                    title: format!(
                        "{} (beside the {source}; it sees the message without the story, so \
                         fiction over-flags)",
                        other.adapter
                    ),
                    plot: moderation_bars(&other.stats),
                    kappa: other
                        .kappa
                        .iter()
                        .map(|(tag, k)| [tag.key().to_owned(), opt(*k)])
                        .collect(),
                })
                .collect(),
            flagged: report
                .flagged
                .iter()
                .map(|f| FlaggedView {
                    window: &f.window,
                    arm: &f.arm,
                    tags: f
                        .tags
                        .iter()
                        .map(|t| t.key())
                        .collect::<Vec<_>>()
                        .join(", "),
                    evidence: &f.evidence,
                    text: &f.text,
                })
                .collect(),
        }
    }
}
