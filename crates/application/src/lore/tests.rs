use proptest::prelude::*;
use ragback_domain::{MessageText, Role, SelectiveLogic};

use super::*;

fn entry(id: &str, keys: &[&str], content: &str) -> LoreEntry {
    LoreEntry {
        id: id.into(),
        name: Some(format!("entry {id}")),
        keys: keys
            .iter()
            .filter_map(|k| LoreKey::parse(k).unwrap())
            .collect(),
        secondary_keys: Vec::new(),
        selective: false,
        logic: SelectiveLogic::AndAny,
        content: content.into(),
        constant: false,
        enabled: true,
        insertion_order: 100,
        priority: 100,
        position: LorePosition::BeforeChar,
        case_sensitive: false,
        whole_words: true,
        scan_depth: None,
        exclude_recursion: false,
        prevent_recursion: false,
    }
}

fn book(entries: Vec<LoreEntry>) -> Lorebook {
    Lorebook {
        source: LoreSource::Character,
        name: None,
        scan_depth: None,
        token_budget: None,
        recursive_scanning: true,
        entries,
    }
}

fn chat(texts: &[&str]) -> Vec<Message> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let role = if i % 2 == 0 {
                Role::User
            } else {
                Role::Character
            };
            Message::new(role, MessageText::parse(*t).unwrap())
        })
        .collect()
}

/// One token per word.
fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

fn ids(selection: &LoreSelection) -> Vec<&str> {
    selection.entries.iter().map(|e| e.id.as_str()).collect()
}

fn run(books: &[&Lorebook], messages: &[Message]) -> LoreSelection {
    select(books, messages, &LoreSettings::default(), &words)
}

#[test]
fn keys_trigger_within_the_scan_depth_only() {
    let b = book(vec![entry("harbour", &["harbour"], "The harbour is old.")]);
    let near = chat(&["Hello", "Hi", "Let us see the harbour", "Sure"]);
    let selection = run(&[&b], &near);
    assert_eq!(ids(&selection), ["harbour"]);
    assert_eq!(
        selection.entries[0].trigger,
        LoreTrigger::Key {
            key: "harbour".into(),
            messages_back: 2
        }
    );
    let far = chat(&["the harbour", "Hi", "Hello", "Sure"]);
    assert!(run(&[&b], &far).entries.is_empty(), "beyond depth 2");
    let mut deep = b.clone();
    deep.scan_depth = Some(4);
    assert_eq!(ids(&run(&[&deep], &far)), ["harbour"]);
    deep.entries[0].scan_depth = Some(3);
    assert!(
        run(&[&deep], &far).entries.is_empty(),
        "the entry's depth wins"
    );
}

#[test]
fn secondary_keys_follow_the_selective_logic() {
    let mut e = entry("tower", &["tower"], "The tower is haunted.");
    e.selective = true;
    e.secondary_keys = vec![
        LoreKey::parse("night").unwrap().unwrap(),
        LoreKey::parse("ghost").unwrap().unwrap(),
    ];
    let cases = [
        (SelectiveLogic::AndAny, "the tower at night", true),
        (SelectiveLogic::AndAny, "the tower", false),
        (SelectiveLogic::AndAll, "the tower at night", false),
        (
            SelectiveLogic::AndAll,
            "a ghost in the tower at night",
            true,
        ),
        (SelectiveLogic::NotAny, "the tower", true),
        (SelectiveLogic::NotAny, "the tower at night", false),
        (SelectiveLogic::NotAll, "the tower at night", true),
        (
            SelectiveLogic::NotAll,
            "a ghost in the tower at night",
            false,
        ),
    ];
    for (logic, text, expected) in cases {
        e.logic = logic;
        let b = book(vec![e.clone()]);
        assert_eq!(
            !run(&[&b], &chat(&[text])).entries.is_empty(),
            expected,
            "{logic:?} on {text:?}"
        );
    }
}

#[test]
fn constants_disabled_entries_and_case() {
    let mut constant = entry("world", &[], "Magic is real.");
    constant.constant = true;
    let mut off = entry("off", &["magic"], "Never.");
    off.enabled = false;
    let mut exact = entry("exact", &["Mage"], "Mages wear blue.");
    exact.case_sensitive = true;
    let b = book(vec![constant, off, exact]);
    let selection = run(&[&b], &chat(&["a mage and magic"]));
    assert_eq!(ids(&selection), ["world"]);
    assert_eq!(selection.entries[0].trigger, LoreTrigger::Constant);
    assert_eq!(ids(&run(&[&b], &chat(&["the Mage"]))), ["world", "exact"]);
}

