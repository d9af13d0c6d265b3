//! `ragback eval replay`: regenerates each window's target for each arm — through a running
//! ragback server (`POST /generate`), or the reply in the log — into a resumable journal.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::bail;
use clap::Args;
use futures::StreamExt;
use ragback_infrastructure::Settings;
use serde_json::{Value, json};

use super::calls::{
    Budget, BudgetReached, CallArgs, Failure, FailureKind, Prices, Retries, stop_on_ctrl_c, tally,
};
use super::dialogues::{Window, read_windows};
use super::generate::{Arm, Caller, Source, generate, http_client, local_router, parse_arm};
use super::journal::Journal;
use super::rows::{Reply, Status, Usage};

/// `ragback eval replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The windows (`ragback eval windows`).
    #[arg(long)]
    windows: PathBuf,
    /// The replies journal (resumed when it exists).
    #[arg(long)]
    out: PathBuf,
    /// An arm: `NAME=logged` (the reply in the log),
    /// `NAME=server:URL[,variant=V,model=M,temperature=T,top_p=P,max_tokens=N,seed=S,summary=on]`
    /// (a running ragback; `variant` picks one of its configured variants; `summary=on` sends each
    /// window as a conversation, its rolling summary written before the reply) or
    /// `NAME=local[,variant=V,…]` (ragback in this process, from this configuration).
    #[arg(long = "arm", required = true)]
    arms: Vec<String>,
    /// Facts: `live` (the server retrieves them now) or `none` (retrieval off).
    #[arg(long, default_value = "live")]
    facts: String,
    #[command(flatten)]
    calls: CallArgs,
    /// Deadline of one request, ms (`X-Request-Timeout`).
    #[arg(long, default_value_t = 60_000)]
    timeout_ms: u64,
    /// Replies drawn per window and arm: sample `k > 0` is asked with the seed `S + k` (`S` the
    /// arm's `seed`, else 0), so that a provider honouring seeds draws again, reproducibly. Two
    /// samples make the judge's A/A check possible (`pairwise --aa`), more split the candidate's
    /// own variance from the judge's in the report.
    #[arg(long, default_value_t = 1)]
    samples: u32,
    /// Print the calls and a token estimate, call nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Runs `ragback eval replay`.
pub async fn run(args: ReplayArgs, settings: &Settings) -> anyhow::Result<()> {
    let arms: Vec<Arm> = args
        .arms
        .iter()
        .map(|a| parse_arm(a))
        .collect::<anyhow::Result<_>>()?;
    if !matches!(args.facts.as_str(), "live" | "none") {
        bail!("--facts is live or none");
    }
    if args.samples == 0 {
        bail!("--samples is at least 1");
    }
    let windows = read_windows(&args.windows)?;
    let prices = Prices::parse(&args.calls.prices)?;
    let samples = args.samples;
    let jobs: Vec<(&Window, &Arm, u32)> = windows
        .iter()
        .flat_map(|w| arms.iter().map(move |a| (w, a)))
        .flat_map(|(w, a)| {
            // The logged arm has one reply, whatever the samples.
            let n = if a.source == Source::Logged {
                1
            } else {
                samples
            };
            (0..n).map(move |s| (w, a, s))
        })
        .collect();
    let calling = arms.iter().filter(|a| a.source != Source::Logged).count();
    if args.dry_run {
        let chars: usize = windows
            .iter()
            .map(|w| w.context.iter().map(|m| m.text.len()).sum::<usize>() + 600)
            .sum();
        let calls = windows.len() * calling * samples as usize;
        println!(
            "{calls} calls to /generate for {} windows × {} arms × {samples} samples; about {} prompt tokens (4 characters a token)",
            windows.len(),
            arms.len(),
            chars / 4 * calling * samples as usize
        );
        return Ok(());
    }
    // One sample is the configuration of earlier journals: they resume unchanged.
    let mut config = json!({
        "windows": args.windows, "arms": args.arms, "facts": args.facts,
    });
    if samples > 1 {
        config["samples"] = json!(samples);
    }
    let journal = Arc::new(Journal::open(
        &args.out,
        "replay",
        &config,
        args.calls.new_run,
    )?);
    let budget = Budget::new(args.calls.max_cost, journal.spent());
    let retries = args.calls.retries();
    let (client, token) = http_client(settings, args.timeout_ms)?;
    let local = local_router(&arms, settings)?;
    let stop = stop_on_ctrl_c();
    let todo: Vec<(&Window, &Arm, u32)> = jobs
        .into_iter()
        .filter(|(w, a, s)| !journal.is_final(&key(w, a, *s)))
        .filter(|(w, a, s)| journal.attempts(&key(w, a, *s)) < retries.max_attempts)
        .collect();
    eprintln!(
        "replay: {} replies to make ({} already in {})",
        todo.len(),
        journal.done.len(),
        args.out.display()
    );
    let facts_on = args.facts == "live";
    let caller = Caller {
        client: &client,
        local: local.as_ref(),
        token: token.as_deref(),
        timeout_ms: args.timeout_ms,
    };
    let results = futures::stream::iter(todo)
        .map(|(window, arm, sample)| {
            let (journal, budget, stop, prices) =
                (journal.clone(), budget.clone(), stop.clone(), &prices);
            async move {
                if stop.load(Ordering::SeqCst) || budget.exhausted() {
                    return Ok(None);
                }
                let spent = journal.attempts(&key(window, arm, sample));
                let row = reply(
                    window, arm, sample, caller, facts_on, retries, spent, prices,
                )
                .await;
                if let Some(cost) = row.cost_usd {
                    budget.add(cost);
                }
                journal.append(&row)?;
                Ok::<_, anyhow::Error>(Some(row.status == Status::Ok))
            }
        })
        .buffer_unordered(args.calls.concurrency.max(1));
    let (made, failed) = tally(results).await?;
    journal.finish()?;
    eprintln!(
        "replay: {made} replies made, {failed} failed; ${:.6} spent -> {}",
        budget.spent(),
        args.out.display()
    );
    if stop.load(Ordering::SeqCst) {
        return Err(crate::cli::Interrupted.into());
    }
    if budget.exhausted() {
        return Err(BudgetReached(budget.spent()).into());
    }
    Ok(())
}

