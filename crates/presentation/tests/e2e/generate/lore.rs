//! Lorebooks, Character Card V2 greetings and V3 cards, and cache-friendly prompts, end to end:
//! the real server and store, the provider faked on the wire (its received bodies asserted).

use ragback_testkit::{Setup, TestApp};
use serde_json::{Value, json};

/// A card written for the project (`data/cards/`).
fn card(file: &str) -> Value {
    let path = format!("{}/../../data/cards/{file}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// John talking to Captain Mira with `messages` (user first, alternating).
fn mira(messages: &[&str]) -> Value {
    let messages: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let role = if i % 2 == 0 { "user" } else { "character" };
            json!({"role": role, "text": text})
        })
        .collect();
    json!({
        "messages": messages,
        "user": {"id": "john", "name": "John"},
        "character": {"id": "mira", "name": "Mira", "card": card("captain-mira.v2.json")},
    })
}

async fn app(vars: &[(&str, &str)]) -> TestApp {
    TestApp::spawn_with(Setup {
        vars: vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Setup::default()
    })
    .await
}

/// `(id, trigger)` of each lore entry a reply used.
fn used(body: &Value) -> Vec<(String, String)> {
    body["lore"]
        .as_array()
        .unwrap_or_else(|| panic!("no lore: {body}"))
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_owned(),
                e["trigger"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn ids(body: &Value) -> Vec<String> {
    used(body).into_iter().map(|(id, _)| id).collect()
}

/// The messages the provider received, as (role, content) with content as text.
fn sent(request: &Value) -> Vec<(String, String)> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let content = match &m["content"] {
                Value::String(text) => text.clone(),
                parts => parts[0]["text"].as_str().unwrap().to_owned(),
            };
            (m["role"].as_str().unwrap().to_owned(), content)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lore_triggers_on_keys_in_the_last_messages_recursively_and_not_beyond() {
    let app = app(&[]).await;
    app.llm_replies("*coils a rope* Aye.").await;
    let request = mira(&[
        "Is a storm coming from the south?",
        "*squints at the sky* Could be.",
        "Then take me to the harbour first.",
    ]);

    let (status, body) = app.post_json("/generate", &request).await;

    assert_eq!(status, 200, "{body}");
    // 1 is constant; 2 has its key in the last message; 3 and 4 follow by recursion (4 by a
    // regex key); 5's keys are three messages back, beyond the book's scan depth of 2; 6 is
    // named in 4's content but excludes recursion; 7 is disabled.
    assert_eq!(
        used(&body),
        [
            ("1".into(), "constant".into()),
            ("2".into(), "key".into()),
            ("3".into(), "recursion".into()),
            ("4".into(), "recursion".into()),
        ]
    );
    let lore = &body["lore"];
    assert_eq!(lore[1]["key"], "harbour");
    assert_eq!(lore[1]["messages_back"], 1);
    assert_eq!(lore[1]["book"], "character");
    assert_eq!(lore[1]["name"], "Port Ilar");
    assert_eq!(lore[2]["from"], "2");
    assert_eq!(lore[3]["key"], "/\\bkrakens?\\b/i");

    let messages = sent(&app.llm_requests().await[0]);
    let (stable, context) = (&messages[0].1, &messages[messages.len() - 3].1);
    assert!(
        stable.contains("> The Saltwind is a two-masted schooner"),
        "{stable}"
    );
    assert!(!stable.contains("Port Ilar is a crowded"), "{stable}");
    assert_eq!(messages[messages.len() - 3].0, "system");
    assert!(
        context.contains("> Port Ilar is a crowded harbour town"),
        "{context}"
    );
    assert!(
        context.contains("> The kraken of the Grey Reach"),
        "{context}"
    );
    assert_eq!(
        messages[messages.len() - 2],
        ("user".into(), "Then take me to the harbour first.".into())
    );
    assert!(app.metrics().await.contains("ragback_lore_entries_total"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secondary_keys_regex_recursion_limit_and_depth_position() {
    let app = app(&[("RAGBACK_LORE__MAX_RECURSION", "1")]).await;
    app.llm_replies("*nods* Aye.").await;

    // Selective: "storm" with "south" (AND ANY) in the scanned messages.
    let (_, body) = app
        .post_json("/generate", &mira(&["A storm from the south?"]))
        .await;
    assert_eq!(ids(&body), ["1", "5"], "{body}");
    let (_, body) = app
        .post_json("/generate", &mira(&["A storm from the north?"]))
        .await;
    assert_eq!(ids(&body), ["1"], "no secondary key: {body}");

    // One round of recursion: 2 → 3, not on to 4.
    let (_, body) = app
        .post_json("/generate", &mira(&["To the harbour."]))
        .await;
    assert_eq!(ids(&body), ["1", "2", "3"], "{body}");

    // A regex key (case-insensitive by its flag), and an entry placed at depth 1 in the
    // history: a system message before the last message.
    let (_, body) = app
        .post_json(
            "/generate",
            &mira(&["Hello.", "*shivers* Krakens, they say.", "Ring the bell!"]),
        )
        .await;
    assert_eq!(ids(&body), ["1", "4", "6"], "{body}");
    let requests = app.llm_requests().await;
    let messages = sent(requests.last().unwrap());
    let at = messages
        .iter()
        .position(|(_, c)| c.contains("rings the ship's bell three times whenever John"))
        .unwrap_or_else(|| panic!("{messages:?}"));
    assert_eq!(messages[at].0, "system");
    assert_eq!(
        messages[at - 1],
        ("assistant".into(), "*shivers* Krakens, they say.".into())
    );
    assert_eq!(messages[at + 2], ("user".into(), "Ring the bell!".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scene_lorebook_joins_the_cards_within_the_token_budget() {
    let app = app(&[]).await;
    app.llm_replies("*grins* Aye.").await;
    let mut request = mira(&["Tell me about the market and the guild."]);
    let words = |n: usize| vec!["word"; n].join(" ");
    request["lorebook"] = json!({
        "name": "Port Ilar today",
        "token_budget": 30,
        "entries": [
            {"id": "market", "keys": ["market"], "content": words(60), "insertion_order": 1,
             "priority": 1},
            {"id": "guild", "keys": ["guild"], "content": words(60), "insertion_order": 2,
             "priority": 9},
            {"id": "fair", "keys": ["market"], "content": "The fair is on.", "insertion_order": 3}
        ]
    });

    let (status, body) = app.post_json("/generate", &request).await;

    assert_eq!(status, 200, "{body}");
    // 60 words ≈ 76 tokens by the API estimate: over the scene book's 30; the short one fits.
    // In insertion order: the fair's 3 comes before the card's 10.
    assert_eq!(ids(&body), ["fair", "1"], "{body}");
    assert_eq!(body["lore"][0]["book"], "scene");

    let mut bad = mira(&["hi"]);
    bad["lorebook"] = json!({"entries": [{"keys": ["/(/"], "content": "x"}]});
    let (status, body) = app.post_json("/generate", &bad).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "lorebook.entries[0].keys[0]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greetings_are_picked_by_index_or_seed_and_a_v3_card_is_read() {
    let app = app(&[]).await;
    app.llm_replies("*waves* Ahoy.").await;
    let greeting = |body: &mut Value, field: &str, value: Value| {
        body["messages"] = json!([]);
        body[field] = value;
    };
    let mut by_index = mira(&[]);
    greeting(&mut by_index, "greeting", json!(2));
    let (status, body) = app.post_json("/generate", &by_index).await;
    assert_eq!(status, 200, "{body}");
    let mut by_seed = mira(&[]);
    greeting(&mut by_seed, "generation", json!({"seed": 4}));
    app.post_json("/generate", &by_seed).await;
    let requests = app.llm_requests().await;
    assert!(
        sent(&requests[0])[0]
            .1
            .contains("Three short. Again. Sit down, John.")
    );
    // 4 % 3 greetings = 1: the first alternate one.
    assert!(
        sent(&requests[1])[0]
            .1
            .contains("Port Ilar smells of fish and trouble, John.")
    );

    let mut out_of_range = mira(&[]);
    greeting(&mut out_of_range, "greeting", json!(3));
    let (status, body) = app.post_json("/generate", &out_of_range).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "greeting");

    let v3 = json!({
        "messages": [{"role": "user", "text": "I heard the owls tonight."}],
        "user": {"name": "John"},
        "character": {"name": "Sable", "card": card("oracle.v3.json")},
    });
    let (status, body) = app.post_json("/generate", &v3).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), ["1"], "a V3 regex key (use_regex): {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stable_part_is_byte_identical_across_turns_and_marked_only_when_asked() {
    let app = app(&[]).await;
    app.llm_replies("*checks the sails* Aye.").await;
    let first = mira(&["To the harbour!"]);
    let second = mira(&[
        "To the harbour!",
        "*checks the sails* Aye.",
        "And then south, past the kraken.",
    ]);
    let (_, one) = app.post_json("/generate", &first).await;
    let (_, two) = app.post_json("/generate", &second).await;
    assert_ne!(ids(&one), ids(&two), "different lore each turn");
    let requests = app.llm_requests().await;
    let (a, b) = (sent(&requests[0]), sent(&requests[1]));
    assert_eq!(a[0], b[0], "the stable part is byte-identical");
    assert!(
        requests[0]["messages"][0]["content"].is_string(),
        "no breakpoint by default"
    );
    assert_eq!(
        one["usage"]["cached_tokens"], 512,
        "the provider's count: {one}"
    );
    assert!(one["prompt"]["stable_tokens"].as_u64().unwrap() > 0);
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ragback_llm_tokens_total{") && l.contains("kind=\"cached\"")),
        "{metrics}"
    );

    let marked = self::app(&[("RAGBACK_LLM__CACHE_CONTROL", "true")]).await;
    marked.llm_replies("*checks the sails* Aye.").await;
    marked.post_json("/generate", &first).await;
    let request = &marked.llm_requests().await[0];
    let content = &request["messages"][0]["content"];
    assert_eq!(content[0]["type"], "text", "{content}");
    assert_eq!(content[0]["cache_control"], json!({"type": "ephemeral"}));
    assert_eq!(content[0]["text"].as_str().unwrap(), a[0].1);
    assert!(
        request["messages"][1]["content"].is_string(),
        "one breakpoint"
    );
}
