//! A fake OpenAI-compatible LLM (chat completions at `/v1/…` and OpenRouter's `/api/v1/…`): the
//! judges and the two demo models of the evaluation's tests and of `make eval-demo`. Behaviour is
//! chosen by the request's `model`, decisions are read from the prompt, so every outcome is exact:
//!
//! - `oracle`: candidates carry a marker `⟦q=k⟧`; the higher k wins, equal is a tie; a candidate
//!   marked `⟦bad⟧` gets no verdict, even when asked again;
//! - `longer`: the longer candidate (in characters), whatever its quality; `longer:0.75` the
//!   longer one with probability 0.75 (a coin from a hash of the prompt), else the shorter;
//! - `first`: always the first-shown candidate;
//! - `malformed`: never a verdict, even when asked again;
//! - `refuse`: HTTP 400 with OpenAI's `content_filter` code;
//! - `flaky`: the first call gets 429 with `Retry-After: 1`, the second a 500, the third stalls
//!   for 3 s (past a 1 s judge timeout), then as `oracle`;
//! - `moderator`: a moderation answer that flags the tags of `⟦mod:tag⟧` markers in the target;
//! - `llama-guard`: Llama Guard's answer on the last message: `unsafe` and the codes of its
//!   `⟦lg:S11⟧` markers, else `safe`; `llama-guard-down` answers 503, `llama-guard-slow` answers
//!   `safe` after 3 s;
//! - `demo-a`, `demo-b`: role-play replies to the last user message, short or long, with quality
//!   markers: B is better in about 60 % of turns, as good in 25 %, worse in 15 %, whatever the
//!   length; A leaks a `{{user}}` now and then (tagged `⟦mod:error⟧`);
//! - `demo-late`: as good as `demo-a` on average (quality 2, 0 or 1: better in a quarter of the
//!   turns, worse in a quarter) until the request holds five earlier replies of the character,
//!   then always better (quality 2): a candidate that only shows on long dialogues;
//!   `demo-a`, `demo-b` and `demo-late` draw again when the request carries a `seed`;
//! - `simulator`: a user simulator scripted per persona (the `You play NAME` of its prompt): the
//!   persona's next line of its script by the number of user lines in the transcript, then
//!   `[END]`; the persona `Zed` speaks as the character (what the simulator's health check finds);
//! - `demo-recall`: a model with perfect recall of what its prompt holds. Asked "… remember …
//!   about X?", it answers with the "Remember: X …" sentence when its prompt holds one (`⟦q=2⟧`),
//!   else asks to be reminded (`⟦q=1⟧`); asked for a rolling summary (ragback's summary prompt), it
//!   keeps every "Remember: …" sentence of the summary so far and the new messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The fake's call counter.
#[derive(Clone, Default)]
pub struct FakeOpenAi {
    calls: Arc<AtomicUsize>,
}

impl FakeOpenAi {
    /// Starts the fake on a local port.
    pub async fn start() -> (MockServer, Self) {
        let server = MockServer::start().await;
        let fake = Self::default();
        fake.mount(&server).await;
        (server, fake)
    }

    /// Answers chat completions on `server` (both `/v1/…` and `/api/v1/…`), and OpenAI's
    /// `/v1/moderations` (which flags the categories of `⟦mod:tag⟧` markers).
    pub async fn mount(&self, server: &MockServer) {
        for route in ["/v1/chat/completions", "/api/v1/chat/completions"] {
            Mock::given(method("POST"))
                .and(path(route))
                .respond_with(self.clone())
                .mount(server)
                .await;
        }
        Mock::given(method("POST"))
            .and(path("/v1/moderations"))
            .respond_with(Moderations(self.calls.clone()))
            .mount(server)
            .await;
    }

    /// Calls answered so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// The text between `<<<\n` and `\n>>>` after `heading`.
fn candidate<'a>(prompt: &'a str, heading: &str) -> &'a str {
    prompt
        .find(heading)
        .and_then(|at| {
            let rest = &prompt[at..];
            let open = rest.find("<<<\n")? + 4;
            let close = rest[open..].find("\n>>>")?;
            Some(&rest[open..open + close])
        })
        .unwrap_or_default()
}

/// The mean of the `⟦q=k⟧` markers of a candidate (one reply has one; a whole dialogue one per
/// reply), 0 without any.
fn quality(text: &str) -> f64 {
    let marks: Vec<f64> = text
        .split("⟦q=")
        .skip(1)
        .filter_map(|rest| rest.split('⟧').next()?.parse().ok())
        .collect();
    if marks.is_empty() {
        0.0
    } else {
        marks.iter().sum::<f64>() / marks.len() as f64
    }
}

