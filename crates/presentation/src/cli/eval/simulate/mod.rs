//! `ragback eval simulate`: each arm talks its own way through a conversation. From each seed
//! conversation (its first K messages), a user simulator writes the user's next message and the
//! arm answers through `/generate`, for N replies or until the simulator ends the chat. Every
//! turn is journaled (`DIR/journal.jsonl`) and a rerun resumes it; the conversations are written
//! as a dialogue log labelled by arm (`DIR/dialogues.jsonl`), with a window and a reply row per
//! simulated reply (`DIR/windows.jsonl`, `DIR/replies.jsonl`), so that `windows`, `moderate`,
//! `pairwise --unit dialogue` and `report` read them unchanged.

mod outputs;
mod simulator;

pub(super) use self::outputs::Simulation;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use ragback_application::evaluation::simulation::{SimulatedTurn, read_turn, simulator_seed};
use ragback_infrastructure::Settings;
use serde_json::{Value, json};

use self::simulator::Simulator;
use super::calls::{Budget, BudgetReached, CallArgs, Prices, Retries, stop_on_ctrl_c, tally};
use super::dialogues::{ContextMessage, Dialogue, read_dialogues};
use super::generate::{Arm, Caller, Source, generate, http_client, local_router, parse_arm};
use super::journal::{Journal, read_journal};
use super::replay::{fill_reply, request_body};
use super::rows::{Reply, Status, Turn};

/// `ragback eval simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The seed conversations: a dialogue log (`user`, `character`, `scenario` as `/generate`
    /// takes them; a `persona` object with `description` and `facts` tells the simulator more
    /// about the user).
    #[arg(long)]
    dialogues: PathBuf,
    /// The output directory: `journal.jsonl` (resumed), `dialogues.jsonl`, `windows.jsonl`,
    /// `replies.jsonl`.
    #[arg(long)]
    out: PathBuf,
    /// An arm, as `replay` takes it: `NAME=server:URL[,…]` or `NAME=local[,…]` (repeatable).
    #[arg(long = "arm", required = true)]
    arms: Vec<String>,
    /// Messages of each seed conversation both arms start from (K).
    #[arg(long, default_value_t = 2)]
    seed_messages: usize,
    /// Replies of the arm per conversation (N), unless the simulator ends the chat first.
    #[arg(long, default_value_t = 8)]
    turns: usize,
    /// Conversations per seed and arm; sample `k > 0` meets another draw of the simulator and
    /// asks the arm with its seed moved on by `k` (two make the A/A check of
    /// `pairwise --unit dialogue --aa` possible).
    #[arg(long, default_value_t = 1)]
    samples: u32,
    /// Seed of the simulator's sampling: turn `t` of sample `k` of a seed conversation gets the
    /// same seed in every arm.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use only the first seed conversations of the log.
    #[arg(long)]
    max_dialogues: Option<usize>,
    /// Facts: `live` (retrieved now) or `none`.
    #[arg(long, default_value = "live")]
    facts: String,
    /// Directory of the simulator's templates.
    #[arg(long, default_value = "prompts/eval")]
    prompts: PathBuf,
    /// The simulator's model (default: RAGBACK_EVAL__SIMULATOR__MODEL).
    #[arg(long)]
    simulator_model: Option<String>,
    #[command(flatten)]
    calls: CallArgs,
    /// Deadline of one `/generate`, ms.
    #[arg(long, default_value_t = 60_000)]
    timeout_ms: u64,
    /// Print the calls to make, call nothing.
    #[arg(long)]
    dry_run: bool,
}

/// One conversation to grow: a seed, an arm, a sample.
struct Job<'a> {
    seed: &'a Dialogue,
    arm: &'a Arm,
    sample: u32,
}

impl Job<'_> {
    fn key(&self, index: usize) -> String {
        turn_key(&self.seed.id, &self.arm.name, self.sample, index)
    }
}

fn turn_key(seed: &str, arm: &str, sample: u32, index: usize) -> String {
    format!("{seed}|{arm}|{sample}|{index}")
}

/// What every conversation shares.
struct Shared<'a> {
    simulator: Simulator,
    journal: Arc<Journal<Turn>>,
    budget: Budget,
    retries: Retries,
    prices: Prices,
    caller: Caller<'a>,
    facts: bool,
    turns: usize,
    seed_messages: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
}

