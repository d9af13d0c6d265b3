//! Measuring memory extraction against labelled dialogues: precision and recall of the facts it
//! stores, the accuracy of its UPDATE and DELETE decisions, and how often it invents a memory.

use crate::memory::{Action, Decision};
use crate::words::{jaccard, words};

/// What a dialogue should do to the user's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedChange {
    /// `Add`, `Update` or `Delete`.
    pub action: Action,
    /// The fact stored (add, update).
    pub text: Option<String>,
    /// The stored fact replaced or removed (update, delete).
    pub target: Option<String>,
}

/// One labelled dialogue's outcome: what was expected, and what extraction decided (`None`: it
/// failed).
#[derive(Debug, Clone)]
pub struct MemoryOutcome {
    /// The expected changes; empty when nothing should be learned.
    pub expected: Vec<ExpectedChange>,
    /// The decisions, or `None` when the extraction failed.
    pub decisions: Option<Vec<Decision>>,
}

/// The measured quality of extraction.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryReport {
    /// Dialogues measured.
    pub dialogues: usize,
    /// Dialogues whose extraction failed (model down, bad JSON): they count as learning nothing.
    pub failed: usize,
    /// Facts stored (added or updated) that match an expected one, over all stored.
    pub precision: f64,
    /// Expected facts (added or updated) that were stored, over all expected.
    pub recall: f64,
    /// Expected updates and deletes decided as labelled (the same action on the same stored
    /// fact), over all of them; `None` when the set has none.
    pub decision_accuracy: Option<f64>,
    /// Dialogues that should teach nothing but stored a fact, over all such dialogues; `None`
    /// when the set has none.
    pub false_memory_rate: Option<f64>,
    /// Facts stored, and expected.
    pub stored: usize,
    /// Facts expected to be stored.
    pub expected: usize,
}

/// Two texts say the same fact when their word sets overlap by at least this (Jaccard).
pub const SAME_FACT: f64 = 0.5;

/// Whether two texts state the same fact (word overlap of [`SAME_FACT`] or more; two texts
/// without words never do).
pub fn same_fact(a: &str, b: &str) -> bool {
    let (a, b) = (words(a), words(b));
    !(a.is_empty() && b.is_empty()) && jaccard(&a, &b) >= SAME_FACT
}

fn stores(action: Action) -> bool {
    matches!(action, Action::Add | Action::Update)
}

/// Scores the outcomes.
pub fn score(outcomes: &[MemoryOutcome]) -> MemoryReport {
    let (mut stored, mut matched_stored, mut expected, mut matched_expected) = (0, 0, 0, 0);
    let (mut decisions_labelled, mut decisions_right) = (0, 0);
    let (mut quiet, mut invented, mut failed) = (0, 0, 0);
    for outcome in outcomes {
        let decisions = outcome.decisions.as_deref().unwrap_or_default();
        failed += usize::from(outcome.decisions.is_none());
        let made: Vec<&Decision> = decisions.iter().filter(|d| stores(d.action)).collect();
        let wanted: Vec<&ExpectedChange> = outcome
            .expected
            .iter()
            .filter(|e| stores(e.action))
            .collect();
        stored += made.len();
        expected += wanted.len();
        let mut used = vec![false; made.len()];
        for want in &wanted {
            let text = want.text.as_deref().unwrap_or_default();
            if let Some(i) = (0..made.len()).find(|&i| !used[i] && same_fact(&made[i].text, text)) {
                used[i] = true;
                matched_expected += 1;
            }
        }
        matched_stored += used.iter().filter(|u| **u).count();
        for want in outcome
            .expected
            .iter()
            .filter(|e| matches!(e.action, Action::Update | Action::Delete))
        {
            decisions_labelled += 1;
            let target = want.target.as_deref().unwrap_or_default();
            let right = decisions.iter().any(|d| {
                d.action == want.action
                    && d.target
                        .as_ref()
                        .is_some_and(|t| t.text.as_str().eq_ignore_ascii_case(target))
                    && want
                        .text
                        .as_deref()
                        .is_none_or(|text| same_fact(&d.text, text))
            });
            decisions_right += usize::from(right);
        }
        if outcome.expected.is_empty() {
            quiet += 1;
            invented += usize::from(!made.is_empty());
        }
    }
    let share = |part: usize, whole: usize| (whole > 0).then(|| part as f64 / whole as f64);
    MemoryReport {
        dialogues: outcomes.len(),
        failed,
        precision: share(matched_stored, stored).unwrap_or(1.0),
        recall: share(matched_expected, expected).unwrap_or(1.0),
        decision_accuracy: share(decisions_right, decisions_labelled),
        false_memory_rate: share(invented, quiet),
        stored,
        expected,
    }
}