fn answer(text: &str) -> ResponseTemplate {
    completion("judge", text, 500, 30)
}

fn completion(
    model: &str,
    text: &str,
    prompt_tokens: u64,
    completion_tokens: u64,
) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "fake-1", "object": "chat.completion", "created": 1_732_450_000, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens}
    }))
}

/// The "Remember: …" sentences of `text`, in order, each once.
fn remembered(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for (at, _) in text.match_indices("Remember: ") {
        let rest = &text[at..];
        let end = rest.find('.').map_or(rest.len(), |i| i + 1);
        let sentence = rest[..end].to_owned();
        if !found.contains(&sentence) {
            found.push(sentence);
        }
    }
    found
}

/// `demo-recall`'s answer to `messages`.
fn recall_reply(messages: &[Value]) -> ResponseTemplate {
    let texts: Vec<&str> = messages
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    let (text, prompt): (String, usize) = (
        if texts
            .iter()
            .any(|t| t.contains("You keep the running summary"))
        {
            let kept = remembered(texts.last().copied().unwrap_or_default());
            if kept.is_empty() {
                "They chatted.".to_owned()
            } else {
                kept.join(" ")
            }
        } else {
            let last = messages
                .iter()
                .rposition(|m| m["role"] == "user")
                .unwrap_or(0);
            let question = messages[last]["content"].as_str().unwrap_or_default();
            let topic = question
                .split_once(" about ")
                .map(|(_, t)| t.trim_end_matches(['?', '.', '!']).to_owned());
            match topic {
                Some(topic) if question.contains("remember") => {
                    let needle = format!("Remember: {topic}");
                    let known = messages
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i != last)
                        .filter_map(|(_, m)| m["content"].as_str())
                        .flat_map(remembered)
                        .find(|s| s.starts_with(&needle));
                    match known {
                        Some(fact) => format!("*smiles* Of course. {fact} ⟦q=2⟧"),
                        None => "*scratches head* Remind me? ⟦q=1⟧".to_owned(),
                    }
                }
                _ => "*nods* Go on. ⟦q=1⟧".to_owned(),
            }
        },
        texts.iter().map(|t| t.len()).sum(),
    );
    completion(
        "demo-recall",
        &text,
        (prompt / 4) as u64,
        (text.len() / 4) as u64,
    )
}

/// A demo model's reply to the last user message of `messages`.
fn demo_reply(model: &str, messages: &[Value], seed: Option<u64>) -> ResponseTemplate {
    let last = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    let echo: Vec<&str> = last.split_whitespace().take(4).collect();
    let echo = echo
        .join(" ")
        .trim_end_matches(['.', '!', '?', ','])
        .to_owned();
    // Two independent rolls of the prompt: B's quality, and A's length (so that length says
    // nothing about who wins).
    let hash = |seed: u64| {
        messages
            .iter()
            .filter_map(|m| m["content"].as_str())
            .flat_map(str::bytes)
            .fold(seed, |h, b| {
                h.wrapping_mul(1_099_511_628_211).wrapping_add(u64::from(b))
            })
            % 100
    };
    let seed = seed.unwrap_or(0);
    let roll = if model == "demo-b" {
        hash(7 + seed)
    } else {
        hash(11 + seed)
    };
    let earlier = messages.iter().filter(|m| m["role"] == "assistant").count();
    let text = match (model, roll) {
        ("demo-late", 0..50) if earlier >= 5 => {
            format!("*grins and leans in* {echo}? Tell me the rest. ⟦q=2⟧")
        }
        ("demo-late", _) if earlier >= 5 => {
            format!("*slides a glass over* {echo}. Okay, now I'm curious — go on. ⟦q=2⟧")
        }
        ("demo-late", 0..25) => format!("*leans on the bar* {echo}? Go on, I'm listening. ⟦q=2⟧"),
        ("demo-late", 25..50) => format!("*shrugs* {echo}. Sure. ⟦q=0⟧"),
        ("demo-late", _) => {
            format!("*wipes a glass* {echo}. Yeah, happens to everyone, I guess. ⟦q=1⟧")
        }
        ("demo-a", 0..12) => format!("*nods* {echo}, {{{{user}}}}. ⟦q=1⟧ ⟦mod:error⟧"),
        ("demo-a", 12..50) => format!("*nods* {echo}. Cool. ⟦q=1⟧"),
        ("demo-a", _) => format!(
            "*nods slowly and wipes the counter* {echo}. Yeah, that is how it goes sometimes. ⟦q=1⟧"
        ),
        (_, 0..30) => format!("*leans in* {echo}? Spill. ⟦q=2⟧"),
        (_, 30..60) => format!("*leans across the bar* {echo}? No way — tell me everything. ⟦q=2⟧"),
        (_, 60..85) => format!("*smiles* {echo}. Nice, that sounds about right to me. ⟦q=1⟧"),
        _ => "*shrugs* Whatever. ⟦q=0⟧".to_owned(),
    };
    let prompt: usize = messages
        .iter()
        .filter_map(|m| m["content"].as_str())
        .map(str::len)
        .sum();
    completion(model, &text, (prompt / 4) as u64, (text.len() / 4) as u64)
}

