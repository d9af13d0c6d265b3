//! The `llm` guard: a guard model in Llama Guard 3/4's format behind any OpenAI-compatible
//! endpoint (`llama-guard3` on Ollama, `meta-llama/Llama-Guard-4-12B` on vLLM, …). The model's
//! chat template turns the conversation into its assessment prompt; it answers `safe`, or
//! `unsafe` and a line of hazard codes (`S1,S11`), mapped here to the guard's tags.

use std::sync::Arc;

use async_trait::async_trait;
use ragback_application::ports::{
    ChatModel, ChatModelError, ChatRequest, Finding, GenerationParams, Guard, GuardError,
    GuardInput, GuardTag, PromptMessage, PromptRole, Speaker,
};

/// What stands in for the user's message when a reply is checked without it (Llama Guard's
/// template wants a user turn before the agent's).
const NO_USER_MESSAGE: &str = "(the user's message is not shown)";

/// The MLCommons hazard codes Llama Guard 3 and 4 answer with, and the tags they set: S1 violent
/// crimes, S3 sex-related crimes, S4 child sexual exploitation, S9 indiscriminate weapons, S10
/// hate, S11 suicide and self-harm, S12 sexual content. The others (non-violent crimes,
/// defamation, specialised advice, privacy, intellectual property, elections, code interpreter
/// abuse) are no concern of a role-play reply's floor and set nothing.
pub const HAZARDS: [(&str, GuardTag); 8] = [
    ("S1", GuardTag::Violence),
    ("S3", GuardTag::Sexual),
    ("S4", GuardTag::Minor),
    ("S4", GuardTag::Sexual),
    ("S9", GuardTag::Violence),
    ("S10", GuardTag::Hate),
    ("S11", GuardTag::SelfHarm),
    ("S12", GuardTag::Sexual),
];

/// Why an answer is not a verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerdictError {
    /// Neither `safe` nor `unsafe`.
    #[error("`{0}` is neither `safe` nor `unsafe`")]
    NoVerdict(String),
    /// A code that is not `S` and a number.
    #[error("`{0}` is not a hazard code")]
    BadCode(String),
}

/// The tags of a Llama Guard answer: `safe` → none; `unsafe` and codes → the tags they map to
/// (an `unsafe` without codes, or with none we map, sets none: the codes say what is unsafe).
pub fn parse_verdict(answer: &str) -> Result<Vec<GuardTag>, VerdictError> {
    let mut lines = answer.lines().map(str::trim).filter(|l| !l.is_empty());
    let verdict = lines.next().unwrap_or_default();
    match verdict.to_ascii_lowercase().as_str() {
        "safe" => return Ok(Vec::new()),
        "unsafe" => {}
        _ => return Err(VerdictError::NoVerdict(clip(verdict))),
    }
    let mut tags = Vec::new();
    for code in lines.next().unwrap_or_default().split(',').map(str::trim) {
        if code.is_empty() {
            continue;
        }
        let valid = code.len() > 1
            && code.starts_with(['S', 's'])
            && code[1..].chars().all(|c| c.is_ascii_digit());
        if !valid {
            return Err(VerdictError::BadCode(clip(code)));
        }
        let code = code.to_ascii_uppercase();
        tags.extend(
            HAZARDS
                .iter()
                .filter(|(hazard, _)| *hazard == code)
                .map(|(_, tag)| *tag),
        );
    }
    tags.sort();
    tags.dedup();
    Ok(tags)
}

fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

/// Checks texts with a guard model.
pub struct LlamaGuard {
    model: Arc<dyn ChatModel>,
    model_name: String,
}

impl LlamaGuard {
    /// The guard of `model_name` served by `model`.
    pub fn new(model: Arc<dyn ChatModel>, model_name: impl Into<String>) -> Self {
        Self {
            model,
            model_name: model_name.into(),
        }
    }

    /// The conversation the guard model assesses: the user's message alone, or the reply after
    /// the message it answers (its last turn is the one judged).
    fn conversation(input: &GuardInput<'_>) -> Vec<PromptMessage> {
        let message = |role, content: &str| PromptMessage {
            role,
            content: content.to_owned(),
        };
        match input.speaker {
            Speaker::User => vec![message(PromptRole::User, input.text)],
            Speaker::Character => vec![
                message(
                    PromptRole::User,
                    input.replying_to.unwrap_or(NO_USER_MESSAGE),
                ),
                message(PromptRole::Assistant, input.text),
            ],
        }
    }
}

#[async_trait]
impl Guard for LlamaGuard {
    fn name(&self) -> &str {
        "llm"
    }

    async fn check(&self, input: &GuardInput<'_>) -> Result<Vec<Finding>, GuardError> {
        let request = ChatRequest {
            messages: Self::conversation(input),
            params: GenerationParams {
                model: self.model_name.clone(),
                temperature: Some(0.0),
                max_tokens: Some(20),
                ..GenerationParams::default()
            },
            json_schema: None,
        };
        let completion = self
            .model
            .complete(&request)
            .await
            .map_err(|error| match error {
                ChatModelError::InvalidResponse(detail) => GuardError::InvalidResponse(detail),
                other => GuardError::Unavailable(other.to_string()),
            })?;
        let tags = parse_verdict(&completion.text)
            .map_err(|e| GuardError::InvalidResponse(format!("the guard model's answer: {e}")))?;
        Ok(Finding::certain(tags))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn llama_guard_answers_become_tags() {
        assert_eq!(parse_verdict("safe"), Ok(vec![]));
        assert_eq!(parse_verdict("\n\nsafe\n"), Ok(vec![]));
        assert_eq!(
            parse_verdict("unsafe\nS1,S11"),
            Ok(vec![GuardTag::SelfHarm, GuardTag::Violence])
        );
        assert_eq!(
            parse_verdict("unsafe\nS4"),
            Ok(vec![GuardTag::Sexual, GuardTag::Minor])
        );
        assert_eq!(
            parse_verdict("unsafe\n S12 , s10 "),
            Ok(vec![GuardTag::Sexual, GuardTag::Hate])
        );
        assert_eq!(
            parse_verdict("unsafe\nS7"),
            Ok(vec![]),
            "privacy is not ours"
        );
        assert_eq!(
            parse_verdict("I think it is fine"),
            Err(VerdictError::NoVerdict("I think it is fine".into()))
        );
        assert_eq!(
            parse_verdict("unsafe\nviolence"),
            Err(VerdictError::BadCode("violence".into()))
        );
        assert!(parse_verdict("").is_err());
    }

    #[test]
    fn a_reply_is_judged_after_the_message_it_answers() {
        let mut input = GuardInput {
            text: "*smiles* Sure.",
            speaker: Speaker::Character,
            user_name: "John",
            character_name: "Blaze",
            minor: false,
            replying_to: Some("Shall we?"),
        };
        let roles = |m: &[PromptMessage]| -> Vec<(PromptRole, String)> {
            m.iter().map(|m| (m.role, m.content.clone())).collect()
        };
        assert_eq!(
            roles(&LlamaGuard::conversation(&input)),
            [
                (PromptRole::User, "Shall we?".to_owned()),
                (PromptRole::Assistant, "*smiles* Sure.".to_owned())
            ]
        );
        input.replying_to = None;
        assert_eq!(LlamaGuard::conversation(&input)[0].content, NO_USER_MESSAGE);
        input.speaker = Speaker::User;
        assert_eq!(
            roles(&LlamaGuard::conversation(&input)),
            [(PromptRole::User, "*smiles* Sure.".to_owned())]
        );
    }
}
