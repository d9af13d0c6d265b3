//! The `ragback` command line: `serve`, `facts` for operators, `chat` to talk to a character,
//! `eval` to measure retrieval and compare models, `model` to fetch the in-process models.

pub mod chat;
mod client;
mod eval;
mod facts;
mod facts_file;
mod guard;
#[cfg(any(feature = "local-embedder", feature = "local-llm"))]
mod model;
mod progress;
mod reload;
mod summary;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ragback_infrastructure::{ConfigSources, Settings, build_services, telemetry};
use tokio::net::TcpListener;

use crate::api::{self, AppState, Connections};

pub use eval::BudgetReached;
pub use facts::{FactsCommand, Interrupted};
pub use facts_file::{ExportedFact, FactsFile, read_facts};

/// ragback: the next line of a role-play character, with facts retrieved from Qdrant.
#[derive(Debug, Parser)]
#[command(name = "ragback", version, about)]
pub struct Cli {
    /// TOML configuration file (read when it exists).
    #[arg(
        long,
        global = true,
        default_value = "ragback.toml",
        env = "RAGBACK_CONFIG"
    )]
    pub config: PathBuf,
    /// Dotenv file (read when it exists); the environment wins over it.
    #[arg(long, global = true, default_value = ".env")]
    pub env_file: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API.
    Serve {
        /// Listen address (overrides RAGBACK_SERVER__ADDR).
        #[arg(long)]
        addr: Option<SocketAddr>,
        /// Seed facts from this file at start-up (skipped, with a warning, when no embedder is
        /// configured or it fails; facts already stored are not embedded again).
        #[arg(long)]
        seed: Option<PathBuf>,
    },
    /// Add and search facts.
    #[command(subcommand)]
    Facts(FactsCommand),
    /// Chat with a character through a running server (`make interact`).
    Chat(chat::ChatArgs),
    /// Evaluate: retrieval quality, memory extraction, pairwise judging of two variants,
    /// moderation, dialogues, reports.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Check texts with the reply guard.
    #[command(subcommand)]
    Guard(guard::GuardCommand),
    /// Read or delete a conversation's rolling summary.
    #[command(subcommand)]
    Summary(summary::SummaryCommand),
    /// Get the in-process models (the local embedder and the local chat model).
    #[cfg(any(feature = "local-embedder", feature = "local-llm"))]
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Exit 0 when a running ragback answers its health check (the container's HEALTHCHECK: the
    /// image has no curl).
    Healthcheck {
        /// The URL to ask.
        #[arg(long, default_value = "http://127.0.0.1:8000/health")]
        url: String,
        /// How long to wait, in seconds.
        #[arg(long, default_value_t = 3)]
        timeout_secs: u64,
    },
}

impl Cli {
    /// Loads the configuration this invocation names.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        load_settings(&self.config, &self.env_file)
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = match cli.command {
        // The chat client is a client: the server's configuration and logs are not its business.
        Command::Chat(args) => return chat::run(args).await,
        Command::Healthcheck { url, timeout_secs } => {
            return healthcheck(&url, Duration::from_secs(timeout_secs)).await;
        }
        command => command,
    };
    let sources = config_sources(&cli.config, &cli.env_file);
    let settings = Settings::load(&sources, &[])?;
    let verbosity = match command {
        Command::Serve { .. } => telemetry::Verbosity::Server,
        _ => telemetry::Verbosity::Command,
    };
    telemetry::init(settings.log_format, verbosity);
    match command {
        Command::Serve { addr, seed } => serve(settings, sources, addr, seed).await,
        Command::Facts(command) => facts::run(command, &settings).await,
        Command::Chat(args) => chat::run(args).await,
        Command::Healthcheck { .. } => Ok(()),
        Command::Eval(command) => eval::run(command, &settings).await,
        Command::Guard(command) => guard::run(command, &settings).await,
        Command::Summary(command) => summary::run(command, &settings).await,
        #[cfg(any(feature = "local-embedder", feature = "local-llm"))]
        Command::Model(command) => model::run(command, &settings).await,
    }
}

/// `ragback healthcheck`: one GET; a 2xx is healthy, anything else (or no answer) is an error.
async fn healthcheck(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let client = ragback_integrations::http::client_builder()
        .timeout(timeout)
        .build()?;
    let response = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("{url} does not answer"))?;
    let status = response.status();
    anyhow::ensure!(status.is_success(), "{url} answered {status}");
    Ok(())
}

fn load_settings(config: &Path, env_file: &Path) -> anyhow::Result<Settings> {
    Ok(Settings::load(&config_sources(config, env_file), &[])?)
}

fn config_sources(config: &Path, env_file: &Path) -> ConfigSources {
    ConfigSources {
        toml: Some(config.to_path_buf()),
        dotenv: Some(env_file.to_path_buf()),
        environment: true,
    }
}

async fn serve(
    settings: Settings,
    sources: ConfigSources,
    addr: Option<SocketAddr>,
    seed: Option<PathBuf>,
) -> anyhow::Result<()> {
    let services = build_services(&settings)?;
    let variants = services.chat.variants().clone();
    reload::log_in_force(
        &variants.current(),
        "variants in force (SIGHUP reloads them)",
    );
    let reloads = reload::on_hangup(variants, sources);
    if let Some(path) = seed {
        facts::seed_at_startup(&services, &path).await;
    }
    let facts = services.facts.clone();
    let state = AppState::from_settings(services, &settings);
    let memory_stopped = state.memory_queue.as_ref().map(|q| q.stopped());
    let metrics = state.metrics.clone();
    let upkeep = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            metrics.run_upkeep();
        }
    });
    let addr = addr.unwrap_or(settings.server.addr);
    settings.check_serving(addr)?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (RAGBACK_SERVER__ADDR)"))?;
    let bound = listener.local_addr().unwrap_or(addr);
    let server = &settings.server;
    if server.no_keys() {
        tracing::info!(addr = %bound, "ragback is listening; authentication is off");
    } else {
        tracing::info!(
            addr = %bound,
            keys = server.api_keys.0.len(),
            memory_keys = server.memory_api_keys.0.len(),
            admin_keys = server.admin_api_keys.0.len(),
            "ragback is listening; API keys required"
        );
    }
    if settings.memory.auto
        && !(server.memory_api_keys.is_empty() && server.admin_api_keys.is_empty())
    {
        tracing::info!(
            "RAGBACK_MEMORY__AUTO: turns sent with a reader key (RAGBACK_SERVER__API_KEYS) are \
             not learned from; memory and admin keys are"
        );
    }
    let drain = settings.server.drain_timeout;
    let served = api::serve(
        listener,
        api::router(state),
        api::shutdown_signal(),
        Connections::from_settings(&settings),
    )
    .await;
    upkeep.abort();
    reloads.abort();
    // Extractions queued after replies already sent are finished (within the drain timeout),
    // then the store is flushed.
    if let Some(stopped) = memory_stopped
        && tokio::time::timeout(drain, stopped.wait()).await.is_err()
    {
        tracing::warn!("memory extractions still queued at shutdown were dropped");
    }
    if let Err(error) = facts.flush().await {
        tracing::error!(%error, "cannot flush the fact store");
    }
    served.context("the HTTP server failed")?;
    tracing::info!("stopped");
    Ok(())
}