#[test]
fn recursion_follows_inserted_content_up_to_the_limit() {
    // a → b → c → d: each entry's content names the next.
    let b = book(vec![
        entry("a", &["alpha"], "alpha leads to beta"),
        entry("b", &["beta"], "beta leads to gamma"),
        entry("c", &["gamma"], "gamma leads to delta"),
        entry("d", &["delta"], "delta ends it"),
    ]);
    let messages = chat(&["tell me of alpha"]);
    let settings = LoreSettings {
        max_recursion: 2,
        ..LoreSettings::default()
    };
    let selection = select(&[&b], &messages, &settings, &words);
    assert_eq!(ids(&selection), ["a", "b", "c"], "two rounds of recursion");
    assert_eq!(
        selection.entries[1].trigger,
        LoreTrigger::Recursion {
            key: "beta".into(),
            from: "a".into()
        }
    );
    let mut flat = b.clone();
    flat.recursive_scanning = false;
    assert_eq!(ids(&run(&[&flat], &messages)), ["a"]);
    let mut stop = b.clone();
    stop.entries[1].prevent_recursion = true;
    assert_eq!(ids(&run(&[&stop], &messages)), ["a", "b"]);
    let mut exclude = b;
    exclude.entries[1].exclude_recursion = true;
    assert_eq!(ids(&run(&[&exclude], &messages)), ["a"]);
}

#[test]
fn the_budget_leaves_out_the_lowest_priority_and_order_follows_insertion_order() {
    let mut low = entry("low", &["sea"], "one two three four");
    low.priority = 1;
    low.insertion_order = 1;
    let mut high = entry("high", &["sea"], "one two three four");
    high.priority = 9;
    high.insertion_order = 5;
    let mut mid = entry("mid", &["sea"], "one two");
    mid.priority = 5;
    mid.insertion_order = 3;
    let b = book(vec![low, high, mid]);
    let settings = LoreSettings {
        token_budget: 6,
        ..LoreSettings::default()
    };
    let selection = select(&[&b], &chat(&["the sea"]), &settings, &words);
    assert_eq!(ids(&selection), ["mid", "high"], "in insertion order");
    assert_eq!(selection.over_budget, 1);
    assert_eq!(selection.tokens, 6);
    let mut capped = b.clone();
    capped.token_budget = Some(4);
    let selection = run(&[&capped], &chat(&["the sea"]));
    assert_eq!(ids(&selection), ["high"], "the book's own budget");
}

#[test]
fn the_scene_book_follows_the_card_book_at_equal_order() {
    let card = book(vec![entry("c", &["sea"], "card")]);
    let mut scene = book(vec![entry("s", &["sea"], "scene")]);
    scene.source = LoreSource::Scene;
    let selection = run(&[&card, &scene], &chat(&["sea"]));
    assert_eq!(ids(&selection), ["c", "s"]);
    assert_eq!(selection.entries[1].source, LoreSource::Scene);
}

fn any_entry() -> impl Strategy<Value = LoreEntry> {
    let keys = prop::collection::vec("[a-e]{1,3}( [a-e]{1,2})?", 0..3);
    (
        keys.clone(),
        keys,
        "[a-e ]{0,30}",
        any::<(bool, bool, bool, bool, bool)>(),
        (-5i64..5, -5i64..5, 0usize..4, 0u64..4),
    )
        .prop_map(
            |(keys, secondary, content, flags, (order, priority, depth, logic))| {
                let (constant, enabled, case, whole, selective) = flags;
                let parse = |k: &String| LoreKey::parse(k).unwrap();
                LoreEntry {
                    keys: keys.iter().filter_map(parse).collect(),
                    secondary_keys: secondary.iter().filter_map(parse).collect(),
                    selective,
                    logic: SelectiveLogic::from_number(logic).unwrap(),
                    constant,
                    enabled,
                    case_sensitive: case,
                    whole_words: whole,
                    insertion_order: order,
                    priority,
                    scan_depth: Some(depth),
                    ..entry("x", &[], &content)
                }
            },
        )
}

proptest! {
    #[test]
    fn selection_never_panics_never_exceeds_the_budget_and_is_ordered(
        entries in prop::collection::vec(any_entry(), 0..20),
        texts in prop::collection::vec("[a-eA-E][a-eA-E .]{0,40}", 0..6),
        budget in 0usize..40,
    ) {
        let entries: Vec<LoreEntry> = entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| LoreEntry { id: i.to_string(), ..e })
            .collect();
        let b = book(entries);
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let messages = chat(&texts);
        let settings = LoreSettings { token_budget: budget, ..LoreSettings::default() };
        let selection = select(&[&b], &messages, &settings, &words);
        let total: usize = selection.entries.iter().map(|e| words(&e.content)).sum();
        prop_assert!(total <= budget);
        prop_assert_eq!(total, selection.tokens);
        let orders: Vec<i64> = selection
            .entries
            .iter()
            .map(|u| b.entries[u.id.parse::<usize>().unwrap()].insertion_order)
            .collect();
        prop_assert!(orders.windows(2).all(|w| w[0] <= w[1]));
        for used in &selection.entries {
            prop_assert!(b.entries[used.id.parse::<usize>().unwrap()].enabled);
        }
        prop_assert_eq!(&selection, &select(&[&b], &messages, &settings, &words));
    }
}
