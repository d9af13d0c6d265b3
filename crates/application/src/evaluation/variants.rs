//! Real dialogues grouped by the variant that wrote each reply: the online half of a rollout
//! ("roll B out to a share of users, then compare B's real dialogues with A's"). Unpaired: the
//! users differ, so every interval is a dialogue-clustered bootstrap, and each difference
//! resamples the two groups independently.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::stats::{Bootstrap, Interval, spread};

/// The label of replies logged without a variant.
pub const UNLABELLED: &str = "(unlabelled)";

/// A logged dialogue, as far as the comparison needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedDialogue {
    /// Its id.
    pub id: String,
    /// Who talked (the user id, else the name), for counting users.
    pub user: String,
    /// How many messages the user wrote: how long they kept talking.
    pub user_messages: usize,
    /// The character's replies: the variant that wrote each (when logged) and its text.
    pub replies: Vec<(Option<String>, String)>,
}

impl LoggedDialogue {
    /// The variant that wrote most of its replies (the first of those tied, by name).
    fn variant(&self) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (variant, _) in &self.replies {
            *counts
                .entry(variant.as_deref().unwrap_or(UNLABELLED))
                .or_default() += 1;
        }
        let most = counts.values().copied().max().unwrap_or(0);
        counts
            .into_iter()
            .find(|(_, n)| *n == most)
            .map_or_else(|| UNLABELLED.to_owned(), |(v, _)| v.to_owned())
    }
}

/// A mean and its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// The estimate.
    pub value: f64,
    /// Its 95 % interval (dialogue-clustered bootstrap); `None` with too few dialogues.
    pub ci: Option<Interval>,
}

/// One variant's dialogues.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantSummary {
    /// The variant.
    pub variant: String,
    /// Dialogues mostly written by it.
    pub dialogues: usize,
    /// Distinct users of those dialogues.
    pub users: usize,
    /// Its replies, in any dialogue.
    pub replies: usize,
    /// Messages a user wrote per dialogue (dialogues mostly written by it).
    pub user_messages_per_dialogue: Estimate,
    /// Characters per reply.
    pub reply_chars: Estimate,
    /// Share of replies holding exactly one *action* in asterisks, as the style rules ask.
    pub one_action_rate: Estimate,
    /// Differences from the baseline variant (this one minus the baseline's), when this is not
    /// the baseline and both have dialogues.
    pub versus_baseline: Option<Differences>,
}

/// A variant's differences from the baseline, each with its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Differences {
    /// In messages a user wrote per dialogue.
    pub user_messages_per_dialogue: Estimate,
    /// In characters per reply.
    pub reply_chars: Estimate,
    /// In the share of replies with one action.
    pub one_action_rate: Estimate,
}

/// Whether `reply` holds exactly one non-empty *action*.
pub fn has_one_action(reply: &str) -> bool {
    let parts: Vec<&str> = reply.split('*').collect();
    parts.len() == 3 && !parts[1].trim().is_empty()
}

/// One variant's rows: the user messages of each dialogue it mostly wrote, and for each dialogue
/// holding its replies their characters, count and replies with one action.
struct Rows {
    dialogue_lengths: Vec<f64>,
    /// Per dialogue holding replies of the variant: (sum of chars, replies, with one action).
    reply_sums: Vec<(f64, f64, f64)>,
}

impl Rows {
    fn of(variant: &str, dialogues: &[LoggedDialogue]) -> Self {
        let dialogue_lengths = dialogues
            .iter()
            .filter(|d| d.variant() == variant)
            .map(|d| d.user_messages as f64)
            .collect();
        let reply_sums = dialogues
            .iter()
            .filter_map(|d| {
                let mine: Vec<&str> = d
                    .replies
                    .iter()
                    .filter(|(v, _)| v.as_deref().unwrap_or(UNLABELLED) == variant)
                    .map(|(_, text)| text.as_str())
                    .collect();
                (!mine.is_empty()).then(|| {
                    let chars: usize = mine.iter().map(|t| t.chars().count()).sum();
                    let actions = mine.iter().filter(|t| has_one_action(t)).count();
                    (chars as f64, mine.len() as f64, actions as f64)
                })
            })
            .collect();
        Self {
            dialogue_lengths,
            reply_sums,
        }
    }