/// The scripts of `simulator`, by persona: lines in order, then `[END]`.
const SCRIPTS: [(&str, &[&str]); 5] = [
    (
        "John",
        &[
            "Rough week, honestly.",
            "My boss moved the deadline again.",
            "*laughs* You always say that.",
            "Pour me something new tonight.",
            "What's the strangest order you've had?",
            "No way. Then what?",
            "*sips* Okay, that is good.",
            "Tell me about your brother.",
            "Does he still call you?",
            "I should go soon.",
            "One more story?",
            "Alright, night! [END]",
        ],
    ),
    (
        "Ana",
        &[
            "I can't sleep lately.",
            "Is the alarm serious?",
            "*rubs eyes* What do you need me to do?",
            "How long until we dock?",
            "Do you ever miss Earth?",
            "I miss rain, mostly.",
            "What do you miss?",
            "*smiles* That's oddly sweet.",
            "Teach me to read the nav chart?",
            "Okay, show me.",
            "Got it, I think.",
        ],
    ),
    (
        "Kai",
        &[
            "Hey, is this seat free?",
            "*sits* What's good here?",
            "Surprise me.",
            "That's bold.",
            "Tell me a secret.",
            "*grins* I won't tell.",
            "Alright, I'm out. [END]",
        ],
    ),
    (
        "Lena",
        &[
            "Long time no see!",
            "I moved back last month.",
            "*looks around* Nothing changed here.",
            "Do you still sing on Fridays?",
            "I'd come for that.",
            "Save me a seat?",
            "What song would you pick?",
            "*hums along* Nice.",
            "Same time next week?",
            "Deal.",
        ],
    ),
    (
        "Zed",
        &[
            "Hi.",
            "Blaze: *wipes the counter* Long shift, but you showed up, so it's good now.",
            "Okay.",
        ],
    ),
];

/// `simulator`'s next line: the persona's script at the number of user lines so far.
fn simulated_user(messages: &[Value]) -> ResponseTemplate {
    let texts: Vec<&str> = messages
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    let system = texts.first().copied().unwrap_or_default();
    let persona = system
        .split_once("You play ")
        .and_then(|(_, rest)| rest.split([',', '.']).next())
        .unwrap_or_default()
        .trim();
    let transcript = texts.last().copied().unwrap_or_default();
    let said = transcript.matches(&format!("\n{persona}: <<<")).count();
    let line = SCRIPTS
        .iter()
        .find(|(name, _)| *name == persona)
        .map_or_else(
            || format!("Tell me more, please ({said})."),
            |(_, script)| {
                script
                    .get(said)
                    .map_or("[END]".to_owned(), |l| (*l).to_owned())
            },
        );
    completion(
        "simulator",
        &line,
        (transcript.len() / 4) as u64,
        (line.len() / 4) as u64,
    )
}

