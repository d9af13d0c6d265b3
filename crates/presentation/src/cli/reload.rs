//! SIGHUP: `ragback serve` reloads its variants and split from the configuration files. A file
//! that does not load or validate is refused whole, with an error in the log, and the variants in
//! force stay; requests already running finish with the variant they started with.

use ragback_application::variants::{VariantSet, Variants};
use ragback_infrastructure::{ConfigSources, Settings, build_variants};

/// The variant set the configuration of `sources` describes now.
fn load(sources: &ConfigSources) -> anyhow::Result<VariantSet> {
    let settings = Settings::load(sources, &[])?;
    Ok(build_variants(&settings)?)
}

/// Logs which variants are in force and how users are split between them.
pub(super) fn log_in_force(set: &VariantSet, what: &str) {
    let variants = set.names().collect::<Vec<_>>().join(", ");
    let split = set.split().map_or_else(
        || "everyone gets the default variant".to_owned(),
        |split| {
            split
                .shares()
                .iter()
                .map(|(name, share)| format!("{name} {share}%"))
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    tracing::info!(%variants, %split, "{what}");
}

/// Reloads `variants` from `sources` on every SIGHUP, until the task is aborted.
#[cfg(unix)]
pub(super) fn on_hangup(variants: Variants, sources: ConfigSources) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{SignalKind, signal};
    tokio::spawn(async move {
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP: variants will not be reloaded");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            match load(&sources) {
                Ok(set) => {
                    log_in_force(&set, "SIGHUP: variants reloaded");
                    variants.replace(set);
                }
                Err(error) => tracing::error!(
                    error = format!("{error:#}"),
                    "SIGHUP: the configuration was refused; the variants and split in force stay"
                ),
            }
        }
    })
}

/// Without Unix signals there is nothing to reload on.
#[cfg(not(unix))]
pub(super) fn on_hangup(
    _variants: Variants,
    _sources: ConfigSources,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {})
}
