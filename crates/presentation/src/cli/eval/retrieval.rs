//! `ragback eval retrieval`: measures retrieval on labelled queries in a throw-away store.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use ragback_application::evaluation::{EvalReport, LabelledQuery, evaluate};
use ragback_application::retrieval::MAX_TOP_K;
use ragback_domain::{FactOwner, UserId};
use ragback_infrastructure::{Settings, StoreKind, build_fact_services};
use serde::{Deserialize, Serialize};

use crate::cli::facts_file::read_facts;

/// `ragback eval retrieval`.
#[derive(Debug, Args)]
pub struct RetrievalArgs {
    /// Facts file, as `ragback facts add` reads it.
    #[arg(long, default_value = "data/facts.json")]
    facts: PathBuf,
    /// JSON lines: {"user_id", "query", "relevant": ["exact fact text", …]}.
    #[arg(long, default_value = "data/retrieval_eval.jsonl")]
    queries: PathBuf,
    /// Facts injected per reply in the sweep (default: RAGBACK_RETRIEVAL__TOP_K).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=MAX_TOP_K as i64))]
    top_k: Option<u16>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Query windows to compare (`RAGBACK_RETRIEVAL__QUERY_MESSAGES` values): each is measured
    /// at its own best threshold.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    compare_query_messages: Vec<usize>,
    /// Context weights to compare for windows of more than one message (0: the window as one
    /// text).
    #[arg(long, value_delimiter = ',', default_value = "0,0.3,0.5")]
    compare_context_weights: Vec<f32>,
    /// Hybrid search's lexical allowances to compare (`RAGBACK_RETRIEVAL__LEXICAL_ALLOWANCE`
    /// values; `off`: the vector search alone), with the configured query window.
    #[arg(long, value_delimiter = ',', default_value = "off,0.025,0.05,0.1")]
    compare_lexical_allowances: Vec<LexicalAllowance>,
}

/// A lexical allowance to compare, or `off`.
#[derive(Debug, Clone, Copy)]
struct LexicalAllowance(Option<f32>);

impl std::str::FromStr for LexicalAllowance {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "off" {
            return Ok(Self(None));
        }
        match s.parse::<f32>() {
            Ok(allowance) if (0.0..=2.0).contains(&allowance) => Ok(Self(Some(allowance))),
            _ => Err(format!("`{s}` is neither `off` nor a number from 0 to 2")),
        }
    }
}

impl std::fmt::Display for LexicalAllowance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("off"),
            Some(allowance) => write!(f, "{allowance}"),
        }
    }
}

/// One line of the queries file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryLine {
    user_id: String,
    query: String,
    /// The messages before it, oldest first: `{"role": "user" | "character", "text"}`.
    #[serde(default)]
    context: Vec<super::MessageLine>,
    #[serde(default)]
    relevant: Vec<String>,
}

