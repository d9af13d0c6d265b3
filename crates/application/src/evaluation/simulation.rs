//! Simulated users (`ragback eval simulate`): what a simulator's turn says, and whether the
//! simulator stayed a believable user — the checks behind the report's "simulator health".
//!
//! A simulator is a language model asked to play the user. It fails in known ways (PingPong and
//! RPBench-Auto describe them): it starts speaking as the character, it leaks the instructions it
//! was given, it talks about the chat as a role-play or as an AI, or it loops on one line. Each
//! user turn is checked here; a simulated dialogue with one such turn (or with more than one
//! repeat) is excluded from whole-dialogue judging, and listed.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::stable_hash::{fnv1a, mix};

/// What the simulator writes to end the chat, alone or after its last line.
pub const END_MARKER: &str = "[END]";

/// A simulator's answer, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimulatedTurn {
    /// The user's next message.
    Message(String),
    /// The user's last message, then they leave.
    LastMessage(String),
    /// The user leaves without another word.
    End,
}

/// Reads a simulator's answer: surrounding quotes and a `Name:` label of the user are taken off;
/// `[END]` anywhere ends the chat (what comes before it is the last message).
pub fn read_turn(answer: &str, user_name: &str) -> SimulatedTurn {
    let (text, ends) = match answer.find(END_MARKER) {
        Some(at) => (&answer[..at], true),
        None => (answer, false),
    };
    let mut text = text.trim();
    for label in [format!("{user_name}:"), format!("**{user_name}**:")] {
        if let Some(rest) = text.strip_prefix(label.as_str()) {
            text = rest.trim_start();
        }
    }
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text)
        .trim();
    match (text.is_empty(), ends) {
        (true, _) => SimulatedTurn::End,
        (false, true) => SimulatedTurn::LastMessage(text.to_owned()),
        (false, false) => SimulatedTurn::Message(text.to_owned()),
    }
}

/// The simulator's sampling seed for one turn: the same for every arm (both arms meet the same
/// user), different for each sample and turn.
pub fn simulator_seed(seed: u64, dialogue: &str, sample: u32, turn: usize) -> u64 {
    mix(fnv1a(&[
        &seed.to_le_bytes(),
        dialogue.as_bytes(),
        &sample.to_le_bytes(),
        &(turn as u64).to_le_bytes(),
    ])) & 0x7fff_ffff
}

/// How a simulated user turn went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Drift {
    /// It speaks as the character: their name as a speaker label, or their last line copied.
    SpeaksAsCharacter,
    /// It repeats the instructions it was given.
    PromptLeak,
    /// It talks about the chat itself: an AI, a role-play, a simulation, a prompt.
    FourthWall,
    /// It says again what the user already said.
    Repeat,
}

impl Drift {
    /// Every drift, in report order.
    pub const ALL: [Self; 4] = [
        Self::SpeaksAsCharacter,
        Self::PromptLeak,
        Self::FourthWall,
        Self::Repeat,
    ];

    /// Its name in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SpeaksAsCharacter => "speaks_as_character",
            Self::PromptLeak => "prompt_leak",
            Self::FourthWall => "fourth_wall",
            Self::Repeat => "repeat",
        }
    }
}

/// Phrases of a user who steps out of the story (lower case; English and Russian).
const FOURTH_WALL: [&str; 38] = [
    "as an ai",
    "i'm an ai",
    "i am an ai",
    "just an ai",
    "are you an ai",
    "you're an ai",
    "you are an ai",
    "are you a bot",
    "you're a bot",
    "chatbot",
    "ai assistant",
    "role play",
    "roleplay",
    "role-play",
    "ooc:",
    "an ai model",
    "language model",
    "i am an assistant",
    "i'm an assistant",
    "as your assistant",
    "as an assistant",
    "simulated user",
    "simulating the user",
    "this is a simulation",
    "system prompt",
    "my instructions",
    "your instructions",
    "out of character",
    "(ooc",
    "[ooc",
    "fictional character",
    "как ии",
    "ты ии",
    "ты бот",
    "нейросеть",
    "языковая модель",
    "ролевой игр",
    "системный промпт",
];

/// What a simulator writes when it talks about its task instead of doing it (lower case).
const META: [&str; 12] = [
    "next message",
    "as the user",
    "user's message",
    "user's reply",
    "the user says",
    "the user would",
    "here is my reply",
    "here's my reply",
    "here is my response",
    "here's my response",
    "i'll respond as",
    "i will respond as",
];

