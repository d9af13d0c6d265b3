//! `ragback eval`: retrieval quality, and the comparison of a candidate model or prompt (arm B)
//! with the current one (arm A) — `import` → `windows` → `replay` (or `simulate`) → `pairwise` /
//! `moderate` → `report`, `agree` to calibrate the judge against people, and `power` for planning. Every stage writes append-only JSONL and resumes.

mod calls;
mod dialogues;
mod generate;
mod journal;
mod judge;
mod memory;
mod replay;
mod report;
mod retrieval;
mod rows;
mod simulate;
mod variants;

use clap::Subcommand;
use ragback_infrastructure::Settings;

pub use calls::BudgetReached;
pub(crate) use journal::write_atomically;

/// Evaluation commands.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Seeds a throw-away store with a facts file, runs labelled queries and reports recall@k,
    /// MRR and a threshold sweep with the recommended threshold.
    Retrieval(retrieval::RetrievalArgs),
    /// Runs memory extraction on labelled dialogues in a throw-away store and reports the
    /// precision and recall of the facts stored and the accuracy of updates and deletes.
    Memory(memory::MemoryArgs),
    /// Wraps a chat saved by `ragback chat` (`/save`) into one line of a dialogue log.
    Import(dialogues::ImportArgs),
    /// Cuts dialogues into replay windows and samples them (seeded, capped per dialogue).
    Windows(dialogues::WindowsArgs),
    /// Regenerates each window's last reply for each arm (resumable).
    Replay(replay::ReplayArgs),
    /// Lets each arm talk its own way through conversations with a simulated user, from the
    /// same seed conversations (resumable); writes them as a dialogue log labelled by arm.
    Simulate(simulate::SimulateArgs),
    /// Judges A against B per criterion, in both orders (resumable).
    Pairwise(judge::PairwiseArgs),
    /// Tags every reply for what must never happen (resumable).
    Moderate(judge::ModerateArgs),
    /// Computes the statistics and the ship decision: report.json and report.html.
    Report(report::ReportArgs),
    /// The judge's verdicts against human labels on the same pairs: agreement and Cohen's κ
    /// per criterion, with intervals.
    Agree(report::AgreeArgs),
    /// Pairs and judge calls needed to detect an effect.
    Power(report::PowerArgs),
    /// Groups logged dialogues by the variant that wrote each reply and compares each variant
    /// with the baseline, with 95 % intervals (the online half of a rollout).
    Variants(variants::VariantsArgs),
}

/// Runs an evaluation command.
pub async fn run(command: EvalCommand, settings: &Settings) -> anyhow::Result<()> {
    match command {
        EvalCommand::Retrieval(args) => retrieval::run(args, settings).await,
        EvalCommand::Memory(args) => memory::run(args, settings).await,
        EvalCommand::Import(args) => dialogues::import(args),
        EvalCommand::Windows(args) => dialogues::windows(args),
        EvalCommand::Replay(args) => replay::run(args, settings).await,
        EvalCommand::Simulate(args) => simulate::run(args, settings).await,
        EvalCommand::Pairwise(args) => judge::pairwise(args, settings).await,
        EvalCommand::Moderate(args) => judge::moderate(args, settings).await,
        EvalCommand::Report(args) => report::run(args),
        EvalCommand::Agree(args) => report::agree(args),
        EvalCommand::Power(args) => report::power(args),
        EvalCommand::Variants(args) => variants::run(args),
    }
}

/// A chat message as labelled files write it: `{"role": "user" | "character", "text"}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageLine {
    role: String,
    text: String,
}

/// The messages of a labelled line; errors name `at` (file and line) and `field`.
fn messages_of(
    lines: &[MessageLine],
    at: &str,
    field: &str,
) -> anyhow::Result<Vec<ragback_domain::Message>> {
    use anyhow::Context as _;
    use ragback_domain::{Message, MessageText, Role};
    lines
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let role = match m.role.as_str() {
                "user" => Role::User,
                "character" => Role::Character,
                other => {
                    anyhow::bail!("{at}: {field}[{i}] has the role {other:?} (user or character)")
                }
            };
            let text = MessageText::parse(m.text.as_str())
                .with_context(|| format!("{at}: {field}[{i}]"))?;
            Ok(Message::new(role, text))
        })
        .collect()
}
