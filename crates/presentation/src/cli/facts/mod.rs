//! `ragback facts …`: seed, inspect, delete, export and import facts — directly in the store, or
//! through the API of the `ragback serve` that holds it.

mod backend;
mod remote;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ragback_application::AddFactsReport;
use ragback_application::facts::stamped;
use ragback_application::ports::StoredFact;
use ragback_domain::{CharacterId, Fact, FactId, FactOwner, FactSource, ScoredFact, UserId};
use ragback_infrastructure::{Services, Settings, WiringError, build_fact_services};
use secrecy::SecretString;

pub use backend::{AddStopped, FactsBackend, LocalFacts, OnProgress, StopReason, StopWhen};
pub use remote::RemoteFacts;

use super::facts_file::{ExportedFact, ImportedFact, ReadFacts, read_facts};
use super::progress::Progress;
use crate::wire::FactRecord;

/// Whose facts.
#[derive(Debug, Clone, Args)]
pub struct OwnerArgs {
    /// A user id.
    #[arg(long, conflicts_with = "character")]
    pub user: Option<String>,
    /// A character id.
    #[arg(long)]
    pub character: Option<String>,
}

impl OwnerArgs {
    fn owner(&self) -> anyhow::Result<Option<FactOwner>> {
        Ok(match (&self.user, &self.character) {
            (Some(u), None) => Some(FactOwner::User(
                UserId::parse(u.as_str()).context("--user")?,
            )),
            (None, Some(c)) => Some(FactOwner::Character(
                CharacterId::parse(c.as_str()).context("--character")?,
            )),
            (None, None) => None,
            (Some(_), Some(_)) => bail!("give --user or --character, not both"),
        })
    }

    fn required(&self) -> anyhow::Result<FactOwner> {
        self.owner()?
            .context("say whose facts with --user ID or --character ID")
    }
}

/// `ragback facts` subcommands.
#[derive(Debug, Subcommand)]
pub enum FactsCommand {
    /// Embed and store facts; facts already stored are left alone, so running it twice is safe.
    Add {
        /// A JSON seeding file, or a text file with one fact per line (then --user/--character).
        #[arg(default_value = "data/facts.json")]
        file: PathBuf,
        /// Whose facts.
        #[command(flatten)]
        owner: OwnerArgs,
        /// First delete every fact of the owners in the file.
        #[arg(long)]
        replace: bool,
        /// Show what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Go through this server's API (default: the configured address, when the store is
        /// held by a running server).
        #[arg(long)]
        server: Option<String>,
    },
    /// Show the facts most similar to a text, with their scores (to tune the threshold).
    Search {
        /// The text to search with, e.g. a chat message.
        query: String,
        /// Whose facts: a user id.
        #[arg(long)]
        user: Option<String>,
        /// Whose facts: a character id (with --user, both).
        #[arg(long)]
        character: Option<String>,
        /// How many facts.
        #[arg(long, default_value_t = 10)]
        top_k: usize,
        /// Minimum cosine similarity.
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        threshold: f32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Go through this server's API.
        #[arg(long)]
        server: Option<String>,
    },
    /// List stored facts.
    List {
        /// Whose facts.
        #[command(flatten)]
        owner: OwnerArgs,
        /// At most this many facts.
        #[arg(long)]
        limit: Option<usize>,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
        /// Go through this server's API.
        #[arg(long)]
        server: Option<String>,
    },
    /// Delete one fact (--id) or all of an owner's facts (--all).
    Delete {
        /// Whose facts.
        #[command(flatten)]
        owner: OwnerArgs,
        /// The fact's id.
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        id: Option<String>,
        /// Every fact of the owner.
        #[arg(long)]
        all: bool,
        /// Go through this server's API.
        #[arg(long)]
        server: Option<String>,
    },
    /// Write facts, with their vectors, as JSON lines (to move them to another store).
    Export {
        /// Whose facts.
        #[command(flatten)]
        owner: OwnerArgs,
        /// The file to write (default: standard output).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Go through this server's API (then --user or --character is required).
        #[arg(long)]
        server: Option<String>,
    },
    /// Store facts written by `export`; their vectors are used as they are when present.
    Import {
        /// The JSON-lines file.
        file: PathBuf,
        /// Go through this server's API (vectors are then recomputed by the server).
        #[arg(long)]
        server: Option<String>,
    },
}

/// A seeding that was stopped with Ctrl-C: the binary exits with 130.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// The server's base URL from its configured address.
fn default_server_url(settings: &Settings) -> String {
    let addr = settings.server.addr;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    };
    format!("http://{host}:{}", addr.port())
}

