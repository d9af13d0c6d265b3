//! `ragback eval report` and `ragback eval power`: pure computation over the journals, into
//! `report.json` and one self-contained `report.html` (inline CSS and SVG drawn here, no script,
//! no external URL, every text escaped).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ragback_application::evaluation::moderation::Tag;
use ragback_application::evaluation::policy::{Decision, Policy, Verdict, decide};
use ragback_application::evaluation::scoring::{
    CriterionStats, ModerationRow, ModerationStats, PairRow, criterion_stats, moderation_stats,
};
use ragback_application::evaluation::stats::{Bootstrap, PowerQuestion, pairs_needed};
use ragback_application::evaluation::verdict::{
    Arm, ArmVerdict, PairOutcome, SlotVerdict, combine, mean_order_score,
};
use ragback_application::evaluation::windows::Bucket;
use serde::Serialize;
use serde_json::Value;

use super::journal::read_journal;

/// `ragback eval report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The pairwise journal.
    #[arg(long)]
    judgments: PathBuf,
    /// Moderation journals (repeatable: the judge's and OpenAI's); the judge's rows decide,
    /// the others are shown beside them with their agreement (Cohen's κ per tag).
    #[arg(long)]
    moderation: Vec<PathBuf>,
    /// The ship rule's thresholds (JSON; every key optional).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Bootstrap seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Bootstrap rounds.
    #[arg(long, default_value_t = 2000)]
    bootstrap: u32,
    /// The HTML report.
    #[arg(long, default_value = "report.html")]
    html: PathBuf,
    /// The JSON report.
    #[arg(long, default_value = "report.json")]
    json: PathBuf,
}

/// `report.json`.
#[derive(Debug, Serialize)]
pub struct Report {
    schema: &'static str,
    judge_models: Vec<String>,
    smoke_test_judge: bool,
    prompt_sha256: Vec<String>,
    bootstrap: BootstrapInfo,
    design: &'static str,
    criteria: Vec<CriterionStats>,
    moderation: Option<ModerationStats>,
    /// Whose tags decide (`judge` when the judge ran).
    moderation_source: Option<String>,
    /// Other moderation sources, beside the deciding one.
    moderation_others: Vec<OtherModeration>,
    cost: Cost,
    decision: Decision,
    lost: Vec<LostPair>,
    /// Pairs without a verdict, with what each order got: the judge's failures, listed.
    unjudged: Vec<Unjudged>,
    /// Moderated replies the judge refused or could not tag.
    moderation_failures: Vec<Unjudged>,
    flagged: Vec<Flagged>,
}

#[derive(Debug, Serialize)]
struct BootstrapInfo {
    seed: u64,
    rounds: u32,
    cluster: &'static str,
}

#[derive(Debug, Default, Serialize)]
struct Cost {
    judge_calls: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    usd: f64,
}

/// Another moderation source and how far it agrees with the deciding one.
#[derive(Debug, Serialize)]
struct OtherModeration {
    adapter: String,
    stats: ModerationStats,
    /// Cohen's κ per tag over the replies both tagged (`None` when undefined).
    kappa: Vec<(Tag, Option<f64>)>,
}

/// `order 2: refused — …` for a list of failures.
fn status_line(row: &Value) -> String {
    let what = match row["order"].as_u64() {
        Some(order) => format!("order {order}: "),
        None => String::new(),
    };
    let detail = row["error"]
        .as_str()
        .or_else(|| row["reason"].as_str())
        .or_else(|| row["answer"].as_str())
        .unwrap_or_default();
    let detail: String = detail.chars().take(160).collect();
    format!(
        "{what}{} {detail}",
        row["status"].as_str().unwrap_or_default()
    )
    .trim_end()
    .to_owned()
}

fn adapter(row: &Value) -> &str {
    row["adapter"].as_str().unwrap_or("judge")
}