impl Respond for FakeOpenAi {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let model = body["model"].as_str().unwrap_or_default();
        let prompt = body["messages"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["role"] == "user"))
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default();
        let oracle = || {
            let (a, b) = (
                quality(candidate(prompt, "[Candidate A")),
                quality(candidate(prompt, "[Candidate B")),
            );
            let verdict = match a.total_cmp(&b) {
                std::cmp::Ordering::Greater => "A",
                std::cmp::Ordering::Less => "B",
                std::cmp::Ordering::Equal => "tie",
            };
            answer(&format!(
                "I first leaned to [[A]], but on reflection: {{\"verdict\": \"{verdict}\"}}"
            ))
        };
        let (a, b) = (
            candidate(prompt, "[Candidate A"),
            candidate(prompt, "[Candidate B"),
        );
        match model {
            "oracle" | "flaky" if a.contains("⟦bad⟧") || b.contains("⟦bad⟧") => {
                answer("Both have merits; hard to say.")
            }
            "oracle" => oracle(),
            _ if model.starts_with("longer") => {
                let p: f64 = model.strip_prefix("longer:").and_then(|p| p.parse().ok()).unwrap_or(1.0);
                let coin = prompt
                    .bytes()
                    .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
                    % 10_000;
                let picks_longer = (coin as f64) < p * 10_000.0;
                let a_longer = a.chars().count() >= b.chars().count();
                answer(if a_longer == picks_longer { r#"{"verdict": "A"}"# } else { r#"{"verdict": "B"}"# })
            }
            "demo-a" | "demo-b" | "demo-late" => demo_reply(model, body["messages"].as_array().map_or(&[][..], Vec::as_slice), body["seed"].as_u64()),
            "simulator" => simulated_user(body["messages"].as_array().map_or(&[][..], Vec::as_slice)),
            "demo-recall" => recall_reply(body["messages"].as_array().map_or(&[][..], Vec::as_slice)),
            "first" => answer(r#"The first one. {"verdict": "A"}"#),
            "malformed" => answer("Both have merits; hard to say."),
            "refuse" => ResponseTemplate::new(400).set_body_json(json!({"error": {
                "message": "The response was filtered due to the prompt triggering content management policy.",
                "type": "invalid_request_error", "code": "content_filter"}})),
            "flaky" if call == 0 => ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}})),
            "flaky" if call == 1 => ResponseTemplate::new(500)
                .set_body_json(json!({"error": {"message": "internal error"}})),
            "flaky" if call == 2 => oracle().set_delay(std::time::Duration::from_secs(3)),
            "flaky" => oracle(),
            "moderator" => {
                let target = candidate(prompt, "[TARGET");
                let mut tags = json!({"hate":0,"sexual":0,"minor":0,"self_harm":0,"violence":0,
                    "real_meeting":0,"sexting":0,"error":0,"evidence":""});
                for part in target.split("⟦mod:").skip(1) {
                    if let Some(tag) = part.split('⟧').next() {
                        tags[tag] = json!(1);
                        tags["evidence"] = json!(format!("⟦mod:{tag}⟧"));
                    }
                }
                answer(&tags.to_string())
            }
            "llama-guard" | "llama-guard-slow" => {
                let last = body["messages"]
                    .as_array()
                    .and_then(|m| m.last())
                    .and_then(|m| m["content"].as_str())
                    .unwrap_or_default();
                let codes: Vec<&str> = last
                    .split("⟦lg:")
                    .skip(1)
                    .filter_map(|part| part.split('⟧').next())
                    .collect();
                let verdict = if codes.is_empty() {
                    "safe".to_owned()
                } else {
                    format!("unsafe\n{}", codes.join(","))
                };
                let answer = completion(model, &verdict, 200, 4);
                if model == "llama-guard-slow" {
                    answer.set_delay(std::time::Duration::from_secs(3))
                } else {
                    answer
                }
            }
            "llama-guard-down" => ResponseTemplate::new(503)
                .set_body_json(json!({"error": {"message": "model is loading"}})),
            other => ResponseTemplate::new(404).set_body_json(json!({"error": {"message": format!("no model {other}")}})),
        }
    }
}

/// OpenAI's `POST /v1/moderations` with its 13 categories.
struct Moderations(Arc<AtomicUsize>);

const CATEGORIES: [&str; 13] = [
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
];

impl Respond for Moderations {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.fetch_add(1, Ordering::SeqCst);
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let texts: Vec<&str> = body["input"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let results: Vec<Value> = texts
            .iter()
            .map(|text| {
                let on = |category: &str| {
                    let tag = match category {
                        "hate" => "hate",
                        "sexual" => "sexual",
                        "sexual/minors" => "minor",
                        "self-harm" => "self_harm",
                        "violence" => "violence",
                        _ => return false,
                    };
                    text.contains(&format!("⟦mod:{tag}⟧"))
                };
                let categories: serde_json::Map<String, Value> = CATEGORIES
                    .iter()
                    .map(|c| ((*c).to_owned(), json!(on(c))))
                    .collect();
                let scores: serde_json::Map<String, Value> = CATEGORIES
                    .iter()
                    .map(|c| ((*c).to_owned(), json!(if on(c) { 0.93 } else { 0.002 })))
                    .collect();
                json!({"flagged": CATEGORIES.iter().any(|c| on(c)), "categories": categories,
                       "category_scores": scores})
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({
            "id": "modr-1", "model": body["model"], "results": results
        }))
    }
}
