//! `ragback eval pairwise` and `ragback eval moderate`: an LLM judge over the replayed replies,
//! each call journaled so that a run resumes where it stopped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use ragback_application::evaluation::moderation::parse_tags;
use ragback_application::evaluation::verdict::{
    NoVerdict, first_shown, looks_like_refusal, parse_verdict, same_text, to_arm,
};
use ragback_application::ports::{
    ChatModelError, ChatRequest, Completion, GenerationParams, PromptMessage, PromptRole,
};
use ragback_infrastructure::{Judge, Settings, build_judge};
use ragback_integrations::eval_prompts::{EvalPrompts, MODERATION, PAIRWISE};
use serde_json::{Value, json};

use super::calls::{
    Budget, BudgetReached, CallArgs, Failure, Prices, Retries, retrying, stop_on_ctrl_c, tally,
};
use super::dialogues::{Window, read_windows};
use super::journal::{Journal, read_journal};

/// The criteria and how the judge is told to compare on them.
pub const CRITERIA: [(&str, &str); 3] = [
    (
        "in_character",
        "Which message is more faithful to the character: personality, voice and speech habits, \
         what the character would and would not know, and facts already established in this \
         chat? Breaking character — speaking as an AI or assistant, mentioning rules or prompts, \
         out-of-persona moralising — is a severe failure.",
    ),
    (
        "scenario_focus",
        "Which message keeps better to the scene and the scenario: it answers the user's last \
         message, keeps place, time, people and events coherent, and moves the situation \
         forward, without drifting to unrelated topics, contradicting the scene, or writing the \
         user's words or actions?",
    ),
    (
        "engagement",
        "Which message makes the user more likely to want to reply: vivid and specific, with \
         emotion and initiative, offering a hook, a question, a choice or a twist; not bland, \
         generic, repetitive or assistant-like? Do not reward length or flattery.",
    ),
];

/// The house style of `prompts/chat.tera`, as the judge is told it.
const HOUSE_STYLE: &str = "short, one to three sentences; exactly one brief action in asterisks; \
     stay in character and in the scene; never write the user's words or actions.";

