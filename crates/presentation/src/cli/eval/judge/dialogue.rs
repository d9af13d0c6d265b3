//! `ragback eval pairwise --unit dialogue`: the pairs are seed conversations; each side is the
//! whole conversation an arm had with the simulated user from that seed (`eval simulate`). A
//! conversation the simulator's health check excluded (or that did not finish) leaves its seed
//! out, listed, so that every pair stays matched.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde_json::json;

use super::super::dialogues::{Dialogue, LoggedMessage, read_dialogues};
use super::super::rows::{Judgment, Spoken, Unit};
use super::super::simulate::Simulation;
use super::Setup;
use super::pairwise::{Pair, blank, matches, pair_id};

/// A seed's simulated conversations by (arm, sample).
type Conversations<'a> = BTreeMap<(String, u32), (&'a Dialogue, Simulation)>;

/// The speaker-named messages of `messages`.
fn spoken(dialogue: &Dialogue, messages: &[LoggedMessage]) -> Vec<Spoken> {
    messages
        .iter()
        .map(|m| {
            let party = if m.role == "user" {
                &dialogue.user
            } else {
                &dialogue.character
            };
            Spoken {
                speaker: party["name"].as_str().unwrap_or(&m.role).to_owned(),
                text: m.text.clone(),
            }
        })
        .collect()
}

/// A conversation's simulated part as one text (what the row keeps, and what "identical" means).
fn transcript(lines: &[Spoken]) -> String {
    lines
        .iter()
        .map(|l| format!("{}: {}", l.speaker, l.text))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The pairs of simulated conversations in `path`: per seed, arm `a`'s sample `s` against arm
/// `b`'s (or, A/A, `a`'s samples `2k` and `2k + 1`).
pub(super) fn pairs(
    setup: &Setup<Judgment>,
    prompt_sha256: &str,
    path: &Path,
    a: &str,
    b: &str,
    aa: bool,
) -> anyhow::Result<Vec<Pair>> {
    let dialogues = read_dialogues(path)?;
    let mut by_seed: BTreeMap<String, Conversations<'_>> = BTreeMap::new();
    for dialogue in &dialogues {
        let simulation: Simulation = serde_json::from_value(
            dialogue.extra.get("simulation").cloned().with_context(|| {
                format!(
                    "{}: the dialogue {} was not simulated (`ragback eval simulate` writes them)",
                    path.display(),
                    dialogue.id
                )
            })?,
        )
        .with_context(|| format!("{}: {}: its simulation", path.display(), dialogue.id))?;
        by_seed
            .entry(simulation.seed_dialogue.clone())
            .or_default()
            .insert(
                (simulation.arm.clone(), simulation.sample),
                (dialogue, simulation),
            );
    }
    let samples = by_seed
        .values()
        .flat_map(|arms| arms.keys().map(|(_, s)| *s))
        .max()
        .unwrap_or(0);
    let matches = matches(a, b, samples, aa);
    let (mut pairs, mut left_out) = (Vec::new(), Vec::new());
    for (seed, arms) in &by_seed {
        for m in &matches {
            let [(arm_a, sa), (arm_b, sb)] = m.sides;
            let (Some((da, sim_a)), Some((db, sim_b))) = (
                arms.get(&(arm_a.to_owned(), sa)),
                arms.get(&(arm_b.to_owned(), sb)),
            ) else {
                continue;
            };
            let why: Vec<String> = [(da, sim_a), (db, sim_b)]
                .iter()
                .flat_map(|(d, s)| s.excluded.iter().map(move |w| format!("{}: {w}", d.id)))
                .collect();
            if !why.is_empty() {
                left_out.push(format!("{}: {}", pair_id(seed, m.k), why.join("; ")));
                continue;
            }
            let opening = spoken(
                da,
                &da.messages[..sim_a.seed_messages.min(da.messages.len())],
            );
            let side = |d: &Dialogue, s: &Simulation| {
                spoken(d, &d.messages[s.seed_messages.min(d.messages.len())..])
            };
            let (first, second) = (side(da, sim_a), side(db, sim_b));
            let chars = |d: &Dialogue, s: &Simulation| -> usize {
                d.messages[s.seed_messages.min(d.messages.len())..]
                    .iter()
                    .filter(|m| m.role == "character")
                    .map(|m| m.text.chars().count())
                    .sum()
            };
            let mut row = blank(setup, prompt_sha256, seed, m);
            row.dialogue = (*seed).to_owned();
            row.unit = Unit::Dialogue;
            row.period = da
                .extra
                .get("period")
                .and_then(|p| p.as_str())
                .map(str::to_owned);
            row.chars_a = chars(da, sim_a);
            row.chars_b = chars(db, sim_b);
            row.context_tail = opening.iter().rev().take(2).rev().cloned().collect();
            row.text_a = transcript(&first);
            row.text_b = transcript(&second);
            pairs.push(Pair {
                identical: row
                    .text_a
                    .split_whitespace()
                    .eq(row.text_b.split_whitespace()),
                data: json!({
                    "character": da.character, "user": da.user, "scenario": da.scenario,
                    "opening": opening,
                }),
                candidates: (json!(first), json!(second)),
                row,
            });
        }
    }
    if !left_out.is_empty() {
        eprintln!(
            "pairwise: {} seed conversations left out (the simulator's health check, or an unfinished conversation):",
            left_out.len()
        );
        for line in &left_out {
            eprintln!("  - {line}");
        }
    }
    Ok(pairs)
}
