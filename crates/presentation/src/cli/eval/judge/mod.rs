//! `ragback eval pairwise` and `ragback eval moderate`: an LLM judge over the replayed replies,
//! each call journaled so that a run resumes where it stopped. What both share is here: the
//! arguments, the judge's set-up and its calls with retries; each judgment in its own module.

mod dialogue;
mod moderate;
mod pairwise;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use ragback_application::ports::{
    ChatModelError, ChatRequest, Completion, GenerationParams, PromptMessage, PromptRole,
};
use ragback_infrastructure::{Judge, Settings, build_judge};
use ragback_integrations::eval_prompts::EvalPrompts;
use serde_json::{Value, json};

pub use self::moderate::{ModerateArgs, moderate};
pub use self::pairwise::{PairwiseArgs, pairwise};
use super::calls::{
    Budget, BudgetReached, CallArgs, Failure, Prices, Retries, complete_within, retrying,
};
use super::dialogues::{Window, windows_by_id};
use super::journal::{Journal, read_journal};
use super::rows::{Reply, Row, Spoken, Usage};

/// What both judges take.
#[derive(Debug, Args)]
pub struct JudgeArgs {
    /// The windows the replies were made for.
    #[arg(long)]
    windows: Option<PathBuf>,
    /// The replies journal (`ragback eval replay`, or `simulate`'s `replies.jsonl`).
    #[arg(long)]
    replies: Option<PathBuf>,
    /// Where the judgments go (resumed when it exists).
    #[arg(long)]
    out: PathBuf,
    /// Directory of the judges' templates.
    #[arg(long, default_value = "prompts/eval")]
    prompts: PathBuf,
    /// The judge's model (default: RAGBACK_EVAL__JUDGE__MODEL).
    #[arg(long)]
    judge_model: Option<String>,
    /// Seed sent to the judge.
    #[arg(long)]
    judge_seed: Option<u64>,
    #[command(flatten)]
    calls: CallArgs,
}

impl JudgeArgs {
    /// The windows and the replies, which judging replies needs.
    fn inputs(&self) -> anyhow::Result<(&std::path::Path, &std::path::Path)> {
        match (&self.windows, &self.replies) {
            (Some(windows), Some(replies)) => Ok((windows, replies)),
            _ => anyhow::bail!("--windows and --replies are needed to judge replies"),
        }
    }
}

/// A judge call's answer.
struct Answer {
    text: String,
    usage: Usage,
    cost: Option<f64>,
}

/// A judge ready to judge: its model, the windows and replies it judges, and the journal of its
/// judgments (`R`).
struct Setup<R> {
    judge: Judge,
    timeout: Duration,
    /// Tokens of a verdict: `RAGBACK_EVAL__JUDGE__MAX_TOKENS`, 48 for the smoke-test judge (a
    /// small local model rambles; the verdict line is what counts).
    max_tokens: u32,
    model: String,
    windows: HashMap<String, Window>,
    replies: HashMap<String, Reply>,
    journal: Arc<Journal<R>>,
    budget: Budget,
    retries: Retries,
    prices: Prices,
}