/// Runs `ragback eval simulate`.
pub async fn run(args: SimulateArgs, settings: &Settings) -> anyhow::Result<()> {
    let arms: Vec<Arm> = args
        .arms
        .iter()
        .map(|a| parse_arm(a))
        .collect::<anyhow::Result<_>>()?;
    if arms.iter().any(|a| a.source == Source::Logged) {
        bail!("--arm: a simulated conversation needs an arm that answers (server or local)");
    }
    if !matches!(args.facts.as_str(), "live" | "none") {
        bail!("--facts is live or none");
    }
    if args.samples == 0 || args.turns == 0 {
        bail!("--samples and --turns are at least 1");
    }
    let mut seeds = read_dialogues(&args.dialogues)?;
    seeds.truncate(args.max_dialogues.unwrap_or(usize::MAX));
    for seed in &seeds {
        if seed.id.contains('~') {
            bail!(
                "{}: the seed id {:?} holds `~`, which names simulated conversations",
                args.dialogues.display(),
                seed.id
            );
        }
    }
    let jobs: Vec<Job<'_>> = seeds
        .iter()
        .flat_map(|seed| arms.iter().map(move |arm| (seed, arm)))
        .flat_map(|(seed, arm)| (0..args.samples).map(move |sample| Job { seed, arm, sample }))
        .collect();
    if args.dry_run {
        println!(
            "{} conversations ({} seeds × {} arms × {} samples): at most {} simulator calls and {} calls to /generate",
            jobs.len(),
            seeds.len(),
            arms.len(),
            args.samples,
            jobs.len() * args.turns,
            jobs.len() * args.turns
        );
        return Ok(());
    }
    let prices = Prices::parse(&args.calls.prices)?;
    let simulator = Simulator::new(
        settings,
        &args.prompts,
        args.simulator_model.as_deref(),
        prices.clone(),
    )?;
    let config = json!({
        "dialogues": args.dialogues, "arms": args.arms, "seed_messages": args.seed_messages,
        "turns": args.turns, "samples": args.samples, "seed": args.seed, "facts": args.facts,
        "max_dialogues": args.max_dialogues, "simulator_model": simulator.model_name(),
        "prompt_sha256": simulator.prompt_sha256(),
    });
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let journal_path = args.out.join("journal.jsonl");
    let journal = Arc::new(Journal::open(
        &journal_path,
        "simulate",
        &config,
        args.calls.new_run,
    )?);
    let (client, token) = http_client(settings, args.timeout_ms)?;
    let local = local_router(&arms, settings)?;
    let context = Shared {
        simulator,
        budget: Budget::new(args.calls.max_cost, journal.spent()),
        journal,
        retries: args.calls.retries(),
        prices,
        caller: Caller {
            client: &client,
            local: local.as_ref(),
            token: token.as_deref(),
            timeout_ms: args.timeout_ms,
        },
        facts: args.facts == "live",
        turns: args.turns,
        seed_messages: args.seed_messages,
        seed: args.seed,
        stop: stop_on_ctrl_c(),
    };
    eprintln!(
        "simulate: {} conversations with {} ({} turns already in {})",
        jobs.len(),
        context.simulator.model_name(),
        context.journal.done.len(),
        journal_path.display()
    );
    let results = futures::stream::iter(&jobs)
        .map(|job| converse(&context, job))
        .buffer_unordered(args.calls.concurrency.max(1));
    let (complete, failed) = tally(results).await?;
    context.journal.finish()?;
    let (_, rows) = read_journal::<Turn>(&journal_path)?;
    let written = outputs::write(
        &args.out,
        &jobs
            .iter()
            .map(|j| (j.seed, j.arm.name.as_str(), j.sample))
            .collect::<Vec<_>>(),
        &rows,
        &config,
        args.seed_messages,
        args.turns,
    )?;
    eprintln!(
        "simulate: {complete} conversations done, {failed} stopped by a failure; {} excluded by \
         the simulator's health check; ${:.6} spent -> {}",
        written.excluded,
        context.budget.spent(),
        args.out.display()
    );
    if context.stop.load(Ordering::SeqCst) {
        return Err(crate::cli::Interrupted.into());
    }
    if context.budget.exhausted() {
        return Err(BudgetReached(context.budget.spent()).into());
    }
    Ok(())
}

