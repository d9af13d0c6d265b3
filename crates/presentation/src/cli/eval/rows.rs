//! The rows of the evaluation's journals, one type per kind, shared by the stage that writes them
//! and the stages that read them back (`replay` → `pairwise`/`moderate` → `report`).
//!
//! Every row carries its `key` (what a resumed run skips), its `status` and the attempts spent on
//! it; the optional parts are absent from a row that does not have them. A row is written with a
//! `kind` field (`reply`, `judgment`, `moderation`) by [`super::journal::Journal::append`].

use ragback_application::evaluation::moderation::Tag;
use ragback_application::evaluation::simulation::Drift;
use ragback_application::evaluation::verdict::{ArmVerdict, SlotVerdict};
use ragback_application::evaluation::windows::Bucket;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a row ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Made.
    Ok,
    /// The upstream refused (a content filter, or the judge declined): never redone.
    Refused,
    /// Both arms wrote the same text: a tie without a call.
    Identical,
    /// The server rejected the request as invalid: never redone.
    Invalid,
    /// The judge answered, but not in the asked format.
    ParseError,
    /// The call failed after its retries.
    ApiError,
}

impl Status {
    /// Whether a resumed run leaves the row as it is: a success, a refusal (retrying a refusal
    /// does not help), an identical pair, a request the server rejects as invalid.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Ok | Self::Refused | Self::Identical | Self::Invalid
        )
    }

    /// The status's name in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused => "refused",
            Self::Identical => "identical",
            Self::Invalid => "invalid",
            Self::ParseError => "parse_error",
            Self::ApiError => "api_error",
        }
    }
}

/// Tokens a call used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens of the prompt.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens of the answer.
    #[serde(default)]
    pub completion_tokens: u64,
}

/// A message of the context, as the judge and the report show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spoken {
    /// Who said it (a name).
    pub speaker: String,
    /// What was said.
    pub text: String,
}

/// What every journal row has.
pub trait Row: Serialize + DeserializeOwned {
    /// The `kind` the row is written with.
    const KIND: &'static str;
    /// The row's key.
    fn key(&self) -> &str;
    /// How it ended.
    fn status(&self) -> Status;
    /// Attempts spent on it, across runs.
    fn attempts(&self) -> u32;
    /// What it cost, USD, when priced.
    fn cost_usd(&self) -> Option<f64>;
}

/// One reply of one arm to one window (`ragback eval replay`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// `"{window}|{arm}|{sample}"`.
    pub key: String,
    /// The window.
    pub window: String,
    /// Its dialogue.
    #[serde(default)]
    pub dialogue: String,
    /// Its position bucket (the window's; a journal of another tool may lack it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<Bucket>,
    /// The arm's name.
    pub arm: String,
    /// The sample's number.
    #[serde(default)]
    pub sample: u32,
    /// How it ended.
    pub status: Status,
    /// Attempts spent.
    #[serde(default)]
    pub attempts: u32,
    /// Milliseconds from the first attempt to the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// The reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The model that wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The variant that wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The facts `/generate` used, as it returned them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<Value>,
    /// `/generate`'s retrieval report, as it returned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<Value>,
    /// Tokens used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// What it cost, USD, when priced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a pairwise judgment compares.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Two replies to one window (offline replay).
    #[default]
    Reply,
    /// Two whole simulated conversations grown from one seed conversation.
    Dialogue,
}

impl Reply {
    /// A reply row about to be made: `ok`, nothing in it yet.
    pub fn new(key: String, window: &str, dialogue: &str, arm: &str, sample: u32) -> Self {
        Self {
            key,
            window: window.to_owned(),
            dialogue: dialogue.to_owned(),
            bucket: None,
            arm: arm.to_owned(),
            sample,
            status: Status::Ok,
            attempts: 0,
            latency_ms: None,
            text: None,
            model: None,
            variant: None,
            facts: None,
            retrieval: None,
            usage: None,
            cost_usd: None,
            error: None,
        }
    }
}

impl From<Option<ragback_application::ports::TokenUsage>> for Usage {
    fn from(usage: Option<ragback_application::ports::TokenUsage>) -> Self {
        let usage = usage.unwrap_or_default();
        Self {
            prompt_tokens: u64::from(usage.prompt_tokens),
            completion_tokens: u64::from(usage.completion_tokens),
        }
    }
}