fn key(window: &Window, arm: &Arm, sample: u32) -> String {
    format!("{}|{}|{sample}", window.id, arm.name)
}

/// The `generation` of sample `sample`: the arm's own for sample 0, else with the seed moved on.
pub(super) fn sampled(generation: &Value, sample: u32) -> Value {
    let mut generation = generation.clone();
    if sample > 0 {
        let base = generation["seed"].as_u64().unwrap_or(0);
        generation["seed"] = json!(base + u64::from(sample));
    }
    generation
}

/// A reply row from `/generate`'s answer (or the failure after the retries).
pub(super) fn fill_reply(
    row: &mut Reply,
    result: Result<Value, Failure>,
    attempts: u32,
    latency_ms: u64,
    prices: &Prices,
) {
    row.attempts = attempts;
    row.latency_ms = Some(latency_ms);
    match result {
        Ok(response) => {
            let usage: Option<Usage> = serde_json::from_value(response["usage"].clone()).ok();
            let model = response["model"].as_str().unwrap_or_default();
            let tokens = usage.unwrap_or_default();
            row.cost_usd = prices.cost(model, tokens.prompt_tokens, tokens.completion_tokens);
            row.text = Some(response["text"].as_str().unwrap_or_default().to_owned());
            row.model = Some(model.to_owned());
            row.variant = response["variant"].as_str().map(str::to_owned);
            row.facts = Some(response["facts"].clone());
            row.retrieval = Some(response["retrieval"].clone());
            row.usage = usage;
        }
        Err(failure) => {
            row.status = match failure.kind {
                FailureKind::Transient => Status::ApiError,
                FailureKind::Permanent | FailureKind::Refused => Status::Invalid,
            };
            row.error = Some(failure.message);
        }
    }
}

/// The body of `/generate` for `messages` between `user` and `character` in `scenario`, as the
/// arm asks it (sample `sample`); `conversation` keeps a rolling summary when the arm asks for one.
pub(super) fn request_body(
    (user, character, scenario): (&Value, &Value, Option<&str>),
    messages: &[super::dialogues::ContextMessage],
    (generation, variant, summary): (&Value, Option<&str>, bool),
    sample: u32,
    facts: bool,
    conversation: &str,
) -> Value {
    let mut body = json!({
        "messages": messages, "user": user, "character": character,
        "scenario": scenario, "generation": sampled(generation, sample),
        "retrieval": {"enabled": facts},
        // An evaluation reads the store, never writes it (whatever RAGBACK_MEMORY__AUTO says).
        "memory": {"extract": false},
    });
    if let Some(variant) = variant {
        body["variant"] = json!(variant);
    }
    if summary {
        // A conversation per window and arm, its summary written before the reply: windows are
        // independent samples (replayed in any order, at once), each with the summary a live
        // conversation would have at that turn.
        body["conversation_id"] = json!(conversation);
        body["summarize_first"] = json!(true);
    }
    body
}

#[allow(clippy::too_many_arguments)]
async fn reply(
    window: &Window,
    arm: &Arm,
    sample: u32,
    caller: Caller<'_>,
    facts: bool,
    retries: Retries,
    spent: u32,
    prices: &Prices,
) -> Reply {
    let mut row = Reply::new(
        key(window, arm, sample),
        &window.id,
        &window.dialogue,
        &arm.name,
        sample,
    );
    row.bucket = Some(window.bucket);
    let Some(options) = arm.options() else {
        row.text = Some(window.logged.text.clone());
        row.model.clone_from(&window.logged_model);
        row.variant.clone_from(&window.logged_variant);
        return row;
    };
    let conversation = match sample {
        0 => format!("eval:{}:{}", window.id, arm.name),
        s => format!("eval:{}:{}:{s}", window.id, arm.name),
    };
    let party = (&window.user, &window.character, window.scenario.as_deref());
    let body = request_body(
        party,
        &window.context,
        options,
        sample,
        facts,
        &conversation,
    );
    let (result, attempts, latency) = generate(caller, arm, &body, retries, spent).await;
    fill_reply(&mut row, result, attempts, latency, prices);
    row
}
