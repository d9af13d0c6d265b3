//! `ragback eval moderate`: every reply of every arm tagged, by the LLM judge (with the story as
//! context) or by OpenAI's moderation endpoint (the message alone).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::bail;
use clap::Args;
use futures::StreamExt;
use ragback_application::evaluation::moderation::{Tag, parse_tags, tags_from_openai};
use ragback_application::evaluation::verdict::looks_like_refusal;
use ragback_application::ports::{GuardInput, GuardTag, PromptRole, Speaker};
use ragback_infrastructure::{Settings, build_embedder, build_guard};
use ragback_integrations::eval_prompts::{EvalPrompts, MODERATION};
use serde_json::json;

use super::super::calls::{Failure, retrying, stop_on_ctrl_c, tally};
use super::super::dialogues::{Window, windows_by_id};
use super::super::journal::{Journal, read_journal};
use super::super::rows::{Reply, Status, Tagging};
use super::pairwise::failure_status;
use super::{JudgeArgs, Setup, context_lines, finish, message, setup};

/// `ragback eval moderate`.
#[derive(Debug, Args)]
pub struct ModerateArgs {
    #[command(flatten)]
    common: JudgeArgs,
    /// Earlier messages shown with each reply.
    #[arg(long, default_value_t = 6)]
    context: usize,
    /// Who tags: `judge` (the LLM judge, every tag, with the story as context), `openai`
    /// (OpenAI's moderation endpoint, `RAGBACK_EVAL__MODERATION__*`: the message alone, no
    /// `real_meeting`, `sexting` or `error`) or `classifier` (the reply guard in this process,
    /// its rules and its trained classifier: every reply at once, no key; no `sexting`).
    #[arg(long, default_value = "judge", value_parser = ["judge", "openai", "classifier"])]
    adapter: String,
    /// With `--adapter openai`: flag a category from this score on, instead of by the API's
    /// own booleans.
    #[arg(long)]
    openai_threshold: Option<f64>,
    /// With `--adapter classifier`: this classifier file instead of `RAGBACK_GUARD__CLASSIFIER`
    /// (`data/safety/classifier-static.json` tags thousands of replies a second, more bluntly).
    #[arg(long)]
    classifier: Option<std::path::PathBuf>,
}

/// Replies tagged at once by `--adapter classifier`.
const GUARD_BATCH: usize = 256;

/// The replies to tag: every made reply of a known window, by key, without those already tagged
/// for good or out of attempts.
fn to_tag<'r, R: super::super::rows::Row>(
    replies: &'r HashMap<String, Reply>,
    windows: &HashMap<String, Window>,
    journal: &Journal<R>,
    max_attempts: u32,
) -> Vec<&'r Reply> {
    let mut todo: Vec<&Reply> = replies
        .values()
        .filter(|r| r.status == Status::Ok && windows.contains_key(&r.window))
        .filter(|r| !journal.is_final(&r.key) && journal.attempts(&r.key) < max_attempts)
        .collect();
    todo.sort_by(|a, b| a.key.cmp(&b.key));
    todo
}

/// A row of `reply`'s tags, before the call's outcome is known.
fn tagging(reply: &Reply, window: &Window, adapter: &str, model: &str, attempts: u32) -> Tagging {
    Tagging {
        adapter: adapter.to_owned(),
        key: reply.key.clone(),
        window: window.id.clone(),
        dialogue: window.dialogue.clone(),
        arm: reply.arm.clone(),
        text: reply.text.clone().unwrap_or_default(),
        context_tail: context_lines(window, 2),
        attempts,
        prompt_sha256: None,
        judge_model: model.to_owned(),
        smoke_test_judge: false,
        status: Status::ApiError,
        usage: None,
        cost_usd: None,
        tags: None,
        evidence: None,
        flagged: None,
        category_scores: None,
        answer: None,
        error: None,
    }
}

/// Runs `ragback eval moderate`: every reply of every arm, tagged.
pub async fn moderate(args: ModerateArgs, settings: &Settings) -> anyhow::Result<()> {
    let (_, replies) = args.common.inputs()?;
    let replies = replies.to_owned();
    match args.adapter.as_str() {
        "openai" => return moderate_openai(args, settings).await,
        "classifier" => return moderate_with_guard(args, settings).await,
        _ => {}
    }
    let (setup, prompts) = setup::<Tagging>(
        &args.common,
        settings,
        "moderate",
        &MODERATION,
        json!({"context": args.context}),
    )?;
    let setup = Arc::new(setup);
    let todo: Vec<Reply> = to_tag(
        &setup.replies,
        &setup.windows,
        &setup.journal,
        setup.retries.max_attempts,
    )
    .into_iter()
    .cloned()
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
                let row = tag(&setup, &prompts, &reply, context, seed).await?;
                setup.journal.append(&row)?;
                Ok::<_, anyhow::Error>(Some(row.status == Status::Ok))
            }
        })
        .buffer_unordered(args.common.calls.concurrency.max(1));
    let (ok, failed) = tally(results).await?;
    if ok + failed == 0 && setup.journal.done.is_empty() {
        bail!("no replies to moderate in {}", replies.display());
    }
    finish(&setup, &stop, ok, failed, &args.common.out)
}