/// What both judges take.
#[derive(Debug, Args)]
pub struct JudgeArgs {
    /// The windows the replies were made for.
    #[arg(long)]
    windows: PathBuf,
    /// The replies journal (`ragback eval replay`).
    #[arg(long)]
    replies: PathBuf,
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

/// `ragback eval pairwise`.
#[derive(Debug, Args)]
pub struct PairwiseArgs {
    #[command(flatten)]
    common: JudgeArgs,
    /// The current arm.
    #[arg(long, default_value = "A")]
    a: String,
    /// The candidate arm.
    #[arg(long, default_value = "B")]
    b: String,
    /// Criteria, comma-separated.
    #[arg(long, default_value = "in_character,scenario_focus,engagement")]
    criteria: String,
}

/// `ragback eval moderate`.
#[derive(Debug, Args)]
pub struct ModerateArgs {
    #[command(flatten)]
    common: JudgeArgs,
    /// Earlier messages shown with each reply.
    #[arg(long, default_value_t = 6)]
    context: usize,
    /// Who tags: `judge` (the LLM judge, every tag, with the story as context) or `openai`
    /// (OpenAI's moderation endpoint, `RAGBACK_EVAL__MODERATION__*`: the message alone, no
    /// `real_meeting`, `sexting` or `error`).
    #[arg(long, default_value = "judge", value_parser = ["judge", "openai"])]
    adapter: String,
    /// With `--adapter openai`: flag a category from this score on, instead of by the API's
    /// own booleans.
    #[arg(long)]
    openai_threshold: Option<f64>,
}

/// A judge call's answer.
struct Answer {
    text: String,
    usage: Value,
    cost: Option<f64>,
}

struct Setup {
    judge: Judge,
    timeout: Duration,
    /// Tokens of a verdict: `RAGBACK_EVAL__JUDGE__MAX_TOKENS`, 48 for the smoke-test judge (a
    /// small local model rambles; the verdict line is what counts).
    max_tokens: u32,
    model: String,
    windows: HashMap<String, Window>,
    replies: HashMap<String, Value>,
    journal: Arc<Journal>,
    budget: Budget,
    retries: Retries,
    prices: Prices,
}

fn setup(
    common: &JudgeArgs,
    settings: &Settings,
    stage: &str,
    names: &[&str],
    extra: Value,
) -> anyhow::Result<(Setup, EvalPrompts)> {
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
    let prompts = EvalPrompts::load(&common.prompts, names).map_err(anyhow::Error::msg)?;
    let windows = read_windows(&common.windows)?
        .into_iter()
        .map(|w| (w.id.clone(), w))
        .collect();
    let (_, replies) = read_journal(&common.replies)?;
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
    let already = journal
        .done
        .values()
        .filter_map(|r| r.get("cost_usd").and_then(Value::as_f64))
        .sum();
    Ok((
        Setup {
            budget: Budget::new(common.calls.max_cost, already),
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

impl Setup {
    /// One judge call with retries of API failures.
    async fn ask(
        &self,
        key: &str,
        messages: Vec<PromptMessage>,
        max_tokens: u32,
        seed: Option<u64>,
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
            },
        };
        let spent = self.journal.attempts(key);
        retrying(self.retries, spent, key, || async {
            let completion = tokio::time::timeout(self.timeout, self.judge.model.complete(&request))
                .await
                .map_err(|_| {
                    Failure::transient(
                        format!("the judge did not answer within {:?}", self.timeout),
                        None,
                    )
                })?
                .map_err(classify)?;
            let usage = completion.usage.unwrap_or_default();
            let cost = self.prices.cost(
                &self.model,
                u64::from(usage.prompt_tokens),
                u64::from(usage.completion_tokens),
            );
            let answer = Answer {
                text: completion.text.clone(),
                usage: json!({"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}),
                cost,
            };
            Ok((completion, answer))
        })
        .await
    }
}

/// A judge API failure: content filters are refusals (never retried), rate limits and outages
/// are retried, other rejections are not.
fn classify(error: ChatModelError) -> Failure {
    match &error {
        ChatModelError::RateLimited { retry_after, .. }
        | ChatModelError::Unavailable { retry_after, .. } => {
            Failure::transient(error.to_string(), *retry_after)
        }
        ChatModelError::InvalidResponse(_) => Failure::transient(error.to_string(), None),
        ChatModelError::Rejected { message, .. }
            if message.contains("content_filter") || message.contains("content_policy") =>
        {
            Failure {
                retryable: false,
                retry_after: None,
                message: format!("refused: {error}"),
            }
        }
        ChatModelError::Rejected { .. } | ChatModelError::NotConfigured(_) => {
            Failure::permanent(error.to_string())
        }
    }
}

fn message(role: PromptRole, content: String) -> PromptMessage {
    PromptMessage { role, content }
}

/// The window's context as `Name: text` lines for the templates.
fn context_lines(window: &Window, last: usize) -> Vec<Value> {
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
        .map(|m| json!({"speaker": name(&m.role), "text": m.text}))
        .collect()
}

const REASK: &str = "Answer with the JSON line only.";

/// Runs `ragback eval pairwise`.
pub async fn pairwise(args: PairwiseArgs, settings: &Settings) -> anyhow::Result<()> {
    let criteria: Vec<(&str, &str)> = args
        .criteria
        .split(',')
        .map(|c| {
            CRITERIA
                .iter()
                .find(|(name, _)| *name == c.trim())
                .copied()
                .with_context(|| {
                    format!(
                        "--criteria: no criterion {c:?} (in_character, scenario_focus, engagement)"
                    )
                })
        })
        .collect::<anyhow::Result<_>>()?;
    let extra = json!({"a": args.a, "b": args.b, "criteria": args.criteria});
    let (setup, prompts) = setup(&args.common, settings, "pairwise", &PAIRWISE, extra)?;
    let setup = Arc::new(setup);
    let reply = |window: &str, arm: &str| {
        setup
            .replies
            .get(&format!("{window}|{arm}|0"))
            .filter(|r| r["status"] == "ok")
            .cloned()
    };
    let mut jobs = Vec::new();
    let mut missing = 0;
    let mut ids: Vec<&String> = setup.windows.keys().collect();
    ids.sort();
    for id in ids {
        let (Some(a), Some(b)) = (reply(id, &args.a), reply(id, &args.b)) else {
            missing += 1;
            continue;
        };
        for (criterion, definition) in &criteria {
            if same_text(
                a["text"].as_str().unwrap_or_default(),
                b["text"].as_str().unwrap_or_default(),
            ) {
                jobs.push((
                    id.clone(),
                    *criterion,
                    *definition,
                    0u8,
                    a.clone(),
                    b.clone(),
                ));
            } else {
                for order in [1u8, 2] {
                    jobs.push((
                        id.clone(),
                        *criterion,
                        *definition,
                        order,
                        a.clone(),
                        b.clone(),
                    ));
                }
            }
        }
    }
    if missing > 0 {
        eprintln!(
            "pairwise: {missing} windows lack a reply of {} or {} (left out)",
            args.a, args.b
        );
    }
    let journal = setup.journal.clone();
    let todo: Vec<_> = jobs
        .into_iter()
        .filter(|(id, criterion, _, order, _, _)| {
            let key = format!("{id}|{criterion}|{order}");
            !journal.is_final(&key) && journal.attempts(&key) < setup.retries.max_attempts
        })
        .collect();
    eprintln!(
        "pairwise: {} judge calls to make with {}",
        todo.len(),
        setup.model
    );
    let stop = stop_on_ctrl_c();
    let prompts = Arc::new(prompts);
    let seed = args.common.judge_seed;
    let (a_name, b_name) = (args.a.clone(), args.b.clone());
    let results = futures::stream::iter(todo)
        .map(|(id, criterion, definition, order, a, b)| {
            let (setup, prompts, stop) = (setup.clone(), prompts.clone(), stop.clone());
            let (a_name, b_name) = (a_name.clone(), b_name.clone());
            async move {
                if stop.load(Ordering::SeqCst) || setup.budget.exhausted() {
                    return Ok(None);
                }
                let window = &setup.windows[&id];
                let key = format!("{id}|{criterion}|{order}");
                let text = |r: &Value| r["text"].as_str().unwrap_or_default().to_owned();
                let (ta, tb) = (text(&a), text(&b));
                let mut row = json!({
                    "kind": "judgment", "key": key, "pair": id, "dialogue": window.dialogue,
                    "bucket": window.bucket, "criterion": criterion, "order": order,
                    "arms": [a_name, b_name],
                    "chars_a": ta.chars().count(), "chars_b": tb.chars().count(),
                    "tokens_a": a["usage"]["completion_tokens"], "tokens_b": b["usage"]["completion_tokens"],
                    "text_a": ta, "text_b": tb, "context_tail": context_lines(window, 2),
                    "prompt_sha256": prompts.sha256(), "judge_model": setup.model,
                    "smoke_test_judge": setup.judge.smoke_test,
                });
                if order == 0 {
                    row["status"] = json!("identical");
                    row["attempts"] = json!(0);
                    setup.journal.append(&row)?;
                    return Ok(Some(true));
                }
                let (first, second) = if first_shown(order) == ragback_application::evaluation::verdict::Arm::A { (&ta, &tb) } else { (&tb, &ta) };
                row["slot_a"] = json!(if order == 1 { "A" } else { "B" });
                let data = json!({
                    "criterion": criterion, "definition": definition, "house_style": HOUSE_STYLE,
                    "character": window.character, "user": window.user, "scenario": window.scenario,
                    "context": context_lines(window, usize::MAX), "first": first, "second": second,
                });
                let system = prompts.render("pairwise_system", &data).map_err(anyhow::Error::msg)?;
                let user = prompts.render("pairwise_user", &data).map_err(anyhow::Error::msg)?;
                let mut messages = vec![message(PromptRole::System, system), message(PromptRole::User, user)];
                let max_tokens = setup.max_tokens;
                let (mut result, mut attempts) = setup.ask(&key, messages.clone(), max_tokens, seed).await;
                let mut reasked = false;
                if let Ok((completion, _)) = &result
                    && matches!(parse_verdict(&completion.text, completion.finish_reason.as_deref()), Err(NoVerdict::ParseError { .. }))
                {
                    messages.push(message(PromptRole::Assistant, completion.text.clone()));
                    messages.push(message(PromptRole::User, REASK.into()));
                    let (again, more) = setup.ask(&key, messages, max_tokens, seed).await;
                    reasked = true;
                    attempts = more;
                    result = again.map(|(c, mut answer)| {
                        if let Ok((_, first)) = &result { answer.cost = sum(answer.cost, first.cost); }
                        (c, answer)
                    });
                }
                row["attempts"] = json!(attempts);
                row["reasked"] = json!(reasked);
                match result {
                    Ok((completion, answer)) => {
                        if let Some(cost) = answer.cost { setup.budget.add(cost); }
                        row["usage"] = answer.usage;
                        row["cost_usd"] = json!(answer.cost);
                        row["reason"] = json!(answer.text);
                        match parse_verdict(&completion.text, completion.finish_reason.as_deref()) {
                            Ok(verdict) => {
                                row["status"] = json!("ok");
                                row["verdict_slot"] = json!(verdict);
                                row["verdict_arm"] = json!(to_arm(order, verdict));
                            }
                            Err(NoVerdict::Refused) => row["status"] = json!("refused"),
                            Err(NoVerdict::ParseError { truncated }) => {
                                row["status"] = json!("parse_error");
                                row["truncated"] = json!(truncated);
                            }
                        }
                    }
                    Err(failure) if failure.message.starts_with("refused") => {
                        row["status"] = json!("refused");
                        row["error"] = json!(failure.message);
                    }
                    Err(failure) => {
                        row["status"] = json!("api_error");
                        row["error"] = json!(failure.message);
                    }
                }
                setup.journal.append(&row)?;
                Ok::<_, anyhow::Error>(Some(row["status"] == "ok"))
            }
        })
        .buffer_unordered(args.common.calls.concurrency.max(1));
    let (ok, failed) = tally(results).await?;
    finish(&setup, &stop, ok, failed, &args.common.out)
}

fn sum(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
    }
}

fn finish(
    setup: &Setup,
    stop: &std::sync::atomic::AtomicBool,
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

/// Runs `ragback eval moderate`: every reply of every arm, tagged.
pub async fn moderate(args: ModerateArgs, settings: &Settings) -> anyhow::Result<()> {
    if args.adapter == "openai" {
        return moderate_openai(args, settings).await;
    }
    let (setup, prompts) = setup(
        &args.common,
        settings,
        "moderate",
        &MODERATION,
        json!({"context": args.context}),
    )?;
    let setup = Arc::new(setup);
    let mut units: Vec<Value> = setup
        .replies
        .values()
        .filter(|r| {
            r["status"] == "ok"
                && setup
                    .windows
                    .contains_key(r["window"].as_str().unwrap_or_default())
        })
        .cloned()
        .collect();
    units.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
    let journal = setup.journal.clone();
    let todo: Vec<Value> = units
        .into_iter()
        .filter(|r| {
            let key = r["key"].as_str().unwrap_or_default();
            !journal.is_final(key) && journal.attempts(key) < setup.retries.max_attempts
        })
        .collect();
    eprintln!(
        "moderate: {} replies to tag with {}",
        todo.len(),
        setup.model
    );
    let stop = stop_on_ctrl_c();
    let prompts = Arc::new(prompts);
    let seed = args.common.judge_seed;
    let context = args.context;
    let results = futures::stream::iter(todo)
        .map(|reply| {
            let (setup, prompts, stop) = (setup.clone(), prompts.clone(), stop.clone());
            async move {
                if stop.load(Ordering::SeqCst) || setup.budget.exhausted() {
                    return Ok(None);
                }
                let window = &setup.windows[reply["window"].as_str().unwrap_or_default()];
                let key = reply["key"].as_str().unwrap_or_default().to_owned();
                let text = reply["text"].as_str().unwrap_or_default();
                let data = json!({
                    "character": window.character, "user": window.user,
                    "context": context_lines(window, context), "target": text,
                });
                let system = prompts.render("moderation_system", &data).map_err(anyhow::Error::msg)?;
                let user = prompts.render("moderation_user", &data).map_err(anyhow::Error::msg)?;
                let mut messages = vec![message(PromptRole::System, system), message(PromptRole::User, user)];
                let (mut result, mut attempts) = setup.ask(&key, messages.clone(), 200, seed).await;
                if let Ok((completion, _)) = &result
                    && parse_tags(&completion.text).is_err()
                    && !looks_like_refusal(&completion.text)
                {
                    messages.push(message(PromptRole::Assistant, completion.text.clone()));
                    messages.push(message(PromptRole::User, "Answer with the JSON object only.".into()));
                    let (again, more) = setup.ask(&key, messages, 200, seed).await;
                    (result, attempts) = (again, more);
                }
                let mut row = json!({
                    "kind": "moderation", "adapter": "judge", "key": key, "window": window.id, "dialogue": window.dialogue,
                    "arm": reply["arm"], "text": text, "context_tail": context_lines(window, 2),
                    "attempts": attempts, "prompt_sha256": prompts.sha256(), "judge_model": setup.model,
                    "smoke_test_judge": setup.judge.smoke_test,
                });
                match result {
                    Ok((completion, answer)) => {
                        if let Some(cost) = answer.cost { setup.budget.add(cost); }
                        row["usage"] = answer.usage;
                        row["cost_usd"] = json!(answer.cost);
                        match parse_tags(&completion.text) {
                            Ok(tags) => {
                                row["status"] = json!("ok");
                                row["tags"] = json!(tags.flagged);
                                row["evidence"] = json!(tags.evidence);
                            }
                            Err(_) if looks_like_refusal(&completion.text) || completion.finish_reason.as_deref() == Some("content_filter") => {
                                row["status"] = json!("refused");
                                row["answer"] = json!(completion.text);
                            }
                            Err(error) => {
                                row["status"] = json!("parse_error");
                                row["error"] = json!(error.to_string());
                                row["answer"] = json!(completion.text);
                            }
                        }
                    }
                    Err(failure) => {
                        row["status"] = json!(if failure.message.starts_with("refused") { "refused" } else { "api_error" });
                        row["error"] = json!(failure.message);
                    }
                }
                setup.journal.append(&row)?;
                Ok::<_, anyhow::Error>(Some(row["status"] == "ok"))
            }
        })
        .buffer_unordered(args.common.calls.concurrency.max(1));
    let (ok, failed) = tally(results).await?;
    if ok + failed == 0 && setup.journal.done.is_empty() {
        bail!(
            "no replies to moderate in {}",
            args.common.replies.display()
        );
    }
    finish(&setup, &stop, ok, failed, &args.common.out)
}

/// `moderate --adapter openai`: the replies in batches of 32 through OpenAI's moderation
/// endpoint; raw scores are kept beside the tags.
async fn moderate_openai(args: ModerateArgs, settings: &Settings) -> anyhow::Result<()> {
    let api = ragback_infrastructure::build_moderation(settings)?;
    let common = &args.common;
    let windows: HashMap<String, Window> = read_windows(&common.windows)?
        .into_iter()
        .map(|w| (w.id.clone(), w))
        .collect();
    let (_, replies) = read_journal(&common.replies)?;
    let config = json!({
        "windows": common.windows, "replies": common.replies, "adapter": "openai",
        "model": api.model(), "threshold": args.openai_threshold,
    });
    let journal = Journal::open(&common.out, "moderate", &config, common.calls.new_run)?;
    let retries = common.calls.retries();
    let mut units: Vec<&Value> = replies
        .values()
        .filter(|r| {
            r["status"] == "ok" && windows.contains_key(r["window"].as_str().unwrap_or_default())
        })
        .filter(|r| {
            let key = r["key"].as_str().unwrap_or_default();
            !journal.is_final(key) && journal.attempts(key) < retries.max_attempts
        })
        .collect();
    units.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
    eprintln!(
        "moderate: {} replies to classify with {} (OpenAI moderation)",
        units.len(),
        api.model()
    );
    let stop = stop_on_ctrl_c();
    let (mut ok, mut failed) = (0, 0);
    for batch in units.chunks(32) {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let texts: Vec<String> = batch
            .iter()
            .map(|r| r["text"].as_str().unwrap_or_default().to_owned())
            .collect();
        let first_key = batch[0]["key"].as_str().unwrap_or_default().to_owned();
        let spent = batch
            .iter()
            .map(|r| journal.attempts(r["key"].as_str().unwrap_or_default()))
            .max()
            .unwrap_or(0);
        let (result, attempts) = retrying(retries, spent, &first_key, || async {
            api.moderate(&texts).await.map_err(|error| match &error {
                ragback_application::ports::ModerationError::RateLimited {
                    retry_after, ..
                } => Failure::transient(error.to_string(), *retry_after),
                ragback_application::ports::ModerationError::Unavailable(_)
                | ragback_application::ports::ModerationError::InvalidResponse(_) => {
                    Failure::transient(error.to_string(), None)
                }
                ragback_application::ports::ModerationError::Rejected { .. } => {
                    Failure::permanent(error.to_string())
                }
            })
        })
        .await;
        for (i, reply) in batch.iter().enumerate() {
            let window = &windows[reply["window"].as_str().unwrap_or_default()];
            let mut row = json!({
                "kind": "moderation", "adapter": "openai", "key": reply["key"], "window": window.id,
                "dialogue": window.dialogue, "arm": reply["arm"], "text": reply["text"],
                "context_tail": context_lines(window, 2), "attempts": attempts, "judge_model": api.model(),
            });
            match &result {
                Ok(results) => {
                    let tags = ragback_application::evaluation::moderation::tags_from_openai(
                        &results[i],
                        args.openai_threshold,
                    );
                    row["status"] = json!("ok");
                    row["tags"] = json!(tags);
                    row["flagged"] = json!(results[i].flagged);
                    row["category_scores"] = json!(results[i].scores);
                    row["evidence"] = json!("");
                    ok += 1;
                }
                Err(failure) => {
                    row["status"] = json!("api_error");
                    row["error"] = json!(failure.message);
                    failed += 1;
                }
            }
            journal.append(&row)?;
        }
    }
    journal.finish()?;
    eprintln!(
        "{ok} classified, {failed} failed -> {}",
        common.out.display()
    );
    if stop.load(Ordering::SeqCst) {
        return Err(crate::cli::Interrupted.into());
    }
    Ok(())
}