    /// The three statistics with each row weighted (1 each for the estimate itself).
    fn statistics(&self, lengths: &[u32], sums: &[u32]) -> [Option<f64>; 3] {
        let weighted = |values: &[f64], weights: &[u32]| {
            let n: f64 = weights.iter().map(|w| f64::from(*w)).sum();
            let total: f64 = values
                .iter()
                .zip(weights)
                .map(|(v, w)| v * f64::from(*w))
                .sum();
            (n > 0.0).then(|| total / n)
        };
        let mut chars = 0.0;
        let mut replies = 0.0;
        let mut actions = 0.0;
        for ((c, r, a), w) in self.reply_sums.iter().zip(sums) {
            let w = f64::from(*w);
            chars += c * w;
            replies += r * w;
            actions += a * w;
        }
        [
            weighted(&self.dialogue_lengths, lengths),
            (replies > 0.0).then(|| chars / replies),
            (replies > 0.0).then(|| actions / replies),
        ]
    }

    fn estimates(&self) -> [Option<f64>; 3] {
        self.statistics(
            &vec![1; self.dialogue_lengths.len()],
            &vec![1; self.reply_sums.len()],
        )
    }

    /// The statistics of one bootstrap round, drawn with `bootstrap`.
    fn resampled(&self, bootstrap: &Bootstrap, round: u32) -> [Option<f64>; 3] {
        let lengths = bootstrap.weights(round, self.dialogue_lengths.len());
        let sums = bootstrap.weights(round, self.reply_sums.len());
        self.statistics(&lengths, &sums)
    }
}

/// The 95 % intervals of the three statistics of `rows`, and of their differences from
/// `baseline`'s when given, from one pass over `bootstrap`'s rounds (the baseline drawn from a
/// stream of its own, so that the two groups are resampled independently).
fn intervals(
    bootstrap: &Bootstrap,
    rows: &Rows,
    baseline: Option<&Rows>,
) -> ([Option<Interval>; 3], [Option<Interval>; 3]) {
    let other = Bootstrap {
        seed: bootstrap.seed.wrapping_add(1),
        ..*bootstrap
    };
    let mut own: [Vec<f64>; 3] = Default::default();
    let mut differences: [Vec<f64>; 3] = Default::default();
    for round in 0..bootstrap.rounds {
        let mine = rows.resampled(bootstrap, round);
        let base = baseline.map(|b| b.resampled(&other, round));
        for which in 0..3 {
            let Some(value) = mine[which] else { continue };
            own[which].push(value);
            if let Some(base) = base.and_then(|b| b[which]) {
                differences[which].push(value - base);
            }
        }
    }
    (own.map(spread), differences.map(spread))
}