/// One reply tagged by the judge (asked again once for the JSON object when the answer is
/// neither tags nor a refusal).
async fn tag(
    setup: &Setup<Tagging>,
    prompts: &EvalPrompts,
    reply: &Reply,
    context: usize,
    seed: Option<u64>,
) -> anyhow::Result<Tagging> {
    let window = &setup.windows[&reply.window];
    let text = reply.text.as_deref().unwrap_or_default();
    let data = json!({
        "character": window.character, "user": window.user,
        "context": context_lines(window, context), "target": text,
    });
    let system = prompts.render("moderation_system", &data)?;
    let user = prompts.render("moderation_user", &data)?;
    let mut messages = vec![
        message(PromptRole::System, system),
        message(PromptRole::User, user),
    ];
    let (mut result, mut attempts) = setup
        .ask(
            &reply.key,
            messages.clone(),
            200,
            seed,
            ragback_application::evaluation::moderation::tags_schema(),
        )
        .await;
    if let Ok((completion, _)) = &result
        && parse_tags(&completion.text).is_err()
        && !looks_like_refusal(&completion.text)
    {
        messages.push(message(PromptRole::Assistant, completion.text.clone()));
        messages.push(message(
            PromptRole::User,
            "Answer with the JSON object only.".into(),
        ));
        (result, attempts) = setup
            .ask(
                &reply.key,
                messages,
                200,
                seed,
                ragback_application::evaluation::moderation::tags_schema(),
            )
            .await;
    }
    let mut row = tagging(reply, window, "judge", &setup.model, attempts);
    row.prompt_sha256 = Some(prompts.sha256().to_owned());
    row.smoke_test_judge = setup.judge.smoke_test;
    match result {
        Ok((completion, answer)) => {
            if let Some(cost) = answer.cost {
                setup.budget.add(cost);
            }
            row.usage = Some(answer.usage);
            row.cost_usd = answer.cost;
            match parse_tags(&completion.text) {
                Ok(tags) => {
                    row.status = Status::Ok;
                    row.tags = Some(tags.flagged);
                    row.evidence = Some(tags.evidence);
                }
                Err(_)
                    if looks_like_refusal(&completion.text)
                        || completion.finish_reason.as_deref() == Some("content_filter") =>
                {
                    row.status = Status::Refused;
                    row.answer = Some(completion.text);
                }
                Err(error) => {
                    row.status = Status::ParseError;
                    row.error = Some(error.to_string());
                    row.answer = Some(completion.text);
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

/// What a tagger other than the judge reads and writes: the windows by id, the replies, and its
/// journal, whose configuration is `config` with the two inputs' paths.
#[allow(clippy::type_complexity)]
fn tagger_inputs(
    common: &JudgeArgs,
    mut config: serde_json::Value,
) -> anyhow::Result<(
    HashMap<String, Window>,
    HashMap<String, Reply>,
    Journal<Tagging>,
)> {
    config["windows"] = json!(common.windows);
    config["replies"] = json!(common.replies);
    let (windows, replies) = common.inputs()?;
    let windows = windows_by_id(windows)?;
    let (_, replies) = read_journal::<Reply>(replies)?;
    let journal = Journal::open(&common.out, "moderate", &config, common.calls.new_run)?;
    Ok((windows, replies, journal))
}

/// `moderate --adapter openai`: the replies in batches of 32 through OpenAI's moderation
/// endpoint; raw scores are kept beside the tags.
async fn moderate_openai(args: ModerateArgs, settings: &Settings) -> anyhow::Result<()> {
    let api = ragback_infrastructure::build_moderation(settings)?;
    let common = &args.common;
    let (windows, replies, journal) = tagger_inputs(
        common,
        json!({"adapter": "openai", "model": api.model(), "threshold": args.openai_threshold}),
    )?;
    let retries = common.calls.retries();
    let units = to_tag(&replies, &windows, &journal, retries.max_attempts);
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
            .map(|r| r.text.clone().unwrap_or_default())
            .collect();
        let spent = batch
            .iter()
            .map(|r| journal.attempts(&r.key))
            .max()
            .unwrap_or(0);
        let (result, attempts) = retrying(retries, spent, || async {
            api.moderate(&texts)
                .await
                .map_err(|error| Failure::upstream(&error))
        })
        .await;
        for (i, reply) in batch.iter().enumerate() {
            let window = &windows[&reply.window];
            let mut row = tagging(reply, window, "openai", api.model(), attempts);
            match &result {
                Ok(results) => {
                    row.status = Status::Ok;
                    row.tags = Some(tags_from_openai(&results[i], args.openai_threshold));
                    row.flagged = Some(results[i].flagged);
                    row.category_scores = Some(json!(results[i].scores));
                    row.evidence = Some(String::new());
                    ok += 1;
                }
                Err(failure) => {
                    row.error = Some(failure.message.clone());
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

/// `moderate --adapter classifier`: the reply guard (its rules and its trained classifier) tags
/// every reply in this process — the design's "check far larger volumes" once the classifier has
/// learned the judge's tags. Beside the judge's journal in `eval report`, Cohen's κ per tag says
/// how far they agree.
async fn moderate_with_guard(args: ModerateArgs, settings: &Settings) -> anyhow::Result<()> {
    let mut settings = settings.clone();
    if let Some(file) = &args.classifier {
        settings.guard.classifier = Some(file.clone());
    }
    let guard = build_guard(&settings, build_embedder(&settings)?)?;
    let model = guard.names().join("+");
    let common = &args.common;
    let (windows, replies, journal) =
        tagger_inputs(common, json!({"adapter": "classifier", "guards": model}))?;
    let units = to_tag(
        &replies,
        &windows,
        &journal,
        common.calls.retries().max_attempts,
    );
    eprintln!(
        "moderate: {} replies to tag with the reply guard ({model})",
        units.len()
    );
    let stop = stop_on_ctrl_c();
    let started = std::time::Instant::now();
    let mut tagged = 0usize;
    for batch in units.chunks(GUARD_BATCH) {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let parties: Vec<(String, String, bool)> = batch
            .iter()
            .map(|reply| {
                let window = &windows[&reply.window];
                let name = |party: &serde_json::Value, default: &'static str| {
                    party["name"].as_str().unwrap_or(default).to_owned()
                };
                (
                    name(&window.user, "user"),
                    name(&window.character, "character"),
                    window.user["age"].as_u64().is_some_and(|age| age < 18),
                )
            })
            .collect();
        let inputs: Vec<GuardInput<'_>> = batch
            .iter()
            .zip(&parties)
            .map(|(reply, (user, character, minor))| GuardInput {
                text: reply.text.as_deref().unwrap_or_default(),
                speaker: Speaker::Character,
                user_name: user,
                character_name: character,
                minor: *minor,
                replying_to: None,
            })
            .collect();
        let reviews = guard.review_many(&inputs).await;
        for (reply, review) in batch.iter().zip(reviews) {
            let mut row = tagging(reply, &windows[&reply.window], "classifier", &model, 1);
            match review.failed {
                Some(error) => row.error = Some(error.to_string()),
                None => {
                    row.status = Status::Ok;
                    let mut tags: Vec<Tag> = review
                        .tags
                        .iter()
                        .filter_map(|t| moderation_tag(*t))
                        .collect();
                    tags.dedup();
                    row.tags = Some(tags);
                    row.evidence = Some(String::new());
                }
            }
            journal.append(&row)?;
            tagged += 1;
        }
    }
    journal.finish()?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "{tagged} replies tagged in {seconds:.1} s ({:.0} a second) -> {}",
        tagged as f64 / seconds.max(1e-9),
        common.out.display()
    );
    if stop.load(Ordering::SeqCst) {
        return Err(crate::cli::Interrupted.into());
    }
    Ok(())
}

/// The moderation tag of a guard tag (the consistency tags but `user_voice` are not the floor's;
/// speaking for the user is one of the judge's plain defects).
fn moderation_tag(tag: GuardTag) -> Option<Tag> {
    match tag {
        GuardTag::SelfHarm => Some(Tag::SelfHarm),
        GuardTag::Sexual => Some(Tag::Sexual),
        GuardTag::Minor => Some(Tag::Minor),
        GuardTag::RealMeeting => Some(Tag::RealMeeting),
        GuardTag::Hate => Some(Tag::Hate),
        GuardTag::Violence => Some(Tag::Violence),
        GuardTag::UserVoice => Some(Tag::Error),
        GuardTag::Assistant | GuardTag::Meta | GuardTag::Truncated | GuardTag::Banned => None,
    }
}