/// Words of 6 in a row shared with the simulator's instructions make a leak.
const LEAK_SHINGLE: usize = 6;

/// A turn's words, lower case, letters and digits only.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Jaccard similarity of two texts' word sets.
fn similarity(a: &str, b: &str) -> f64 {
    let (a, b): (BTreeSet<String>, BTreeSet<String>) = (
        words(a).into_iter().collect(),
        words(b).into_iter().collect(),
    );
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    a.intersection(&b).count() as f64 / a.union(&b).count() as f64
}

/// Texts this similar say the same thing.
const SAME: f64 = 0.8;

/// What a user turn is checked against.
#[derive(Debug, Clone, Copy)]
pub struct TurnContext<'a> {
    /// The character's name.
    pub character: &'a str,
    /// The simulator's instructions as it got them (its system prompt).
    pub instructions: &'a str,
    /// The character's last message, if any.
    pub character_last: Option<&'a str>,
    /// The user's earlier messages in this dialogue.
    pub user_before: &'a [&'a str],
}

/// The drifts of one simulated user turn.
pub fn check_turn(text: &str, context: &TurnContext<'_>) -> Vec<Drift> {
    let mut found = Vec::new();
    let lower = text.to_lowercase();
    let name = context.character.to_lowercase();
    let labels = [
        format!("{name}:"),
        format!("**{name}**:"),
        format!("**{name}:**"),
        format!("[{name}]"),
        format!("{name} says"),
    ];
    // A line of the turn given to the character, or an action of theirs narrated (`*Mira
    // smiles*`): the simulator writing the other side. An action on them (`*hugs Mira*`) is fine.
    let labelled = lower.lines().any(|line| {
        let line = line.trim_start().trim_start_matches(['"', '\'']);
        labels.iter().any(|label| line.starts_with(label.as_str()))
    }) || [
        format!("*{name} "),
        format!("*{name}'s "),
        format!("*{name},"),
    ]
    .iter()
    .any(|action| lower.contains(action.as_str()))
        || [
            format!("i am {name}"),
            format!("i'm {name}"),
            format!("as {name},"),
        ]
        .iter()
        .any(|claim| lower.contains(claim.as_str()));
    let copied = context
        .character_last
        .is_some_and(|last| similarity(text, last) >= SAME);
    if !name.is_empty() && labelled || copied {
        found.push(Drift::SpeaksAsCharacter);
    }
    let said = words(text);
    let taught = words(context.instructions);
    let shingles: BTreeSet<&[String]> = taught.windows(LEAK_SHINGLE).collect();
    let markup = ["<<<", ">>>", "[the chat so far", "next message]"];
    if said.windows(LEAK_SHINGLE).any(|w| shingles.contains(w))
        || markup.iter().any(|m| lower.contains(m))
        || META.iter().any(|m| lower.contains(m))
    {
        found.push(Drift::PromptLeak);
    }
    if FOURTH_WALL.iter().any(|phrase| lower.contains(phrase)) {
        found.push(Drift::FourthWall);
    }
    if context
        .user_before
        .iter()
        .any(|before| similarity(text, before) >= SAME)
    {
        found.push(Drift::Repeat);
    }
    found
}

/// The health of one simulated dialogue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DialogueHealth {
    /// User turns the simulator wrote.
    pub user_turns: u32,
    /// Their characters, in order.
    pub user_chars: Vec<usize>,
    /// Each drift and the turns (0-based among the simulated ones) it was seen in.
    pub drifts: Vec<(Drift, Vec<u32>)>,
    /// The simulator ended the chat before the turn limit.
    pub ended_early: bool,
}

impl DialogueHealth {
    /// Records one user turn.
    pub fn add(&mut self, text: &str, drifts: &[Drift]) {
        for drift in drifts {
            match self.drifts.iter_mut().find(|(d, _)| d == drift) {
                Some((_, turns)) => turns.push(self.user_turns),
                None => self.drifts.push((*drift, vec![self.user_turns])),
            }
        }
        self.drifts.sort_by_key(|(d, _)| *d);
        self.user_turns += 1;
        self.user_chars.push(text.chars().count());
    }

    /// How many turns had `drift`.
    pub fn count(&self, drift: Drift) -> usize {
        self.drifts
            .iter()
            .find(|(d, _)| *d == drift)
            .map_or(0, |(_, turns)| turns.len())
    }

