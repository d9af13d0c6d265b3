//! Reading facts: search, list, export.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use ragback_application::ports::StoredFact;
use ragback_domain::{FactOwner, ScoredFact};

use super::FactsBackend;
use crate::cli::facts_file::ExportedFact;
use crate::wire::FactRecord;

/// Prints an owner's facts (or everyone's), at most `limit`: one line each, or JSON lines.
pub(super) async fn list(
    backend: &dyn FactsBackend,
    owner: Option<&FactOwner>,
    limit: Option<usize>,
    json: bool,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let mut printed = 0;
    for_each_fact(backend, owner, false, limit, |stored| {
        printed += 1;
        let f = &stored.fact;
        if json {
            let record = FactRecord::new(f.clone(), None, None);
            writeln!(out, "{}", serde_json::to_string(&record)?)?;
        } else {
            let source = f.provenance.as_ref().map_or_else(
                || format!("{:<33}", "-"),
                |p| format!("{:<9} {}", p.source.as_str(), p.updated_at),
            );
            writeln!(
                out,
                "{}  {:<20} {source}  {}",
                f.id,
                f.owner.to_string(),
                f.text.as_str()
            )?;
        }
        Ok(())
    })
    .await?;
    if !json {
        eprintln!("{printed} facts");
    }
    Ok(())
}

/// Writes an owner's facts (or everyone's) with their vectors as JSON lines, to `output` or
/// standard output.
pub(super) async fn export(
    backend: &dyn FactsBackend,
    owner: Option<&FactOwner>,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let mut out: Box<dyn Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut written = 0;
    for_each_fact(backend, owner, true, None, |stored| {
        written += 1;
        writeln!(
            out,
            "{}",
            serde_json::to_string(&ExportedFact::from(stored))?
        )?;
        Ok(())
    })
    .await?;
    out.flush()?;
    eprintln!("exported {written} facts");
    Ok(())
}

/// Calls `each` for every stored fact of `owner` (or of everyone, where the backend can), page by
/// page.
pub(super) async fn for_each_fact(
    backend: &dyn FactsBackend,
    owner: Option<&FactOwner>,
    with_vectors: bool,
    limit: Option<usize>,
    mut each: impl FnMut(&StoredFact) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut start = None;
    let mut left = limit.unwrap_or(usize::MAX);
    while left > 0 {
        let page = backend
            .list(owner, start, left.min(500), with_vectors)
            .await?;
        for stored in page.facts.iter().take(left) {
            each(stored)?;
        }
        left = left.saturating_sub(page.facts.len());
        match page.next {
            Some(next) => start = Some(next),
            None => break,
        }
    }
    Ok(())
}

pub(super) fn print_scored(
    found: Vec<ScoredFact>,
    threshold: f32,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        // The API's record, as `facts list --json` and `/facts/search` write it.
        let rows: Vec<FactRecord> = found.iter().cloned().map(FactRecord::from).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if found.is_empty() {
        println!("no facts at or above {threshold}");
    } else {
        for f in found {
            println!(
                "{:>7.4}  {:<20} {}",
                f.score,
                f.fact.owner.to_string(),
                f.fact.text.as_str()
            );
        }
    }
    Ok(())
}