/// One judge call on one pair, one criterion, one order (`ragback eval pairwise`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgment {
    /// `"{pair}|{criterion}|{order}"`.
    pub key: String,
    /// The window both replies answer (`{window}@{sample}` for a sample after the first), or the
    /// seed conversation both dialogues grew from.
    pub pair: String,
    /// Its dialogue (the bootstrap's cluster).
    pub dialogue: String,
    /// What is compared.
    #[serde(default)]
    pub unit: Unit,
    /// The samples compared (`replay --samples`, `simulate --samples`).
    #[serde(default)]
    pub sample: u32,
    /// An A/A judgment: two samples of the same arm.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub aa: bool,
    /// Its position bucket (a reply's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<Bucket>,
    /// The dialogue's source period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// The criterion.
    pub criterion: String,
    /// 1: A shown first, 2: B shown first, 0: identical texts (no call).
    pub order: u8,
    /// The arms' names, A then B.
    pub arms: [String; 2],
    /// Characters of A's reply.
    pub chars_a: usize,
    /// Characters of B's reply.
    pub chars_b: usize,
    /// Completion tokens of A's reply.
    #[serde(default)]
    pub tokens_a: Option<u64>,
    /// Completion tokens of B's reply.
    #[serde(default)]
    pub tokens_b: Option<u64>,
    /// A's reply.
    pub text_a: String,
    /// B's reply.
    pub text_b: String,
    /// The last messages before the replies.
    #[serde(default)]
    pub context_tail: Vec<Spoken>,
    /// The judge's templates' hash.
    #[serde(default)]
    pub prompt_sha256: String,
    /// The judge's model.
    #[serde(default)]
    pub judge_model: String,
    /// The local chat model judged (the pipeline's smoke test).
    #[serde(default)]
    pub smoke_test_judge: bool,
    /// How it ended.
    pub status: Status,
    /// Attempts spent.
    #[serde(default)]
    pub attempts: u32,
    /// The slot A was shown in (`A` first, `B` second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_a: Option<String>,
    /// The judge was asked again for the verdict line alone.
    #[serde(default)]
    pub reasked: bool,
    /// Tokens used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// What it cost, USD, when priced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// The judge's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The verdict by slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict_slot: Option<SlotVerdict>,
    /// The verdict by arm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict_arm: Option<ArmVerdict>,
    /// The answer was cut at the token limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One reply's tags (`ragback eval moderate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tagging {
    /// Who tagged: `judge` or `openai`.
    #[serde(default = "judge")]
    pub adapter: String,
    /// The reply's key.
    pub key: String,
    /// Its window.
    pub window: String,
    /// Its dialogue.
    pub dialogue: String,
    /// Its arm's name.
    pub arm: String,
    /// The reply.
    pub text: String,
    /// The last messages before it.
    #[serde(default)]
    pub context_tail: Vec<Spoken>,
    /// Attempts spent.
    #[serde(default)]
    pub attempts: u32,
    /// The judge's templates' hash (the LLM judge only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_sha256: Option<String>,
    /// The tagger's model.
    #[serde(default)]
    pub judge_model: String,
    /// The local chat model tagged.
    #[serde(default)]
    pub smoke_test_judge: bool,
    /// How it ended.
    pub status: Status,
    /// Tokens used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// What it cost, USD, when priced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// The tags set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    /// The shortest quote that justifies them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// OpenAI's own flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flagged: Option<bool>,
    /// OpenAI's scores by category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_scores: Option<Value>,
    /// The judge's answer, when it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One turn of a simulated conversation (`ragback eval simulate`): the simulated user's message
/// (or their leaving) or the arm's reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// `"{seed dialogue}|{arm}|{sample}|{index}"`.
    pub key: String,
    /// The seed conversation.
    pub seed_dialogue: String,
    /// The arm answering.
    pub arm: String,
    /// The sample.
    pub sample: u32,
    /// The message's index in the conversation.
    pub index: usize,
    /// `user` (the simulator) or `character` (the arm).
    pub role: String,
    /// How it ended.
    pub status: Status,
    /// Attempts spent.
    #[serde(default)]
    pub attempts: u32,
    /// What was said (none when the user left without a word).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The user leaves after this turn.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ends: bool,
    /// What the simulator's health check found in a user turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drifts: Vec<Drift>,
    /// The simulator's sampling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulator_seed: Option<u64>,
    /// The simulator's templates' hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_sha256: Option<String>,
    /// The model that wrote it (the simulator's, or the arm's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The local chat model simulated the user (a smoke test).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub smoke_test_simulator: bool,
    /// The variant that wrote a reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Milliseconds it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Tokens used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// What it cost, USD, when priced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn judge() -> String {
    "judge".into()
}

macro_rules! row {
    ($type:ty, $kind:literal) => {
        impl Row for $type {
            const KIND: &'static str = $kind;
            fn key(&self) -> &str {
                &self.key
            }
            fn status(&self) -> Status {
                self.status
            }
            fn attempts(&self) -> u32 {
                self.attempts
            }
            fn cost_usd(&self) -> Option<f64> {
                self.cost_usd
            }
        }
    };
}

row!(Reply, "reply");
row!(Judgment, "judgment");
row!(Tagging, "moderation");
row!(Turn, "turn");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_as_written_and_only_some_are_final() {
        for (status, name, last) in [
            (Status::Ok, "ok", true),
            (Status::Refused, "refused", true),
            (Status::Identical, "identical", true),
            (Status::Invalid, "invalid", true),
            (Status::ParseError, "parse_error", false),
            (Status::ApiError, "api_error", false),
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), name);
            assert_eq!(status.as_str(), name);
            assert_eq!(status.is_final(), last, "{name}");
        }
    }

    #[test]
    fn a_failed_reply_row_holds_no_empty_parts() {
        let row = Reply {
            key: "d#3|B|0".into(),
            window: "d#3".into(),
            dialogue: "d".into(),
            bucket: Some(Bucket::Begin),
            arm: "B".into(),
            sample: 0,
            status: Status::ApiError,
            attempts: 4,
            latency_ms: Some(12),
            text: None,
            model: None,
            variant: None,
            facts: None,
            retrieval: None,
            usage: None,
            cost_usd: None,
            error: Some("ragback answered 503".into()),
        };
        let json = serde_json::to_value(&row).unwrap();
        assert!(json.get("text").is_none() && json.get("usage").is_none());
        assert_eq!(json["status"], "api_error");
        let back: Reply = serde_json::from_value(json).unwrap();
        assert_eq!(back, row);
    }
}