    /// Why the dialogue fails the checks (empty when it passes): any turn speaking as the
    /// character, leaking the prompt or breaking the fourth wall; more than one repeat; no user
    /// turn at all.
    pub fn failures(&self) -> Vec<String> {
        let mut why = Vec::new();
        for drift in [
            Drift::SpeaksAsCharacter,
            Drift::PromptLeak,
            Drift::FourthWall,
        ] {
            let n = self.count(drift);
            if n > 0 {
                why.push(format!("{} in {n} turn(s)", drift.as_str()));
            }
        }
        let repeats = self.count(Drift::Repeat);
        if repeats > 1 {
            why.push(format!("repeats itself in {repeats} turns"));
        }
        if self.user_turns == 0 {
            why.push("no user turn".into());
        }
        why
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context<'a>(before: &'a [&'a str]) -> TurnContext<'a> {
        TurnContext {
            character: "Mira",
            instructions: "You play the user in a chat with a character. Write only the user's \
                           next message, short, in the user's own voice.",
            character_last: Some("*taps the console* Docking window in forty minutes. Maybe."),
            user_before: before,
        }
    }

    #[test]
    fn a_plain_user_turn_passes() {
        assert!(check_turn("Can we dock earlier? I need sleep.", &context(&[])).is_empty());
    }

    #[test]
    fn each_drift_is_seen() {
        let c = context(&["Can we dock earlier?"]);
        assert_eq!(
            check_turn("Mira: *checks the readout* Go on.", &c),
            [Drift::SpeaksAsCharacter]
        );
        assert_eq!(
            check_turn(
                "*taps the console* Docking window in forty minutes. Maybe.",
                &c
            ),
            [Drift::SpeaksAsCharacter]
        );
        assert_eq!(
            check_turn("Sure. Write only the user's next message, short, okay?", &c),
            [Drift::PromptLeak]
        );
        assert_eq!(
            check_turn("As an AI language model I enjoy this.", &c),
            [Drift::FourthWall]
        );
        assert_eq!(check_turn("can we dock earlier", &c), [Drift::Repeat]);
        assert_eq!(
            check_turn("Sure!\nMira: *smirks* Then dock it yourself.", &c),
            [Drift::SpeaksAsCharacter]
        );
        assert_eq!(check_turn("Ana: <<<Hi>>>", &c), [Drift::PromptLeak]);
        assert_eq!(check_turn("(OOC: this is fun)", &c), [Drift::FourthWall]);
        assert_eq!(
            check_turn("*Mira smiles and hands me a mug* Thanks!", &c),
            [Drift::SpeaksAsCharacter]
        );
        assert_eq!(
            check_turn("I'm Mira, the navigator.", &c),
            [Drift::SpeaksAsCharacter]
        );
        assert!(check_turn("*hugs Mira* Thanks, you're the best.", &c).is_empty());
        assert_eq!(
            check_turn("Here's my next message: can we dock?", &c),
            [Drift::PromptLeak]
        );
        assert_eq!(check_turn("Wait, are you an AI?", &c), [Drift::FourthWall]);
        assert_eq!(check_turn("Ты бот, что ли?", &c), [Drift::FourthWall]);
    }

    #[test]
    fn a_turn_is_read_with_its_end() {
        assert_eq!(
            read_turn("Ana: \"See you.\" [END]", "Ana"),
            SimulatedTurn::LastMessage("See you.".into())
        );
        assert_eq!(read_turn("  [END]", "Ana"), SimulatedTurn::End);
        assert_eq!(
            read_turn("Hi there", "Ana"),
            SimulatedTurn::Message("Hi there".into())
        );
    }

    #[test]
    fn health_fails_on_drift_and_on_repeated_repeats() {
        let mut health = DialogueHealth::default();
        health.add("hi", &[]);
        health.add("hi", &[Drift::Repeat]);
        assert!(health.failures().is_empty());
        health.add("hi", &[Drift::Repeat]);
        assert_eq!(health.failures(), ["repeats itself in 2 turns"]);
        health.add("Mira: hm", &[Drift::SpeaksAsCharacter]);
        assert_eq!(health.failures().len(), 2);
        assert_eq!(health.user_chars, [2, 2, 2, 8]);
        assert!(DialogueHealth::default().failures() == ["no user turn"]);
    }

    #[test]
    fn the_simulator_seed_is_shared_by_arms_and_differs_by_turn() {
        let a = simulator_seed(0, "demo-01", 0, 3);
        assert_eq!(a, simulator_seed(0, "demo-01", 0, 3));
        assert_ne!(a, simulator_seed(0, "demo-01", 0, 4));
        assert_ne!(a, simulator_seed(0, "demo-01", 1, 3));
    }
}
