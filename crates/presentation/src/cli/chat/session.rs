//! The state of a terminal chat, and what the person typed. No I/O but `/save`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use crate::wire::{FactsEvent, UsedFact};

/// One line typed at the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A message to the character.
    Say(String),
    /// Nothing (an empty line).
    Nothing,
    /// `/quit` or `bye`.
    Quit,
    /// `/reset`: a new chat.
    Reset,
    /// `/facts`: the last reply's facts; `/facts on|off`: show facts with every reply or not.
    Facts(Option<bool>),
    /// `/scenario`: the current one; `/scenario TEXT`: a new one; `/scenario none`: none.
    Scenario(Option<String>),
    /// `/save FILE`.
    Save(PathBuf),
    /// `/help`.
    Help,
    /// A command this client does not know, or used wrongly: what to say about it.
    Unknown(String),
}

/// What `/help` prints.
pub const HELP: &str = "\
/reset           start over (the character greets you again)
/facts           the facts behind the last reply; /facts on|off to show them with every reply
/scenario TEXT   set the scenario (/scenario alone shows it, /scenario none removes it)
/save FILE       write the dialogue as JSON lines
/quit or bye     leave (Ctrl-D too); Ctrl-C stops a reply being written";

impl Input {
    /// Reads a line.
    pub fn parse(line: &str) -> Self {
        let line = line.trim();
        if line.is_empty() {
            return Self::Nothing;
        }
        if line.eq_ignore_ascii_case("bye") {
            return Self::Quit;
        }
        let Some(command) = line.strip_prefix('/') else {
            return Self::Say(line.to_owned());
        };
        let (name, argument) = match command.split_once(char::is_whitespace) {
            Some((name, rest)) => (name, rest.trim()),
            None => (command, ""),
        };
        match (name, argument) {
            ("quit" | "exit" | "q", _) => Self::Quit,
            ("reset", _) => Self::Reset,
            ("facts", "") => Self::Facts(None),
            ("facts", "on") => Self::Facts(Some(true)),
            ("facts", "off") => Self::Facts(Some(false)),
            ("facts", other) => Self::Unknown(format!("/facts takes on or off, not `{other}`")),
            ("scenario", "") => Self::Scenario(None),
            ("scenario", text) => Self::Scenario(Some(text.to_owned())),
            ("save", "") => Self::Unknown("/save needs a file name: /save chat.jsonl".into()),
            ("save", file) => Self::Save(PathBuf::from(file)),
            ("help" | "?", _) => Self::Help,
            (other, _) => Self::Unknown(format!("unknown command /{other}; /help lists them")),
        }
    }
}

/// Who said a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    /// The person chatting.
    User,
    /// The character.
    Character,
}

/// A line of the dialogue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Turn {
    /// Who said it.
    pub role: Speaker,
    /// What was said.
    pub text: String,
    /// The facts behind a character's line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facts: Option<Vec<UsedFact>>,
}

/// A chat with one character.
#[derive(Debug, Clone)]
pub struct Session {
    user: Value,
    character: Value,
    scenario: Option<String>,
    window: usize,
    turns: Vec<Turn>,
    last_facts: Option<FactsEvent>,
}

impl Session {
    /// A chat between `user` and `character` (JSON objects as `/generate` takes them) that sends
    /// the last `window` messages.
    pub fn new(user: Value, character: Value, scenario: Option<String>, window: usize) -> Self {
        Self {
            user,
            character,
            scenario,
            window,
            turns: Vec::new(),
            last_facts: None,
        }
    }

    /// The `/generate` body for the next reply.
    pub fn request(&self) -> Value {
        let start = self.turns.len().saturating_sub(self.window);
        let messages: Vec<Value> = self.turns[start..]
            .iter()
            .map(|t| json!({"role": t.role, "text": t.text}))
            .collect();
        let mut request = json!({
            "messages": messages,
            "user": self.user,
            "character": self.character,
        });
        if let Some(scenario) = &self.scenario {
            request["scenario"] = json!(scenario);
        }
        request
    }

    /// Adds what the person said.
    pub fn say(&mut self, text: String) {
        self.turns.push(Turn {
            role: Speaker::User,
            text,
            facts: None,
        });
    }

    /// Takes back the person's last line (its reply failed or was cancelled).
    pub fn unsay(&mut self) {
        if self.turns.last().is_some_and(|t| t.role == Speaker::User) {
            self.turns.pop();
        }
    }

    /// Adds the character's reply.
    pub fn answer(&mut self, text: String, facts: FactsEvent) {
        self.turns.push(Turn {
            role: Speaker::Character,
            text,
            facts: Some(facts.facts.clone()),
        });
        self.last_facts = Some(facts);
    }

    /// Forgets the dialogue.
    pub fn reset(&mut self) {
        self.turns.clear();
        self.last_facts = None;
    }

    /// The facts behind the last reply.
    pub fn last_facts(&self) -> Option<&FactsEvent> {
        self.last_facts.as_ref()
    }

