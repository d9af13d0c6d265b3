//! Replay windows: the character messages of a dialogue that get regenerated, each with the
//! messages before it, and a seeded sample of them.
//!
//! A window is `(dialogue, e)`: message `e` is a character message (the target) and its context
//! is `messages[max(0, e − W + 1) .. e]`. Nothing after the target is ever read — the user's
//! reaction to it would leak the answer.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::stats::SeededRng;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// The person chatting.
    User,
    /// The character.
    Character,
}

/// Where in its dialogue a target sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    /// The context is shorter than a full window: the dialogue's beginning.
    Begin,
    /// Neither.
    Middle,
    /// The dialogue's last character message: the user left after it.
    End,
}

impl Bucket {
    /// Every bucket, in report order.
    pub const ALL: [Self; 3] = [Self::Begin, Self::Middle, Self::End];

    /// Its name in files and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Begin => "begin",
            Self::Middle => "middle",
            Self::End => "end",
        }
    }
}

/// How windows are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    /// Messages in a window, the target included (`W`).
    pub window: usize,
    /// The least distance between two targets of a dialogue.
    pub stride: usize,
    /// The fewest context messages a target needs.
    pub min_context: usize,
}

impl Default for WindowSpec {
    fn default() -> Self {
        Self {
            window: 20,
            stride: 5,
            min_context: 2,
        }
    }
}

/// One target of a dialogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Index of the target message.
    pub index: usize,
    /// First index of its context.
    pub context_start: usize,
    /// Its position bucket.
    pub bucket: Bucket,
}

/// The targets of one dialogue: greedily the first character message with at least
/// `min_context` messages before it, then each next one at least `stride` further on; the last
/// character message is always a target too (when it has the context).
pub fn targets(speakers: &[Speaker], spec: WindowSpec) -> Vec<Target> {
    let window = spec.window.max(2);
    let stride = spec.stride.max(1);
    let characters: Vec<usize> = speakers
        .iter()
        .enumerate()
        .filter(|(i, s)| **s == Speaker::Character && *i >= spec.min_context.max(1))
        .map(|(i, _)| i)
        .collect();
    let Some(&last) = characters.last() else {
        return Vec::new();
    };
    let mut chosen: Vec<usize> = Vec::new();
    for &index in &characters {
        if chosen
            .last()
            .is_none_or(|&previous| index >= previous + stride)
        {
            chosen.push(index);
        }
    }
    if chosen.last() != Some(&last) {
        chosen.push(last);
    }
    chosen
        .into_iter()
        .map(|index| Target {
            index,
            context_start: (index + 1).saturating_sub(window),
            bucket: if index == last {
                Bucket::End
            } else if index < window {
                Bucket::Begin
            } else {
                Bucket::Middle
            },
        })
        .collect()
}

/// How to sample windows.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// How many windows in all; `None` keeps every window (still capped per dialogue).
    pub total: Option<usize>,
    /// Relative quotas of the buckets (`begin=1,middle=1,end=1`); a bucket left out gets none.
    pub buckets: Vec<(Bucket, u32)>,
    /// The most windows drawn from one dialogue (windows of a dialogue are correlated).
    pub max_per_dialogue: usize,
    /// Seed of the draw.
    pub seed: u64,
}

/// A window id (`"{dialogue}#{index}"`) and what sampling needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The dialogue.
    pub dialogue: String,
    /// The target's index.
    pub index: usize,
    /// The target's bucket.
    pub bucket: Bucket,
}

impl Candidate {
    /// The window id.
    pub fn id(&self) -> String {
        format!("{}#{}", self.dialogue, self.index)
    }
}