/// Every variant's dialogues, by name, compared with `baseline` (usually `default`, or A's
/// name).
pub fn summarise(
    dialogues: &[LoggedDialogue],
    baseline: &str,
    bootstrap: &Bootstrap,
) -> Vec<VariantSummary> {
    let variants: BTreeSet<String> = dialogues
        .iter()
        .flat_map(|d| {
            d.replies
                .iter()
                .map(|(v, _)| v.clone().unwrap_or_else(|| UNLABELLED.to_owned()))
        })
        .collect();
    let base_rows = Rows::of(baseline, dialogues);
    let base_values = base_rows.estimates();
    variants
        .into_iter()
        .map(|variant| {
            let rows = Rows::of(&variant, dialogues);
            let values = rows.estimates();
            let compared = variant != baseline
                && !rows.dialogue_lengths.is_empty()
                && !base_rows.dialogue_lengths.is_empty();
            let (own, differences) = intervals(bootstrap, &rows, compared.then_some(&base_rows));
            let estimate = |which: usize| Estimate {
                value: values[which].unwrap_or(f64::NAN),
                ci: own[which],
            };
            let difference = |which: usize| Estimate {
                value: values[which].unwrap_or(f64::NAN) - base_values[which].unwrap_or(f64::NAN),
                ci: differences[which],
            };
            let versus_baseline = compared.then(|| Differences {
                user_messages_per_dialogue: difference(0),
                reply_chars: difference(1),
                one_action_rate: difference(2),
            });
            let of_variant: Vec<&LoggedDialogue> = dialogues
                .iter()
                .filter(|d| d.variant() == variant)
                .collect();
            VariantSummary {
                dialogues: of_variant.len(),
                users: of_variant
                    .iter()
                    .map(|d| d.user.as_str())
                    .collect::<BTreeSet<_>>()
                    .len(),
                replies: rows.reply_sums.iter().map(|(_, r, _)| *r as usize).sum(),
                user_messages_per_dialogue: estimate(0),
                reply_chars: estimate(1),
                one_action_rate: estimate(2),
                versus_baseline,
                variant,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialogue(
        id: &str,
        user: &str,
        user_messages: usize,
        replies: &[(Option<&str>, &str)],
    ) -> LoggedDialogue {
        LoggedDialogue {
            id: id.into(),
            user: user.into(),
            user_messages,
            replies: replies
                .iter()
                .map(|(v, t)| (v.map(str::to_owned), (*t).to_owned()))
                .collect(),
        }
    }

    fn fixture() -> Vec<LoggedDialogue> {
        let a = Some("a");
        let b = Some("b");
        vec![
            dialogue("d1", "u1", 4, &[(a, "*nods* Sure."), (a, "Fine.")]),
            dialogue(
                "d2",
                "u2",
                6,
                &[(a, "*grins* Yo."), (a, "*waves* Hey *smiles*")],
            ),
            dialogue("d3", "u2", 8, &[(a, "*shrugs* Eh.")]),
            dialogue(
                "d4",
                "u3",
                10,
                &[(b, "*laughs* No way, bro!"), (b, "*leans in* Tell me.")],
            ),
            // Mostly b: a dialogue that moved to b midway counts as b's.
            dialogue(
                "d5",
                "u4",
                12,
                &[(a, "Hm."), (b, "*sips* Go on."), (b, "*nods* Right.")],
            ),
            dialogue("d6", "u5", 3, &[(None, "*blinks* What?")]),
        ]
    }

    #[test]
    fn variants_are_summarised_and_compared_with_the_baseline() {
        let bootstrap = Bootstrap {
            rounds: 500,
            seed: 0,
        };
        let summaries = summarise(&fixture(), "a", &bootstrap);
        let names: Vec<&str> = summaries.iter().map(|s| s.variant.as_str()).collect();
        assert_eq!(names, [UNLABELLED, "a", "b"]);

        let a = &summaries[1];
        assert_eq!((a.dialogues, a.users, a.replies), (3, 2, 6));
        assert!((a.user_messages_per_dialogue.value - 6.0).abs() < 1e-9);
        // Replies of a: 3 of 6 with exactly one action ("Fine.", two actions, and "Hm." not).
        assert!((a.one_action_rate.value - 0.5).abs() < 1e-9);
        assert!(a.versus_baseline.is_none());
        let ci = a.user_messages_per_dialogue.ci.unwrap();
        assert!(
            ci.low >= 4.0 && ci.high <= 8.0 && ci.low < 6.0 && ci.high > 6.0,
            "{ci:?}"
        );

        let b = &summaries[2];
        assert_eq!((b.dialogues, b.users, b.replies), (2, 2, 4));
        assert!((b.user_messages_per_dialogue.value - 11.0).abs() < 1e-9);
        assert!((b.one_action_rate.value - 1.0).abs() < 1e-9);
        let versus = b.versus_baseline.unwrap();
        assert!((versus.user_messages_per_dialogue.value - 5.0).abs() < 1e-9);
        assert!((versus.one_action_rate.value - 0.5).abs() < 1e-9);
        let ci = versus.user_messages_per_dialogue.ci.unwrap();
        assert!(
            ci.low > 0.0 && ci.low < 5.0 && ci.high > 5.0,
            "B's users talk longer: {ci:?}"
        );

        let unlabelled = &summaries[0];
        assert_eq!((unlabelled.dialogues, unlabelled.replies), (1, 1));
    }

    #[test]
    fn one_action_means_exactly_one_non_empty_span() {
        assert!(has_one_action("*grins* Yo."));
        assert!(has_one_action("Yo. *grins*"));
        assert!(!has_one_action("Yo."));
        assert!(!has_one_action("*grins* Yo. *waves*"));
        assert!(!has_one_action("** Yo."));
        assert!(!has_one_action("*grins Yo."));
    }
}