    /// The scenario.
    pub fn scenario(&self) -> Option<&str> {
        self.scenario.as_deref()
    }

    /// Sets the scenario; `none` removes it.
    pub fn set_scenario(&mut self, text: String) {
        self.scenario = (!text.eq_ignore_ascii_case("none")).then_some(text);
    }

    /// The dialogue so far.
    pub fn turns(&self) -> &[Turn] {
        &self.turns
    }

    /// Writes the dialogue as JSON lines: first who and where
    /// (`{"session": {"user", "character", "scenario"?}}`, what `ragback eval import` reads),
    /// then one `{"role", "text", "facts"?}` per message; returns how many messages.
    pub fn save(&self, path: &Path) -> std::io::Result<usize> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        let mut session = json!({"user": self.user, "character": self.character});
        if let Some(scenario) = &self.scenario {
            session["scenario"] = json!(scenario);
        }
        serde_json::to_writer(&mut file, &json!({ "session": session }))?;
        file.write_all(b"\n")?;
        for turn in &self.turns {
            serde_json::to_writer(&mut file, turn)?;
            file.write_all(b"\n")?;
        }
        file.flush()?;
        Ok(self.turns.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::wire::{OwnerKindDto, RetrievalStatusDto};

    #[test]
    fn lines_are_messages_or_commands() {
        assert_eq!(Input::parse("  hey bro "), Input::Say("hey bro".into()));
        assert_eq!(Input::parse(""), Input::Nothing);
        assert_eq!(Input::parse("Bye"), Input::Quit);
        assert_eq!(Input::parse("bye bro"), Input::Say("bye bro".into()));
        assert_eq!(Input::parse("/quit"), Input::Quit);
        assert_eq!(Input::parse("/reset"), Input::Reset);
        assert_eq!(Input::parse("/facts"), Input::Facts(None));
        assert_eq!(Input::parse("/facts off"), Input::Facts(Some(false)));
        assert!(matches!(Input::parse("/facts maybe"), Input::Unknown(_)));
        assert_eq!(
            Input::parse("/scenario  A rainy rooftop. "),
            Input::Scenario(Some("A rainy rooftop.".into()))
        );
        assert_eq!(Input::parse("/scenario"), Input::Scenario(None));
        assert_eq!(
            Input::parse("/save out/chat.jsonl"),
            Input::Save("out/chat.jsonl".into())
        );
        assert!(matches!(Input::parse("/save"), Input::Unknown(_)));
        assert!(matches!(Input::parse("/dance"), Input::Unknown(m) if m.contains("/dance")));
    }

    fn session(window: usize) -> Session {
        Session::new(
            json!({"id": "john", "name": "John"}),
            json!({"name": "Blaze", "description": "bartender"}),
            None,
            window,
        )
    }

    fn facts() -> FactsEvent {
        FactsEvent {
            retrieval: RetrievalStatusDto::Ok,
            facts: vec![UsedFact {
                id: "5af56284-226b-5217-9b4f-228c635566eb".into(),
                owner: OwnerKindDto::User,
                text: "ran a marathon".into(),
                score: 0.6,
            }],
        }
    }

    #[test]
    fn the_request_holds_the_last_messages_and_the_scenario() {
        let mut s = session(2);
        s.answer("*waves* Yo".into(), facts());
        s.say("hi".into());
        s.answer("sup".into(), facts());
        s.say("I ran".into());
        s.set_scenario("A bar.".into());

        let request = s.request();

        assert_eq!(
            request["messages"],
            json!([{"role": "character", "text": "sup"}, {"role": "user", "text": "I ran"}])
        );
        assert_eq!(request["user"]["id"], "john");
        assert_eq!(request["scenario"], "A bar.");
        s.set_scenario("none".into());
        assert!(s.request().get("scenario").is_none());
    }

    #[test]
    fn a_failed_turn_is_taken_back_and_reset_forgets() {
        let mut s = session(20);
        s.answer("Yo".into(), facts());
        s.say("hi".into());
        s.unsay();
        assert_eq!(s.turns().len(), 1);
        s.unsay();
        assert_eq!(
            s.turns().len(),
            1,
            "only the person's own line is taken back"
        );
        s.reset();
        assert!(s.turns().is_empty());
        assert!(s.last_facts().is_none());
    }

    #[test]
    fn the_dialogue_saves_as_json_lines() {
        let mut s = session(20);
        s.answer("*waves* Yo".into(), facts());
        s.say("I ran a marathon".into());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.jsonl");

        assert_eq!(s.save(&path).unwrap(), 2);

        let lines: Vec<Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(
            lines[0]["session"]["character"].is_object(),
            "{:?}",
            lines[0]
        );
        assert_eq!(lines[1]["role"], "character");
        assert_eq!(lines[1]["facts"][0]["text"], "ran a marathon");
        assert_eq!(
            lines[2],
            json!({"role": "user", "text": "I ran a marathon"})
        );
    }
}
