//! `ragback guard train` and `ragback guard eval`: the classifier fitted on labelled texts, and
//! every guard measured on them.
//!
//! Labels are JSON lines of either form: `{"text", "role"?: "user" | "character", "tags": [..]}`
//! (a hand-labelled set, `data/safety/`), or the rows of `ragback eval moderate`'s journal
//! (`"kind": "moderation"`, with the reply's text and the judge's tags; `sexting` counts as
//! `sexual`, `error` is not a guard tag).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use ragback_application::evaluation::stats::wilson;
use ragback_application::guard::classifier::{
    ClassifierModel, Example, FOLDS, Metrics, Role, Training, train as fit,
};
use ragback_application::ports::{
    Embedder, EmbeddingPurpose, Guard, GuardInput, GuardTag, Speaker,
};
use ragback_infrastructure::{Settings, build_embedder, build_static_embedder, is_static};
use ragback_integrations::digest::sha256_hex;
use ragback_integrations::guard::{ClassifierGuard, RuleGuard, load_classifier};
use serde_json::Value;

/// `ragback guard train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Labelled texts (repeatable).
    #[arg(long = "labels", required = true)]
    labels: Vec<PathBuf>,
    /// Where the classifier goes.
    #[arg(long, default_value = "data/safety/classifier.json")]
    out: PathBuf,
    /// The recall each tag's threshold is chosen for, on held-out scores (five folds, by a hash
    /// of each text, or of its `group`).
    #[arg(long, default_value_t = 0.95)]
    target_recall: f64,
    /// The precision a tag's head must keep on held-out scores; a head that cannot is not
    /// written (the rules keep checking its tag).
    #[arg(long, default_value_t = 0.7)]
    min_precision: f64,
    /// Train on the static vectors (the local model's word pieces, averaged): a blunter
    /// classifier for bulk tagging, a thousand times faster (`eval moderate --adapter classifier
    /// --classifier FILE`).
    #[arg(long = "static")]
    r#static: bool,
}

/// `ragback guard eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Labelled texts (repeatable).
    #[arg(long = "labels", required = true)]
    labels: Vec<PathBuf>,
    /// The classifier (default: RAGBACK_GUARD__CLASSIFIER).
    #[arg(long)]
    classifier: Option<PathBuf>,
}

/// A labelled text.
struct Labelled {
    text: String,
    speaker: Speaker,
    tags: Vec<GuardTag>,
    /// Texts of one group (variants of one sentence) stay on one side of the validation split.
    group: String,
}

/// The tag of a label, as the guard knows it (`None`: not a guard tag).
fn guard_tag(name: &str) -> Option<GuardTag> {
    match name {
        "sexting" => Some(GuardTag::Sexual),
        other => GuardTag::parse(other),
    }
}

/// Reads labelled texts, and the SHA-256 of the files' bytes.
fn read_labels(paths: &[PathBuf]) -> anyhow::Result<(Vec<Labelled>, String)> {
    let mut labelled = Vec::new();
    let mut bytes = Vec::new();
    for path in paths {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        for (number, line) in BufReader::new(file).lines().enumerate() {
            let at = || format!("{}:{}", path.display(), number + 1);
            let line = line.with_context(|| format!("{}: cannot read", at()))?;
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
            if line.trim().is_empty() {
                continue;
            }
            let row: Value = serde_json::from_str(&line)
                .with_context(|| format!("{}: not a JSON object", at()))?;
            match row["kind"].as_str() {
                Some("run") => continue,
                Some("moderation") if row["status"] != "ok" => continue,
                _ => {}
            }
            let text = row["text"]
                .as_str()
                .with_context(|| format!("{}: no `text`", at()))?
                .to_owned();
            let speaker = match row["role"].as_str() {
                None | Some("character" | "assistant") => Speaker::Character,
                Some("user") => Speaker::User,
                Some(other) => bail!("{}: role `{other}`: user or character", at()),
            };
            let mut tags = Vec::new();
            for tag in row["tags"].as_array().into_iter().flatten() {
                let name = tag
                    .as_str()
                    .with_context(|| format!("{}: a tag is not text", at()))?;
                match guard_tag(name) {
                    Some(tag) => tags.push(tag),
                    None if name == "error" => {}
                    None => bail!("{}: `{name}` is not a guard tag", at()),
                }
            }
            tags.sort();
            tags.dedup();
            let group = row["group"].as_str().unwrap_or(&text).to_owned();
            labelled.push(Labelled {
                text,
                speaker,
                tags,
                group,
            });
        }
    }
    if labelled.is_empty() {
        bail!("no labelled texts in {paths:?}");
    }
    Ok((labelled, sha256_hex(&bytes)))
}

