//! The reply guard: every reply is checked before anyone reads it, against the design's safety
//! floor (self-harm, sexual content, minors, meeting in real life, hate, violence) and against
//! breaking character (speaking as an AI, writing the user's lines, meta talk, a cut sentence,
//! banned phrases). The user's message is checked too, for self-harm intent: the crisis protocol.
//!
//! [`ReplyGuard`] asks every configured [`Guard`] and decides by the [`GuardPolicy`]; the chat
//! service applies the decision (`chat/guarded.rs`) to whole and streamed replies alike.

pub mod classifier;
mod policy;
mod sentences;

use std::sync::Arc;

use serde::Serialize;

pub use self::policy::{
    CRISIS_INSTRUCTION, DEFAULT_DEFLECTION, DEFAULT_GUARD_TIMEOUT, DEFAULT_REFERRAL, GuardPolicy,
    MINOR_INSTRUCTION, TagAction, corrective_instruction,
};
pub use self::sentences::{
    MAX_HELD_CHARS, SentenceGate, is_unfinished, split_sentences, trim_unfinished, whole_sentences,
};
use crate::ports::{Guard, GuardError, GuardInput, GuardTag, Speaker};

/// What the guard did to a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SafetyAction {
    /// Let through as written.
    Pass,
    /// Written again once, after a corrective instruction (or the best cleaned attempt).
    Regenerated,
    /// Replaced by the policy's in-character deflection.
    Replaced,
    /// Ended at its last whole sentence (an unfinished sentence, or a streamed reply whose next
    /// sentence broke character).
    Trimmed,
}

impl SafetyAction {
    /// The action's name on the wire and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Regenerated => "regenerated",
            Self::Replaced => "replaced",
            Self::Trimmed => "trimmed",
        }
    }
}

/// What the guard found and did, returned with the reply.
#[derive(Debug, Clone, PartialEq)]
pub struct SafetyOutcome {
    /// Every tag any attempt raised, sorted.
    pub flags: Vec<GuardTag>,
    /// What was done.
    pub action: SafetyAction,
    /// The user's message showed self-harm intent: the referral is set.
    pub crisis: bool,
    /// The crisis referral to show beside the reply.
    pub referral: Option<String>,
    /// Why the guard could not check, as [`GuardError::kind`] says (the policy then decided:
    /// replaced when failing closed).
    pub guard_error: Option<&'static str>,
}

impl SafetyOutcome {
    /// A reply let through, for a turn whose user message was screened.
    pub fn pass(screen: &Screen, policy: &GuardPolicy) -> Self {
        Self {
            flags: Vec::new(),
            action: SafetyAction::Pass,
            crisis: screen.crisis,
            referral: screen.crisis.then(|| policy.referral.clone()),
            guard_error: None,
        }
    }

    /// Adds `tags` to the flags.
    pub fn flag(&mut self, tags: &[GuardTag]) {
        self.flags.extend_from_slice(tags);
        self.flags.sort();
        self.flags.dedup();
    }

    /// Counts the outcome: one `ragback_guard_flags_total` per tag, one
    /// `ragback_guard_actions_total` per reply, crises.
    pub fn record(&self) {
        for tag in &self.flags {
            metrics::counter!("ragback_guard_flags_total", "tag" => tag.key()).increment(1);
        }
        metrics::counter!("ragback_guard_actions_total", "action" => self.action.as_str())
            .increment(1);
        if self.crisis {
            metrics::counter!("ragback_guard_crises_total").increment(1);
        }
    }
}

/// What the guard learned of a turn before the reply: who is speaking, and how carefully.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Screen {
    /// The user is under 18.
    pub minor: bool,
    /// The user's last message shows self-harm intent.
    pub crisis: bool,
}

/// The guards' verdict on one text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Review {
    /// The tags raised, sorted, once each.
    pub tags: Vec<GuardTag>,
    /// The highest score any guard gave each raised tag.
    pub scores: std::collections::BTreeMap<GuardTag, f32>,
    /// A guard that could not answer.
    pub failed: Option<GuardError>,
}

/// What to do with a reviewed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let it through.
    Pass,
    /// Let it through, ended at its last whole sentence.
    Trim,
    /// Ask again once, about these tags.
    Regenerate(Vec<GuardTag>),
    /// Replace it: by this tag's deflection (`None`: the guard failed, closed).
    Replace(Option<GuardTag>),
}

