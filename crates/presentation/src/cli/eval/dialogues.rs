//! Dialogue logs (`dialogues.jsonl`, one dialogue per line), `eval import` and `eval windows`.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use ragback_application::evaluation::windows::{
    self, Bucket, Candidate, Sampling, Speaker, WindowSpec,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::journal::read_lines;

/// One dialogue: `user`, `character` and `scenario` are exactly what `/generate` takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dialogue {
    /// Unique id.
    pub id: String,
    /// Where it comes from (`prod`, `demo`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The user object of `/generate`.
    pub user: Value,
    /// The character object of `/generate`.
    pub character: Value,
    /// The scene.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// The messages, oldest first.
    pub messages: Vec<LoggedMessage>,
    /// Anything else is kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// A message of a dialogue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoggedMessage {
    /// `user` or `character`.
    #[serde(alias = "actor")]
    pub role: String,
    /// What was said.
    pub text: String,
    /// When (RFC 3339), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    /// The model version that wrote a character message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The variant that wrote a character message (`/generate`'s `variant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Anything else (facts used, …) is kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// Reads and validates a dialogue log: unique ids, roles `user|character`, non-empty texts,
/// `ts` non-decreasing, a user and a character with names; every error names `file:line`.
pub fn read_dialogues(path: &Path) -> anyhow::Result<Vec<Dialogue>> {
    let mut seen = HashSet::new();
    let mut dialogues = Vec::new();
    for (line, dialogue) in read_lines::<Dialogue>(path)? {
        let at = || format!("{}:{line}", path.display());
        if !seen.insert(dialogue.id.clone()) {
            bail!("{}: the dialogue id {:?} is used twice", at(), dialogue.id);
        }
        for (who, object) in [("user", &dialogue.user), ("character", &dialogue.character)] {
            if object
                .get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                bail!("{}: the {who} has no name", at());
            }
        }
        let mut last_ts: Option<&str> = None;
        for (i, message) in dialogue.messages.iter().enumerate() {
            if !matches!(message.role.as_str(), "user" | "character") {
                bail!(
                    "{}: message {i} has the role {:?} (user or character)",
                    at(),
                    message.role
                );
            }
            if message.text.trim().is_empty() {
                bail!("{}: message {i} is empty", at());
            }
            if let Some(ts) = message.ts.as_deref() {
                if last_ts.is_some_and(|last| ts < last) {
                    bail!(
                        "{}: message {i} is older than the one before it ({ts})",
                        at()
                    );
                }
                last_ts = Some(ts);
            }
        }
        dialogues.push(dialogue);
    }
    Ok(dialogues)
}

/// `ragback eval import`: wraps a chat saved by `ragback chat` (`/save`) into one dialogue line.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The saved chat: its `{"session": {"user", "character", "scenario"?}}` line (written by
    /// `/save`), then one `{"role", "text"}` per line.
    #[arg(long)]
    chat_log: PathBuf,
    /// The character, as `/generate` takes it (default: the saved chat's, else
    /// `data/character.json`).
    #[arg(long)]
    character: Option<PathBuf>,
    /// The user, as `/generate` takes it (default: the saved chat's, else `data/user.json`).
    #[arg(long)]
    user: Option<PathBuf>,
    /// The scene (default: the saved chat's).
    #[arg(long)]
    scenario: Option<String>,
    /// The model label of the character's messages.
    #[arg(long)]
    model_label: String,
    /// The dialogue's id.
    #[arg(long)]
    id: String,
    /// Where it comes from.
    #[arg(long, default_value = "local")]
    source: String,
    /// Append the line to this dialogue log (validated with it) instead of printing it.
    #[arg(long)]
    append_to: Option<PathBuf>,
}

