use ragback_domain::{MessageText, Role};

use super::*;
use crate::testing::{InMemorySummaryStore, PlainSummaryPrompt, ScriptedChatModel};

fn chat(n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| {
            let role = if i % 2 == 0 {
                Role::User
            } else {
                Role::Character
            };
            Message::new(role, MessageText::parse(format!("message {i}")).unwrap())
        })
        .collect()
}

fn job(messages: Vec<Message>) -> SummaryJob {
    SummaryJob {
        user: UserId::parse("john").unwrap(),
        character: Some(CharacterId::parse("mira").unwrap()),
        conversation: ConversationId::parse("c1").unwrap(),
        user_name: "John".into(),
        character_name: "Mira".into(),
        messages,
    }
}

fn summarizer(model: Arc<ScriptedChatModel>) -> (Summarizer, Arc<InMemorySummaryStore>) {
    let store = Arc::new(InMemorySummaryStore::default());
    let summarizer = Summarizer::new(
        store.clone(),
        model,
        Arc::new(PlainSummaryPrompt),
        SummarySettings {
            params: GenerationParams {
                model: "m".into(),
                temperature: Some(0.0),
                top_p: None,
                max_tokens: Some(300),
                seed: Some(0),
                routing: Default::default(),
                cache_control: false,
            },
        },
    );
    (summarizer, store)
}

async fn stored(store: &InMemorySummaryStore) -> Option<ConversationSummary> {
    store
        .get_summary(
            &UserId::parse("john").unwrap(),
            &ConversationId::parse("c1").unwrap(),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_summary_is_written_then_extended_with_the_new_messages_only() {
    let model = Arc::new(ScriptedChatModel::new([
        ScriptedChatModel::reply("They met."),
        ScriptedChatModel::reply("They met and sailed."),
    ]));
    let (summarizer, store) = summarizer(model.clone());
    let all = chat(10);

    let first = summarizer.run(&job(all[..4].to_vec())).await.unwrap();
    assert_eq!(first, SummaryOutcome::Written { covers: 4 });
    let summary = stored(&store).await.unwrap();
    assert_eq!((summary.text.as_str(), summary.covers), ("They met.", 4));
    assert_eq!(summary.last_hash, message_hash(&all[3]));
    assert_eq!(summary.prompt_hash, "plain");

    let again = summarizer.run(&job(all[..4].to_vec())).await.unwrap();
    assert_eq!(again, SummaryOutcome::UpToDate, "no model call");
    assert_eq!(model.requests().len(), 1);

    let second = summarizer.run(&job(all[..8].to_vec())).await.unwrap();
    assert_eq!(second, SummaryOutcome::Extended { from: 4, covers: 8 });
    let prompt = &model.requests()[1].messages[0].content;
    assert!(prompt.contains("previous: They met."), "{prompt}");
    assert!(!prompt.contains("message 3\n") && prompt.contains("message 4\n"));
    assert!(prompt.contains("message 7\n") && !prompt.contains("message 8"));
    assert_eq!(stored(&store).await.unwrap().covers, 8);
}

#[tokio::test]
async fn another_history_or_character_starts_over_and_a_bad_answer_changes_nothing() {
    let model = Arc::new(ScriptedChatModel::new([
        ScriptedChatModel::reply("They met."),
        ScriptedChatModel::reply("  "),
        ScriptedChatModel::reply("Anew."),
    ]));
    let (summarizer, store) = summarizer(model.clone());
    summarizer.run(&job(chat(4))).await.unwrap();

    let empty = summarizer.run(&job(chat(6))).await.unwrap_err();
    assert_eq!(empty.kind(), "malformed");
    assert_eq!(stored(&store).await.unwrap().text, "They met.", "unchanged");

    let mut edited = chat(6);
    edited[3] = Message::new(Role::Character, MessageText::parse("edited").unwrap());
    let outcome = summarizer.run(&job(edited)).await.unwrap();
    assert_eq!(
        outcome,
        SummaryOutcome::Written { covers: 6 },
        "from the start"
    );
    assert!(
        !model.requests()[2].messages[0]
            .content
            .contains("previous:")
    );
}

#[test]
fn a_summary_matches_its_own_history_and_character_only() {
    let messages = chat(6);
    let summary = ConversationSummary {
        character: Some(CharacterId::parse("mira").unwrap()),
        text: "x".into(),
        covers: 4,
        last_hash: message_hash(&messages[3]),
        prompt_hash: "p".into(),
        model: "m".into(),
        updated: crate::facts::now(),
    };
    let mira = CharacterId::parse("mira").unwrap();
    assert!(matches(&summary, &messages, Some(&mira)));
    assert!(!matches(&summary, &messages, None));
    assert!(!matches(&summary, &messages[..3], Some(&mira)), "too short");
    assert!(!matches(
        &summary,
        &chat(3).into_iter().chain(chat(3)).collect::<Vec<_>>(),
        Some(&mira)
    ));
}
