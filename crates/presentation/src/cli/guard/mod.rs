//! `ragback guard`: `check` runs the reply guard over a file of texts, one verdict per line;
//! `train` fits the guard's classifier on labelled texts (a hand-labelled JSONL file, or
//! `ragback eval moderate`'s journal: the judge's tags); `eval` measures the rules, the
//! classifier and both on labelled texts.

mod training;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use ragback_application::ports::{GuardInput, GuardTag, Speaker};
use ragback_infrastructure::{Settings, build_embedder, build_guard};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// `ragback guard …`.
#[derive(Debug, Subcommand)]
pub enum GuardCommand {
    /// Check every text of a JSONL file (`{"text", "role"?: "user" | "character"}`) and write
    /// one JSON line per text: its tags, each with its score and flag.
    Check(CheckArgs),
    /// Train the guard's classifier on labelled texts and write it.
    Train(training::TrainArgs),
    /// Precision, recall and F1 per tag of the rules, the classifier and both, on labelled texts.
    Eval(training::EvalArgs),
}

/// `ragback guard check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The texts, one JSON object per line (`-`: standard input).
    file: PathBuf,
    /// Where the verdicts go (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The user's name, for `user_voice` (a reply must not speak for them).
    #[arg(long, default_value = "John")]
    user_name: String,
    /// The character's name.
    #[arg(long, default_value = "Blaze")]
    character_name: String,
}

/// One text to check.
#[derive(Debug, Deserialize)]
struct Line {
    text: String,
    /// `character` (a reply, the default) or `user` (a user's message: crisis only).
    #[serde(default)]
    role: Option<String>,
    /// The user's age: under 18, the stricter checks.
    #[serde(default)]
    age: Option<u16>,
    /// Echoed back.
    #[serde(default)]
    id: Option<Value>,
}

/// Runs `ragback guard`.
pub async fn run(command: GuardCommand, settings: &Settings) -> anyhow::Result<()> {
    match command {
        GuardCommand::Check(args) => check(args, settings).await,
        GuardCommand::Train(args) => training::train(args, settings).await,
        GuardCommand::Eval(args) => training::eval(args, settings).await,
    }
}

async fn check(args: CheckArgs, settings: &Settings) -> anyhow::Result<()> {
    let guard = build_guard(settings, build_embedder(settings)?)?;
    let reader: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        Box::new(BufReader::new(file))
    };
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let (mut checked, mut flagged) = (0usize, 0usize);
    for (number, line) in reader.lines().enumerate() {
        let line =
            line.with_context(|| format!("{}:{}: cannot read", args.file.display(), number + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let input: Line = serde_json::from_str(&line).with_context(|| {
            format!(
                "{}:{}: not a JSON object with a `text`",
                args.file.display(),
                number + 1
            )
        })?;
        let speaker = match input.role.as_deref() {
            None | Some("character" | "assistant") => Speaker::Character,
            Some("user") => Speaker::User,
            Some(other) => anyhow::bail!(
                "{}:{}: role `{other}`: user or character",
                args.file.display(),
                number + 1
            ),
        };
        let review = guard
            .review(&GuardInput {
                text: &input.text,
                speaker,
                user_name: &args.user_name,
                character_name: &args.character_name,
                minor: input.age.is_some_and(|age| age < 18),
                replying_to: None,
            })
            .await;
        let tags: Map<String, Value> = GuardTag::ALL
            .iter()
            .map(|tag| {
                let score = review.scores.get(tag).copied().unwrap_or(0.0);
                let raised = review.tags.contains(tag);
                (
                    tag.key().to_owned(),
                    json!({"score": score, "flagged": raised}),
                )
            })
            .collect();
        let verdict = json!({
            "line": number + 1,
            "id": input.id,
            "role": if speaker == Speaker::User { "user" } else { "character" },
            "flagged": !review.tags.is_empty(),
            "flags": review.tags.iter().map(|t| t.key()).collect::<Vec<_>>(),
            "tags": tags,
            "unchecked": review.failed.map(|e| e.to_string()),
        });
        writeln!(out, "{verdict}")?;
        checked += 1;
        flagged += usize::from(!review.tags.is_empty());
    }
    out.flush()?;
    eprintln!("{checked} texts checked, {flagged} flagged");
    Ok(())
}
