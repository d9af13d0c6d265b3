//! Lorebook scan cost: choosing the entries of a 1,000-entry book for a 20-message chat, as
//! every `/generate` with a card's `character_book` does.
//!
//! Entries have two or three keys each (words, a two-word phrase, one in ten a regex), the chat
//! is 20 messages of about 30 words, and about one entry in fifty triggers. Timed: the whole
//! selection (scan, secondary keys, budget, recursion).
//!
//! `cargo bench -p ragback-integrations --bench lore` (`ENTRIES=…`, `MESSAGES=…`, `RUNS=…`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use ragback_application::lore::{LoreSettings, select};
use ragback_domain::{
    LoreEntry, LoreKey, LorePosition, LoreSource, Lorebook, Message, MessageText, Role,
    SelectiveLogic,
};
use ragback_testkit::stats::{env_count, report};

const WORDS: [&str; 16] = [
    "harbour", "storm", "lantern", "market", "guild", "tower", "river", "forest", "castle",
    "bridge", "tavern", "temple", "mountain", "desert", "island", "garden",
];

fn key(text: &str) -> LoreKey {
    LoreKey::parse(text).unwrap().unwrap()
}

fn book(entries: usize) -> Lorebook {
    Lorebook {
        source: LoreSource::Character,
        name: None,
        scan_depth: Some(20),
        token_budget: None,
        recursive_scanning: true,
        entries: (0..entries)
            .map(|i| {
                let mut keys = vec![key(&format!("place{i}")), key(&format!("old name{i}"))];
                if i % 10 == 0 {
                    keys.push(key(&format!("/relic{i}s?/i")));
                }
                // One entry in fifty has a word of the chat.
                if i % 50 == 0 {
                    keys.push(key(WORDS[i / 50 % WORDS.len()]));
                }
                LoreEntry {
                    id: i.to_string(),
                    name: None,
                    keys,
                    secondary_keys: vec![key(&format!("hint{i}"))],
                    selective: i % 3 == 0,
                    logic: SelectiveLogic::NotAny,
                    content: format!(
                        "Entry {i} of the world: a line or two of lore, place{}.",
                        i + 1
                    ),
                    constant: false,
                    enabled: true,
                    insertion_order: i as i64,
                    priority: (i % 7) as i64,
                    position: LorePosition::BeforeChar,
                    case_sensitive: false,
                    whole_words: true,
                    scan_depth: None,
                    exclude_recursion: false,
                    prevent_recursion: false,
                }
            })
            .collect(),
    }
}

fn chat(messages: usize) -> Vec<Message> {
    (0..messages)
        .map(|m| {
            let text: Vec<&str> = (0..30)
                .map(|w| WORDS[(m * 7 + w * 3) % WORDS.len()])
                .collect();
            let role = if m % 2 == 0 {
                Role::User
            } else {
                Role::Character
            };
            Message::new(role, MessageText::parse(text.join(" ")).unwrap())
        })
        .collect()
}

fn main() {
    let entries = env_count("ENTRIES", 1_000);
    let messages = env_count("MESSAGES", 20);
    let runs = env_count("RUNS", 500);
    let book = book(entries);
    let chat = chat(messages);
    let settings = LoreSettings::default();
    let count = |text: &str| text.len() / 4 + 4;
    let chosen = select(&[&book], &chat, &settings, &count);
    println!(
        "{entries} entries × {messages} messages: {} chosen ({} over budget)",
        chosen.entries.len(),
        chosen.over_budget
    );
    let mut us = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let chosen = select(&[&book], &chat, &settings, &count);
        us.push(started.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(chosen);
    }
    report("  select", 12, "µs", &us);
}