/// Runs `ragback eval retrieval`.
pub async fn run(args: RetrievalArgs, settings: &Settings) -> anyhow::Result<()> {
    let RetrievalArgs {
        facts,
        queries,
        top_k,
        json,
        compare_query_messages,
        compare_context_weights,
        compare_lexical_allowances,
    } = args;
    let read = read_facts(&facts, None)?;
    let known: HashSet<(FactOwner, &str)> = read
        .facts
        .iter()
        .map(|f| (f.owner.clone(), f.text.as_str()))
        .collect();
    let queries = read_queries(&queries, &known)?;

    let scratch = tempfile::tempdir().context("cannot create a scratch directory for the store")?;
    let mut settings = settings.clone();
    settings.store.kind = StoreKind::Edge;
    settings.store.path = scratch.path().join("store");
    let services = build_fact_services(&settings)?;
    let Some(model) = services.embedder.clone() else {
        bail!("evaluation needs an embedder: set RAGBACK_EMBEDDER__PROVIDER to local or cohere");
    };
    eprintln!("seeding {} facts with {model}…", read.facts.len());
    services
        .facts
        .add(read.facts.clone(), |_| {})
        .await
        .context("seeding the scratch store failed")?;
    eprintln!("running {} queries…", queries.len());
    let top_k = top_k.map_or(settings.retrieval.top_k, usize::from);
    let report = evaluate(&services.retriever, queries.clone(), top_k).await?;
    let mut windows = Vec::new();
    for n in compare_query_messages {
        let weights = if n > 1 {
            compare_context_weights.clone()
        } else {
            vec![0.0]
        };
        for w in weights {
            let retriever = services.retriever.with_query(n, w);
            let compared = evaluate(&retriever, queries.clone(), top_k).await?;
            windows.push((n, w, compared.configured, compared.best_cutoff));
        }
    }
    let mut allowances = Vec::new();
    for allowance in compare_lexical_allowances {
        let retriever = services.retriever.with_lexical_allowance(allowance.0);
        let compared = evaluate(&retriever, queries.clone(), top_k).await?;
        allowances.push((allowance, compared.configured, compared.best_cutoff));
    }

    let configured = settings.retrieval.threshold;
    if json {
        let mut out = JsonReport::new(&report, &model, configured);
        out.query_windows = windows
            .iter()
            .map(|(n, w, row, cutoff)| (*n, *w, JsonRow::of(row), JsonRow::of(cutoff)))
            .collect();
        out.lexical_allowances = allowances
            .iter()
            .map(|(a, row, cutoff)| (a.0, JsonRow::of(row), JsonRow::of(cutoff)))
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", table(&report, &model, configured));
        println!(
            "\nquery window, context weight  cut-off                                   precision  recall  hit rate  small-talk fed"
        );
        for (n, w, row, cutoff) in &windows {
            for (name, r) in [("configured", row), ("best cut-off", cutoff)] {
                println!(
                    "{:<28}  {:<40}  {:<9.3}  {:<6.3}  {:<8.3}  {:.3}",
                    format!("{n}, {w}"),
                    format!(
                        "{name} {:.3}, gap {:.2}, margin {}",
                        r.threshold,
                        r.gap,
                        margin(r.margin)
                    ),
                    r.precision,
                    r.recall,
                    r.hit_rate,
                    r.false_positive_share
                );
            }
        }
        println!(
            "\nlexical allowance  cut-off                                                      precision  recall  hit rate  small-talk fed"
        );
        for (allowance, row, cutoff) in &allowances {
            for (name, r) in [("configured", row), ("best cut-off", cutoff)] {
                println!(
                    "{:<17}  {:<59}  {:<9.3}  {:<6.3}  {:<8.3}  {:.3}",
                    allowance.to_string(),
                    format!(
                        "{name} {:.3}, gap {:.2}, margin {}, allowance {}",
                        r.threshold,
                        r.gap,
                        margin(r.margin),
                        LexicalAllowance(r.lexical_allowance)
                    ),
                    r.precision,
                    r.recall,
                    r.hit_rate,
                    r.false_positive_share
                );
            }
        }
    }
    Ok(())
}

fn read_queries(
    path: &Path,
    known: &HashSet<(FactOwner, &str)>,
) -> anyhow::Result<Vec<LabelledQuery>> {
    let content =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut queries = Vec::new();
    for (n, line) in content.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), n + 1);
        let parsed: QueryLine = serde_json::from_str(line).with_context(|| {
            format!(
                "{}: expected {{\"user_id\", \"query\", \"relevant\": [...]}}",
                at()
            )
        })?;
        let user =
            UserId::parse(parsed.user_id.as_str()).with_context(|| format!("{}: user_id", at()))?;
        if parsed.query.trim().is_empty() {
            bail!("{}: the query is empty", at());
        }
        let owner = FactOwner::User(user.clone());
        if let Some(missing) = parsed
            .relevant
            .iter()
            .find(|text| !known.contains(&(owner.clone(), text.as_str())))
        {
            bail!(
                "{}: {missing:?} is not one of {}'s facts in the facts file",
                at(),
                user.as_str()
            );
        }
        let context = super::messages_of(&parsed.context, &at(), "context")?;
        queries.push(LabelledQuery {
            user,
            query: parsed.query,
            context,
            relevant: parsed.relevant,
        });
    }
    Ok(queries)
}

fn margin(margin: f32) -> String {
    if margin >= 1.0 {
        "any".into()
    } else {
        format!("{margin:.2}")
    }
}

