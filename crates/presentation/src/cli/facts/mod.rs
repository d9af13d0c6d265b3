//! `ragback facts …`: seed, inspect, delete, export and import facts — directly in the store, or
//! through the API of the `ragback serve` that holds it.

mod backend;
mod reading;
mod remote;
mod writing;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ragback_domain::{CharacterId, FactOwner, UserId};
use ragback_infrastructure::{Settings, WiringError, build_fact_services};
use secrecy::SecretString;

pub use backend::{AddStopped, FactsBackend, LocalFacts, OnProgress, StopReason, StopWhen};
pub use remote::RemoteFacts;
pub use writing::seed_at_startup;

use super::facts_file::read_facts;

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
pub(crate) fn default_server_url(settings: &Settings) -> String {
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
pub(crate) fn operator_key(settings: &Settings) -> Option<&SecretString> {
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
                    "{message}\n{error:#}. Stop the process that holds the store, or pass \
                     --server with the URL of the server that does."
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
            writing::add(backend.as_ref(), read, replace, dry_run).await
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
            reading::print_scored(found, threshold, json)
        }
        FactsCommand::List {
            owner,
            limit,
            json,
            server,
        } => {
            let owner = owner.owner()?;
            let backend = backend(settings, server.as_deref()).await?;
            reading::list(backend.as_ref(), owner.as_ref(), limit, json).await
        }
        FactsCommand::Delete {
            owner,
            id,
            all,
            server,
        } => {
            let owner = owner.required()?;
            let backend = backend(settings, server.as_deref()).await?;
            writing::delete(backend.as_ref(), &owner, id, all).await
        }
        FactsCommand::Export {
            owner,
            output,
            server,
        } => {
            let owner = owner.owner()?;
            let backend = backend(settings, server.as_deref()).await?;
            reading::export(backend.as_ref(), owner.as_ref(), output.as_deref()).await
        }
        FactsCommand::Import { file, server } => {
            let backend = backend(settings, server.as_deref()).await?;
            writing::import(backend.as_ref(), &file).await
        }
    }
}
