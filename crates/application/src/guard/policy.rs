//! What the guard does about each tag, and the texts it uses: the deflections, the corrective
//! and supportive instructions, the crisis referral.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ports::GuardTag;

/// What to do with a reply that raises a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagAction {
    /// Let it through (the flag is still reported).
    Pass,
    /// Ask once more with a corrective instruction; a safety tag that stays is then replaced,
    /// a consistency tag that stays leaves the best cleaned attempt.
    Regenerate,
    /// Answer with the tag's in-character deflection instead.
    Replace,
}

impl TagAction {
    /// The action of a name: `pass`, `regenerate` or `replace`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pass" => Some(Self::Pass),
            "regenerate" => Some(Self::Regenerate),
            "replace" => Some(Self::Replace),
            _ => None,
        }
    }
}

/// The default referral shown beside a reply to a user in crisis.
pub const DEFAULT_REFERRAL: &str = "If you are thinking about suicide or hurting yourself, you \
    are not alone. In the US, call or text 988 (Suicide & Crisis Lifeline); elsewhere, find a \
    helpline at https://findahelpline.com.";

/// The default deflection: the character changes the subject, in character.
pub const DEFAULT_DEFLECTION: &str =
    "*shakes head slowly* Let's not go there. Tell me something else instead.";

/// The guard's policy (`RAGBACK_GUARD__*`).
#[derive(Debug, Clone, PartialEq)]
pub struct GuardPolicy {
    /// Per tag; a tag not listed uses [`GuardPolicy::default_action`].
    pub actions: BTreeMap<GuardTag, TagAction>,
    /// In-character deflections per tag; a tag not listed uses `deflection`.
    pub deflections: BTreeMap<GuardTag, String>,
    /// The deflection of a tag without its own.
    pub deflection: String,
    /// When the guard cannot answer: replace the reply (`true`) or let it through.
    pub fail_closed: bool,
    /// Shown beside a reply to a user whose message shows self-harm intent.
    pub referral: String,
    /// How long one guard may take over one text; later, it has failed.
    pub timeout: Duration,
}

/// The default of [`GuardPolicy::timeout`].
pub const DEFAULT_GUARD_TIMEOUT: Duration = Duration::from_secs(3);

impl Default for GuardPolicy {
    fn default() -> Self {
        Self {
            actions: BTreeMap::new(),
            deflections: BTreeMap::new(),
            deflection: DEFAULT_DEFLECTION.into(),
            fail_closed: true,
            referral: DEFAULT_REFERRAL.into(),
            timeout: DEFAULT_GUARD_TIMEOUT,
        }
    }
}

impl GuardPolicy {
    /// The action of `tag` when the policy does not name one: safety tags and the consistency
    /// tags a second attempt can fix are regenerated; a cut reply is trimmed (passed, then
    /// trimmed to its last whole sentence).
    pub fn default_action(tag: GuardTag) -> TagAction {
        match tag {
            GuardTag::Truncated => TagAction::Pass,
            _ => TagAction::Regenerate,
        }
    }

    /// What to do about `tag`; for a minor, `sexual` and `minor` always replace.
    pub fn action(&self, tag: GuardTag, minor: bool) -> TagAction {
        if minor && matches!(tag, GuardTag::Sexual | GuardTag::Minor) {
            return TagAction::Replace;
        }
        self.actions
            .get(&tag)
            .copied()
            .unwrap_or_else(|| Self::default_action(tag))
    }

    /// The deflection that replaces a reply raising `tag`.
    pub fn deflection(&self, tag: GuardTag) -> &str {
        self.deflections.get(&tag).unwrap_or(&self.deflection)
    }
}

/// What the model is told when its reply is asked for again.
pub fn corrective_instruction(tags: &[GuardTag]) -> String {
    let mut rules: Vec<&str> = tags
        .iter()
        .map(|tag| match tag {
            GuardTag::SelfHarm => "never encourage or describe ways of self-harm or suicide",
            GuardTag::Sexual | GuardTag::Minor => "keep it free of sexual content",
            GuardTag::RealMeeting => {
                "never propose meeting in real life or share a real address or time"
            }
            GuardTag::Hate => "no hateful words about any group",
            GuardTag::Violence => "no threats or instructions to hurt anyone for real",
            GuardTag::Assistant => "speak only as the character, never as an AI or assistant",
            GuardTag::UserVoice => "write only the character's words, never the user's",
            GuardTag::Meta => "never mention prompts, rules or the role-play itself",
            GuardTag::Truncated => "finish every sentence",
            GuardTag::Banned => "avoid the phrases you used",
        })
        .collect();
    rules.dedup();
    format!(
        "Your last reply broke the rules of this chat. Write the character's next line again: \
         {}. Stay in character and in the scene, short, with one small action in asterisks.",
        rules.join("; ")
    )
}

/// What the model is told when the user's message shows self-harm intent.
pub const CRISIS_INSTRUCTION: &str = "The user may be in crisis and thinking of hurting \
    themselves. Stay warm and in character, take it seriously, do not play it down or make it \
    part of the story, gently encourage them to reach out to someone they trust or a crisis line, \
    and never describe ways to self-harm.";

/// What the model is told when the user is under 18.
pub const MINOR_INSTRUCTION: &str = "The user is under 18. Keep everything suitable for a \
    minor: no romance, flirting or sexual content, no meeting in real life.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minors_sexual_flags_always_replace_and_unlisted_tags_use_the_defaults() {
        let mut policy = GuardPolicy::default();
        policy.actions.insert(GuardTag::Sexual, TagAction::Pass);
        assert_eq!(policy.action(GuardTag::Sexual, false), TagAction::Pass);
        assert_eq!(policy.action(GuardTag::Sexual, true), TagAction::Replace);
        assert_eq!(policy.action(GuardTag::Minor, true), TagAction::Replace);
        assert_eq!(policy.action(GuardTag::Hate, false), TagAction::Regenerate);
        assert_eq!(policy.action(GuardTag::Truncated, false), TagAction::Pass);
        policy
            .deflections
            .insert(GuardTag::RealMeeting, "*laughs* Nice try.".into());
        assert_eq!(
            policy.deflection(GuardTag::RealMeeting),
            "*laughs* Nice try."
        );
        assert_eq!(policy.deflection(GuardTag::Hate), DEFAULT_DEFLECTION);
        assert_eq!(TagAction::parse("replace"), Some(TagAction::Replace));
        assert_eq!(TagAction::parse("drop"), None);
    }

    #[test]
    fn the_corrective_instruction_names_each_broken_rule_once() {
        let text = corrective_instruction(&[GuardTag::Sexual, GuardTag::Minor, GuardTag::Meta]);
        assert_eq!(text.matches("sexual content").count(), 1, "{text}");
        assert!(text.contains("prompts, rules"), "{text}");
    }
}
