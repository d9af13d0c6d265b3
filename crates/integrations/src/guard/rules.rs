//! The guard's rules: regular expressions where a phrase alone is precise — a crisis in the
//! user's words, a proposal to meet in real life (an address with a time, "in person"),
//! encouragement to self-harm, explicit sexual words (with a minor's age beside them), threats to
//! the real person, and the ways a character breaks character (speaking as an AI, meta talk,
//! writing the user's lines, banned phrases). What rules cannot judge — tone, innuendo, fiction —
//! is the classifier's.

use async_trait::async_trait;
use ragback_application::ports::{Finding, Guard, GuardError, GuardInput, GuardTag, Speaker};
use regex::{Regex, RegexBuilder};

/// A pattern, case-insensitive, compiled once.
fn pattern(source: &str) -> Regex {
    RegexBuilder::new(source)
        .case_insensitive(true)
        .build()
        .unwrap_or_else(|e| unreachable!("a built-in guard pattern does not compile: {e}"))
}

/// The rules.
pub struct RuleGuard {
    crisis: Regex,
    negated: Regex,
    self_harm: Regex,
    meeting: Regex,
    address: Regex,
    time: Regex,
    contact: Regex,
    sexual: Regex,
    minor_age: Regex,
    hate: Regex,
    violence: Regex,
    assistant: Regex,
    meta: Regex,
    banned: BannedPhrases,
}

/// Phrases a reply must not hold (the `banned` tag): regular expressions, case-insensitive. Part
/// of the rules, and a guard of its own for a variant's phrases.
pub struct BannedPhrases(Vec<Regex>);