#[cfg(test)]
mod tests {
    use ragback_domain::{Fact, FactOwner, FactText, UserId};

    use super::*;

    fn john() -> FactOwner {
        FactOwner::User(UserId::parse("john").unwrap())
    }

    fn decided(action: Action, text: &str, target: Option<&str>) -> Decision {
        Decision {
            action,
            text: text.into(),
            owner: john(),
            target: target.map(|t| Fact::new(john(), FactText::parse(t).unwrap())),
            fact_id: None,
            reason: "test",
        }
    }

    fn want(action: Action, text: Option<&str>, target: Option<&str>) -> ExpectedChange {
        ExpectedChange {
            action,
            text: text.map(str::to_owned),
            target: target.map(str::to_owned),
        }
    }

    #[test]
    fn precision_recall_decisions_and_invented_memories_are_counted() {
        let outcomes = [
            // A fact found, worded a little differently.
            MemoryOutcome {
                expected: vec![want(Action::Add, Some("Has a dog named Biscuit"), None)],
                decisions: Some(vec![decided(Action::Add, "Has a dog called Biscuit", None)]),
            },
            // An update right, one extra fact wrong.
            MemoryOutcome {
                expected: vec![want(
                    Action::Update,
                    Some("Lives in Berlin"),
                    Some("Lives in London"),
                )],
                decisions: Some(vec![
                    decided(Action::Update, "Lives in Berlin", Some("Lives in London")),
                    decided(Action::Add, "Likes trains", None),
                ]),
            },
            // A delete decided as an add: wrong, and a fact invented.
            MemoryOutcome {
                expected: vec![want(Action::Delete, None, Some("Has a cat named Kit"))],
                decisions: Some(vec![decided(Action::Add, "Cat Kit passed away", None)]),
            },
            // Small talk: nothing learned, as it should.
            MemoryOutcome {
                expected: vec![],
                decisions: Some(vec![decided(Action::Noop, "x", None)]),
            },
            // Small talk that stored a fact.
            MemoryOutcome {
                expected: vec![],
                decisions: Some(vec![decided(Action::Add, "Is tired", None)]),
            },
            // A failed extraction of a fact.
            MemoryOutcome {
                expected: vec![want(Action::Add, Some("Plays chess"), None)],
                decisions: None,
            },
        ];
        let report = score(&outcomes);
        assert_eq!((report.stored, report.expected), (5, 3));
        assert!((report.precision - 2.0 / 5.0).abs() < 1e-9, "{report:?}");
        assert!((report.recall - 2.0 / 3.0).abs() < 1e-9, "{report:?}");
        assert_eq!(report.decision_accuracy, Some(0.5));
        assert_eq!(report.false_memory_rate, Some(0.5));
        assert_eq!(report.failed, 1);
        assert!(same_fact("Moved to Lisbon", "moved to lisbon!"));
        assert!(!same_fact("Has a dog", "Has a cat named Kit"));
        let empty = score(&[]);
        assert_eq!((empty.precision, empty.recall), (1.0, 1.0));
        assert_eq!(empty.decision_accuracy, None);
    }
}
