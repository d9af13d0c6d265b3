//! `ragback chat`: talk to a character through a running server, from the terminal or a pipe.

mod client;
mod session;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use secrecy::SecretString;
use serde_json::Value;

pub use client::{ChatClient, ChatError, Progress, Reply};
pub use session::{HELP, Input, Session, Speaker, Turn};

use crate::wire::{FactsEvent, OwnerKindDto, RetrievalStatusDto};

/// The options of `ragback chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The ragback server.
    #[arg(
        long,
        default_value = "http://localhost:8000",
        env = "RAGBACK_CHAT_URL"
    )]
    pub url: String,
    /// The user, as `/generate` takes it (`{"id", "name", "age"}`).
    #[arg(long, default_value = "data/user.json")]
    pub user: PathBuf,
    /// The character (`{"id", "name", "age", "description"}`, optionally with a `card`).
    #[arg(long, default_value = "data/character.json")]
    pub character: PathBuf,
    /// Where the scene takes place.
    #[arg(long)]
    pub scenario: Option<String>,
    /// How many of the latest messages are sent with each turn.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..))]
    pub history: u16,
    /// Show the facts behind each reply (the default).
    #[arg(long, overrides_with = "no_facts")]
    pub facts: bool,
    /// Do not show the facts behind each reply (`/facts` still does).
    #[arg(long, overrides_with = "facts")]
    pub no_facts: bool,
    /// Bearer token, when the server has authentication on (RAGBACK_SERVER__API_KEYS).
    #[arg(long, env = "RAGBACK_API_KEY", hide_env_values = true, value_parser = secret)]
    pub api_key: Option<SecretString>,
    /// Ask for this configured variant with every turn, whatever the server's split says.
    #[arg(long, env = "RAGBACK_CHAT_VARIANT")]
    pub variant: Option<String>,
    /// Give up on a reply when the server sends nothing for this many seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
}

fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

/// Runs the chat until `/quit`, `bye`, Ctrl-D or the end of the piped input.
pub async fn run(args: ChatArgs) -> anyhow::Result<()> {
    let user = read_party(&args.user, "user")?;
    let character = read_party(&args.character, "character")?;
    let mut screen = Screen {
        user: name_of(&user),
        character: name_of(&character),
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        show_facts: !args.no_facts,
        replying: false,
    };
    let client = ChatClient::new(
        &args.url,
        Duration::from_secs(args.timeout),
        args.api_key.as_ref(),
    )?
    .with_variant(args.variant.clone());
    let mut session = Session::new(user, character, args.scenario, args.history.into());
    let mut lines = Lines::new(&screen.user)?;
    if lines.is_terminal() {
        screen.note(&format!(
            "chatting with {} through {} — /help for commands, Ctrl-D to leave",
            screen.character, args.url
        ));
    }
    reply(&client, &mut session, &mut screen).await;
    while let Some(line) = lines.next().await {
        match Input::parse(&line) {
            Input::Nothing => {}
            Input::Say(text) => {
                if !lines.is_terminal() {
                    screen.echo(&text);
                }
                session.say(text);
                if !reply(&client, &mut session, &mut screen).await {
                    session.unsay();
                }
            }
            Input::Quit => break,
            Input::Reset => {
                session.reset();
                screen.note("a new chat");
                reply(&client, &mut session, &mut screen).await;
            }
            Input::Facts(None) => match session.last_facts() {
                Some(facts) => screen.facts(facts, true),
                None => screen.note("no reply yet"),
            },
            Input::Facts(Some(show)) => {
                screen.show_facts = show;
                screen.note(if show { "facts shown" } else { "facts hidden" });
            }
            Input::Scenario(None) => {
                screen.note(
                    session
                        .scenario()
                        .unwrap_or("no scenario (the card's, if any)"),
                );
            }
            Input::Scenario(Some(text)) => {
                session.set_scenario(text);
                screen.note(match session.scenario() {
                    Some(_) => "scenario set; it applies from the next reply",
                    None => "scenario removed",
                });
            }
            Input::Save(path) => match session.save(&path) {
                Ok(count) => screen.note(&format!("{count} messages saved to {}", path.display())),
                Err(error) => screen.error(&format!("cannot save to {}: {error}", path.display())),
            },
            Input::Help => screen.note(HELP),
            Input::Unknown(message) => screen.error(&message),
        }
    }
    Ok(())
}