fn moderation_row(r: &Value) -> ModerationRow {
    ModerationRow {
        dialogue: r["dialogue"].as_str().unwrap_or_default().to_owned(),
        window: r["window"].as_str().unwrap_or_default().to_owned(),
        arm: if r["arm"] == "A" { Arm::A } else { Arm::B },
        tags: (r["status"] == "ok")
            .then(|| serde_json::from_value(r["tags"].clone()).ok())
            .flatten(),
        refused: r["status"] == "refused",
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
            let n = pairs.len() as f64;
            if n == 0.0 {
                return (tag, None);
            }
            let agree = pairs.iter().filter(|(a, b)| a == b).count() as f64 / n;
            let pa = pairs.iter().filter(|(a, _)| *a).count() as f64 / n;
            let pb = pairs.iter().filter(|(_, b)| *b).count() as f64 / n;
            let chance = pa * pb + (1.0 - pa) * (1.0 - pb);
            (
                tag,
                (chance < 1.0).then(|| (agree - chance) / (1.0 - chance)),
            )
        })
        .collect()
}

/// A pair (or a moderated reply) that got no verdict.
#[derive(Debug, Serialize)]
struct Unjudged {
    criterion: String,
    pair: String,
    /// Per order (or the one moderation call): its status and error.
    statuses: Vec<String>,
}

/// A pair B lost in both orders, for error analysis.
#[derive(Debug, Serialize)]
struct LostPair {
    criterion: String,
    pair: String,
    context_tail: Value,
    text_a: String,
    text_b: String,
    reasons: Vec<String>,
}

/// A flagged message.
#[derive(Debug, Serialize)]
struct Flagged {
    window: String,
    arm: String,
    tags: Vec<Tag>,
    evidence: String,
    text: String,
}

fn arm_of(value: &Value) -> Option<ArmVerdict> {
    serde_json::from_value(value.clone()).ok()
}

/// Runs `ragback eval report`.
pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let policy: Policy = match &args.policy {
        None => Policy::default(),
        Some(path) => serde_json::from_str(
            &std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        )
        .with_context(|| format!("{}: not a policy", path.display()))?,
    };
    let bootstrap = Bootstrap {
        rounds: args.bootstrap.max(1),
        seed: args.seed,
    };
    let (_, rows) = read_journal(&args.judgments)?;
    let mut moderation: Vec<Value> = Vec::new();
    for path in &args.moderation {
        moderation.extend(read_journal(path)?.1.into_values());
    }
    let report = build(
        &rows,
        (!args.moderation.is_empty()).then_some(moderation),
        &policy,
        bootstrap,
        args.seed,
    );
    let json = serde_json::to_string_pretty(&report)? + "\n";
    super::journal::write_atomically(&args.json, json.as_bytes())
        .with_context(|| format!("cannot write {}", args.json.display()))?;
    super::journal::write_atomically(&args.html, html(&report, &policy).as_bytes())
        .with_context(|| format!("cannot write {}", args.html.display()))?;
    let verdict = serde_json::to_value(report.decision.verdict)?;
    eprintln!("decision: {}", verdict.as_str().unwrap_or_default());
    for reason in &report.decision.reasons {
        eprintln!("  - {reason}");
    }
    eprintln!("-> {} and {}", args.html.display(), args.json.display());
    Ok(())
}