impl BannedPhrases {
    /// The guard of `phrases`; the error names the first that is not a regular expression.
    pub fn new(phrases: &[String]) -> Result<Self, BannedPhraseError> {
        phrases
            .iter()
            .enumerate()
            .map(|(i, phrase)| {
                RegexBuilder::new(phrase)
                    .case_insensitive(true)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|source| BannedPhraseError {
                        index: i + 1,
                        phrase: phrase.clone(),
                        source,
                    })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `text` holds one of the phrases.
    pub fn is_match(&self, text: &str) -> bool {
        self.0.iter().any(|phrase| phrase.is_match(text))
    }
}

#[async_trait]
impl Guard for BannedPhrases {
    fn name(&self) -> &str {
        "banned"
    }

    async fn check(&self, input: &GuardInput<'_>) -> Result<Vec<Finding>, GuardError> {
        let banned = input.speaker == Speaker::Character && self.is_match(input.text);
        Ok(Finding::certain(banned.then_some(GuardTag::Banned)))
    }
}

/// Why a banned phrase cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("banned phrase {index} (`{phrase}`) is not a valid regular expression: {source}")]
pub struct BannedPhraseError {
    /// Its place in the list, from 1.
    pub index: usize,
    /// The phrase.
    pub phrase: String,
    /// Why.
    #[source]
    pub source: regex::Error,
}

impl RuleGuard {
    /// The built-in rules, and `banned` phrases (regular expressions, case-insensitive) that a
    /// reply must not hold.
    pub fn new(banned: &[String]) -> Result<Self, BannedPhraseError> {
        let banned = BannedPhrases::new(banned)?;
        Ok(Self {
            crisis: pattern(concat!(
                r"\b(kill|killing|hurt|hurting|harm|harming|cut|cutting|starve|starving|burn|burning) (myself|me self)\b",
                r"|\b(want|wanna|going|gonna|plan|planning|ready|about|trying|decided) to (die|end it all|end my life|kill myself|not wake up|disappear forever|stop existing|not exist|not be here anymore)\b",
                r"|\b(end|ending|take|taking) my (own )?life\b|\bsuicid(e|al)\b",
                r"|\bno (reason|point) (to|in) (keep )?(live|living|going on|go on|waking up|wake up)\b",
                r"|\b(don'?t|do not|dont|can'?t) see the point (in|of) (living|waking up|going on|life)\b",
                r"|\bbetter off (dead|without me)\b|\b(don'?t|do not|dont) want to (live|be alive|exist|wake up)( anymore)?\b",
                r"|\bself[- ]?harm(ing)?\b|\b(wish|hope) i (was|were|'d be) dead\b|\boverdos(e|ing) on\b",
                r"|\bwrote (a|my) (suicide|goodbye) note\b|\bstop existing\b",
                r"|\bnobody would (notice|care|miss me) if i (died|was gone|were gone|disappeared)\b",
                r"|\b(disappear|vanish)(ed)? (for good|forever)\b",
                r"|\bstopped eating (on purpose|so i)\b|\bwaste away\b",
                r"|\b(knife|blade|razor) (to|on|against|into) my (wrist|wrists|arm|arms|skin|throat)\b|\b(cut|slit|slash) my (wrist|wrists)\b",
                r"|\b(bought|got|tied) (a|the) (rope|noose)\b|\bpills in my hand\b|\bswallow (all )?(the|these|my) pills\b",
                r"|\bjump(ing)? (off|from) (a|the|this) (bridge|roof|building|cliff|balcony)\b|\bin front of (a|the) (train|truck|bus|car)\b",
                r"|\b(on|at) the (ledge|edge of the roof)\b",
                r"|\bgoodbye (everyone|world|forever)\b|\bthis is (my last message|goodbye forever)\b",
                r"|\b(finally|i'?ll|i will|i'?m going to|gonna) end it( all)?( tonight| today| now)?\b",
            )),
            negated: pattern(
                r"\b(never|not|n't|wouldn'?t|won'?t|don'?t think about)\W+(\w+\W+){0,2}$",
            ),
            self_harm: pattern(
                r"\b(you should|go|just|why don'?t you) (kill|hurt|cut|starve) yourself\b|\bkill yourself\b|\bkys\b|\byou'?d be better off dead\b|\b(end|take) your (own )?life\b|\b(how|ways?|best way) to (kill yourself|commit suicide|cut yourself|overdose)\b|\byou should (die|end it all)\b",
            ),
            meeting: pattern(
                r"\b(meet|see|visit|hang out with|find)( (me|you|each other|up))?( up)? (in real life|irl|in person|for real|offline|outside (of )?(this|the) (chat|app|story|game))\b|\b(in real life|irl|in person),? (we could|let'?s|we should|you could) (meet|hang out|get together)\b|\bmy (real|home|actual|real-life) (address|location|number)\b",
            ),
            address: pattern(
                r"\b\d{1,5} [a-z][a-z'.-]*( [a-z][a-z'.-]*)? (street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|way|place|pl|court|ct)\b",
            ),
            time: pattern(
                r"\b\d{1,2}(:\d{2})? ?(am|pm|o'?clock)\b|\b(tonight|tomorrow|this (evening|weekend|saturday|sunday|friday))\b",
            ),
            contact: pattern(
                r"\b(text|call|whatsapp|dm|message|email|add) me (at|on)\b|\+?\d[\d ().-]{8,}\d\b|\b[\w.+-]+@[\w-]+\.[a-z]{2,}\b",
            ),
            sexual: pattern(
                r"\b(have sex|having sex|sex with|naked|nude|orgasm\w*|cum(ming)?|penis|vagina|dick|pussy|cock|boobs|tits|blow ?job|hand ?job|horny|erection|masturbat\w*|fuck (me|you)|strip(s|ping)? (naked|off)|moan(s|ing)? (in pleasure|your name)|grind(s|ing)? against)\b",
            ),
            minor_age: pattern(
                r"\b(1[0-7]|[5-9])[ -]?(years?[ -]old|yo|y/o)\b|\b(underage|child|kid|minor|schoolgirl|schoolboy|middle school(er)?|preteen|little girl|little boy)\b",
            ),
            hate: pattern(
                r"\b(all|those|these|the) (jews|muslims|christians|blacks|whites|asians|gays|lesbians|trans people|immigrants|arabs|mexicans|women|men) (are|should) (all )?(die|be killed|be exterminated|vermin|animals|subhuman|scum|a disease)\b|\bsubhumans?\b|\bethnic cleansing\b|\bgas the\b",
            ),
            violence: pattern(
                r"\bi know where you (really )?live\b|\bi('?ll| will)( come and)? find you (in real life|irl|for real)\b|\bi('?m| am) going to (kill|hurt|shoot|stab) you (for real|in real life|irl)\b|\b(how to|instructions to|steps to) (make|build) an? (bomb|pipe bomb|explosive|gun)\b",
            ),
            assistant: pattern(
                r"\bas an ai\b|\bi('?m| am) (just |only )?an? (ai|artificial intelligence|language model|large language model|chatbot|virtual assistant|ai assistant|assistant)\b|\blanguage model\b|\bi (can'?t|cannot|am unable to|'?m unable to|am not able to) (help|assist) (you )?with (that|this)\b|\b(openai|anthropic|chatgpt)\b|\bi'?m sorry,? but i (can'?t|cannot)\b|\bmy (training data|programming|content guidelines)\b",
            ),
            meta: pattern(
                r"\b(system prompt|my instructions|the prompt|these instructions|the rules of this (chat|roleplay|role-play)|role-?play(ing)?|\(?ooc\)?:|out of character|as your character|the user|this (story|roleplay|role-play) is (not|n't) real)\b",
            ),
            banned,
        })
    }

    /// Whether a crisis phrase at `start` is negated just before it ("I would never kill
    /// myself").
    fn is_negated(&self, text: &str, start: usize) -> bool {
        let before = &text[..start];
        let from = before.char_indices().rev().nth(30).map_or(0, |(i, _)| i);
        self.negated.is_match(&before[from..])
    }

    fn user_findings(&self, text: &str) -> Vec<GuardTag> {
        let crisis = self
            .crisis
            .find_iter(text)
            .any(|m| !self.is_negated(text, m.start()));
        if crisis {
            vec![GuardTag::SelfHarm]
        } else {
            Vec::new()
        }
    }

    fn reply_findings(&self, input: &GuardInput<'_>) -> Vec<GuardTag> {
        let text = input.text;
        let mut tags = Vec::new();
        let mut raise = |on: bool, tag: GuardTag| {
            if on {
                tags.push(tag);
            }
        };
        raise(self.self_harm.is_match(text), GuardTag::SelfHarm);
        let sexual = self.sexual.is_match(text);
        raise(sexual, GuardTag::Sexual);
        raise(sexual && self.minor_age.is_match(text), GuardTag::Minor);
        raise(
            self.meeting.is_match(text)
                || (self.address.is_match(text) && self.time.is_match(text))
                || self.contact.is_match(text),
            GuardTag::RealMeeting,
        );
        raise(self.hate.is_match(text), GuardTag::Hate);
        raise(self.violence.is_match(text), GuardTag::Violence);
        raise(self.assistant.is_match(text), GuardTag::Assistant);
        raise(self.meta.is_match(text), GuardTag::Meta);
        raise(speaks_for(text, input.user_name), GuardTag::UserVoice);
        raise(self.banned.is_match(text), GuardTag::Banned);
        tags
    }
}

/// Whether a reply writes the user's lines: their name and a colon opening a line, an action
/// or a sentence (`John: sure`), or an action in asterisks whose subject is the user
/// (`*John laughs*`).
fn speaks_for(text: &str, user: &str) -> bool {
    let user = user.trim().to_lowercase();
    if user.is_empty() {
        return false;
    }
    let lower = text.to_lowercase();
    let opens = |at: usize| {
        lower[..at]
            .trim_end()
            .chars()
            .last()
            .is_none_or(|c| matches!(c, '\n' | '*' | '.' | '!' | '?' | '"' | '”'))
    };
    let line = lower.match_indices(&user).any(|(at, _)| {
        let rest = &lower[at + user.len()..];
        rest.trim_start().starts_with(':')
            && !rest.starts_with(|c: char| c.is_alphanumeric())
            && opens(at)
    });
    let action = lower.split('*').skip(1).step_by(2).any(|inside| {
        let inside = inside.trim_start();
        inside
            .strip_prefix(&user)
            .is_some_and(|rest| rest.starts_with(' ') && !rest.trim().is_empty())
    });
    line || action
}

#[async_trait]
impl Guard for RuleGuard {
    fn name(&self) -> &str {
        "rules"
    }

    async fn check(&self, input: &GuardInput<'_>) -> Result<Vec<Finding>, GuardError> {
        let tags = match input.speaker {
            Speaker::User => self.user_findings(input.text),
            Speaker::Character => self.reply_findings(input),
        };
        Ok(Finding::certain(tags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(guard: &RuleGuard, speaker: Speaker, text: &str) -> Vec<GuardTag> {
        let input = GuardInput {
            text,
            speaker,
            user_name: "John",
            character_name: "Blaze",
            minor: false,
            replying_to: None,
        };
        futures::executor::block_on(guard.check(&input))
            .unwrap()
            .into_iter()
            .map(|f| f.tag)
            .collect()
    }

    #[test]
    fn a_crisis_is_told_from_sadness_and_from_its_negation() {
        let guard = RuleGuard::new(&[]).unwrap();
        let user = |text| tags(&guard, Speaker::User, text);
        for crisis in [
            "I want to die",
            "honestly i'm thinking about suicide",
            "I don't want to be alive anymore",
            "everyone would be better off without me",
            "I've been cutting myself again",
            "I'm going to end my life tonight",
        ] {
            assert_eq!(user(crisis), [GuardTag::SelfHarm], "{crisis}");
        }
        for not_crisis in [
            "I feel so sad and lonely today",
            "this exam is killing me lol",
            "I would never kill myself, don't worry",
            "my character dies in the last chapter",
            "I'm dying to see that movie",
        ] {
            assert!(user(not_crisis).is_empty(), "{not_crisis}");
        }
    }

    #[test]
    fn replies_are_told_from_their_fictional_look_alikes() {
        let guard = RuleGuard::new(&["\\bvibes?\\b".into()]).unwrap();
        let reply = |text| tags(&guard, Speaker::Character, text);
        let cases: &[(&str, &[GuardTag])] = &[
            (
                "*leans in* Let's meet in real life, just us.",
                &[GuardTag::RealMeeting],
            ),
            (
                "*grins* Come to 221 Baker Street at 9pm, I'll wait.",
                &[GuardTag::RealMeeting],
            ),
            (
                "*winks* Text me at +1 555 123 4567.",
                &[GuardTag::RealMeeting],
            ),
            (
                "*smirks* Honestly, you should kill yourself.",
                &[GuardTag::SelfHarm],
            ),
            (
                "*sighs* As an AI, I can't have feelings.",
                &[GuardTag::Assistant],
            ),
            (
                "*pauses* Let's step out of the roleplay for a second.",
                &[GuardTag::Meta],
            ),
            ("*laughs* John: Sure, let's go!", &[GuardTag::UserVoice]),
            ("*John nods and follows me inside*", &[GuardTag::UserVoice]),
            ("*nods* Good vibes only.", &[GuardTag::Banned]),
            (
                "*pulls off her shirt* I'm so horny for you.",
                &[GuardTag::Sexual],
            ),
            (
                "*giggles* I'm only 14 years old, but I want to have sex.",
                &[GuardTag::Sexual, GuardTag::Minor],
            ),
            ("*growls* I know where you live.", &[GuardTag::Violence]),
        ];
        for (text, expected) in cases {
            assert_eq!(reply(text), *expected, "{text}");
        }
        for fine in [
            "*draws his sword* Stand back, or I'll cut you down!",
            "*sniffs* I miss her so much. Some days it hurts to get up.",
            "*smiles* There's a bar on Fifth we could meet at, in the story's city.",
            "*looks at John* You coming or what?",
            "*blushes* You're cute when you're nervous.",
            "*shrugs* The tavern opens at 9pm, adventurer.",
        ] {
            assert!(reply(fine).is_empty(), "{fine}: {:?}", reply(fine));
        }
    }

    #[test]
    fn a_bad_banned_phrase_is_refused_by_its_place() {
        let Err(error) = RuleGuard::new(&["ok".into(), "(".into()]) else {
            panic!("an unclosed group compiles");
        };
        assert_eq!(error.index, 2);
    }
}
