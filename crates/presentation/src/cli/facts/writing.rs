//! Changing facts: add (seeding), import, delete, and seeding at start-up.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use ragback_application::AddFactsReport;
use ragback_application::facts::stamped;
use ragback_domain::{Fact, FactId, FactOwner, FactSource};
use ragback_infrastructure::Services;

use super::{AddStopped, FactsBackend, Interrupted, OnProgress, StopReason, StopWhen};
use crate::cli::facts_file::{ExportedFact, ImportedFact, ReadFacts, read_facts};
use crate::cli::progress::Progress;

/// Deletes one fact of `owner` (`id`), or all of them.
pub(super) async fn delete(
    backend: &dyn FactsBackend,
    owner: &FactOwner,
    id: Option<String>,
    all: bool,
) -> anyhow::Result<()> {
    if all {
        let deleted = backend.delete_owner(owner).await?;
        println!("deleted {deleted} facts of {owner}");
    } else {
        let id: FactId = id
            .context("give --id FACT_ID or --all")?
            .parse()
            .context("--id must be a fact id (a UUID)")?;
        if !backend.delete(owner, id).await? {
            bail!("{owner} has no fact {id}");
        }
        println!("deleted fact {id} of {owner}");
    }
    Ok(())
}

/// The owners of `facts`, in first-seen order.
fn owners_of(facts: &[Fact]) -> Vec<FactOwner> {
    let mut owners: Vec<FactOwner> = Vec::new();
    for fact in facts {
        if !owners.contains(&fact.owner) {
            owners.push(fact.owner.clone());
        }
    }
    owners
}

