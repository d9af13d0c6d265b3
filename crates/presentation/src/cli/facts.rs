//! `ragback facts …`: seed facts and search them.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use ragback_application::AddFactsReport;
use ragback_domain::{CharacterId, FactOwner, UserId};
use ragback_infrastructure::{Services, Settings, build_services};

use super::facts_file::read_facts;

/// `ragback facts` subcommands.
#[derive(Debug, Subcommand)]
pub enum FactsCommand {
    /// Embed and store facts (idempotent: facts already stored are left alone).
    Add {
        /// A JSON seeding file, or a text file with one fact per line.
        #[arg(default_value = "data/facts.json")]
        file: PathBuf,
        /// Owner of a text file's facts: a user id.
        #[arg(long, conflicts_with = "character")]
        user: Option<String>,
        /// Owner of a text file's facts: a character id.
        #[arg(long)]
        character: Option<String>,
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
        #[arg(long, default_value_t = -1.0, allow_negative_numbers = true)]
        threshold: f32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `facts` subcommand.
pub async fn run(command: FactsCommand, settings: &Settings) -> anyhow::Result<()> {
    let services = build_services(settings)?;
    match command {
        FactsCommand::Add {
            file,
            user,
            character,
        } => {
            let owner = owner(user, character)?;
            let report = add(&services, &file, owner).await?;
            let total = services.store.count(None).await?;
            println!(
                "added {}, unchanged {}; the store holds {total} facts",
                report.added, report.unchanged
            );
            Ok(())
        }
        FactsCommand::Search {
            query,
            user,
            character,
            top_k,
            threshold,
            json,
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
            let found = services
                .chat
                .retriever()
                .search(&query, owners, top_k, threshold)
                .await?;
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
                for f in &found {
                    println!(
                        "{:>7.4}  {:<18} {}",
                        f.score,
                        f.fact.owner.to_string(),
                        f.fact.text.as_str()
                    );
                }
            }
            Ok(())
        }
    }
}

fn owner(user: Option<String>, character: Option<String>) -> anyhow::Result<Option<FactOwner>> {
    Ok(match (user, character) {
        (Some(user), None) => Some(FactOwner::User(UserId::parse(user).context("--user")?)),
        (None, Some(c)) => Some(FactOwner::Character(
            CharacterId::parse(c).context("--character")?,
        )),
        (None, None) => None,
        (Some(_), Some(_)) => bail!("give --user or --character, not both"),
    })
}

/// Reads and adds the facts of `file`, printing what was skipped.
async fn add(
    services: &Services,
    file: &Path,
    owner: Option<FactOwner>,
) -> anyhow::Result<AddFactsReport> {
    let read = read_facts(file, owner)?;
    if read.blank + read.duplicates > 0 {
        println!(
            "skipped {} blank and {} repeated entries",
            read.blank, read.duplicates
        );
    }
    let report = services
        .facts
        .add(read.facts, |progress| {
            tracing::debug!(
                added = progress.added,
                unchanged = progress.unchanged,
                "batch stored"
            );
        })
        .await?;
    Ok(report)
}

/// Seeds `file` when the server starts; failures are warnings, not fatal.
pub async fn seed_at_startup(services: &Services, file: &Path) {
    if services.embedder.is_none() {
        tracing::warn!(file = %file.display(), "no embedder is configured: facts not seeded, retrieval is skipped");
        return;
    }
    match add(services, file, None).await {
        Ok(report) => tracing::info!(
            file = %file.display(),
            added = report.added,
            unchanged = report.unchanged,
            "facts seeded"
        ),
        Err(error) => {
            tracing::warn!(file = %file.display(), error = %format!("{error:#}"), "seeding failed; serving anyway")
        }
    }
}