/// The embedder a classifier needs: the static vectors for one trained on them (`static/…`),
/// else the configured embedder.
fn embedder(settings: &Settings, trained_on: Option<&str>) -> anyhow::Result<Arc<dyn Embedder>> {
    if trained_on.is_some_and(is_static) {
        return Ok(build_static_embedder(settings)?);
    }
    build_embedder(settings)?.context(
        "the classifier needs an embedder: RAGBACK_EMBEDDER__PROVIDER=local (the default) or a \
         Cohere key",
    )
}

/// The texts' embeddings, in batches.
async fn embed_all(embedder: &dyn Embedder, texts: &[Labelled]) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut vectors = Vec::with_capacity(texts.len());
    for batch in texts.chunks(32) {
        let batch: Vec<String> = batch.iter().map(|l| l.text.clone()).collect();
        vectors.extend(embedder.embed(&batch, EmbeddingPurpose::Query).await?);
    }
    Ok(vectors)
}

/// Runs `ragback guard train`.
pub async fn train(args: TrainArgs, settings: &Settings) -> anyhow::Result<()> {
    let (labelled, data_sha256) = read_labels(&args.labels)?;
    let embedder = embedder(settings, args.r#static.then_some("static/"))?;
    eprintln!(
        "embedding {} labelled texts with {}…",
        labelled.len(),
        embedder.model_id()
    );
    let vectors = embed_all(embedder.as_ref(), &labelled).await?;
    let dimension = vectors.first().map_or(0, Vec::len);
    let examples: Vec<Example> = labelled
        .iter()
        .zip(vectors)
        .map(|(l, vector)| Example {
            vector,
            speaker: l.speaker,
            tags: l.tags.clone(),
            fold: usize::from(sha256_hex(l.group.as_bytes()).as_bytes()[0]) % FOLDS,
        })
        .collect();
    let model = fit(
        &examples,
        embedder.model_id(),
        dimension,
        &data_sha256,
        Training {
            target_recall: args.target_recall,
            min_precision: args.min_precision,
            ..Training::default()
        },
    );
    let json = serde_json::to_string(&model)? + "\n";
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    crate::cli::eval::write_atomically(&args.out, json.as_bytes())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("held-out scores (5-fold cross-validation), at each head's threshold:");
    for head in &model.heads {
        print_metrics(
            &format!("{} ({})", head.tag.key(), role_name(head.role)),
            &head.validation,
        );
    }
    for (tag, role) in &model.dropped {
        println!(
            "  {:<28} not shipped: no threshold keeps precision {} on held-out scores",
            format!("{} ({})", tag.key(), role_name(*role)),
            args.min_precision
        );
    }
    eprintln!("-> {}", args.out.display());
    Ok(())
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user messages",
        Role::Character => "replies",
    }
}

/// `tag  P 0.95 [0.80, 0.99]  R …  F1 …  (n)` with Wilson intervals.
fn print_metrics(name: &str, m: &Metrics) {
    let interval = |k: usize, n: usize| {
        wilson(k as u64, n as u64).map_or("—".to_owned(), |ci| {
            format!("[{:.2}, {:.2}]", ci.low, ci.high)
        })
    };
    let flagged = m.true_positives + m.false_positives;
    println!(
        "  {name:<28} precision {:.3} {}  recall {:.3} {}  F1 {:.3}  ({} with, {} without)",
        m.precision,
        interval(m.true_positives, flagged),
        m.recall,
        interval(m.true_positives, m.positives),
        m.f1,
        m.positives,
        m.negatives
    );
}