/// Asks for the character's next line and shows it as it streams; Ctrl-C abandons it (which
/// closes the request, so the server stops generating). True when the reply came.
async fn reply(client: &ChatClient, session: &mut Session, screen: &mut Screen) -> bool {
    let request = session.request();
    let outcome = {
        let streamed = client.reply(&request, |progress| match progress {
            Progress::Facts(facts) => screen.facts(facts, false),
            Progress::Delta(piece) => screen.piece(piece),
        });
        tokio::select! {
            outcome = streamed => Some(outcome),
            _ = tokio::signal::ctrl_c() => None,
        }
    };
    screen.end_reply();
    match outcome {
        Some(Ok(reply)) => {
            if let Some(referral) = &reply.referral {
                screen.note(referral);
            }
            session.answer(reply.text, reply.facts);
            true
        }
        Some(Err(error)) => {
            screen.error(&error.to_string());
            false
        }
        None => {
            screen.note("reply cancelled");
            false
        }
    }
}

/// Reads `path` as a JSON object with a `name`.
fn read_party(path: &Path, what: &str) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} from {}", path.display()))?;
    let value: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    anyhow::ensure!(
        value.get("name").is_some_and(Value::is_string),
        "{} must be a JSON object with a \"name\" (the {what} as /generate takes it)",
        path.display()
    );
    Ok(value)
}

fn name_of(party: &Value) -> String {
    party["name"].as_str().unwrap_or_default().to_owned()
}

/// Where lines come from: an editor with history on a terminal, plain lines from a pipe.
enum Lines {
    Terminal {
        editor: Box<rustyline::DefaultEditor>,
        prompt: String,
    },
    Piped(tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>),
}

impl Lines {
    fn new(user: &str) -> anyhow::Result<Self> {
        use tokio::io::AsyncBufReadExt;
        if std::io::stdin().is_terminal() {
            let editor = rustyline::DefaultEditor::new().context("cannot set up line editing")?;
            Ok(Self::Terminal {
                editor: Box::new(editor),
                prompt: format!("{user}: "),
            })
        } else {
            Ok(Self::Piped(
                tokio::io::BufReader::new(tokio::io::stdin()).lines(),
            ))
        }
    }

    fn is_terminal(&self) -> bool {
        matches!(self, Self::Terminal { .. })
    }

    /// The next line; `None` at the end (Ctrl-D, end of input, Ctrl-C on a pipe).
    async fn next(&mut self) -> Option<String> {
        match self {
            Self::Terminal { editor, prompt } => loop {
                use rustyline::error::ReadlineError;
                // The editor blocks on the terminal; this thread is the chat's only work.
                match tokio::task::block_in_place(|| editor.readline(prompt)) {
                    Ok(line) => {
                        if !line.trim().is_empty() {
                            let _ = editor.add_history_entry(line.as_str());
                        }
                        return Some(line);
                    }
                    // Ctrl-C at the prompt clears the line, as in a shell.
                    Err(ReadlineError::Interrupted) => {}
                    Err(ReadlineError::Eof) => return None,
                    Err(error) => {
                        eprintln!("error: cannot read the terminal: {error}");
                        return None;
                    }
                }
            },
            Self::Piped(lines) => tokio::select! {
                line = lines.next_line() => line.ok().flatten(),
                _ = tokio::signal::ctrl_c() => None,
            },
        }
    }
}

/// The terminal (or pipe) the chat is written to.
struct Screen {
    user: String,
    character: String,
    color: bool,
    show_facts: bool,
    /// Whether a reply's first piece has been written and its line not ended.
    replying: bool,
}

impl Screen {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// The person's line, when it was piped in (a terminal shows it already).
    fn echo(&self, text: &str) {
        println!("{}: {text}", self.user);
    }

    fn facts(&self, facts: &FactsEvent, asked: bool) {
        if !(self.show_facts || asked) {
            return;
        }
        let mut lines = Vec::new();
        if facts.retrieval == RetrievalStatusDto::Degraded {
            lines.push("  · retrieval failed: no facts this time (see the server log)".to_owned());
        } else if asked && facts.facts.is_empty() {
            lines.push(format!(
                "  · no facts (retrieval {})",
                facts.retrieval.as_str()
            ));
        }
        for fact in &facts.facts {
            let whose = if fact.owner == OwnerKindDto::Character {
                format!(" ({})", self.character)
            } else {
                String::new()
            };
            lines.push(format!("  · {:.2}  {}{whose}", fact.score, fact.text));
        }
        let mut out = std::io::stdout().lock();
        for line in lines {
            let _ = writeln!(out, "{}", self.paint("2", &line));
        }
    }

    fn piece(&mut self, piece: &str) {
        let mut out = std::io::stdout().lock();
        if !self.replying {
            self.replying = true;
            let _ = write!(out, "{} ", self.paint("1", &format!("{}:", self.character)));
        }
        let _ = write!(out, "{piece}");
        let _ = out.flush();
    }

    fn end_reply(&mut self) {
        if std::mem::take(&mut self.replying) {
            println!();
        }
    }

    fn note(&self, text: &str) {
        for line in text.lines() {
            println!("{}", self.paint("2", line));
        }
    }

    fn error(&self, text: &str) {
        eprintln!("{}", self.paint("31", &format!("error: {text}")));
    }
}
