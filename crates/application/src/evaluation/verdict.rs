//! A pairwise judge's answer: reading the verdict, and combining the two orders of a pair.
//!
//! Parsing keeps the **last** verdict of the answer (a judge that quotes `[[A]]` while reasoning
//! and ends on `[[B]]` means B), in order of preference: a JSON object with a `"verdict"` key,
//! then a FastChat `[[A]]`/`[[B]]`/`[[C]]` token or an Arena-Hard label (`[[A>B]]`, `[[A=B]]`, …).

use serde::{Deserialize, Serialize};

/// What the judge chose, by the slot it saw the candidate in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotVerdict {
    /// The candidate shown first (labelled A in the prompt).
    #[serde(rename = "A")]
    First,
    /// The candidate shown second (labelled B in the prompt).
    #[serde(rename = "B")]
    Second,
    /// Neither is better.
    #[serde(rename = "tie")]
    Tie,
}

/// Why an answer gave no verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoVerdict {
    /// No verdict could be read; `truncated` when the judge ran out of tokens.
    ParseError {
        /// The answer was cut at `max_tokens`.
        truncated: bool,
    },
    /// The judge refused (a refusal without a verdict, or a content filter).
    Refused,
}

/// Phrases of a refusal, in the languages the chats are in.
const REFUSALS: [&str; 8] = [
    "i can't",
    "i cannot",
    "i can’t",
    "i'm sorry",
    "i’m sorry",
    "i won't",
    "не могу",
    "извините",
];

/// A pairwise verdict as a JSON schema (`{"verdict": "A" | "B" | "tie"}`): what a local judge is
/// held to.
pub fn verdict_schema() -> serde_json::Value {
    serde_json::json!({"type": "object", "properties": {"verdict": {"enum": ["A", "B", "tie"]}}})
}

/// Reads the verdict of a judge's answer; `finish_reason` is the API's (`length`,
/// `content_filter`, …).
pub fn parse_verdict(answer: &str, finish_reason: Option<&str>) -> Result<SlotVerdict, NoVerdict> {
    if finish_reason == Some("content_filter") {
        return Err(NoVerdict::Refused);
    }
    if finish_reason == Some("length") {
        return Err(NoVerdict::ParseError { truncated: true });
    }
    let text = answer.replace("```json", "").replace("```", "");
    if let Some(verdict) = last_json_verdict(&text).or_else(|| last_bracket_verdict(&text)) {
        return Ok(verdict);
    }
    if looks_like_refusal(&text) {
        return Err(NoVerdict::Refused);
    }
    Err(NoVerdict::ParseError { truncated: false })
}

/// Whether a judge's answer reads as a refusal ("I can't", "I'm sorry", "не могу", …).
pub fn looks_like_refusal(answer: &str) -> bool {
    let lower = answer.to_lowercase();
    REFUSALS.iter().any(|phrase| lower.contains(phrase))
}

/// The value of the last `"verdict": "…"` that sits in a closed object.
fn last_json_verdict(text: &str) -> Option<SlotVerdict> {
    let mut found = None;
    let mut rest = text;
    let mut offset = 0;
    while let Some(at) = rest.find("\"verdict\"") {
        let start = offset + at + "\"verdict\"".len();
        if let Some(verdict) = verdict_value(&text[start..]) {
            found = Some(verdict);
        }
        offset = start;
        rest = &text[start..];
    }
    found
}

/// `: "B" }` → B; anything else (no colon, no closing quote or brace) → `None`.
fn verdict_value(after_key: &str) -> Option<SlotVerdict> {
    let after_colon = after_key.trim_start().strip_prefix(':')?.trim_start();
    let value = after_colon.strip_prefix('"')?;
    let end = value.find('"')?;
    let closed = value[end + 1..].trim_start();
    if !(closed.starts_with('}') || closed.starts_with(',')) || !value[end + 1..].contains('}') {
        return None;
    }
    label(&value[..end])
}

/// The last `[[…]]` holding a verdict label.
fn last_bracket_verdict(text: &str) -> Option<SlotVerdict> {
    let mut found = None;
    let mut rest = text;
    while let Some(open) = rest.find("[[") {
        let inner = &rest[open + 2..];
        let Some(close) = inner.find("]]") else { break };
        if let Some(verdict) = label(&inner[..close]) {
            found = Some(verdict);
        }
        rest = &inner[close + 2..];
    }
    found
}

fn label(raw: &str) -> Option<SlotVerdict> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "a" | "a>>b" | "a>b" | "b<a" | "b<<a" => Some(SlotVerdict::First),
        "b" | "b>>a" | "b>a" | "a<b" | "a<<b" => Some(SlotVerdict::Second),
        "tie" | "c" | "=" | "equal" | "a=b" | "b=a" => Some(SlotVerdict::Tie),
        _ => None,
    }
}

/// The two arms compared: A (the current model) and B (the candidate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arm {
    /// The current model.
    A,
    /// The candidate.
    B,
}

/// Which arm a verdict favours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArmVerdict {
    /// Arm A is better.
    A,
    /// Arm B is better.
    B,
    /// Neither.
    #[serde(rename = "tie")]
    Tie,
}

/// Order 1 shows A first, order 2 shows B first.
pub fn first_shown(order: u8) -> Arm {
    if order == 2 { Arm::B } else { Arm::A }
}