/// Runs `ragback eval import`.
pub fn import(args: ImportArgs) -> anyhow::Result<()> {
    let object = |path: &Path| -> anyhow::Result<Value> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a JSON object", path.display()))
    };
    let mut messages = Vec::new();
    let mut session = Value::Null;
    for (line, value) in read_lines::<Value>(&args.chat_log)? {
        if let Some(saved) = value.get("session") {
            session = saved.clone();
            continue;
        }
        let mut message: LoggedMessage = serde_json::from_value(value)
            .with_context(|| format!("{}:{line}: not a message", args.chat_log.display()))?;
        if message.role == "character" {
            message.model = Some(args.model_label.clone());
        }
        message.extra.insert("line".into(), Value::from(line));
        messages.push(message);
    }
    // A flag wins over the saved chat, which wins over the demo files.
    let party = |flag: &Option<PathBuf>, key: &str, demo: &str| -> anyhow::Result<Value> {
        match (flag, session.get(key)) {
            (Some(path), _) => object(path),
            (None, Some(saved)) if saved.is_object() => Ok(saved.clone()),
            (None, _) => object(Path::new(demo)),
        }
    };
    let dialogue = Dialogue {
        id: args.id,
        source: Some(args.source),
        user: party(&args.user, "user", "data/user.json")?,
        character: party(&args.character, "character", "data/character.json")?,
        scenario: args.scenario.or_else(|| {
            session
                .get("scenario")
                .and_then(Value::as_str)
                .map(str::to_owned)
        }),
        messages,
        extra: serde_json::Map::new(),
    };
    let line = serde_json::to_string(&dialogue)?;
    match args.append_to {
        None => println!("{line}"),
        Some(path) => {
            let scratch = tempfile::NamedTempFile::new()?;
            std::fs::write(scratch.path(), format!("{line}\n"))?;
            read_dialogues(scratch.path()).context("the imported dialogue is invalid")?;
            if path.exists() && read_dialogues(&path)?.iter().any(|d| d.id == dialogue.id) {
                bail!(
                    "{} already holds a dialogue {:?}",
                    path.display(),
                    dialogue.id
                );
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            writeln!(file, "{line}")?;
            eprintln!(
                "{}: dialogue {} added ({} messages)",
                path.display(),
                dialogue.id,
                dialogue.messages.len()
            );
        }
    }
    Ok(())
}

/// `ragback eval windows`.
#[derive(Debug, Args)]
pub struct WindowsArgs {
    /// The dialogue log.
    #[arg(long)]
    dialogues: PathBuf,
    /// Where to write the windows (JSONL).
    #[arg(long)]
    out: PathBuf,
    /// Messages per window, the target included.
    #[arg(long, default_value_t = 20)]
    window: usize,
    /// Least distance between two targets of a dialogue.
    #[arg(long, default_value_t = 5)]
    stride: usize,
    /// Fewest context messages of a target.
    #[arg(long, default_value_t = 2)]
    min_context: usize,
    /// Windows to draw (default: all, capped per dialogue).
    #[arg(long)]
    sample: Option<usize>,
    /// Relative quotas of the position buckets.
    #[arg(long, default_value = "begin=1,middle=1,end=1")]
    buckets: String,
    /// Most windows from one dialogue.
    #[arg(long, default_value_t = 4)]
    max_per_dialogue: usize,
    /// Only targets written by this model label (the `logged` arm's model).
    #[arg(long)]
    logged_model: Option<String>,
    /// Only targets written by this variant (logged as the message's `variant`).
    #[arg(long)]
    logged_variant: Option<String>,
    /// Seed of the draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// `period`: draw the same number of windows from each source period (a dialogue's
    /// `period`, else the ISO week of its first message), so that a verdict can be required to
    /// hold in each (`report --strata period`).
    #[arg(long, value_parser = ["period"])]
    strata: Option<String>,
}

/// A dialogue's source period: its own `period`, else the ISO week of its first message.
pub fn source_period(dialogue: &Dialogue) -> Option<String> {
    dialogue
        .extra
        .get("period")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            dialogue
                .messages
                .iter()
                .find_map(|m| m.ts.as_deref())
                .and_then(windows::iso_week)
        })
}

/// A replay window, self-contained: what `/generate` needs, and the logged reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Window {
    /// `"{dialogue}#{index}"`.
    pub id: String,
    /// The dialogue.
    pub dialogue: String,
    /// The target's index in it.
    pub index: usize,
    /// Its position bucket.
    pub bucket: Bucket,
    /// `/generate`'s user.
    pub user: Value,
    /// `/generate`'s character.
    pub character: Value,
    /// The scene.
    #[serde(default)]
    pub scenario: Option<String>,
    /// The messages before the target (at most `window − 1`).
    pub context: Vec<ContextMessage>,
    /// The reply in the log and the model that wrote it.
    pub logged: ContextMessage,
    /// The logged reply's model label.
    #[serde(default)]
    pub logged_model: Option<String>,
    /// The variant that wrote the logged reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logged_variant: Option<String>,
    /// The source of the dialogue.
    #[serde(default)]
    pub source: Option<String>,
    /// The dialogue's source period ([`source_period`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
}

/// A message as `/generate` takes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContextMessage {
    /// `user` or `character`.
    pub role: String,
    /// The text.
    pub text: String,
}

fn parse_buckets(spec: &str) -> anyhow::Result<Vec<(Bucket, u32)>> {
    spec.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|part| {
            let (name, weight) = part
                .split_once('=')
                .with_context(|| format!("--buckets: {part:?} is not NAME=WEIGHT"))?;
            let bucket = Bucket::ALL
                .into_iter()
                .find(|b| b.as_str() == name.trim())
                .with_context(|| format!("--buckets: no bucket {name:?} (begin, middle, end)"))?;
            let weight = weight
                .trim()
                .parse()
                .with_context(|| format!("--buckets: {weight:?}"))?;
            Ok((bucket, weight))
        })
        .collect()
}

