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
use ragback_integrations::eval_prompts::{PAIRWISE, PAIRWISE_DIALOGUE};
use serde_json::{Value, json};

use super::super::calls::{stop_on_ctrl_c, tally};
use super::super::rows::{Judgment, Reply, Status, Unit};
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

/// The criteria over a whole conversation (`--unit dialogue`).
pub const DIALOGUE_CRITERIA: [(&str, &str); 3] = [
    (
        "in_character",
        "Across the whole conversation, which character stays more consistently in character: \
         the same personality, voice and speech habits from the first message to the last, what \
         the character would and would not know, facts established earlier kept? Breaking \
         character — speaking as an AI or assistant, mentioning rules or prompts, out-of-persona \
         moralising — anywhere is a severe failure.",
    ),
    (
        "scenario_focus",
        "Across the whole conversation, which character keeps better to the scene and the \
         scenario: answering the user each time, keeping place, time, people and events coherent \
         from turn to turn, moving the situation forward, without drifting to unrelated topics, \
         contradicting itself or the scene, or writing the user's words or actions?",
    ),
    (
        "engagement",
        "Across the whole conversation, which character makes the user more eager to keep \
         talking: vivid and specific, with emotion and initiative, hooks, questions, choices or \
         twists that the user takes up; not bland, generic, repetitive or assistant-like, and \
         not a conversation the user tires of? Do not reward length or flattery.",
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
    /// What is compared: `reply` (each window's replies, from `--windows` and `--replies`) or
    /// `dialogue` (each seed conversation's two simulated conversations, from `--dialogues`).
    #[arg(long, default_value = "reply", value_parser = ["reply", "dialogue"])]
    unit: String,
    /// The simulated conversations (`ragback eval simulate`'s `dialogues.jsonl`), with
    /// `--unit dialogue`.
    #[arg(long)]
    dialogues: Option<std::path::PathBuf>,
    /// The A/A check: the judge compares the arm `--a` with a second sample of itself (samples 0
    /// and 1, 2 and 3, …: `replay --samples 2`, `simulate --samples 2`). Its win rate must hold
    /// 0.5, its position bias and inconsistency stay in the policy's bounds.
    #[arg(long)]
    aa: bool,
}

/// One judge call to make: a pair, a criterion, an order.
pub(super) struct Job {
    /// The row, filled but for the call's outcome.
    pub(super) row: Judgment,
    pub(super) criterion: &'static str,
    pub(super) definition: &'static str,
    /// 1: A first, 2: B first, 0: identical (no call).
    pub(super) order: u8,
    /// The templates' data but the criterion and the candidates.
    pub(super) data: Arc<Value>,
    /// The candidates as the templates show them, A then B.
    pub(super) candidates: Arc<(Value, Value)>,
    /// The system and user templates.
    pub(super) templates: [&'static str; 2],
}

impl Job {
    fn key(&self) -> String {
        format!("{}|{}|{}", self.row.pair, self.criterion, self.order)
    }
}

/// A pair ready to be judged on every criterion: its row, its data and its candidates.
pub(super) struct Pair {
    pub(super) row: Judgment,
    pub(super) data: Value,
    pub(super) candidates: (Value, Value),
    pub(super) identical: bool,
}

impl Pair {
    /// The jobs of this pair: each criterion, both orders (one call-less row when identical).
    fn jobs(
        self,
        criteria: &[(&'static str, &'static str)],
        templates: [&'static str; 2],
    ) -> Vec<Job> {
        let (data, candidates) = (Arc::new(self.data), Arc::new(self.candidates));
        let orders: &[u8] = if self.identical { &[0] } else { &[1, 2] };
        let mut jobs = Vec::new();
        for (criterion, definition) in criteria {
            for order in orders {
                jobs.push(Job {
                    row: self.row.clone(),
                    criterion,
                    definition,
                    order: *order,
                    data: data.clone(),
                    candidates: candidates.clone(),
                    templates,
                });
            }
        }
        jobs
    }
}

/// The pair id of the `k`-th pair of `id`: `id` for the first, `id@k` after.
pub(super) fn pair_id(id: &str, k: u32) -> String {
    match k {
        0 => id.to_owned(),
        k => format!("{id}@{k}"),
    }
}

/// One comparison of a pair: its `k`-th, an arm's sample on each side.
pub(super) struct Match<'a> {
    /// Which comparison of the pair (its id's `@k`).
    pub k: u32,
    /// (arm, sample) on each side.
    pub sides: [(&'a str, u32); 2],
    /// Both sides are one arm (an A/A check).
    pub aa: bool,
}

/// The comparisons of arms `a` and `b` with samples `0..=samples`: `a`'s sample `s` against
/// `b`'s sample `s`, or (A/A) `a`'s samples `2k` and `2k + 1`.
pub(super) fn matches<'a>(a: &'a str, b: &'a str, samples: u32, aa: bool) -> Vec<Match<'a>> {
    if aa {
        (0..samples.div_ceil(2).max(1))
            .map(|k| Match {
                k,
                sides: [(a, 2 * k), (a, 2 * k + 1)],
                aa,
            })
            .collect()
    } else {
        (0..=samples)
            .map(|s| Match {
                k: s,
                sides: [(a, s), (b, s)],
                aa,
            })
            .collect()
    }
}

/// A judgment row of comparison `m` of the pair `id`, before any call: its arms labelled with
/// their samples in an A/A check.
pub(super) fn blank(
    setup: &Setup<Judgment>,
    prompt_sha256: &str,
    id: &str,
    m: &Match<'_>,
) -> Judgment {
    let arms = m.sides.map(|(arm, sample)| {
        if m.aa {
            format!("{arm}#{sample}")
        } else {
            arm.to_owned()
        }
    });
    Judgment {
        key: String::new(),
        pair: pair_id(id, m.k),
        dialogue: String::new(),
        unit: Unit::Reply,
        sample: m.k,
        aa: m.aa,
        bucket: None,
        period: None,
        criterion: String::new(),
        order: 0,
        arms,
        chars_a: 0,
        chars_b: 0,
        tokens_a: None,
        tokens_b: None,
        text_a: String::new(),
        text_b: String::new(),
        context_tail: Vec::new(),
        prompt_sha256: prompt_sha256.to_owned(),
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
    }
}

/// The pairs of replies: per window, arm A's sample `s` against B's sample `s` (or, A/A, A's
/// samples `2k` and `2k + 1`).
fn reply_pairs(
    setup: &Setup<Judgment>,
    prompt_sha256: &str,
    a: &str,
    b: &str,
    aa: bool,
) -> Vec<Pair> {
    let reply = |window: &str, arm: &str, sample: u32| {
        setup
            .replies
            .get(&format!("{window}|{arm}|{sample}"))
            .filter(|r| r.status == Status::Ok)
    };
    let samples = setup.replies.values().map(|r| r.sample).max().unwrap_or(0);
    let matches = matches(a, b, samples, aa);
    let mut ids: Vec<&String> = setup.windows.keys().collect();
    ids.sort();
    let (mut pairs, mut missing) = (Vec::new(), 0);
    for id in ids {
        let window = &setup.windows[id];
        for m in &matches {
            let [(arm_a, sa), (arm_b, sb)] = m.sides;
            let (Some(ra), Some(rb)) = (reply(id, arm_a, sa), reply(id, arm_b, sb)) else {
                missing += usize::from(m.k == 0);
                continue;
            };
            let text = |r: &Reply| r.text.clone().unwrap_or_default();
            let (ta, tb) = (text(ra), text(rb));
            let tokens = |r: &Reply| r.usage.map(|u| u.completion_tokens);
            let mut row = blank(setup, prompt_sha256, id, m);
            row.dialogue.clone_from(&window.dialogue);
            row.bucket = Some(window.bucket);
            row.period.clone_from(&window.period);
            row.chars_a = ta.chars().count();
            row.chars_b = tb.chars().count();
            row.tokens_a = tokens(ra);
            row.tokens_b = tokens(rb);
            row.context_tail = context_lines(window, 2);
            let data = json!({
                "character": window.character, "user": window.user, "scenario": window.scenario,
                "context": context_lines(window, usize::MAX),
            });
            pairs.push(Pair {
                identical: same_text(&ta, &tb),
                candidates: (json!(ta), json!(tb)),
                row: Judgment {
                    text_a: ta,
                    text_b: tb,
                    ..row
                },
                data,
            });
        }
    }
    if missing > 0 {
        eprintln!("pairwise: {missing} windows lack a reply of {a} or {b} (left out)");
    }
    pairs
}

/// Runs `ragback eval pairwise`.
pub async fn pairwise(args: PairwiseArgs, settings: &Settings) -> anyhow::Result<()> {
    let dialogue_unit = args.unit == "dialogue";
    let definitions = if dialogue_unit {
        &DIALOGUE_CRITERIA
    } else {
        &CRITERIA
    };
    let criteria: Vec<(&'static str, &'static str)> = args
        .criteria
        .split(',')
        .map(|c| {
            definitions
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
    let mut extra = json!({"a": args.a, "b": args.b, "criteria": args.criteria});
    if dialogue_unit {
        extra["unit"] = json!("dialogue");
        extra["dialogues"] = json!(args.dialogues);
    }
    if args.aa {
        extra["aa"] = json!(true);
    }
    let templates = if dialogue_unit {
        PAIRWISE_DIALOGUE
    } else {
        PAIRWISE
    };
    let (setup, prompts) =
        setup::<Judgment>(&args.common, settings, "pairwise", &templates, extra)?;
    let setup = Arc::new(setup);
    let pairs = if dialogue_unit {
        let path = args
            .dialogues
            .as_deref()
            .context("--unit dialogue needs --dialogues (simulate's dialogues.jsonl)")?;
        super::dialogue::pairs(&setup, prompts.sha256(), path, &args.a, &args.b, args.aa)?
    } else {
        args.common.inputs()?;
        reply_pairs(&setup, prompts.sha256(), &args.a, &args.b, args.aa)
    };
    let jobs: Vec<Job> = pairs
        .into_iter()
        .flat_map(|pair| pair.jobs(&criteria, templates))
        .collect();
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
    let results = futures::stream::iter(todo)
        .map(|job| {
            let (setup, prompts, stop) = (setup.clone(), prompts.clone(), stop.clone());
            async move {
                if stop.load(Ordering::SeqCst) || setup.budget.exhausted() {
                    return Ok(None);
                }
                let row = judge(&setup, &prompts, job, seed).await?;
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
    seed: Option<u64>,
) -> anyhow::Result<Judgment> {
    let key = job.key();
    let mut row = Judgment {
        key: key.clone(),
        criterion: job.criterion.to_owned(),
        order: job.order,
        ..job.row
    };
    if job.order == 0 {
        return Ok(row);
    }
    let (a, b) = &*job.candidates;
    let (first, second) = if first_shown(job.order) == Arm::A {
        (a, b)
    } else {
        (b, a)
    };
    row.slot_a = Some(if job.order == 1 { "A" } else { "B" }.to_owned());
    let mut data = (*job.data).clone();
    data["criterion"] = json!(job.criterion);
    data["definition"] = json!(job.definition);
    data["house_style"] = json!(HOUSE_STYLE);
    data["first"] = first.clone();
    data["second"] = second.clone();
    let system = prompts.render(job.templates[0], &data)?;
    let user = prompts.render(job.templates[1], &data)?;
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