/// A slot verdict of `order`, as an arm verdict.
pub fn to_arm(order: u8, verdict: SlotVerdict) -> ArmVerdict {
    match (first_shown(order), verdict) {
        (_, SlotVerdict::Tie) => ArmVerdict::Tie,
        (Arm::A, SlotVerdict::First) | (Arm::B, SlotVerdict::Second) => ArmVerdict::A,
        (Arm::A, SlotVerdict::Second) | (Arm::B, SlotVerdict::First) => ArmVerdict::B,
    }
}

/// A pair on one criterion, from B's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairOutcome {
    /// B won in both orders.
    Win,
    /// A won in both orders.
    Loss,
    /// Both orders said tie.
    Tie,
    /// The orders disagree: counted as a tie.
    Inconsistent,
    /// The two replies are the same text: a tie without a call.
    Identical,
    /// An order has no verdict: left out of the rates, counted.
    Unjudged,
}

impl PairOutcome {
    /// B's score: 1 for a win, ½ for any tie, 0 for a loss; `None` when unjudged.
    pub fn score(self) -> Option<f64> {
        match self {
            Self::Win => Some(1.0),
            Self::Loss => Some(0.0),
            Self::Tie | Self::Inconsistent | Self::Identical => Some(0.5),
            Self::Unjudged => None,
        }
    }
}

/// Combines the verdicts of the two orders.
pub fn combine(order1: Option<ArmVerdict>, order2: Option<ArmVerdict>) -> PairOutcome {
    match (order1, order2) {
        (Some(a), Some(b)) if a == b => match a {
            ArmVerdict::B => PairOutcome::Win,
            ArmVerdict::A => PairOutcome::Loss,
            ArmVerdict::Tie => PairOutcome::Tie,
        },
        (Some(_), Some(_)) => PairOutcome::Inconsistent,
        _ => PairOutcome::Unjudged,
    }
}

/// The Arena-Hard-style sensitivity score: the mean of the two orders' scores for B.
pub fn mean_order_score(order1: ArmVerdict, order2: ArmVerdict) -> f64 {
    let score = |v| match v {
        ArmVerdict::B => 1.0,
        ArmVerdict::A => 0.0,
        ArmVerdict::Tie => 0.5,
    };
    (score(order1) + score(order2)) / 2.0
}

/// Whether two replies are the same once whitespace is normalised.
pub fn same_text(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_parser_table() {
        use SlotVerdict::{First, Second, Tie};
        let cases: [(&str, Option<&str>, Result<SlotVerdict, NoVerdict>); 12] = [
            (r#"Both fine. {"verdict": "B"}"#, None, Ok(Second)),
            ("I first thought [[A]] but no: [[B]]", None, Ok(Second)),
            ("```json\n{\"verdict\": \"A\"}\n```", None, Ok(First)),
            (r#"{"verdict": "C"}"#, None, Ok(Tie)),
            (r#"{"verdict":"tie"}"#, None, Ok(Tie)),
            ("[[A>>B]]", None, Ok(First)),
            ("[[A=B]]", None, Ok(Tie)),
            (
                r#"{"verdict": "A"} then {"verdict": "B"}"#,
                None,
                Ok(Second),
            ),
            (
                r#"Reasoning… {"verdict": "B"#,
                None,
                Err(NoVerdict::ParseError { truncated: false }),
            ),
            (
                r#"{"verdict": "B"}"#,
                Some("length"),
                Err(NoVerdict::ParseError { truncated: true }),
            ),
            (
                "I'm sorry, I can't help with that.",
                None,
                Err(NoVerdict::Refused),
            ),
            ("anything", Some("content_filter"), Err(NoVerdict::Refused)),
        ];
        for (answer, finish, expected) in cases {
            assert_eq!(parse_verdict(answer, finish), expected, "{answer}");
        }
        assert_eq!(
            parse_verdict("I'm sorry for the delay. {\"verdict\": \"A\"}", None),
            Ok(First),
            "a verdict wins over polite phrasing"
        );
    }

    #[test]
    fn orders_map_to_arms_and_combine() {
        assert_eq!(to_arm(1, SlotVerdict::First), ArmVerdict::A);
        assert_eq!(to_arm(2, SlotVerdict::First), ArmVerdict::B);
        assert_eq!(to_arm(2, SlotVerdict::Second), ArmVerdict::A);
        assert_eq!(
            combine(Some(ArmVerdict::B), Some(ArmVerdict::B)),
            PairOutcome::Win
        );
        assert_eq!(
            combine(Some(ArmVerdict::A), Some(ArmVerdict::B)),
            PairOutcome::Inconsistent
        );
        assert_eq!(combine(Some(ArmVerdict::Tie), None), PairOutcome::Unjudged);
        // A judge that always picks the first slot: every pair is inconsistent.
        let first = |order| to_arm(order, SlotVerdict::First);
        assert_eq!(
            combine(Some(first(1)), Some(first(2))),
            PairOutcome::Inconsistent
        );
        assert!((mean_order_score(ArmVerdict::B, ArmVerdict::Tie) - 0.75).abs() < 1e-12);
        assert!(same_text("a  b\n", " a b"));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(answer in "\\PC{0,200}", finish in proptest::option::of("[a-z_]{0,12}")) {
            let _ = parse_verdict(&answer, finish.as_deref());
        }
    }
}
