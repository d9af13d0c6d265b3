//! The `openai` guard: OpenAI's `POST /moderations` (the evaluation's [`OpenAiModeration`]
//! adapter), its categories mapped to the guard's tags as `eval moderate --adapter openai` maps
//! them.
//!
//! [`OpenAiModeration`]: crate::moderation::OpenAiModeration

use std::sync::Arc;

use async_trait::async_trait;
use ragback_application::evaluation::moderation::OPENAI_CATEGORIES;
use ragback_application::ports::{
    Finding, Guard, GuardError, GuardInput, GuardTag, Moderation, ModerationError, ModerationResult,
};

/// With a user under 18, a `sexual` category flags from this score, whatever the API decided.
pub const MINOR_SCORE: f64 = 0.2;

/// Checks texts with a moderation endpoint.
pub struct ModerationGuard {
    moderation: Arc<dyn Moderation>,
}

impl ModerationGuard {
    /// The guard over `moderation`.
    pub fn new(moderation: Arc<dyn Moderation>) -> Self {
        Self { moderation }
    }
}

/// The guard's findings in one moderation result: each tag a flagged category sets (or, for a
/// minor, a `sexual` category scoring [`MINOR_SCORE`]), at the highest score of its categories.
pub fn findings(result: &ModerationResult, minor: bool) -> Vec<Finding> {
    let mut findings: Vec<Finding> = Vec::new();
    for (category, tag) in OPENAI_CATEGORIES {
        let Some(tag) = tag.guard_tag() else { continue };
        let score = result.scores.get(category).copied().unwrap_or(0.0);
        let flagged = result.categories.get(category).copied().unwrap_or(false)
            || (minor && matches!(tag, GuardTag::Sexual | GuardTag::Minor) && score >= MINOR_SCORE);
        if !flagged {
            continue;
        }
        // Scores are probabilities; f32 keeps what matters of them.
        #[allow(clippy::cast_possible_truncation)]
        let score = score.clamp(0.0, 1.0) as f32;
        match findings.iter_mut().find(|f| f.tag == tag) {
            Some(found) => found.score = found.score.max(score),
            None => findings.push(Finding { tag, score }),
        }
    }
    findings.sort_by_key(|f| f.tag);
    findings
}

#[async_trait]
impl Guard for ModerationGuard {
    fn name(&self) -> &str {
        "openai"
    }

    async fn check(&self, input: &GuardInput<'_>) -> Result<Vec<Finding>, GuardError> {
        let results = self
            .moderation
            .moderate(&[input.text.to_owned()])
            .await
            .map_err(|error| match error {
                ModerationError::InvalidResponse(detail) => GuardError::InvalidResponse(detail),
                other => GuardError::Unavailable(other.to_string()),
            })?;
        let result = results.first().ok_or_else(|| {
            GuardError::InvalidResponse("the moderation API returned no result".into())
        })?;
        Ok(findings(result, input.minor))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn result(flagged: &[&str], scores: &[(&str, f64)]) -> ModerationResult {
        ModerationResult {
            flagged: !flagged.is_empty(),
            categories: flagged.iter().map(|c| ((*c).to_owned(), true)).collect(),
            scores: scores.iter().map(|(c, s)| ((*c).to_owned(), *s)).collect(),
        }
    }

    #[test]
    fn categories_become_tags_at_their_best_score_and_a_minor_is_held_to_a_lower_bar() {
        let found = findings(
            &result(
                &["self-harm/intent", "violence/graphic", "sexual/minors"],
                &[
                    ("self-harm", 0.4),
                    ("self-harm/intent", 0.9),
                    ("violence/graphic", 0.7),
                    ("sexual/minors", 0.8),
                    ("sexual", 0.3),
                ],
            ),
            false,
        );
        let tags: Vec<(GuardTag, f32)> = found.iter().map(|f| (f.tag, f.score)).collect();
        assert_eq!(
            tags,
            [
                (GuardTag::SelfHarm, 0.9),
                (GuardTag::Sexual, 0.8),
                (GuardTag::Minor, 0.8),
                (GuardTag::Violence, 0.7)
            ]
        );
        let flirt = result(&[], &[("sexual", 0.25)]);
        assert!(findings(&flirt, false).is_empty());
        let strict: Vec<GuardTag> = findings(&flirt, true).iter().map(|f| f.tag).collect();
        assert_eq!(strict, [GuardTag::Sexual]);
    }
}