/// Runs `ragback guard eval`.
pub async fn eval(args: EvalArgs, settings: &Settings) -> anyhow::Result<()> {
    let (labelled, _) = read_labels(&args.labels)?;
    let rules = RuleGuard::new(&settings.guard.banned.0)?;
    let path = args
        .classifier
        .clone()
        .or_else(|| settings.guard.classifier.clone());
    let classifier = match path.as_deref().filter(|p| p.is_file()) {
        Some(path) => Some(classifier(path, settings)?),
        None => {
            eprintln!("no classifier file: the rules alone are measured");
            None
        }
    };
    // Per text: the rules' tags and the classifier's.
    let mut verdicts = Vec::with_capacity(labelled.len());
    for l in &labelled {
        let input = GuardInput {
            text: &l.text,
            speaker: l.speaker,
            user_name: "John",
            character_name: "Blaze",
            minor: false,
            replying_to: None,
        };
        let tags = |findings: Vec<ragback_application::ports::Finding>| {
            findings.into_iter().map(|f| f.tag).collect::<Vec<_>>()
        };
        let by_rules = tags(rules.check(&input).await?);
        let by_classifier = match &classifier {
            Some(guard) => tags(guard.check(&input).await?),
            None => Vec::new(),
        };
        verdicts.push((by_rules, by_classifier));
    }
    for (role, what) in [
        (Speaker::Character, "replies"),
        (Speaker::User, "user messages"),
    ] {
        let of_role: Vec<usize> = (0..labelled.len())
            .filter(|i| labelled[*i].speaker == role)
            .collect();
        if of_role.is_empty() {
            continue;
        }
        println!("{what} ({}):", of_role.len());
        let present: Vec<GuardTag> = GuardTag::ALL
            .into_iter()
            .filter(|tag| of_role.iter().any(|i| labelled[*i].tags.contains(tag)))
            .collect();
        for (source, pick) in [
            ("rules", 0usize),
            ("classifier", 1),
            ("both (what serves)", 2),
        ] {
            if pick == 1 && classifier.is_none() {
                continue;
            }
            println!(" {source}:");
            let raised = |i: usize, tag: GuardTag| {
                let (r, c) = &verdicts[i];
                match pick {
                    0 => r.contains(&tag),
                    1 => c.contains(&tag),
                    _ => r.contains(&tag) || c.contains(&tag),
                }
            };
            for tag in &present {
                let scored: Vec<(f32, bool)> = of_role
                    .iter()
                    .map(|i| {
                        (
                            if raised(*i, *tag) { 1.0 } else { 0.0 },
                            labelled[*i].tags.contains(tag),
                        )
                    })
                    .collect();
                print_metrics(tag.key(), &Metrics::at(&scored, 0.5));
            }
            // The floor as a whole: an unsafe text caught by any tag, a clean one left alone.
            let any = |i: usize| GuardTag::ALL.into_iter().any(|tag| raised(i, tag));
            let unsafe_texts: Vec<usize> = of_role
                .iter()
                .copied()
                .filter(|i| !labelled[*i].tags.is_empty())
                .collect();
            let clean: Vec<usize> = of_role
                .iter()
                .copied()
                .filter(|i| labelled[*i].tags.is_empty())
                .collect();
            let caught = unsafe_texts.iter().filter(|i| any(**i)).count();
            let bothered = clean.iter().filter(|i| any(**i)).count();
            println!(
                "  any flag: {caught}/{} labelled texts caught ({:.1} %), {bothered}/{} clean ones \
                 flagged ({:.1} %)",
                unsafe_texts.len(),
                percent(caught, unsafe_texts.len()),
                clean.len(),
                percent(bothered, clean.len())
            );
        }
    }
    Ok(())
}

fn percent(k: usize, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        100.0 * k as f64 / n as f64
    }
}

/// The classifier guard of `path` over the configured embedder.
fn classifier(path: &Path, settings: &Settings) -> anyhow::Result<ClassifierGuard> {
    let model: ClassifierModel = load_classifier(path)?;
    let embedder = embedder(settings, Some(&model.embedder))?;
    ClassifierGuard::new(model, embedder).map_err(anyhow::Error::msg)
}