/// Grows one conversation turn by turn, each turn read from the journal when an earlier run made
/// it: `Some(true)` when it reached its end, `Some(false)` when a turn failed, `None` when
/// stopped (Ctrl-C or the budget).
async fn converse(context: &Shared<'_>, job: &Job<'_>) -> anyhow::Result<Option<bool>> {
    let seed = job.seed;
    let mut messages: Vec<ContextMessage> = seed.messages
        [..context.seed_messages.min(seed.messages.len())]
        .iter()
        .map(|m| ContextMessage {
            role: m.role.clone(),
            text: m.text.clone(),
        })
        .collect();
    let mut replies = 0;
    let mut index = messages.len();
    let mut turn = 0;
    while replies < context.turns {
        let key = job.key(index);
        let row = match context.journal.done.get(&key) {
            Some(row) if row.status.is_final() => row.clone(),
            Some(row) if row.attempts >= context.retries.max_attempts => return Ok(Some(false)),
            _ => {
                if context.stop.load(Ordering::SeqCst) || context.budget.exhausted() {
                    return Ok(None);
                }
                let spent = context.journal.attempts(&key);
                let row = if messages.last().is_some_and(|m| m.role == "user") {
                    reply(context, job, &messages, index, spent).await
                } else {
                    let sim_seed = simulator_seed(context.seed, &seed.id, job.sample, turn);
                    context
                        .simulator
                        .turn(seed, &messages, index, sim_seed, spent, context.retries)
                        .await
                        .keyed(key, job.arm.name.clone(), job.sample)
                };
                if let Some(cost) = row.cost_usd {
                    context.budget.add(cost);
                }
                context.journal.append(&row)?;
                row
            }
        };
        if row.status != Status::Ok {
            return Ok(Some(false));
        }
        if row.role == "character" {
            replies += 1;
        } else {
            turn += 1;
        }
        if let Some(text) = row.text {
            messages.push(ContextMessage {
                role: row.role,
                text,
            });
        }
        if row.ends {
            break;
        }
        index += 1;
    }
    Ok(Some(true))
}

/// The arm's reply to the conversation so far.
async fn reply(
    context: &Shared<'_>,
    job: &Job<'_>,
    messages: &[ContextMessage],
    index: usize,
    spent: u32,
) -> Turn {
    let seed = job.seed;
    let mut row = Reply::new(job.key(index), "", &seed.id, &job.arm.name, job.sample);
    if let Some(options) = job.arm.options() {
        let party = (&seed.user, &seed.character, seed.scenario.as_deref());
        let conversation = format!("eval:sim:{}:{}:{}", seed.id, job.arm.name, job.sample);
        let body = request_body(
            party,
            messages,
            options,
            job.sample,
            context.facts,
            &conversation,
        );
        let (result, attempts, latency) =
            generate(context.caller, job.arm, &body, context.retries, spent).await;
        fill_reply(&mut row, result, attempts, latency, &context.prices);
    }
    Turn {
        key: row.key,
        seed_dialogue: seed.id.clone(),
        arm: row.arm,
        sample: job.sample,
        index,
        role: "character".into(),
        status: row.status,
        attempts: row.attempts,
        text: row.text,
        ends: false,
        drifts: Vec::new(),
        simulator_seed: None,
        prompt_sha256: None,
        model: row.model,
        smoke_test_simulator: false,
        variant: row.variant,
        latency_ms: row.latency_ms,
        usage: row.usage,
        cost_usd: row.cost_usd,
        error: row.error,
    }
}

/// What the simulator turned into a row, before its key is known.
pub(super) struct UserTurn(Turn);

impl UserTurn {
    fn keyed(self, key: String, arm: String, sample: u32) -> Turn {
        Turn {
            key,
            arm,
            sample,
            ..self.0
        }
    }
}

/// The user's reading of a simulator answer: their message and whether they leave.
fn user_message(answer: &str, user: &Value) -> (Option<String>, bool) {
    let name = user["name"].as_str().unwrap_or_default();
    match read_turn(answer, name) {
        SimulatedTurn::Message(text) => (Some(text), false),
        SimulatedTurn::LastMessage(text) => (Some(text), true),
        SimulatedTurn::End => (None, true),
    }
}