fn build(
    rows: &std::collections::HashMap<String, Value>,
    moderation: Option<Vec<Value>>,
    policy: &Policy,
    bootstrap: Bootstrap,
    seed: u64,
) -> Report {
    // Judgments by (criterion, pair), both orders; sorted, so input order never matters.
    let mut by_pair: BTreeMap<(String, String), Vec<&Value>> = BTreeMap::new();
    let mut cost = Cost::default();
    let (mut models, mut hashes, mut smoke) = (Vec::new(), Vec::new(), false);
    for row in rows.values() {
        let criterion = row["criterion"].as_str().unwrap_or_default().to_owned();
        let pair = row["pair"].as_str().unwrap_or_default().to_owned();
        by_pair.entry((criterion, pair)).or_default().push(row);
        if row["status"] != "identical" {
            cost.judge_calls += 1;
        }
        cost.prompt_tokens += row["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
        cost.completion_tokens += row["usage"]["completion_tokens"].as_u64().unwrap_or(0);
        cost.usd += row["cost_usd"].as_f64().unwrap_or(0.0);
        models.extend(row["judge_model"].as_str().map(str::to_owned));
        hashes.extend(row["prompt_sha256"].as_str().map(str::to_owned));
        smoke |= row["smoke_test_judge"].as_bool().unwrap_or(false);
    }
    models.sort();
    models.dedup();
    hashes.sort();
    hashes.dedup();
    let mut per_criterion: BTreeMap<String, Vec<PairRow>> = BTreeMap::new();
    let mut lost = Vec::new();
    let mut unjudged = Vec::new();
    for ((criterion, pair), mut judged) in by_pair {
        judged.sort_by_key(|r| r["order"].as_u64());
        let first = judged[0];
        let order = |n: u64| {
            judged
                .iter()
                .find(|r| r["order"].as_u64() == Some(n) && r["status"] == "ok")
                .copied()
        };
        let (o1, o2) = (order(1), order(2));
        let outcome = if first["status"] == "identical" {
            PairOutcome::Identical
        } else {
            combine(
                o1.and_then(|r| arm_of(&r["verdict_arm"])),
                o2.and_then(|r| arm_of(&r["verdict_arm"])),
            )
        };
        let order_score = match (
            o1.and_then(|r| arm_of(&r["verdict_arm"])),
            o2.and_then(|r| arm_of(&r["verdict_arm"])),
        ) {
            (Some(a), Some(b)) => Some(mean_order_score(a, b)),
            _ => None,
        };
        let first_slot = [o1, o2]
            .into_iter()
            .flatten()
            .map(
                |r| match serde_json::from_value::<SlotVerdict>(r["verdict_slot"].clone()) {
                    Ok(SlotVerdict::First) => Some(true),
                    Ok(SlotVerdict::Second) => Some(false),
                    _ => None,
                },
            )
            .collect();
        if outcome == PairOutcome::Unjudged {
            unjudged.push(Unjudged {
                criterion: criterion.clone(),
                pair: pair.clone(),
                statuses: judged.iter().map(|r| status_line(r)).collect(),
            });
        }
        if outcome == PairOutcome::Loss {
            lost.push(LostPair {
                criterion: criterion.clone(),
                pair: pair.clone(),
                context_tail: first["context_tail"].clone(),
                text_a: first["text_a"].as_str().unwrap_or_default().to_owned(),
                text_b: first["text_b"].as_str().unwrap_or_default().to_owned(),
                reasons: judged
                    .iter()
                    .filter_map(|r| r["reason"].as_str().map(str::to_owned))
                    .collect(),
            });
        }
        let count = |key: &str| first[key].as_u64().unwrap_or(0) as usize;
        per_criterion.entry(criterion).or_default().push(PairRow {
            dialogue: first["dialogue"].as_str().unwrap_or_default().to_owned(),
            window: pair,
            bucket: serde_json::from_value(first["bucket"].clone()).unwrap_or(Bucket::Middle),
            outcome,
            order_score,
            chars: (count("chars_a"), count("chars_b")),
            tokens: (
                first["tokens_a"]
                    .as_u64()
                    .and_then(|t| u32::try_from(t).ok()),
                first["tokens_b"]
                    .as_u64()
                    .and_then(|t| u32::try_from(t).ok()),
            ),
            first_slot,
            refused: judged.iter().any(|r| r["status"] == "refused"),
        });
    }
    let criteria: Vec<CriterionStats> = per_criterion
        .iter()
        .map(|(name, rows)| criterion_stats(name, rows, bootstrap))
        .collect();
    let mut flagged = Vec::new();
    let mut moderation_failures = Vec::new();
    let mut moderation_others = Vec::new();
    let mut moderation_source = None;
    let moderation = moderation.map(|mut rows| {
        rows.sort_by(|a, b| (adapter(a), a["key"].as_str()).cmp(&(adapter(b), b["key"].as_str())));
        let mut by_adapter: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
        for row in &rows {
            by_adapter.entry(adapter(row)).or_default().push(row);
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
            if r["status"] != "ok" {
                moderation_failures.push(Unjudged {
                    criterion: "moderation".into(),
                    pair: r["key"].as_str().unwrap_or_default().to_owned(),
                    statuses: vec![status_line(r)],
                });
            }
            if let Some(tags) = moderation_row(r).tags.filter(|t| !t.is_empty()) {
                flagged.push(Flagged {
                    window: r["window"].as_str().unwrap_or_default().to_owned(),
                    arm: r["arm"].as_str().unwrap_or_default().to_owned(),
                    tags,
                    evidence: r["evidence"].as_str().unwrap_or_default().to_owned(),
                    text: r["text"].as_str().unwrap_or_default().to_owned(),
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
    let decision = decide(&criteria, moderation.as_ref(), policy);
    cost.usd = (cost.usd * 1e6).round() / 1e6;
    Report {
        schema: "ragback.eval.report/1",
        judge_models: models,
        smoke_test_judge: smoke,
        prompt_sha256: hashes,
        bootstrap: BootstrapInfo {
            seed,
            rounds: bootstrap.rounds,
            cluster: "dialogue",
        },
        design: "offline replay: each window's last reply regenerated by both arms in contexts written with A answering (B is judged off-policy, one turn deep)",
        criteria,
        moderation,
        moderation_source,
        moderation_others,
        cost,
        decision,
        lost,
        unjudged,
        moderation_failures,
        flagged,
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The forest plot: each criterion's win rate and LC with their intervals on [0, 1].
fn forest(criteria: &[CriterionStats], policy: &Policy) -> String {
    let (width, row, left) = (640.0, 34.0, 140.0);
    let height = row * criteria.len() as f64 + 40.0;
    let x = |v: f64| left + v.clamp(0.0, 1.0) * (width - left - 20.0);
    let mut svg = format!(
        r#"<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="win rates">"#
    );
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = write!(
            svg,
            r##"<line x1="{0}" x2="{0}" y1="10" y2="{1}" stroke="#ddd"/><text x="{0}" y="{2}" font-size="11" text-anchor="middle">{tick}</text>"##,
            x(tick),
            height - 25.0,
            height - 10.0
        );
    }
    let _ = write!(
        svg,
        r##"<line x1="{0}" x2="{0}" y1="10" y2="{1}" stroke="#444" stroke-dasharray="4 3"/>"##,
        x(0.5),
        height - 25.0
    );
    let ni = 0.5 - policy.non_inferiority_margin;
    let _ = write!(
        svg,
        r##"<line x1="{0}" x2="{0}" y1="10" y2="{1}" stroke="#c77" stroke-dasharray="2 3"/>"##,
        x(ni),
        height - 25.0
    );
    for (i, c) in criteria.iter().enumerate() {
        let y = 25.0 + row * i as f64;
        let _ = write!(
            svg,
            r#"<text x="4" y="{}" font-size="13">{}</text>"#,
            y + 4.0,
            escape(&c.criterion)
        );
        if let Some(ci) = c.win_rate.ci {
            let _ = write!(
                svg,
                r##"<line x1="{}" x2="{}" y1="{y}" y2="{y}" stroke="#1f5fa8" stroke-width="3"/>"##,
                x(ci.low),
                x(ci.high)
            );
        }
        if c.win_rate.value.is_finite() {
            let _ = write!(
                svg,
                r##"<circle class="wr" cx="{}" cy="{y}" r="5" fill="#1f5fa8"/>"##,
                x(c.win_rate.value)
            );
        }
        if let Some(ci) = c.length_controlled.ci {
            let _ = write!(
                svg,
                r##"<line x1="{0}" x2="{2}" y1="{1}" y2="{1}" stroke="#e08a1e" stroke-width="2"/>"##,
                x(ci.low),
                y + 9.0,
                x(ci.high)
            );
        }
        if c.length_controlled.value.is_finite() {
            let _ = write!(
                svg,
                r##"<rect x="{}" y="{}" width="7" height="7" fill="#e08a1e"/>"##,
                x(c.length_controlled.value) - 3.5,
                y + 5.5
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Overlaid histograms of the two arms' reply lengths.
fn histogram(a: &[usize], b: &[usize]) -> String {
    let (width, height, bins) = (640.0, 160.0, 20usize);
    let max = a.iter().chain(b).copied().max().unwrap_or(1).max(1) as f64;
    let count = |values: &[usize]| {
        let mut counts = vec![0usize; bins];
        for &v in values {
            counts[((v as f64 / max) * (bins as f64 - 1.0)).round() as usize] += 1;
        }
        counts
    };
    let (ca, cb) = (count(a), count(b));
    let top = ca.iter().chain(&cb).copied().max().unwrap_or(1).max(1) as f64;
    let bar = (width - 40.0) / bins as f64;
    let mut svg = format!(
        r#"<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="reply lengths">"#
    );
    for (i, (na, nb)) in ca.iter().zip(&cb).enumerate() {
        let x0 = 20.0 + bar * i as f64;
        for (n, offset, colour) in [(na, 0.0, "#1f5fa8"), (nb, bar / 2.0, "#e08a1e")] {
            let h = *n as f64 / top * (height - 40.0);
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{colour}"/>"#,
                x0 + offset,
                height - 25.0 - h,
                bar / 2.0 - 1.0
            );
        }
    }
    let _ = write!(
        svg,
        r#"<text x="20" y="{}" font-size="11">0</text><text x="{}" y="{}" font-size="11" text-anchor="end">{max} characters</text></svg>"#,
        height - 8.0,
        width - 20.0,
        height - 8.0
    );
    svg
}

/// Per-tag rate bars of both arms with their Wilson intervals.
fn moderation_bars(moderation: &ModerationStats) -> String {
    let (width, row) = (640.0, 22.0);
    let height = row * Tag::ALL.len() as f64 * 2.0 + 30.0;
    let max = moderation
        .arms
        .iter()
        .flat_map(|(_, rates)| rates.iter().filter_map(|r| r.wilson.map(|w| w.high)))
        .fold(0.01f64, f64::max)
        * 1.25;
    let x = |v: f64| 130.0 + v / max * (width - 200.0);
    let mut svg = format!(
        r#"<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="moderation">"#
    );
    let mut y = 15.0;
    for (i, tag) in Tag::ALL.iter().enumerate() {
        for (arm, rates) in &moderation.arms {
            let Some(rate) = rates.iter().find(|r| r.tag == *tag) else {
                continue;
            };
            let colour = if *arm == Arm::A { "#1f5fa8" } else { "#e08a1e" };
            let label = if *arm == Arm::A {
                format!("{} A", tag.key())
            } else {
                "B".to_owned()
            };
            let _ = write!(
                svg,
                r#"<text x="4" y="{}" font-size="11">{}</text><rect x="130" y="{}" width="{:.1}" height="12" fill="{colour}"/>"#,
                y + 10.0,
                escape(&label),
                y,
                x(rate.rate) - 130.0
            );
            if let Some(w) = rate.wilson {
                let _ = write!(
                    svg,
                    r##"<line x1="{:.1}" x2="{:.1}" y1="{2}" y2="{2}" stroke="#333"/>"##,
                    x(w.low),
                    x(w.high),
                    y + 6.0
                );
            }
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" font-size="10">{}/{}</text>"#,
                x(rate.wilson.map_or(rate.rate, |w| w.high)) + 4.0,
                y + 10.0,
                rate.flagged,
                rate.n
            );
            y += row;
        }
        let _ = i;
    }
    let _ = write!(
        svg,
        r#"<text x="130" y="{}" font-size="10">0</text><text x="{:.1}" y="{}" font-size="10" text-anchor="end">{:.1} %</text>"#,
        height - 4.0,
        x(max),
        height - 4.0,
        100.0 * max
    );
    svg.push_str("</svg>");
    svg
}

fn fmt(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "—".into()
    }
}

fn html(report: &Report, policy: &Policy) -> String {
    let verdict = serde_json::to_value(report.decision.verdict)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let class = match report.decision.verdict {
        Verdict::Ship => "ship",
        Verdict::NoShip => "noship",
        Verdict::Invalid => "invalid",
        Verdict::Inconclusive => "inconclusive",
    };
    let mut h = String::new();
    h.push_str(r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'"><title>ragback evaluation</title><style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:980px;color:#222}h2{margin-top:28px;border-bottom:1px solid #ddd}
.banner{padding:14px 18px;border-radius:6px;font-size:18px}.ship{background:#d9f2dc}.noship{background:#f9d6d5}.invalid{background:#fbe3c2}.inconclusive{background:#e6e6ef}
table{border-collapse:collapse;margin:8px 0;font-size:12.5px}td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}
.warn{color:#a33}.reply{white-space:pre-wrap;background:#f7f7f7;padding:6px;border-radius:4px}.smoke{background:#fff3b0;padding:8px}.legend span{display:inline-block;width:10px;height:10px;margin:0 4px}
</style></head><body>"#);
    let _ = write!(h, "<h1>ragback evaluation</h1>");
    if report.smoke_test_judge {
        h.push_str(r#"<p class="smoke"><b>Smoke-test judge</b>: the local chat model judged; these verdicts test the pipeline, not the replies.</p>"#);
    }
    let _ = write!(
        h,
        r#"<div class="banner {class}" id="decision"><b>{}</b>{}<ul>"#,
        escape(&verdict),
        report
            .decision
            .rollout_share
            .map_or(String::new(), |s| format!(
                " to {:.0} % of users",
                100.0 * s
            ))
    );
    for reason in &report.decision.reasons {
        let _ = write!(h, "<li>{}</li>", escape(reason));
    }
    h.push_str("</ul></div>");
    let _ = write!(
        h,
        "<p>Judge: {} · prompts {} · bootstrap {} rounds over dialogues, seed {} · {}</p>",
        escape(&report.judge_models.join(", ")),
        escape(
            &report
                .prompt_sha256
                .iter()
                // By characters: a crafted row's hash may hold anything.
                .map(|s| s.chars().take(12).collect::<String>())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        report.bootstrap.rounds,
        report.bootstrap.seed,
        escape(report.design)
    );
    h.push_str(r#"<h2>Win rate of B per criterion</h2><p class="legend"><span style="background:#1f5fa8"></span>win rate (ties ½) with 95 % CI <span style="background:#e08a1e"></span>length-controlled; dashed: 0.5 and the non-inferiority line</p>"#);
    h.push_str(&forest(&report.criteria, policy));
    h.push_str(r#"<table><tr><th class="l">criterion</th><th>pairs</th><th>dialogues</th><th>win</th><th>tie</th><th>inconsistent</th><th>loss</th><th>identical</th><th>unjudged</th><th>win rate</th><th>95 % CI</th><th>p</th><th>LC</th><th>LC CI</th></tr>"#);
    for c in &report.criteria {
        let ci = |e: &ragback_application::evaluation::scoring::Estimate| {
            e.ci.map_or("—".into(), |ci| {
                format!("[{}, {}]", fmt(ci.low), fmt(ci.high))
            })
        };
        let k = &c.counts;
        let _ = write!(
            h,
            r#"<tr><td class="l">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{}</td><td>{}</td></tr>"#,
            escape(&c.criterion),
            c.n_pairs,
            c.n_dialogues,
            k.win,
            k.tie,
            k.inconsistent,
            k.loss,
            k.identical,
            k.unjudged,
            fmt(c.win_rate.value),
            ci(&c.win_rate),
            c.p_value,
            fmt(c.length_controlled.value),
            ci(&c.length_controlled)
        );
    }
    h.push_str("</table>");
    for c in &report.criteria {
        for w in &c.warnings {
            let _ = write!(
                h,
                r#"<p class="warn">{}: {}</p>"#,
                escape(&c.criterion),
                escape(w)
            );
        }
    }
    h.push_str(r#"<h2>By position in the dialogue</h2><table><tr><th class="l">criterion</th>"#);
    for b in Bucket::ALL {
        let _ = write!(h, "<th>{}</th>", b.as_str());
    }
    h.push_str("</tr>");
    for c in &report.criteria {
        let _ = write!(h, r#"<tr><td class="l">{}</td>"#, escape(&c.criterion));
        for b in Bucket::ALL {
            match c.segments.iter().find(|s| s.name == b.as_str()) {
                Some(s) => {
                    let colour = match s.win_rate.ci {
                        Some(ci) if ci.low > 0.5 => "#d9f2dc",
                        Some(ci) if ci.high < 0.5 => "#f9d6d5",
                        _ => "#fff",
                    };
                    let _ = write!(
                        h,
                        r#"<td style="background:{colour}">{} (n {})</td>"#,
                        fmt(s.win_rate.value),
                        s.n
                    );
                }
                None => h.push_str("<td>—</td>"),
            }
        }
        h.push_str("</tr>");
    }
    h.push_str(r#"</table><h2>Judge health</h2><table><tr><th class="l">criterion</th><th>swap-consistency</th><th>first-slot rate</th><th>refusals</th><th>unjudged</th><th>order-mean score</th><th>design effect</th><th>MDE</th><th>pairs for observed effect</th></tr>"#);
    let opt = |v: Option<f64>| v.map_or("—".into(), fmt);
    for c in &report.criteria {
        let _ = write!(
            h,
            r#"<tr><td class="l">{}</td><td>{}</td><td>{}</td><td>{:.1} %</td><td>{:.1} %</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            escape(&c.criterion),
            opt(c.swap_consistency),
            opt(c.first_slot_rate),
            100.0 * c.refusal_rate,
            100.0 * c.unjudged_rate,
            opt(c.order_mean_score),
            opt(c.design_effect),
            opt(c.minimum_detectable_effect),
            c.pairs_needed_for_observed
                .map_or("—".into(), |n| n.to_string())
        );
    }
    let _ = write!(
        h,
        "</table><p>{} judge calls, {} prompt and {} completion tokens, ${:.6}.</p>",
        report.cost.judge_calls,
        report.cost.prompt_tokens,
        report.cost.completion_tokens,
        report.cost.usd
    );
    if let Some(c) = report.criteria.first() {
        let l = &c.lengths;
        let _ = write!(
            h,
            r#"<h2>Reply lengths</h2><p class="legend"><span style="background:#1f5fa8"></span>A <span style="background:#e08a1e"></span>B — median characters {} vs {}, B longer in {:.0} % of pairs; win rate ({}) when B is longer {}, otherwise {}</p>"#,
            fmt(l.median_chars.0),
            fmt(l.median_chars.1),
            100.0 * l.b_longer_share,
            escape(&c.criterion),
            opt(l.win_rate_b_longer),
            opt(l.win_rate_b_not_longer)
        );
        h.push_str(&histogram(&l.chars_a, &l.chars_b));
    }
    if let Some(m) = &report.moderation {
        h.push_str(r#"<h2>Moderation floor</h2><p class="legend"><span style="background:#1f5fa8"></span>A <span style="background:#e08a1e"></span>B, rate with Wilson 95 % CI</p>"#);
        h.push_str(&moderation_bars(m));
        h.push_str(r#"<table><tr><th class="l">tag</th><th>B − A</th><th>95 % CI</th></tr>"#);
        for (tag, d) in &m.differences {
            let _ = write!(
                h,
                r#"<tr><td class="l">{}</td><td>{:+.2} pp</td><td>{}</td></tr>"#,
                tag.key(),
                100.0 * d.value,
                d.ci.map_or("—".into(), |ci| format!(
                    "[{:+.2}, {:+.2}] pp",
                    100.0 * ci.low,
                    100.0 * ci.high
                ))
            );
        }
        h.push_str("</table>");
        for other in &report.moderation_others {
            let _ = write!(
                h,
                "<h3>{} (beside the {}; it sees the message without the story, so fiction over-flags)</h3>",
                escape(&other.adapter),
                escape(report.moderation_source.as_deref().unwrap_or("judge"))
            );
            h.push_str(&moderation_bars(&other.stats));
            h.push_str(r#"<table><tr><th class="l">tag</th><th>Cohen's κ with the deciding source</th></tr>"#);
            for (tag, k) in &other.kappa {
                let _ = write!(
                    h,
                    r#"<tr><td class="l">{}</td><td>{}</td></tr>"#,
                    tag.key(),
                    k.map_or("—".into(), fmt)
                );
            }
            h.push_str("</table>");
        }
        for f in &report.flagged {
            let _ = write!(
                h,
                r#"<p><b>{} · {}</b> — {} — “{}”</p><div class="reply">{}</div>"#,
                escape(&f.window),
                escape(&f.arm),
                escape(
                    &f.tags
                        .iter()
                        .map(|t| t.key())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                escape(&f.evidence),
                escape(&f.text)
            );
        }
    }
    let failures: Vec<&Unjudged> = report
        .unjudged
        .iter()
        .chain(&report.moderation_failures)
        .collect();
    if !failures.is_empty() {
        let _ = write!(
            h,
            "<h2>Without a verdict ({})</h2><table><tr><th class=\"l\">criterion</th><th class=\"l\">pair</th><th class=\"l\">what the judge did</th></tr>",
            failures.len()
        );
        for f in failures.iter().take(200) {
            let _ = write!(
                h,
                r#"<tr><td class="l">{}</td><td class="l">{}</td><td class="l">{}</td></tr>"#,
                escape(&f.criterion),
                escape(&f.pair),
                escape(&f.statuses.join(" · "))
            );
        }
        h.push_str("</table>");
    }
    let _ = write!(
        h,
        "<h2>Pairs B lost in both orders ({})</h2>",
        report.lost.len()
    );
    for lost in report.lost.iter().take(50) {
        let _ = write!(
            h,
            "<h3>{} · {}</h3>",
            escape(&lost.pair),
            escape(&lost.criterion)
        );
        if let Some(context) = lost.context_tail.as_array() {
            for m in context {
                let _ = write!(
                    h,
                    "<p><i>{}:</i> {}</p>",
                    escape(m["speaker"].as_str().unwrap_or_default()),
                    escape(m["text"].as_str().unwrap_or_default())
                );
            }
        }
        let _ = write!(
            h,
            r#"<p>A:</p><div class="reply">{}</div><p>B:</p><div class="reply">{}</div>"#,
            escape(&lost.text_a),
            escape(&lost.text_b)
        );
        for reason in &lost.reasons {
            let _ = write!(h, "<p class=\"warn\">judge: {}</p>", escape(reason));
        }
    }
    h.push_str("</body></html>\n");
    h
}

/// `ragback eval power`: pairs, windows, dialogues and judge calls needed for an effect.
#[derive(Debug, Args)]
pub struct PowerArgs {
    /// The effect: win rate 0.5 + delta.
    #[arg(long, default_value_t = 0.05)]
    delta: f64,
    /// Share of ties.
    #[arg(long, default_value_t = 0.3)]
    tie_rate: f64,
    /// Significance level (two-sided).
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// Power.
    #[arg(long, default_value_t = 0.8)]
    power: f64,
    /// Windows per dialogue.
    #[arg(long, default_value_t = 4.0)]
    windows_per_dialogue: f64,
    /// Intra-dialogue correlation.
    #[arg(long, default_value_t = 0.3)]
    icc: f64,
    /// Criteria judged (calls = windows × criteria × 2 orders).
    #[arg(long, default_value_t = 3)]
    criteria: u64,
}

/// Runs `ragback eval power`.
pub fn power(args: PowerArgs) -> anyhow::Result<()> {
    let answer = pairs_needed(PowerQuestion {
        delta: args.delta,
        tie_rate: args.tie_rate,
        alpha: args.alpha,
        power: args.power,
        windows_per_dialogue: args.windows_per_dialogue,
        icc: args.icc,
    })
    .context("--delta must be in (0, 0.5)")?;
    println!(
        "{} independent pairs; design effect {:.2} -> {} windows ≈ {} dialogues ≈ {} judge calls ({} criteria × 2 orders)",
        answer.pairs,
        answer.design_effect,
        answer.windows,
        answer.dialogues,
        answer.windows * args.criteria * 2,
        args.criteria
    );
    Ok(())
}
