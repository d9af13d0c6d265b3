//! `ragback eval report`, `ragback eval agree` and `ragback eval power`: pure computation over the
//! journals, into
//! `report.json` ([`build`]) and one self-contained `report.html` ([`html`]: a template with
//! autoescaping, inline CSS and SVG, no script, no external URL).

mod build;
mod calibration;
mod health;
mod html;
mod html_extra;
mod svg;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ragback_application::evaluation::policy::Policy;
use ragback_application::evaluation::stats::{Bootstrap, PowerQuestion, pairs_needed};

use self::build::build;
use self::html::html;
use super::journal::{read_journal, write_atomically};
use super::rows::{Judgment, Tagging};

/// `ragback eval report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Pairwise journals (repeatable): replies (`--unit reply`), simulated conversations
    /// (`--unit dialogue`) and the A/A checks (`--aa`) — each part goes to its section.
    #[arg(long, required = true)]
    judgments: Vec<PathBuf>,
    /// Human verdicts on the same pairs (JSONL `{"window_id" | "dialogue_id", "criterion",
    /// "verdict"}`): the judge's agreement with people, and INVALID below the policy's κ.
    #[arg(long)]
    human: Option<PathBuf>,
    /// The simulated conversations (`simulate`'s `dialogues.jsonl`): the simulator's health.
    #[arg(long)]
    simulated: Option<PathBuf>,
    /// `period`: segments by the dialogues' source period, and B must win in each.
    #[arg(long, value_parser = ["period"])]
    strata: Option<String>,
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
    let mut rows = std::collections::HashMap::new();
    for path in &args.judgments {
        for (key, row) in read_journal::<Judgment>(path)?.1 {
            // Keys are unique within a journal; across journals the unit and the A/A flag keep
            // them apart.
            rows.insert(format!("{:?}|{}|{key}", row.unit, row.aa), row);
        }
    }
    let options = build::Options {
        strata_period: args.strata.is_some(),
        human: args
            .human
            .as_deref()
            .map(calibration::read_labels)
            .transpose()?,
        health: args
            .simulated
            .as_deref()
            .map(health::read_health)
            .transpose()?,
    };
    let mut moderation: Vec<Tagging> = Vec::new();
    for path in &args.moderation {
        moderation.extend(read_journal::<Tagging>(path)?.1.into_values());
    }
    let report = build(
        &rows,
        (!args.moderation.is_empty()).then_some(moderation),
        &policy,
        bootstrap,
        args.seed,
        &options,
    )?;
    let json = serde_json::to_string_pretty(&report)? + "\n";
    write_atomically(&args.json, json.as_bytes())
        .with_context(|| format!("cannot write {}", args.json.display()))?;
    write_atomically(&args.html, html(&report, &policy)?.as_bytes())
        .with_context(|| format!("cannot write {}", args.html.display()))?;
    let verdict = serde_json::to_value(report.decision.verdict)?;
    eprintln!("decision: {}", verdict.as_str().unwrap_or_default());
    for reason in &report.decision.reasons {
        eprintln!("  - {reason}");
    }
    eprintln!("-> {} and {}", args.html.display(), args.json.display());
    Ok(())
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
    /// `reply` (windows clustered in dialogues) or `dialogue` (one pair per seed conversation,
    /// simulated: no clustering, and the simulation's own calls).
    #[arg(long, default_value = "reply", value_parser = ["reply", "dialogue"])]
    unit: String,
    /// With `--unit dialogue`: replies per simulated conversation (`simulate --turns`).
    #[arg(long, default_value_t = 8)]
    turns: u64,
    /// With `--unit dialogue`: arms simulated.
    #[arg(long, default_value_t = 2)]
    arms: u64,
}

/// Runs `ragback eval power`.
pub fn power(args: PowerArgs) -> anyhow::Result<()> {
    let dialogue = args.unit == "dialogue";
    let answer = pairs_needed(PowerQuestion {
        delta: args.delta,
        tie_rate: args.tie_rate,
        alpha: args.alpha,
        power: args.power,
        // A seed conversation is one pair: nothing to cluster.
        windows_per_dialogue: if dialogue {
            1.0
        } else {
            args.windows_per_dialogue
        },
        icc: if dialogue { 0.0 } else { args.icc },
    })
    .context("--delta must be in (0, 0.5)")?;
    if dialogue {
        let conversations = answer.pairs * args.arms;
        println!(
            "{} seed conversations (one pair each) ≈ {} judge calls ({} criteria × 2 orders); \
             simulating them: {conversations} conversations of {} replies ≈ {} simulator calls \
             and {} calls to /generate",
            answer.pairs,
            answer.pairs * args.criteria * 2,
            args.criteria,
            args.turns,
            conversations * args.turns,
            conversations * args.turns
        );
        return Ok(());
    }
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

/// `ragback eval agree`: the judge's verdicts against people's on the same pairs.
#[derive(Debug, Args)]
pub struct AgreeArgs {
    /// Human verdicts: JSONL `{"window_id" | "dialogue_id", "criterion", "verdict": "A" | "B" |
    /// "tie"}` (`window_id` for replies, `dialogue_id` for a seed conversation's simulated pair).
    #[arg(long)]
    human: PathBuf,
    /// Pairwise journals (repeatable).
    #[arg(long, required = true)]
    judgments: Vec<PathBuf>,
    /// Bootstrap seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Bootstrap rounds.
    #[arg(long, default_value_t = 2000)]
    bootstrap: u32,
    /// Also write the numbers here (JSON).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Runs `ragback eval agree`.
pub fn agree(args: AgreeArgs) -> anyhow::Result<()> {
    let labels = calibration::read_labels(&args.human)?;
    let bootstrap = Bootstrap {
        rounds: args.bootstrap.max(1),
        seed: args.seed,
    };
    let mut sets: std::collections::BTreeMap<_, Vec<Judgment>> = Default::default();
    for path in &args.judgments {
        for row in read_journal::<Judgment>(path)?.1.into_values() {
            sets.entry((row.unit, row.aa))
                .or_insert_with(Vec::new)
                .push(row);
        }
    }
    let parts = sets
        .iter()
        .map(|(set, rows)| {
            let rows: Vec<&Judgment> = rows.iter().collect();
            (*set, build::study(&rows, bootstrap, false))
        })
        .collect();
    let (checks, unmatched) = calibration::human_checks(&labels, &parts, bootstrap);
    if checks.is_empty() {
        anyhow::bail!("no human label matches a judged pair ({unmatched} labels)");
    }
    for check in &checks {
        let unit = serde_json::to_value(check.unit)?;
        println!(
            "{} {}: {}; without ties {} of {} pairs",
            unit.as_str().unwrap_or_default(),
            check.criterion,
            check.summary,
            check
                .agreement
                .agreement_without_ties
                .map_or("—".into(), |a| format!("{:.0} %", 100.0 * a)),
            check.agreement.n_without_ties
        );
    }
    if unmatched > 0 {
        eprintln!("{unmatched} labels match no judged pair (another id, or no verdict)");
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&serde_json::json!({
            "checks": checks, "unmatched": unmatched,
        }))? + "\n";
        write_atomically(path, json.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
