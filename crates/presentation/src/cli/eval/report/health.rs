//! The simulator's health over the simulated conversations (`report --simulated`): how often it
//! drifted (spoke as the character, leaked its prompt, broke the fourth wall, repeated itself),
//! how long its turns were, how many conversations it ended early, and which conversations were
//! excluded from whole-dialogue judging, and why.

use std::path::Path;

use anyhow::Context;
use ragback_application::evaluation::simulation::Drift;
use ragback_application::evaluation::stats::median;
use serde::Serialize;

use super::super::dialogues::read_dialogues;
use super::super::simulate::Simulation;

/// One drift's count.
#[derive(Debug, Clone, Serialize)]
pub struct DriftCount {
    pub drift: &'static str,
    /// User turns with it.
    pub turns: u64,
    /// Conversations with it.
    pub dialogues: u64,
}

/// The simulator's health.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub simulators: Vec<String>,
    pub smoke_test: bool,
    pub dialogues: u64,
    pub complete: u64,
    pub ended_early: u64,
    pub user_turns: u64,
    pub median_user_chars: f64,
    pub mean_user_chars: f64,
    pub max_user_chars: usize,
    pub drifts: Vec<DriftCount>,
    /// Conversations excluded, with why.
    pub excluded: Vec<(String, Vec<String>)>,
}

/// The health of the simulated conversations in `path` (`simulate`'s `dialogues.jsonl`).
pub fn read_health(path: &Path) -> anyhow::Result<Health> {
    let dialogues = read_dialogues(path)?;
    let mut simulations = Vec::new();
    for d in &dialogues {
        let value = d.extra.get("simulation").cloned().with_context(|| {
            format!(
                "{}: {} is not a simulated conversation",
                path.display(),
                d.id
            )
        })?;
        let simulation: Simulation = serde_json::from_value(value)
            .with_context(|| format!("{}: {}: its simulation", path.display(), d.id))?;
        simulations.push((d.id.clone(), simulation));
    }
    let chars: Vec<f64> = simulations
        .iter()
        .flat_map(|(_, s)| s.health.user_chars.iter().map(|&c| c as f64))
        .collect();
    let mut simulators: Vec<String> = simulations
        .iter()
        .filter_map(|(_, s)| s.simulator["model"].as_str().map(str::to_owned))
        .collect();
    simulators.sort();
    simulators.dedup();
    Ok(Health {
        simulators,
        smoke_test: simulations
            .iter()
            .any(|(_, s)| s.simulator["smoke_test"].as_bool() == Some(true)),
        dialogues: simulations.len() as u64,
        complete: simulations.iter().filter(|(_, s)| s.complete).count() as u64,
        ended_early: simulations
            .iter()
            .filter(|(_, s)| s.health.ended_early)
            .count() as u64,
        user_turns: simulations
            .iter()
            .map(|(_, s)| u64::from(s.health.user_turns))
            .sum(),
        median_user_chars: if chars.is_empty() {
            f64::NAN
        } else {
            median(&chars)
        },
        mean_user_chars: chars.iter().sum::<f64>() / chars.len().max(1) as f64,
        max_user_chars: chars.iter().map(|&c| c as usize).max().unwrap_or(0),
        drifts: Drift::ALL
            .iter()
            .map(|&drift| DriftCount {
                drift: drift.as_str(),
                turns: simulations
                    .iter()
                    .map(|(_, s)| s.health.count(drift) as u64)
                    .sum(),
                dialogues: simulations
                    .iter()
                    .filter(|(_, s)| s.health.count(drift) > 0)
                    .count() as u64,
            })
            .collect(),
        excluded: simulations
            .into_iter()
            .filter(|(_, s)| !s.excluded.is_empty())
            .map(|(id, s)| (id, s.excluded))
            .collect(),
    })
}
