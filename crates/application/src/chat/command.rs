//! The input of [`ChatService::generate`](super::ChatService::generate).

use std::sync::Arc;
use std::time::Duration;

use ragback_domain::{
    Character, ConversationId, Lorebook, Message, Scenario, User, ValidationError,
};

use crate::bounds;
use crate::retrieval::RetrievalOverrides;
use crate::variants::Variant;

/// Longest model name accepted in a request.
const MAX_MODEL_CHARS: usize = 200;
/// Largest `max_tokens` a request may ask for.
pub const MAX_TOKENS_LIMIT: u32 = 8_192;

/// Per-request changes to the configured generation parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationOverrides {
    /// Another model.
    pub model: Option<String>,
    /// Sampling temperature, 0 to 2.
    pub temperature: Option<f32>,
    /// Nucleus sampling, above 0 up to 1.
    pub top_p: Option<f32>,
    /// Generated tokens, 1 to [`MAX_TOKENS_LIMIT`].
    pub max_tokens: Option<u32>,
    /// Seed of the sampler.
    pub seed: Option<u64>,
}

impl GenerationOverrides {
    /// Checks the ranges; on failure returns the offending field's name.
    pub fn validate(&self) -> Result<(), (&'static str, ValidationError)> {
        if let Some(model) = &self.model {
            if model.trim().is_empty() {
                return Err(("model", ValidationError::Empty));
            }
            let chars = model.chars().count();
            if chars > MAX_MODEL_CHARS {
                return Err((
                    "model",
                    ValidationError::TooLong {
                        max: MAX_MODEL_CHARS,
                        actual: chars,
                    },
                ));
            }
        }
        let checks = [
            (
                "temperature",
                self.temperature.map(|t| bounds::TEMPERATURE.check(t)),
            ),
            ("top_p", self.top_p.map(|p| bounds::TOP_P.check(p))),
            (
                "max_tokens",
                self.max_tokens.map(|n| bounds::MAX_TOKENS.check(n)),
            ),
        ];
        for (field, check) in checks {
            check.transpose().map_err(|e| (field, e))?;
        }
        Ok(())
    }
}

/// One turn to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateCommand {
    /// The chat so far, oldest first; empty means the character opens the chat.
    pub messages: Vec<Message>,
    /// Who the character talks to.
    pub user: User,
    /// Who speaks.
    pub character: Character,
    /// The scene, overriding the card's.
    pub scenario: Option<Scenario>,
    /// Model and sampling overrides.
    pub generation: GenerationOverrides,
    /// Retrieval overrides.
    pub retrieval: RetrievalOverrides,
    /// A deadline for this turn shorter than the configured one (a longer one is cut to it).
    pub timeout: Option<Duration>,
    /// The variant asked for (from [`crate::variants::VariantSet::named`]); `None`: the user's
    /// by the split.
    pub variant: Option<Arc<Variant>>,
    /// The scene's lorebook (world info), beside the card's `character_book`.
    pub lorebook: Option<Lorebook>,
    /// Which of the card's greetings is shown as the example opening line: 0 is `first_mes`,
    /// 1 and on the alternate greetings (`None`: picked by the seed, else `first_mes`).
    pub greeting: Option<usize>,
    /// The conversation, for its rolling summary (with a user id; `None`: no summary).
    pub conversation: Option<ConversationId>,
    /// Bring the conversation's summary up to date before the reply, on its path (for
    /// evaluations that replay a dialogue's turns: they cannot wait for the queue).
    pub summarize_first: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_overrides_are_range_checked() {
        let cases = [
            (
                GenerationOverrides {
                    temperature: Some(2.5),
                    ..Default::default()
                },
                "temperature",
            ),
            (
                GenerationOverrides {
                    top_p: Some(0.0),
                    ..Default::default()
                },
                "top_p",
            ),
            (
                GenerationOverrides {
                    max_tokens: Some(0),
                    ..Default::default()
                },
                "max_tokens",
            ),
            (
                GenerationOverrides {
                    model: Some(" ".into()),
                    ..Default::default()
                },
                "model",
            ),
        ];
        for (overrides, field) in cases {
            assert_eq!(overrides.validate().unwrap_err().0, field);
        }
        let fine = GenerationOverrides {
            model: Some("openai/gpt-4o-mini".into()),
            temperature: Some(0.0),
            top_p: Some(1.0),
            max_tokens: Some(200),
            seed: Some(7),
        };
        assert!(fine.validate().is_ok());
    }
}