/// What a variant changes of the guard (`[variants.NAME.guard]`): guards of its own (its
/// banned phrases) beside the service's, and its policy instead of the service's.
#[derive(Clone)]
pub struct VariantGuard {
    /// Checks the variant adds (its banned phrases).
    pub guards: Vec<Arc<dyn Guard>>,
    /// The variant's policy (the service's, with the variant's actions and deflections).
    pub policy: GuardPolicy,
}

impl std::fmt::Debug for VariantGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.guards.iter().map(|g| g.name()).collect();
        f.debug_struct("VariantGuard")
            .field("guards", &names)
            .field("policy", &self.policy)
            .finish()
    }
}

impl PartialEq for VariantGuard {
    fn eq(&self, other: &Self) -> bool {
        self.policy == other.policy
            && self.guards.len() == other.guards.len()
            && self
                .guards
                .iter()
                .zip(&other.guards)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

/// The guards and the policy.
#[derive(Clone)]
pub struct ReplyGuard {
    guards: Vec<Arc<dyn Guard>>,
    policy: GuardPolicy,
}

impl ReplyGuard {
    /// Checks with every one of `guards` (their tags united) and decides by `policy`.
    pub fn new(guards: Vec<Arc<dyn Guard>>, policy: GuardPolicy) -> Self {
        Self { guards, policy }
    }

    /// This guard as `variant` changes it: its guards added, its policy in force.
    pub fn for_variant(&self, variant: &VariantGuard) -> Self {
        Self {
            guards: self.guards.iter().chain(&variant.guards).cloned().collect(),
            policy: variant.policy.clone(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &GuardPolicy {
        &self.policy
    }

    /// The guards' names, for the start-up log.
    pub fn names(&self) -> Vec<&str> {
        self.guards.iter().map(|g| g.name()).collect()
    }

    /// Asks every guard about `input`, all at once, each within the policy's timeout.
    pub async fn review(&self, input: &GuardInput<'_>) -> Review {
        self.review_many(std::slice::from_ref(input))
            .await
            .pop()
            .unwrap_or_default()
    }

    /// Asks every guard about each of `inputs` (a batch for guards that embed or call out), all
    /// guards at once, each within the policy's timeout per text; one review per input.
    pub async fn review_many(&self, inputs: &[GuardInput<'_>]) -> Vec<Review> {
        let deadline = self
            .policy
            .timeout
            .saturating_mul(inputs.len().max(1) as u32);
        let answers = futures::future::join_all(self.guards.iter().map(|guard| async move {
            let answer = tokio::time::timeout(deadline, guard.check_many(inputs))
                .await
                .unwrap_or(Err(GuardError::Timeout(deadline.as_millis())))
                .and_then(|all| {
                    if all.len() == inputs.len() {
                        Ok(all)
                    } else {
                        Err(GuardError::InvalidResponse(format!(
                            "{} verdicts for {} texts",
                            all.len(),
                            inputs.len()
                        )))
                    }
                });
            (guard.name(), answer)
        }))
        .await;
        let mut reviews = vec![Review::default(); inputs.len()];
        for (name, answer) in answers {
            match answer {
                Ok(all) => {
                    for (review, findings) in reviews.iter_mut().zip(all) {
                        for finding in findings {
                            review.tags.push(finding.tag);
                            let best = review.scores.entry(finding.tag).or_insert(finding.score);
                            *best = best.max(finding.score);
                        }
                    }
                }
                Err(error) => {
                    metrics::counter!(
                        "ragback_guard_failures_total",
                        "guard" => name.to_owned(),
                        "kind" => error.kind()
                    )
                    .increment(inputs.len() as u64);
                    tracing::warn!(guard = name, %error, "the guard could not check a text");
                    for review in &mut reviews {
                        review.failed = Some(error.clone());
                    }
                }
            }
        }
        for review in &mut reviews {
            review.tags.sort();
            review.tags.dedup();
        }
        reviews
    }

    /// The screen of a turn: whether its user is a minor and whether their last message shows
    /// self-harm intent (a guard that cannot answer finds no crisis; it is logged).
    pub async fn screen(
        &self,
        last_user_message: Option<&str>,
        user_name: &str,
        character_name: &str,
        minor: bool,
    ) -> Screen {
        let crisis = match last_user_message {
            Some(text) => {
                let review = self
                    .review(&GuardInput {
                        text,
                        speaker: Speaker::User,
                        user_name,
                        character_name,
                        minor,
                        replying_to: None,
                    })
                    .await;
                review.tags.contains(&GuardTag::SelfHarm)
            }
            None => false,
        };
        Screen { minor, crisis }
    }

    /// What the policy does with a reply's review.
    pub fn decide(&self, review: &Review, minor: bool) -> Decision {
        if review.failed.is_some() && self.policy.fail_closed {
            return Decision::Replace(None);
        }
        let action = |tag: &GuardTag| self.policy.action(*tag, minor);
        if let Some(tag) = review
            .tags
            .iter()
            .find(|tag| action(tag) == TagAction::Replace)
        {
            return Decision::Replace(Some(*tag));
        }
        let again: Vec<GuardTag> = review
            .tags
            .iter()
            .copied()
            .filter(|tag| action(tag) == TagAction::Regenerate)
            .collect();
        if !again.is_empty() {
            return Decision::Regenerate(again);
        }
        if review.tags.contains(&GuardTag::Truncated) {
            return Decision::Trim;
        }
        Decision::Pass
    }

    /// The deflection of a [`Decision::Replace`].
    pub fn deflection(&self, tag: Option<GuardTag>) -> &str {
        match tag {
            Some(tag) => self.policy.deflection(tag),
            None => &self.policy.deflection,
        }
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::ports::Finding;

    /// Raises `tag` for any text that holds `word`.
    struct Word(&'static str, GuardTag);

    #[async_trait]
    impl Guard for Word {
        fn name(&self) -> &str {
            "word"
        }
        async fn check(&self, input: &GuardInput<'_>) -> Result<Vec<Finding>, GuardError> {
            if input.text.contains("DOWN") {
                return Err(GuardError::Unavailable("down".into()));
            }
            Ok(input
                .text
                .contains(self.0)
                .then_some(Finding {
                    tag: self.1,
                    score: 1.0,
                })
                .into_iter()
                .collect())
        }
    }

    fn input(text: &str) -> GuardInput<'_> {
        GuardInput {
            text,
            speaker: Speaker::Character,
            user_name: "John",
            character_name: "Blaze",
            minor: false,
            replying_to: None,
        }
    }

    fn guard(policy: GuardPolicy) -> ReplyGuard {
        ReplyGuard::new(
            vec![
                Arc::new(Word("kiss", GuardTag::Sexual)),
                Arc::new(Word("AI", GuardTag::Assistant)),
                Arc::new(Word("die", GuardTag::SelfHarm)),
            ],
            policy,
        )
    }

    #[tokio::test]
    async fn the_policy_decides_per_tag_and_a_failing_guard_fails_closed() {
        let guard = guard(GuardPolicy::default());
        let review = guard.review(&input("*smiles* a kiss, says the AI")).await;
        assert_eq!(review.tags, [GuardTag::Sexual, GuardTag::Assistant]);
        assert_eq!(
            guard.decide(&review, false),
            Decision::Regenerate(vec![GuardTag::Sexual, GuardTag::Assistant])
        );
        assert_eq!(
            guard.decide(&review, true),
            Decision::Replace(Some(GuardTag::Sexual)),
            "a minor's sexual flag replaces at once"
        );
        assert_eq!(guard.decide(&Review::default(), false), Decision::Pass);
        let down = guard.review(&input("DOWN")).await;
        assert_eq!(guard.decide(&down, false), Decision::Replace(None));
        let open = self::guard(GuardPolicy {
            fail_closed: false,
            ..GuardPolicy::default()
        });
        assert_eq!(open.decide(&down, false), Decision::Pass);
        let cut = Review {
            tags: vec![GuardTag::Truncated],
            ..Review::default()
        };
        assert_eq!(guard.decide(&cut, false), Decision::Trim);
    }

    #[tokio::test]
    async fn a_crisis_is_the_users_self_harm_intent() {
        let guard = guard(GuardPolicy::default());
        let crisis = guard
            .screen(Some("I want to die"), "John", "Blaze", false)
            .await;
        assert!(crisis.crisis);
        let sad = guard
            .screen(Some("I feel so sad today"), "John", "Blaze", true)
            .await;
        assert_eq!(
            sad,
            Screen {
                minor: true,
                crisis: false
            }
        );
        let mut outcome = SafetyOutcome::pass(&crisis, guard.policy());
        assert_eq!(outcome.referral.as_deref(), Some(DEFAULT_REFERRAL));
        outcome.flag(&[GuardTag::Meta, GuardTag::Assistant, GuardTag::Meta]);
        assert_eq!(outcome.flags, [GuardTag::Assistant, GuardTag::Meta]);
    }
}