fn table(report: &EvalReport, model: &str, configured: f32) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} queries ({} with relevant facts), embedder {model}, top_k {}",
        report.queries, report.with_relevant, report.top_k
    );
    for (k, recall) in &report.recall_at {
        let _ = write!(out, "recall@{k} {recall:.3}   ");
    }
    let _ = writeln!(out, "MRR {:.3}   leaks {}\n", report.mrr, report.leaks);
    let _ = writeln!(
        out,
        "threshold  precision  recall  F1     hit rate  small-talk fed  injected"
    );
    for row in report
        .sweep
        .iter()
        .filter(|r| (r.threshold * 1000.0).round() as i32 % 50 == 0 || *r == &report.recommended)
    {
        let mark = if *row == report.recommended {
            "  <- best F1"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{:<9.3}  {:<9.3}  {:<6.3}  {:<5.3}  {:<8.3}  {:<14.3}  {}{mark}",
            row.threshold,
            row.precision,
            row.recall,
            row.f1,
            row.hit_rate,
            row.false_positive_share,
            row.injected
        );
    }
    let _ = writeln!(
        out,
        "\nrecommended threshold: {:.3} (F1 {:.3}); configured RAGBACK_RETRIEVAL__THRESHOLD: {configured:.3}",
        report.recommended.threshold, report.recommended.f1
    );
    out
}

/// The report as `--json` prints it.
#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    embedder: &'a str,
    queries: usize,
    with_relevant: usize,
    top_k: usize,
    recall_at_1: f64,
    recall_at_3: f64,
    recall_at_5: f64,
    mrr: f64,
    leaks: usize,
    configured_threshold: f32,
    recommended: JsonRow,
    sweep: Vec<JsonRow>,
    /// The configured cut-off's row and the best cut-off of each query window compared.
    query_windows: Vec<(usize, f32, JsonRow, JsonRow)>,
    /// The configured cut-off's row and the best cut-off at each lexical allowance compared
    /// (`null`: hybrid search off).
    lexical_allowances: Vec<(Option<f32>, JsonRow, JsonRow)>,
    /// The cut-off that best meets the targets, with the configured window.
    best_cutoff: JsonRow,
    /// What the configured threshold and margin inject, with the configured window.
    configured: JsonRow,
}

#[derive(Debug, Serialize)]
struct JsonRow {
    threshold: f32,
    gap: f32,
    margin: f32,
    lexical_allowance: Option<f32>,
    precision: f64,
    recall: f64,
    f1: f64,
    small_talk_fed: f64,
    hit_rate: f64,
    injected: usize,
}

impl JsonRow {
    fn of(r: &ragback_application::evaluation::SweepRow) -> Self {
        Self {
            threshold: (r.threshold * 1000.0).round() / 1000.0,
            gap: (r.gap * 1000.0).round() / 1000.0,
            margin: (r.margin * 1000.0).round() / 1000.0,
            lexical_allowance: r.lexical_allowance.map(|f| (f * 1000.0).round() / 1000.0),
            precision: r.precision,
            recall: r.recall,
            f1: r.f1,
            small_talk_fed: r.false_positive_share,
            hit_rate: r.hit_rate,
            injected: r.injected,
        }
    }
}

impl<'a> JsonReport<'a> {
    fn new(report: &EvalReport, embedder: &'a str, configured: f32) -> Self {
        let row = JsonRow::of;
        let recall = |k: usize| {
            report
                .recall_at
                .iter()
                .find(|(at, _)| *at == k)
                .map_or(0.0, |(_, r)| *r)
        };
        Self {
            embedder,
            queries: report.queries,
            with_relevant: report.with_relevant,
            top_k: report.top_k,
            recall_at_1: recall(1),
            recall_at_3: recall(3),
            recall_at_5: recall(5),
            mrr: report.mrr,
            leaks: report.leaks,
            configured_threshold: configured,
            recommended: row(&report.recommended),
            sweep: report.sweep.iter().map(row).collect(),
            query_windows: Vec::new(),
            lexical_allowances: Vec::new(),
            best_cutoff: row(&report.best_cutoff),
            configured: row(&report.configured),
        }
    }
}
