//! `ragback eval report` and `ragback eval power`: pure computation over the journals, into
//! `report.json` ([`build`]) and one self-contained `report.html` ([`html`]: a template with
//! autoescaping, inline CSS and SVG, no script, no external URL).

mod build;
mod html;
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
    let (_, rows) = read_journal::<Judgment>(&args.judgments)?;
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
    );
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