fn setup<R: Row>(
    common: &JudgeArgs,
    settings: &Settings,
    stage: &str,
    names: &[&str],
    extra: Value,
) -> anyhow::Result<(Setup<R>, EvalPrompts)> {
    let mut settings = settings.clone();
    if let Some(model) = &common.judge_model {
        settings.eval.judge.model.clone_from(model);
    }
    let judge = build_judge(&settings)?;
    if judge.smoke_test {
        eprintln!(
            "SMOKE-TEST JUDGE: no RAGBACK_EVAL__JUDGE__BASE_URL, so the local chat model ({}) \
             judges. Its verdicts test the pipeline, not the replies.",
            judge.model_name
        );
    }
    let model = if judge.smoke_test {
        judge.model_name.clone()
    } else {
        settings.eval.judge.model.clone()
    };
    let prompts = EvalPrompts::load(&common.prompts, names)?;
    let windows = match &common.windows {
        Some(path) => windows_by_id(path)?,
        None => HashMap::new(),
    };
    let replies = match &common.replies {
        Some(path) => read_journal(path)?.1,
        None => HashMap::new(),
    };
    let config = json!({
        "windows": common.windows, "replies": common.replies, "judge_model": model,
        "judge_seed": common.judge_seed, "prompt_sha256": prompts.sha256(), "extra": extra,
    });
    let journal = Arc::new(Journal::open(
        &common.out,
        stage,
        &config,
        common.calls.new_run,
    )?);
    Ok((
        Setup {
            budget: Budget::new(common.calls.max_cost, journal.spent()),
            retries: common.calls.retries(),
            prices: Prices::parse(&common.calls.prices)?,
            timeout: settings.eval.judge.timeout,
            max_tokens: if judge.smoke_test {
                48
            } else {
                settings.eval.judge.max_tokens
            },
            judge,
            model,
            windows,
            replies,
            journal,
        },
        prompts,
    ))
}

impl<R: Row> Setup<R> {
    /// One judge call with retries of API failures.
    async fn ask(
        &self,
        key: &str,
        messages: Vec<PromptMessage>,
        max_tokens: u32,
        seed: Option<u64>,
        schema: serde_json::Value,
    ) -> (Result<(Completion, Answer), Failure>, u32) {
        let request = ChatRequest {
            messages,
            params: GenerationParams {
                model: self.model.clone(),
                temperature: Some(0.0),
                top_p: None,
                max_tokens: Some(max_tokens),
                seed,
                routing: Default::default(),
                cache_control: false,
            },
            json_schema: Some(schema),
        };
        let spent = self.journal.attempts(key);
        retrying(self.retries, spent, || async {
            let completion = complete_within(
                &*self.judge.model,
                &request,
                self.timeout,
                "judge",
                classify,
            )
            .await?;
            let usage = Usage::from(completion.usage);
            let answer = Answer {
                text: completion.text.clone(),
                usage,
                cost: self
                    .prices
                    .cost(&self.model, usage.prompt_tokens, usage.completion_tokens),
            };
            Ok((completion, answer))
        })
        .await
    }
}

/// A judge API failure: a content filter is a refusal (never retried); the rest is classified as
/// the service classifies it (rate limits and outages retried, other rejections not).
fn classify(error: ChatModelError) -> Failure {
    match &error {
        ChatModelError::Rejected { message, .. }
            if message.contains("content_filter") || message.contains("content_policy") =>
        {
            Failure::refused(error.to_string())
        }
        _ => Failure::upstream(&error),
    }
}

fn message(role: PromptRole, content: String) -> PromptMessage {
    PromptMessage { role, content }
}

/// The window's last `last` messages, each with its speaker's name.
fn context_lines(window: &Window, last: usize) -> Vec<Spoken> {
    let name = |who: &str| {
        let object = if who == "user" {
            &window.user
        } else {
            &window.character
        };
        object["name"].as_str().unwrap_or(who).to_owned()
    };
    let skip = window.context.len().saturating_sub(last);
    window.context[skip..]
        .iter()
        .map(|m| Spoken {
            speaker: name(&m.role),
            text: m.text.clone(),
        })
        .collect()
}

fn finish<R: Row>(
    setup: &Setup<R>,
    stop: &AtomicBool,
    ok: usize,
    failed: usize,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    setup.journal.finish()?;
    eprintln!(
        "{ok} judged, {failed} without a verdict; ${:.6} spent -> {}",
        setup.budget.spent(),
        out.display()
    );
    if stop.load(Ordering::SeqCst) {
        return Err(crate::cli::Interrupted.into());
    }
    if setup.budget.exhausted() {
        return Err(BudgetReached(setup.budget.spent()).into());
    }
    Ok(())
}
