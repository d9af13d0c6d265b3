//! `RAGBACK_JOBS__*`: background work kept in the store until it is done.

use std::time::Duration;

use ragback_application::bounds::InvalidSetting;
use ragback_integrations::config::seconds;
use serde::Deserialize;

/// Queued-job settings (`RAGBACK_JOBS__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Whether memory extractions and summaries are stored before a reply is acknowledged, so
    /// that a restart or a dead replica loses none (`false`: kept in memory only).
    pub durable: bool,
    /// How long a job stays the replica's that queued or took it (`lease_secs`); after it,
    /// another replica may take it over. Longer than the slowest job, queue wait included.
    #[serde(rename = "lease_secs", deserialize_with = "seconds::deserialize")]
    pub lease: Duration,
    /// How often a replica looks for jobs nobody holds (`sweep_secs`).
    #[serde(rename = "sweep_secs", deserialize_with = "seconds::deserialize")]
    pub sweep: Duration,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            durable: true,
            lease: Duration::from_secs(300),
            sweep: Duration::from_secs(15),
        }
    }
}

impl JobsConfig {
    /// Checks what parses but cannot be used; keys are relative to the section.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.lease.is_zero() {
            return Err(InvalidSetting::new("lease_secs", "must be above 0"));
        }
        if self.sweep.is_zero() {
            return Err(InvalidSetting::new("sweep_secs", "must be above 0"));
        }
        Ok(())
    }
}
