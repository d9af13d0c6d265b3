//! `ragback eval variants`: the logged dialogues of a rollout grouped by the variant that wrote
//! each reply, with dialogue-clustered 95 % intervals and each variant's difference from the
//! baseline. For the moderation floor of real B dialogues, cut windows of B's replies
//! (`eval windows --logged-variant b`), replay them as `logged` and `eval moderate` them.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ragback_application::evaluation::stats::Bootstrap;
use ragback_application::evaluation::variants::{Estimate, LoggedDialogue, summarise};
use serde_json::json;

use super::dialogues::read_dialogues;

/// `ragback eval variants`.
#[derive(Debug, Args)]
pub struct VariantsArgs {
    /// The dialogue log; character messages carry the `variant` `/generate` returned.
    #[arg(long)]
    dialogues: PathBuf,
    /// The variant the others are compared with (the one most users have).
    #[arg(long, default_value = "default")]
    baseline: String,
    /// Where to write the summary as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Bootstrap rounds.
    #[arg(long, default_value_t = 2000)]
    rounds: u32,
    /// Bootstrap seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Runs `ragback eval variants`.
pub fn run(args: VariantsArgs) -> anyhow::Result<()> {
    let logged: Vec<LoggedDialogue> = read_dialogues(&args.dialogues)?
        .into_iter()
        .map(|d| LoggedDialogue {
            user: d.user["id"]
                .as_str()
                .or(d.user["name"].as_str())
                .unwrap_or_default()
                .to_owned(),
            user_messages: d.messages.iter().filter(|m| m.role == "user").count(),
            replies: d
                .messages
                .iter()
                .filter(|m| m.role == "character")
                .map(|m| (m.variant.clone(), m.text.clone()))
                .collect(),
            id: d.id,
        })
        .collect();
    let bootstrap = Bootstrap {
        rounds: args.rounds,
        seed: args.seed,
    };
    let summaries = summarise(&logged, &args.baseline, &bootstrap);
    if !summaries.iter().any(|s| s.variant == args.baseline) {
        eprintln!(
            "warning: no reply of the baseline `{}` in {}: nothing to compare with",
            args.baseline,
            args.dialogues.display()
        );
    }
    let row = |cells: [&str; 7]| {
        let line = format!(
            "{:<16} {:>9} {:>6} {:>8}  {:<22} {:<16} {}",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6]
        );
        println!("{}", line.trim_end());
    };
    row([
        "variant",
        "dialogues",
        "users",
        "replies",
        "user msgs/dialogue",
        "chars/reply",
        "one *action*",
    ]);
    for s in &summaries {
        row([
            &s.variant,
            &s.dialogues.to_string(),
            &s.users.to_string(),
            &s.replies.to_string(),
            &show(&s.user_messages_per_dialogue, 1),
            &show(&s.reply_chars, 0),
            &show(&s.one_action_rate, 3),
        ]);
        if let Some(d) = &s.versus_baseline {
            row([
                &format!("  − {}", args.baseline),
                "",
                "",
                "",
                &show(&d.user_messages_per_dialogue, 1),
                &show(&d.reply_chars, 0),
                &show(&d.one_action_rate, 3),
            ]);
        }
    }
    if let Some(out) = &args.out {
        let report = json!({
            "dialogues": args.dialogues, "baseline": args.baseline,
            "bootstrap": {"rounds": args.rounds, "seed": args.seed},
            "variants": summaries,
        });
        super::journal::write_atomically(out, serde_json::to_string_pretty(&report)?.as_bytes())
            .with_context(|| format!("cannot write {}", out.display()))?;
        eprintln!("-> {}", out.display());
    }
    Ok(())
}

/// `6.0 [4.7, 7.3]`.
fn show(estimate: &Estimate, decimals: usize) -> String {
    match estimate.ci {
        Some(ci) if estimate.value.is_finite() => format!(
            "{:.decimals$} [{:.decimals$}, {:.decimals$}]",
            estimate.value, ci.low, ci.high
        ),
        _ if estimate.value.is_finite() => format!("{:.decimals$}", estimate.value),
        _ => "–".to_owned(),
    }
}