/// The key the CLI sends to a server with authentication on: an admin key (facts change), else a
/// plain one.
fn operator_key(settings: &Settings) -> Option<&SecretString> {
    let server = &settings.server;
    server
        .admin_api_keys
        .0
        .first()
        .or_else(|| server.api_keys.0.first())
}

/// The store opened here, or, with `server` or when a running server holds it, that server's API.
async fn backend(
    settings: &Settings,
    server: Option<&str>,
) -> anyhow::Result<Box<dyn FactsBackend>> {
    if let Some(url) = server {
        return Ok(Box::new(
            RemoteFacts::connect(url, operator_key(settings)).await?,
        ));
    }
    match build_fact_services(settings) {
        Ok(services) => Ok(Box::new(LocalFacts::new(
            services.facts,
            services.retriever,
        ))),
        Err(WiringError::StoreLocked(message)) => {
            let url = default_server_url(settings);
            match RemoteFacts::connect(&url, operator_key(settings)).await {
                Ok(remote) => {
                    eprintln!(
                        "the store is held by a running server: going through its API at {url}"
                    );
                    Ok(Box::new(remote))
                }
                Err(error) => bail!(
                    "{message}\nNo ragback server answers at {url} ({error:#}). Stop the process \
                     that holds the store, or pass --server with the URL of the server that does."
                ),
            }
        }
        Err(error) => Err(error.into()),
    }
}

/// Runs a `facts` subcommand.
pub async fn run(command: FactsCommand, settings: &Settings) -> anyhow::Result<()> {
    match command {
        FactsCommand::Add {
            file,
            owner,
            replace,
            dry_run,
            server,
        } => {
            let read = read_facts(&file, owner.owner()?)?;
            let backend = backend(settings, server.as_deref()).await?;
            add(backend.as_ref(), read, replace, dry_run).await
        }
        FactsCommand::Search {
            query,
            user,
            character,
            top_k,
            threshold,
            json,
            server,
        } => {
            let mut owners = Vec::new();
            if let Some(user) = user {
                owners.push(FactOwner::User(UserId::parse(user).context("--user")?));
            }
            if let Some(character) = character {
                owners.push(FactOwner::Character(
                    CharacterId::parse(character).context("--character")?,
                ));
            }
            if owners.is_empty() {
                bail!("say whose facts to search with --user ID and/or --character ID");
            }
            let backend = backend(settings, server.as_deref()).await?;
            let found = backend.search(&query, &owners, top_k, threshold).await?;
            print_scored(found, threshold, json)
        }
        FactsCommand::List {
            owner,
            limit,
            json,
            server,
        } => {
            let owner = owner.owner()?;
            let backend = backend(settings, server.as_deref()).await?;
            let mut out = std::io::stdout().lock();
            let mut printed = 0;
            for_each_fact(backend.as_ref(), owner.as_ref(), false, limit, |stored| {
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
        FactsCommand::Delete {
            owner,
            id,
            all,
            server,
        } => {
            let owner = owner.required()?;
            let backend = backend(settings, server.as_deref()).await?;
            if all {
                let deleted = backend.delete_owner(&owner).await?;
                println!("deleted {deleted} facts of {owner}");
            } else {
                let id: FactId = id
                    .context("give --id FACT_ID or --all")?
                    .parse()
                    .context("--id must be a fact id (a UUID)")?;
                if !backend.delete(&owner, id).await? {
                    bail!("{owner} has no fact {id}");
                }
                println!("deleted fact {id} of {owner}");
            }
            Ok(())
        }
        FactsCommand::Export {
            owner,
            output,
            server,
        } => {
            let owner = owner.owner()?;
            let backend = backend(settings, server.as_deref()).await?;
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut written = 0;
            for_each_fact(backend.as_ref(), owner.as_ref(), true, None, |stored| {
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
        FactsCommand::Import { file, server } => {
            let backend = backend(settings, server.as_deref()).await?;
            import(backend.as_ref(), &file).await
        }
    }
}

/// Calls `each` for every stored fact of `owner` (or of everyone, where the backend can), page by
/// page.
async fn for_each_fact(
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

fn print_scored(found: Vec<ScoredFact>, threshold: f32, json: bool) -> anyhow::Result<()> {
    if json {
        let rows: Vec<_> = found
            .iter()
            .map(|f| {
                serde_json::json!({
                    "id": f.fact.id.to_string(),
                    "owner": f.fact.owner.to_string(),
                    "text": f.fact.text.as_str(),
                    "score": f.score,
                })
            })
            .collect();
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

async fn add(
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

async fn import(backend: &dyn FactsBackend, file: &PathBuf) -> anyhow::Result<()> {
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