/// Draws windows: candidates are put in a seeded random order (independent of the input order),
/// each bucket takes its quota of `total` in that order, skipping dialogues at their cap; a
/// bucket short of candidates leaves its quota unfilled. The result is in window-id order.
pub fn sample(candidates: &[Candidate], sampling: &Sampling) -> Vec<Candidate> {
    let mut order: Vec<&Candidate> = candidates.iter().collect();
    order.sort_by(|a, b| (&a.dialogue, a.index).cmp(&(&b.dialogue, b.index)));
    order.dedup_by(|a, b| a.dialogue == b.dialogue && a.index == b.index);
    let mut rng = SeededRng::new(sampling.seed, 0);
    for i in (1..order.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let weight_sum: u64 = sampling.buckets.iter().map(|(_, w)| u64::from(*w)).sum();
    let mut assigned = 0usize;
    let quotas: Vec<(Bucket, usize)> = sampling
        .buckets
        .iter()
        .enumerate()
        .map(|(position, (bucket, weight))| {
            let quota = match sampling.total {
                None if *weight > 0 => usize::MAX,
                None => 0,
                Some(_) if weight_sum == 0 => 0,
                Some(total) if position + 1 == sampling.buckets.len() => total - assigned,
                Some(total) => (total as u64 * u64::from(*weight) / weight_sum)
                    .try_into()
                    .unwrap_or(usize::MAX),
            };
            assigned = assigned.saturating_add(quota);
            (*bucket, quota)
        })
        .collect();
    // One pass in the shuffled order, so that no bucket uses up a dialogue's cap before the
    // others get their turn.
    let mut taken: HashMap<Bucket, usize> = HashMap::new();
    let mut per_dialogue: HashMap<&str, usize> = HashMap::new();
    let mut chosen = Vec::new();
    for candidate in order {
        let Some(&(_, quota)) = quotas.iter().find(|(b, _)| *b == candidate.bucket) else {
            continue;
        };
        let in_bucket = taken.entry(candidate.bucket).or_default();
        let in_dialogue = per_dialogue.entry(candidate.dialogue.as_str()).or_default();
        if *in_bucket >= quota || *in_dialogue >= sampling.max_per_dialogue {
            continue;
        }
        *in_bucket += 1;
        *in_dialogue += 1;
        chosen.push(candidate.clone());
    }
    chosen.sort_by(|a, b| (&a.dialogue, a.index).cmp(&(&b.dialogue, b.index)));
    chosen
}

/// The ISO week (`2025-W47`) of an RFC 3339 timestamp's date (`2025-11-20T18:02:31Z`): the
/// source period of a dialogue that names none. `None` when the date cannot be read.
pub fn iso_week(ts: &str) -> Option<String> {
    let date = ts.get(..10)?;
    let mut parts = date.split('-');
    let (y, m, d): (i64, i64, i64) = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let days = |y: i64, m: i64, d: i64| {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
        era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
    };
    let today = days(y, m, d);
    let weekday = (today + 3).rem_euclid(7); // Monday 0 (1970-01-01 was a Thursday).
    let thursday = today - weekday + 3; // The week belongs to its Thursday's year.
    let mut year = y + 1;
    while days(year, 1, 1) > thursday {
        year -= 1;
    }
    let week = (thursday - days(year, 1, 1)) / 7 + 1;
    Some(format!("{year}-W{week:02}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn iso_weeks_follow_their_thursday() {
        for (ts, week) in [
            ("2025-11-20T18:02:31Z", "2025-W47"),
            ("2025-12-29T00:00:00Z", "2026-W01"),
            ("2021-01-03", "2020-W53"),
            ("2024-12-30", "2025-W01"),
            ("2026-12-06T14:00:00Z", "2026-W49"),
        ] {
            assert_eq!(iso_week(ts).as_deref(), Some(week), "{ts}");
        }
        assert_eq!(iso_week("yesterday"), None);
    }

    fn speakers(pattern: &str) -> Vec<Speaker> {
        pattern
            .chars()
            .map(|c| {
                if c == 'u' {
                    Speaker::User
                } else {
                    Speaker::Character
                }
            })
            .collect()
    }

    #[test]
    fn targets_follow_the_stride_and_always_include_the_last_character_message() {
        let spec = WindowSpec {
            window: 4,
            stride: 3,
            min_context: 2,
        };
        // 0 c, 1 u, 2 c, 3 u, 4 c, 5 u, 6 c, 7 u, 8 c, 9 u
        let got = targets(&speakers("cucucucucu"), spec);
        let indices: Vec<usize> = got.iter().map(|t| t.index).collect();
        assert_eq!(indices, vec![2, 6, 8]);
        assert_eq!(got[0].bucket, Bucket::Begin);
        assert_eq!(got[0].context_start, 0);
        assert_eq!(got[1].bucket, Bucket::Middle);
        assert_eq!(got[1].context_start, 3);
        assert_eq!(got[2].bucket, Bucket::End);
        assert!(targets(&speakers("uuu"), spec).is_empty());
        assert!(targets(&speakers("cu"), spec).is_empty(), "no context");
    }

    #[test]
    fn sampling_keeps_quotas_and_the_cap_and_ignores_input_order() {
        let mut candidates = Vec::new();
        for d in 0..10 {
            for (i, bucket) in [Bucket::Begin, Bucket::Middle, Bucket::Middle, Bucket::End]
                .into_iter()
                .enumerate()
            {
                candidates.push(Candidate {
                    dialogue: format!("d{d}"),
                    index: i * 5 + 2,
                    bucket,
                });
            }
        }
        let sampling = Sampling {
            total: Some(9),
            buckets: vec![(Bucket::Begin, 1), (Bucket::Middle, 1), (Bucket::End, 1)],
            max_per_dialogue: 2,
            seed: 7,
        };
        let got = sample(&candidates, &sampling);
        assert_eq!(got.len(), 9);
        for bucket in Bucket::ALL {
            assert_eq!(got.iter().filter(|c| c.bucket == bucket).count(), 3);
        }
        for d in 0..10 {
            assert!(got.iter().filter(|c| c.dialogue == format!("d{d}")).count() <= 2);
        }
        let mut reversed = candidates.clone();
        reversed.reverse();
        assert_eq!(sample(&reversed, &sampling), got);
        let other = sample(
            &candidates,
            &Sampling {
                seed: 8,
                ..sampling.clone()
            },
        );
        assert_ne!(other, got, "another seed draws other windows");
    }

    proptest! {
        #[test]
        fn targets_are_character_messages_with_bounded_context(
            pattern in proptest::collection::vec(any::<bool>(), 0..80),
            window in 2usize..25, stride in 1usize..8, min_context in 0usize..4,
        ) {
            let speakers: Vec<Speaker> = pattern.iter()
                .map(|c| if *c { Speaker::Character } else { Speaker::User }).collect();
            let spec = WindowSpec { window, stride, min_context };
            let got = targets(&speakers, spec);
            for (n, t) in got.iter().enumerate() {
                prop_assert_eq!(speakers[t.index], Speaker::Character);
                prop_assert!(t.index >= min_context.max(1));
                prop_assert!(t.index - t.context_start < window);
                prop_assert!(t.context_start < t.index);
                if n > 0 && n + 1 < got.len() {
                    prop_assert!(t.index >= got[n - 1].index + stride);
                }
            }
        }
    }
}