/// Runs `ragback eval windows`.
pub fn windows(args: WindowsArgs) -> anyhow::Result<()> {
    let dialogues = read_dialogues(&args.dialogues)?;
    let spec = WindowSpec {
        window: args.window,
        stride: args.stride,
        min_context: args.min_context,
    };
    let mut candidates = Vec::new();
    for dialogue in &dialogues {
        let speakers: Vec<Speaker> = dialogue
            .messages
            .iter()
            .map(|m| {
                if m.role == "user" {
                    Speaker::User
                } else {
                    Speaker::Character
                }
            })
            .collect();
        for target in windows::targets(&speakers, spec) {
            let message = &dialogue.messages[target.index];
            let unwanted = |want: &Option<String>, got: &Option<String>| {
                want.as_ref().is_some_and(|want| got.as_ref() != Some(want))
            };
            if unwanted(&args.logged_model, &message.model)
                || unwanted(&args.logged_variant, &message.variant)
            {
                continue;
            }
            candidates.push(Candidate {
                dialogue: dialogue.id.clone(),
                index: target.index,
                bucket: target.bucket,
            });
        }
    }
    let sampling = Sampling {
        total: args.sample,
        buckets: parse_buckets(&args.buckets)?,
        max_per_dialogue: args.max_per_dialogue,
        seed: args.seed,
    };
    let by_id: std::collections::HashMap<&str, &Dialogue> =
        dialogues.iter().map(|d| (d.id.as_str(), d)).collect();
    let chosen = if args.strata.is_some() {
        // One draw per period, each with an equal share of the total (the last takes the rest).
        let mut periods: std::collections::BTreeMap<Option<String>, Vec<Candidate>> =
            Default::default();
        for candidate in candidates.iter().cloned() {
            periods
                .entry(source_period(by_id[candidate.dialogue.as_str()]))
                .or_default()
                .push(candidate);
        }
        let count = periods.len();
        let mut chosen = Vec::new();
        for (i, (_, group)) in periods.iter().enumerate() {
            let total = sampling
                .total
                .map(|t| t / count + usize::from(i < t % count));
            chosen.extend(windows::sample(
                group,
                &Sampling {
                    total,
                    ..sampling.clone()
                },
            ));
        }
        chosen.sort_by(|a, b| (&a.dialogue, a.index).cmp(&(&b.dialogue, b.index)));
        eprintln!("{count} source periods, sampled alike");
        chosen
    } else {
        windows::sample(&candidates, &sampling)
    };
    let mut out = String::new();
    for candidate in &chosen {
        let dialogue = by_id[candidate.dialogue.as_str()];
        let start = (candidate.index + 1).saturating_sub(spec.window.max(2));
        let message = |m: &LoggedMessage| ContextMessage {
            role: m.role.clone(),
            text: m.text.clone(),
        };
        let target = &dialogue.messages[candidate.index];
        let window = Window {
            id: candidate.id(),
            dialogue: dialogue.id.clone(),
            index: candidate.index,
            bucket: candidate.bucket,
            user: dialogue.user.clone(),
            character: dialogue.character.clone(),
            scenario: dialogue.scenario.clone(),
            context: dialogue.messages[start..candidate.index]
                .iter()
                .map(message)
                .collect(),
            logged: message(target),
            logged_model: target.model.clone(),
            logged_variant: target.variant.clone(),
            source: dialogue.source.clone(),
            period: source_period(dialogue),
        };
        out.push_str(&serde_json::to_string(&window)?);
        out.push('\n');
    }
    super::journal::write_atomically(&args.out, out.as_bytes())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let count = |b: Bucket| chosen.iter().filter(|c| c.bucket == b).count();
    eprintln!(
        "{} windows of {} dialogues ({} candidates): begin {}, middle {}, end {} -> {}",
        chosen.len(),
        dialogues.len(),
        candidates.len(),
        count(Bucket::Begin),
        count(Bucket::Middle),
        count(Bucket::End),
        args.out.display()
    );
    Ok(())
}

/// Reads a windows file.
pub fn read_windows(path: &Path) -> anyhow::Result<Vec<Window>> {
    Ok(read_lines::<Window>(path)?
        .into_iter()
        .map(|(_, w)| w)
        .collect())
}

/// The windows of `path`, by id.
pub fn windows_by_id(path: &Path) -> anyhow::Result<std::collections::HashMap<String, Window>> {
    Ok(read_windows(path)?
        .into_iter()
        .map(|w| (w.id.clone(), w))
        .collect())
}
