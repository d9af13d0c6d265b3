//! `ragback eval memory`: memory extraction on labelled dialogues, in a throw-away store.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use ragback_application::evaluation::memory::{ExpectedChange, MemoryOutcome, MemoryReport, score};
use ragback_application::facts::stamped;
use ragback_application::memory::{Action, ExtractRequest};
use ragback_domain::{CharacterId, Fact, FactOwner, FactSource, FactText, Message, UserId};
use ragback_infrastructure::{Settings, StoreKind, build_services};
use serde::Deserialize;

/// `ragback eval memory`.
#[derive(Debug, Args)]
pub struct MemoryArgs {
    /// JSON lines: {"id", "user_id", "stored": […], "messages": […], "expected": […]}.
    #[arg(long, default_value = "data/memory_eval.jsonl")]
    dialogues: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// One labelled dialogue.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DialogueLine {
    id: String,
    user_id: String,
    #[serde(default)]
    character_id: Option<String>,
    /// The user's facts before the dialogue.
    #[serde(default)]
    stored: Vec<String>,
    messages: Vec<super::MessageLine>,
    /// What the dialogue should do: `{"action": "add" | "update" | "delete", "text"?, "target"?}`.
    expected: Vec<ExpectedLine>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedLine {
    action: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    target: Option<String>,
}

/// A dialogue ready to run.
struct Case {
    id: String,
    user: UserId,
    character: Option<CharacterId>,
    stored: Vec<Fact>,
    messages: Vec<Message>,
    expected: Vec<ExpectedChange>,
}

fn read_cases(path: &std::path::Path) -> anyhow::Result<Vec<Case>> {
    let content =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut cases = Vec::new();
    for (n, line) in content.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), n + 1);
        let parsed: DialogueLine = serde_json::from_str(line).with_context(at)?;
        let user =
            UserId::parse(parsed.user_id.as_str()).with_context(|| format!("{}: user_id", at()))?;
        let character = parsed
            .character_id
            .map(|c| CharacterId::parse(c).with_context(|| format!("{}: character_id", at())))
            .transpose()?;
        let owner = FactOwner::User(user.clone());
        let stored = parsed
            .stored
            .iter()
            .map(|t| FactText::parse(t.as_str()).map(|text| Fact::new(owner.clone(), text)))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{}: stored", at()))?;
        let messages = super::messages_of(&parsed.messages, &at(), "messages")?;
        let mut expected = Vec::new();
        for (i, e) in parsed.expected.into_iter().enumerate() {
            let action = match e.action.as_str() {
                "add" => Action::Add,
                "update" => Action::Update,
                "delete" => Action::Delete,
                other => bail!(
                    "{}: expected[{i}] has the action {other:?} (add, update or delete)",
                    at()
                ),
            };
            let needs_text = action != Action::Delete;
            let needs_target = action != Action::Add;
            if needs_text != e.text.is_some() || needs_target != e.target.is_some() {
                bail!(
                    "{}: expected[{i}]: add takes `text`, update `text` and `target`, delete `target`",
                    at()
                );
            }
            if let Some(target) = &e.target
                && !parsed.stored.contains(target)
            {
                bail!("{}: expected[{i}]: {target:?} is not in `stored`", at());
            }
            expected.push(ExpectedChange {
                action,
                text: e.text,
                target: e.target,
            });
        }
        cases.push(Case {
            id: parsed.id,
            user,
            character,
            stored,
            messages,
            expected,
        });
    }
    if cases.is_empty() {
        bail!("{} has no dialogues", path.display());
    }
    Ok(cases)
}

/// Runs `ragback eval memory`.
pub async fn run(args: MemoryArgs, settings: &Settings) -> anyhow::Result<()> {
    let cases = read_cases(&args.dialogues)?;
    let scratch = tempfile::tempdir().context("cannot create a scratch directory for the store")?;
    let mut settings = settings.clone();
    settings.store.kind = StoreKind::Edge;
    settings.store.path = scratch.path().join("store");
    let services = build_services(&settings)?;
    let model = services.memory.describe();
    eprintln!("running {} dialogues with {model}…", cases.len());
    let mut outcomes = Vec::new();
    for case in cases {
        services
            .facts
            .add(stamped(case.stored, FactSource::Seeded), |_| {})
            .await
            .with_context(|| format!("{}: seeding its stored facts failed", case.id))?;
        let extracted = services
            .memory
            .extract(ExtractRequest {
                user: case.user,
                character: case.character,
                messages: case.messages,
                request_id: case.id.clone(),
                dry_run: false,
            })
            .await;
        let decisions = match extracted {
            Ok(extraction) => Some(extraction.decisions),
            Err(error) => {
                eprintln!("{}: extraction failed: {error}", case.id);
                None
            }
        };
        if let Some(decisions) = &decisions {
            for d in decisions {
                let target = d
                    .target
                    .as_ref()
                    .map_or(String::new(), |t| format!(" ({})", t.text.as_str()));
                eprintln!(
                    "{}: {} {:?}{target} — {}",
                    case.id,
                    d.action.as_str(),
                    d.text,
                    d.reason
                );
            }
        }
        outcomes.push(MemoryOutcome {
            expected: case.expected,
            decisions,
        });
    }
    let report = score(&outcomes);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json(&report, &model))?);
    } else {
        print!("{}", table(&report, &model));
    }
    Ok(())
}

fn json(report: &MemoryReport, model: &str) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "dialogues": report.dialogues,
        "failed": report.failed,
        "precision": report.precision,
        "recall": report.recall,
        "decision_accuracy": report.decision_accuracy,
        "false_memory_rate": report.false_memory_rate,
        "stored": report.stored,
        "expected": report.expected,
    })
}

fn table(report: &MemoryReport, model: &str) -> String {
    let or_none = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
    format!(
        "{} dialogues, model {model}, {} failed\n\
         precision {:.3} ({} facts stored)   recall {:.3} ({} expected)\n\
         update/delete decisions right {}   invented memories {}\n",
        report.dialogues,
        report.failed,
        report.precision,
        report.stored,
        report.recall,
        report.expected,
        or_none(report.decision_accuracy),
        or_none(report.false_memory_rate),
    )
}
