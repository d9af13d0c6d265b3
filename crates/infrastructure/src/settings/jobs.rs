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
    /// How long a job stays the replica's that queued or took it without a renewal
    /// (`lease_secs`); the replica renews it every sweep while the job waits or runs, so after a
    /// lease runs out the replica is gone (or stalled), and another may take the job over.
    #[serde(rename = "lease_secs", deserialize_with = "seconds::deserialize")]
    pub lease: Duration,
    /// How often a replica renews its jobs' leases and looks for jobs nobody holds
    /// (`sweep_secs`); below the lease.
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
        if self.sweep >= self.lease {
            return Err(InvalidSetting::new(
                "sweep_secs",
                "must be below RAGBACK_JOBS__LEASE_SECS: each sweep renews the leases of the jobs \
                 a replica holds, before they run out",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_must_come_before_the_lease_it_renews_runs_out() {
        assert!(JobsConfig::default().validate().is_ok());
        let late = JobsConfig {
            sweep: Duration::from_secs(300),
            ..JobsConfig::default()
        };
        let error = late.validate().unwrap_err();
        assert_eq!(error.key, "sweep_secs");
        let none = JobsConfig {
            lease: Duration::ZERO,
            ..JobsConfig::default()
        };
        assert_eq!(none.validate().unwrap_err().key, "lease_secs");
    }
}
