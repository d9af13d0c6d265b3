//! `ragback eval pairwise`: the judge compares the two arms' replies to each window on each
//! criterion, in both orders (an identical pair is a tie without a call).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use ragback_application::evaluation::verdict::{
    Arm, NoVerdict, first_shown, parse_verdict, same_text, to_arm,
};
use ragback_application::ports::PromptRole;
use ragback_infrastructure::Settings;
use ragback_integrations::eval_prompts::PAIRWISE;
use serde_json::json;

use super::super::calls::{stop_on_ctrl_c, tally};
use super::super::rows::{Judgment, Reply, Status};
use super::{JudgeArgs, Setup, context_lines, finish, message, setup};

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

const REASK: &str = "Answer with the JSON line only.";

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

/// One judge call to make: a pair, a criterion, an order.
struct Job {
    pair: String,
    criterion: &'static str,
    definition: &'static str,
    /// 1: A first, 2: B first, 0: identical texts.
    order: u8,
    a: Reply,
    b: Reply,
}

impl Job {
    fn key(&self) -> String {
        format!("{}|{}|{}", self.pair, self.criterion, self.order)
    }
}

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
    let (setup, prompts) = setup::<Judgment>(&args.common, settings, "pairwise", &PAIRWISE, extra)?;
    let setup = Arc::new(setup);
    let reply = |window: &str, arm: &str| {
        setup
            .replies
            .get(&format!("{window}|{arm}|0"))
            .filter(|r| r.status == Status::Ok)
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
        let identical = same_text(
            a.text.as_deref().unwrap_or_default(),
            b.text.as_deref().unwrap_or_default(),
        );
        let orders: &[u8] = if identical { &[0] } else { &[1, 2] };
        for (criterion, definition) in &criteria {
            for order in orders {
                jobs.push(Job {
                    pair: id.clone(),
                    criterion,
                    definition,
                    order: *order,
                    a: a.clone(),
                    b: b.clone(),
                });
            }
        }
    }
    if missing > 0 {
        eprintln!(
            "pairwise: {missing} windows lack a reply of {} or {} (left out)",
            args.a, args.b
        );
    }
    let todo: Vec<Job> = jobs
        .into_iter()
        .filter(|job| {
            let key = job.key();
            !setup.journal.is_final(&key)
                && setup.journal.attempts(&key) < setup.retries.max_attempts
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
    let arms = [args.a.clone(), args.b.clone()];
    let results = futures::stream::iter(todo)
        .map(|job| {
            let (setup, prompts, stop, arms) =
                (setup.clone(), prompts.clone(), stop.clone(), arms.clone());
            async move {
                if stop.load(Ordering::SeqCst) || setup.budget.exhausted() {
                    return Ok(None);
                }
                let row = judge(&setup, &prompts, job, arms, seed).await?;
                let ok = row.status == Status::Ok || row.status == Status::Identical;
                setup.journal.append(&row)?;
                Ok::<_, anyhow::Error>(Some(ok))
            }
        })
        .buffer_unordered(args.common.calls.concurrency.max(1));
    let (ok, failed) = tally(results).await?;
    finish(&setup, &stop, ok, failed, &args.common.out)
}

/// One judgment: the call (asked again once for the verdict line when the answer has none) and
/// its row.
async fn judge(
    setup: &Setup<Judgment>,
    prompts: &ragback_integrations::eval_prompts::EvalPrompts,
    job: Job,
    arms: [String; 2],
    seed: Option<u64>,
) -> anyhow::Result<Judgment> {
    let window = &setup.windows[&job.pair];
    let key = job.key();
    let text = |r: &Reply| r.text.clone().unwrap_or_default();
    let (ta, tb) = (text(&job.a), text(&job.b));
    let tokens = |r: &Reply| r.usage.map(|u| u.completion_tokens);
    let mut row = Judgment {
        key: key.clone(),
        pair: job.pair.clone(),
        dialogue: window.dialogue.clone(),
        bucket: window.bucket,
        criterion: job.criterion.to_owned(),
        order: job.order,
        arms,
        chars_a: ta.chars().count(),
        chars_b: tb.chars().count(),
        tokens_a: tokens(&job.a),
        tokens_b: tokens(&job.b),
        text_a: ta.clone(),
        text_b: tb.clone(),
        context_tail: context_lines(window, 2),
        prompt_sha256: prompts.sha256().to_owned(),
        judge_model: setup.model.clone(),
        smoke_test_judge: setup.judge.smoke_test,
        status: Status::Identical,
        attempts: 0,
        slot_a: None,
        reasked: false,
        usage: None,
        cost_usd: None,
        reason: None,
        verdict_slot: None,
        verdict_arm: None,
        truncated: None,
        error: None,
    };
    if job.order == 0 {
        return Ok(row);
    }
    let (first, second) = if first_shown(job.order) == Arm::A {
        (&ta, &tb)
    } else {
        (&tb, &ta)
    };
    row.slot_a = Some(if job.order == 1 { "A" } else { "B" }.to_owned());
    let data = json!({
        "criterion": job.criterion, "definition": job.definition, "house_style": HOUSE_STYLE,
        "character": window.character, "user": window.user, "scenario": window.scenario,
        "context": context_lines(window, usize::MAX), "first": first, "second": second,
    });
    let system = prompts.render("pairwise_system", &data)?;
    let user = prompts.render("pairwise_user", &data)?;
    let mut messages = vec![
        message(PromptRole::System, system),
        message(PromptRole::User, user),
    ];
    let max_tokens = setup.max_tokens;
    let (mut result, mut attempts) = setup
        .ask(
            &key,
            messages.clone(),
            max_tokens,
            seed,
            ragback_application::evaluation::verdict::verdict_schema(),
        )
        .await;
    if let Ok((completion, first)) = &result
        && matches!(
            parse_verdict(&completion.text, completion.finish_reason.as_deref()),
            Err(NoVerdict::ParseError { .. })
        )
    {
        messages.push(message(PromptRole::Assistant, completion.text.clone()));
        messages.push(message(PromptRole::User, REASK.into()));
        let first_cost = first.cost;
        let (again, more) = setup
            .ask(
                &key,
                messages,
                max_tokens,
                seed,
                ragback_application::evaluation::verdict::verdict_schema(),
            )
            .await;
        row.reasked = true;
        attempts = more;
        result = again.map(|(completion, mut answer)| {
            answer.cost = sum(answer.cost, first_cost);
            (completion, answer)
        });
    }
    row.attempts = attempts;
    match result {
        Ok((completion, answer)) => {
            if let Some(cost) = answer.cost {
                setup.budget.add(cost);
            }
            row.usage = Some(answer.usage);
            row.cost_usd = answer.cost;
            row.reason = Some(answer.text);
            match parse_verdict(&completion.text, completion.finish_reason.as_deref()) {
                Ok(verdict) => {
                    row.status = Status::Ok;
                    row.verdict_slot = Some(verdict);
                    row.verdict_arm = Some(to_arm(job.order, verdict));
                }
                Err(NoVerdict::Refused) => row.status = Status::Refused,
                Err(NoVerdict::ParseError { truncated }) => {
                    row.status = Status::ParseError;
                    row.truncated = Some(truncated);
                }
            }
        }
        Err(failure) => {
            row.status = failure_status(&failure);
            row.error = Some(failure.message);
        }
    }
    Ok(row)
}

/// The status of a call that failed after its retries.
pub(super) fn failure_status(failure: &super::Failure) -> Status {
    match failure.kind {
        super::super::calls::FailureKind::Refused => Status::Refused,
        _ => Status::ApiError,
    }
}

fn sum(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
    }
}
