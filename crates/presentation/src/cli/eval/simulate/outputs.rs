//! What `ragback eval simulate` leaves beside its journal, rewritten whole from the journal after
//! every run: the simulated conversations as a dialogue log (`dialogues.jsonl`, one per seed,
//! arm and sample, with the simulator's health), and each simulated reply as a window with its
//! reply row (`windows.jsonl`, `replies.jsonl`) for `moderate`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use ragback_application::evaluation::simulation::DialogueHealth;
use ragback_application::evaluation::windows::Bucket;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::super::dialogues::{ContextMessage, Dialogue, LoggedMessage, Window, source_period};
use super::super::journal::{Journal, write_atomically};
use super::super::rows::{Reply, Status, Turn};
use super::turn_key;

/// What was written.
pub(super) struct Written {
    /// Conversations the health check excluded.
    pub(super) excluded: usize,
}

/// The `simulation` object of a simulated dialogue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Simulation {
    /// The seed conversation.
    pub seed_dialogue: String,
    /// The arm that answered.
    pub arm: String,
    /// The sample.
    pub sample: u32,
    /// Messages taken from the seed (the shared opening).
    pub seed_messages: usize,
    /// Replies the arm wrote.
    pub replies: usize,
    /// It reached its end (the turn limit, or the user left); `false`: a turn failed or is
    /// still to be made.
    pub complete: bool,
    /// The simulator's health in this conversation.
    pub health: DialogueHealth,
    /// Excluded from whole-dialogue judging: why (empty when it passed).
    #[serde(default)]
    pub excluded: Vec<String>,
    /// The simulator's model, templates' hash and seed: what the run was made with.
    pub simulator: Value,
}

/// The id of the conversation of `arm`'s sample `sample` from `seed`.
pub fn simulated_id(seed: &str, arm: &str, sample: u32) -> String {
    match sample {
        0 => format!("{seed}~{arm}"),
        s => format!("{seed}~{arm}~{s}"),
    }
}

/// Writes the three files of `jobs` from the journal's `rows`.
pub(super) fn write(
    dir: &Path,
    jobs: &[(&Dialogue, &str, u32)],
    rows: &HashMap<String, Turn>,
    config: &Value,
    seed_messages: usize,
    turns: usize,
) -> anyhow::Result<Written> {
    let mut log = String::new();
    let mut windows = String::new();
    let replies: Journal<Reply> =
        Journal::open(&dir.join("replies.jsonl"), "simulate", config, true)?;
    let mut excluded = 0;
    for &(seed, arm, sample) in jobs {
        let opening = seed_messages.min(seed.messages.len());
        let mut messages: Vec<LoggedMessage> = seed.messages[..opening].to_vec();
        let mut health = DialogueHealth::default();
        let (mut replied, mut complete) = (0, false);
        let mut made: Vec<&Turn> = Vec::new();
        for index in opening.. {
            if replied >= turns {
                complete = true;
                break;
            }
            let Some(row) = rows
                .get(&turn_key(&seed.id, arm, sample, index))
                .filter(|r| r.status == Status::Ok)
            else {
                break;
            };
            made.push(row);
            if row.role == "user" {
                health.add(row.text.as_deref().unwrap_or_default(), &row.drifts);
            } else {
                replied += 1;
            }
            if let Some(text) = &row.text {
                let mut extra = serde_json::Map::new();
                extra.insert("simulated".into(), json!(true));
                if !row.drifts.is_empty() {
                    extra.insert("drifts".into(), json!(row.drifts));
                }
                messages.push(LoggedMessage {
                    role: row.role.clone(),
                    text: text.clone(),
                    ts: None,
                    model: row.model.clone().filter(|_| row.role == "character"),
                    variant: row.variant.clone(),
                    extra,
                });
            }
            if row.ends {
                health.ended_early = replied < turns;
                complete = true;
                break;
            }
        }
        let mut why = health.failures();
        if !complete {
            why.push("incomplete: a turn failed or is still to be made".into());
        }
        excluded += usize::from(!why.is_empty());
        let id = simulated_id(&seed.id, arm, sample);
        let first = made.iter().find(|r| r.role == "user");
        let simulation = Simulation {
            seed_dialogue: seed.id.clone(),
            arm: arm.to_owned(),
            sample,
            seed_messages: opening,
            replies: replied,
            complete,
            health,
            excluded: why,
            simulator: json!({
                "model": first.and_then(|r| r.model.clone()),
                "prompt_sha256": first.and_then(|r| r.prompt_sha256.clone()),
                "smoke_test": first.is_some_and(|r| r.smoke_test_simulator),
                "seed": config["seed"],
            }),
        };
        let mut extra = serde_json::Map::new();
        extra.insert("simulation".into(), serde_json::to_value(&simulation)?);
        if let Some(period) = source_period(seed) {
            extra.insert("period".into(), json!(period));
        }
        let dialogue = Dialogue {
            id: id.clone(),
            source: Some("simulated".into()),
            user: seed.user.clone(),
            character: seed.character.clone(),
            scenario: seed.scenario.clone(),
            messages,
            extra,
        };
        let last_reply = dialogue
            .messages
            .iter()
            .rposition(|m| m.role == "character");
        for (index, message) in dialogue.messages.iter().enumerate().skip(opening) {
            if message.role != "character" {
                continue;
            }
            let row = made
                .iter()
                .find(|r| r.index == index)
                .context("a simulated reply without its turn")?;
            let window = Window {
                id: format!("{id}#{index}"),
                dialogue: id.clone(),
                index,
                bucket: if Some(index) == last_reply {
                    Bucket::End
                } else if index < 20 {
                    Bucket::Begin
                } else {
                    Bucket::Middle
                },
                user: seed.user.clone(),
                character: seed.character.clone(),
                scenario: seed.scenario.clone(),
                context: dialogue.messages[index.saturating_sub(19)..index]
                    .iter()
                    .map(|m| ContextMessage {
                        role: m.role.clone(),
                        text: m.text.clone(),
                    })
                    .collect(),
                logged: ContextMessage {
                    role: message.role.clone(),
                    text: message.text.clone(),
                },
                logged_model: message.model.clone(),
                logged_variant: message.variant.clone(),
                source: Some("simulated".into()),
                period: source_period(seed),
            };
            replies.append(&Reply {
                key: format!("{}|{arm}|0", window.id),
                window: window.id.clone(),
                dialogue: id.clone(),
                bucket: Some(window.bucket),
                arm: arm.to_owned(),
                sample: 0,
                status: Status::Ok,
                attempts: row.attempts,
                latency_ms: row.latency_ms,
                text: Some(message.text.clone()),
                model: row.model.clone(),
                variant: row.variant.clone(),
                facts: None,
                retrieval: None,
                usage: row.usage,
                cost_usd: row.cost_usd,
                error: None,
            })?;
            windows.push_str(&serde_json::to_string(&window)?);
            windows.push('\n');
        }
        log.push_str(&serde_json::to_string(&dialogue)?);
        log.push('\n');
    }
    replies.finish()?;
    for (name, text) in [("dialogues.jsonl", &log), ("windows.jsonl", &windows)] {
        let path = dir.join(name);
        write_atomically(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(Written { excluded })
}