/// A flag set by Ctrl-C for as long as the guard lives.
struct CtrlC {
    flag: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl CtrlC {
    fn watch() -> Self {
        let flag = Arc::new(AtomicBool::new(false));
        let set = Arc::clone(&flag);
        let task = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nCtrl-C: finishing the batch under way, then stopping");
                set.store(true, Ordering::SeqCst);
            }
        });
        Self { flag, task }
    }

    fn pressed(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

impl Drop for CtrlC {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs one add (`add` or `import`) with a progress bar, stopping between batches on Ctrl-C.
async fn with_progress<F>(run: F) -> Result<AddFactsReport, AddStopped>
where
    F: AsyncFnOnce(OnProgress<'_>, StopWhen<'_>) -> Result<AddFactsReport, AddStopped>,
{
    let ctrl_c = CtrlC::watch();
    let mut progress: Option<Progress> = None;
    let mut on_progress = |report: &AddFactsReport| {
        progress
            .get_or_insert_with(|| Progress::new(report.to_add))
            .update(report.added);
    };
    let stop = || ctrl_c.pressed();
    let outcome = run(&mut on_progress, &stop).await;
    if let Some(progress) = &progress {
        progress.finish();
    }
    outcome
}

/// The error a stopped add ends the command with (Ctrl-C exits with 130).
fn stop_error(reason: StopReason) -> anyhow::Error {
    match reason {
        StopReason::Interrupted => Interrupted.into(),
        StopReason::Failed(message) => anyhow::anyhow!(message),
    }
}

pub(super) async fn add(
    backend: &dyn FactsBackend,
    read: ReadFacts,
    replace: bool,
    dry_run: bool,
) -> anyhow::Result<()> {
    let ReadFacts {
        facts,
        blank,
        duplicates,
    } = read;
    let owners = owners_of(&facts);
    let skipped = format!(
        "skipped {} ({blank} blank, {duplicates} repeated)",
        blank + duplicates
    );
    if dry_run {
        let mut deleted = 0;
        let stored = if replace {
            for owner in &owners {
                deleted += backend.count(owner).await?;
            }
            Vec::new()
        } else {
            backend.stored(&facts).await?
        };
        let unchanged = facts.iter().filter(|f| stored.contains(&f.id)).count();
        println!(
            "dry run: would delete {deleted}, add {}, leave {unchanged} unchanged; {skipped}; nothing changed",
            facts.len() - unchanged
        );
        return Ok(());
    }
    if replace {
        for owner in &owners {
            let deleted = backend.delete_owner(owner).await?;
            println!("deleted {deleted} facts of {owner}");
        }
    }
    let check = facts.first().cloned();
    // Only the facts not stored yet are sent: the progress bar counts the new ones.
    let stored = backend.stored(&facts).await?;
    let (old, new): (Vec<Fact>, Vec<Fact>) =
        facts.into_iter().partition(|f| stored.contains(&f.id));
    let new = stamped(new, FactSource::Seeded);
    let outcome =
        with_progress(async |progress, stop| backend.add(new, progress, stop).await).await;
    let location = backend.location().await;
    match outcome {
        Ok(report) => {
            println!(
                "added {}, unchanged {}, {skipped}, failed 0; {location}",
                report.added,
                report.unchanged + old.len(),
            );
            if let Some(fact) = check {
                verify(backend, &fact).await;
            }
            Ok(())
        }
        Err(AddStopped { done, reason }) => {
            println!(
                "added {}, unchanged {}, {skipped}, failed {}; {location}",
                done.added,
                done.unchanged + old.len(),
                done.to_add.saturating_sub(done.added),
            );
            eprintln!(
                "stopped after {} of {} new facts were stored ({reason}); what was stored stays \
                 stored: run the same command again to finish",
                done.added, done.to_add
            );
            Err(stop_error(reason))
        }
    }
}

/// Searches one stored fact by its own text, as a check that seeding worked end to end.
async fn verify(backend: &dyn FactsBackend, fact: &Fact) {
    let owners = [fact.owner.clone()];
    match backend.search(fact.text.as_str(), &owners, 1, -1.0).await {
        Ok(found) => match found.first() {
            Some(top) if top.fact.id == fact.id => println!(
                "check: searching {:?} among {}'s facts finds it first (score {:.3})",
                fact.text.as_str(),
                fact.owner,
                top.score
            ),
            Some(top) => eprintln!(
                "check failed: searching {:?} found {:?} first (score {:.3})",
                fact.text.as_str(),
                top.fact.text.as_str(),
                top.score
            ),
            None => eprintln!(
                "check failed: searching {:?} found nothing",
                fact.text.as_str()
            ),
        },
        Err(error) => eprintln!("check skipped: {error:#}"),
    }
}

pub(super) async fn import(backend: &dyn FactsBackend, file: &PathBuf) -> anyhow::Result<()> {
    let reader = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?,
    );
    let mut with_vectors = Vec::new();
    let mut without = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let exported: ExportedFact = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not an exported fact", file.display(), n + 1))?;
        match exported
            .into_fact()
            .with_context(|| format!("{}:{}", file.display(), n + 1))?
        {
            ImportedFact::Embedded(fact) => with_vectors.push(fact),
            ImportedFact::Text(fact) => without.push(fact),
        }
    }
    let imported =
        with_progress(async |progress, stop| backend.import(with_vectors, progress, stop).await)
            .await
            .map_err(|stopped| stop_error(stopped.reason))?;
    if !without.is_empty() {
        let read = ReadFacts {
            facts: without,
            blank: 0,
            duplicates: 0,
        };
        add(backend, read, false, false).await?;
    }
    println!(
        "imported with their vectors: added {}, unchanged {}",
        imported.added, imported.unchanged
    );
    Ok(())
}

/// Seeds `file` when the server starts; failures are warnings, not fatal.
pub async fn seed_at_startup(services: &Services, file: &std::path::Path) {
    if services.embedder.is_none() {
        tracing::warn!(file = %file.display(), "no embedder is configured: facts not seeded, retrieval is skipped");
        return;
    }
    let read = match read_facts(file, None) {
        Ok(read) => read,
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "cannot read the seed file; serving anyway");
            return;
        }
    };
    match services
        .facts
        .add(stamped(read.facts, FactSource::Seeded), |_| {})
        .await
    {
        Ok(report) => tracing::info!(
            file = %file.display(),
            added = report.added,
            unchanged = report.unchanged,
            "facts seeded"
        ),
        Err(error) => {
            tracing::warn!(file = %file.display(), %error, "seeding failed; serving anyway")
        }
    }
}
