//! Memory that grows from the dialogue: the model reads the latest user message (with a little
//! context) and proposes facts; each is compared with the owner's nearest stored facts and the
//! store changes by ADD / UPDATE / DELETE / NOOP decisions, the contested ones decided by a
//! second, small prompt.
//!
//! An extraction is all or nothing: every candidate is decided first (the model and the embedder,
//! which is what fails), then the changes of all of them are applied together
//! ([`FactLibrary::apply`]), on a task of their own so that a caller who stops waiting never
//! leaves them half done.

use std::sync::Arc;

use ragback_domain::{
    CharacterId, Fact, FactId, FactOwner, FactSource, FactText, Message, Provenance, Role, UserId,
};
use serde::Deserialize;

use crate::facts::{AddFactsError, ChangeError, Changes, FactLibrary, now};
pub use crate::ports::MemoryPrompts;
use crate::ports::{
    ChatModel, ChatModelError, ChatRequest, EmbedError, Embedder, FactStore, FactStoreError,
    GenerationParams, PromptError, PromptMessage,
};
use crate::retry::{RetryError, RetryPolicy, retry};

mod answer;
mod reconcile;
mod worker;

pub use answer::parse_candidates;
pub use reconcile::MAX_HISTORY;
#[cfg(test)]
use worker::stored as worker_payload;
pub use worker::{MemoryQueue, MemoryWorkerStopped};

/// What a candidate fact is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CandidateKind {
    /// Something the speaker states about themselves.
    Fact,
    /// The speaker takes back something said before ("I don't have a dog any more").
    Retraction,
}

/// Whose fact a candidate is, as the model says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CandidateOwner {
    /// The user's, about themselves.
    User,
    /// The character's own canon.
    Character,
}

/// One fact the model proposes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Candidate {
    /// Whose.
    pub owner: CandidateOwner,
    /// The fact, third person, one sentence.
    pub text: String,
    /// A statement or a retraction.
    #[serde(default = "fact_kind")]
    pub kind: CandidateKind,
}

fn fact_kind() -> CandidateKind {
    CandidateKind::Fact
}

/// What happened to a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stored as a new fact.
    Add,
    /// Replaced a stored fact, whose text is kept in the new one's history.
    Update,
    /// Removed a stored fact.
    Delete,
    /// Nothing changed (already known, nothing to retract, or not the user's).
    Noop,
}

impl Action {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Noop => "noop",
        }
    }
}

/// The decision about one candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// What was (or, in a dry run, would be) done.
    pub action: Action,
    /// The candidate's text.
    pub text: String,
    /// Whose fact.
    pub owner: FactOwner,
    /// The stored fact it was compared with and acted on (updated, deleted, or the duplicate).
    pub target: Option<Fact>,
    /// The new fact's id (add, update).
    pub fact_id: Option<FactId>,
    /// Why, in a few words.
    pub reason: &'static str,
}

/// One extraction's input.
#[derive(Debug, Clone)]
pub struct ExtractRequest {
    /// Whose dialogue.
    pub user: UserId,
    /// The character of the dialogue (its canon may become its facts).
    pub character: Option<CharacterId>,
    /// The dialogue, oldest first; the last user message is the one extracted from.
    pub messages: Vec<Message>,
    /// The request's id, recorded on extracted facts.
    pub request_id: String,
    /// Decide, but change nothing.
    pub dry_run: bool,
}

/// The outcome of one extraction.
#[derive(Debug, Clone, PartialEq)]
pub struct Extraction {
    /// One per candidate the model proposed, in its order.
    pub decisions: Vec<Decision>,
    /// The hash of the message extracted from.
    pub message_hash: String,
    /// True when that message had been extracted from before: nothing was asked or changed.
    pub already_extracted: bool,
}

/// Memory settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MemorySettings {
    /// The model that extracts and decides, and how (temperature 0 is right).
    pub params: GenerationParams,
    /// Messages before the last user message shown as context.
    pub context_messages: usize,
    /// Whether the character's own new canon becomes character facts.
    pub character_canon: bool,
    /// A candidate this close (cosine) to a stored fact is that fact: NOOP.
    pub duplicate_threshold: f32,
    /// A candidate this close to a stored fact may update or retract it: the model decides.
    pub related_threshold: f32,
    /// Stored facts shown to the model for a contested candidate.
    pub neighbours: usize,
    /// Retries of each model and embedder call.
    pub retry: RetryPolicy,
    /// Time allowed for each model call, retries included.
    pub timeout: std::time::Duration,
}

/// Why an extraction failed. Nothing was changed, but for [`MemoryError::Changes`] with a
/// partial failure, which says how far it got.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// No chat model to extract with.
    #[error("no chat model is configured for memory extraction")]
    NoModel,
    /// No embedder to compare candidates with.
    #[error("no embedder is configured, so candidates cannot be compared with stored facts")]
    NoEmbedder,
    /// The model failed, after retries.
    #[error("the memory model failed: {0}")]
    Model(#[from] RetryError<ChatModelError>),
    /// The model's answer was not the JSON asked for.
    #[error("the memory model's answer is not the JSON asked for: {0}")]
    InvalidOutput(String),
    /// A prompt template failed.
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// Embedding a candidate failed.
    #[error("embedding a candidate failed: {0}")]
    Embed(#[source] RetryError<EmbedError>),
    /// The embedder answered without a vector for the candidate.
    #[error("the embedder returned no vector for the candidate")]
    NoVector,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] FactStoreError),
    /// Storing a fact failed (the owner's cap included).
    #[error(transparent)]
    Add(#[from] AddFactsError),
    /// Applying the decided changes failed: refused (nothing changed) or cut part-way.
    #[error(transparent)]
    Changes(#[from] ChangeError),
    /// Applying the decided changes stopped abnormally; some may have been made.
    #[error("applying the decided changes stopped abnormally: {0}")]
    Interrupted(String),
}

impl MemoryError {
    /// The metric label of the failure.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::NoModel | Self::NoEmbedder => "not_configured",
            Self::Model(_) => "model_failed",
            Self::InvalidOutput(_) => "invalid_output",
            Self::Prompt(_) => "prompt_failed",
            Self::Embed(_)
            | Self::NoVector
            | Self::Store(_)
            | Self::Add(_)
            | Self::Changes(_)
            | Self::Interrupted(_) => "store_failed",
        }
    }
}

/// Extracts facts from dialogues and reconciles them with the stored ones.
#[derive(Clone)]
pub struct MemoryExtractor {
    model: Arc<dyn ChatModel>,
    prompts: Arc<dyn MemoryPrompts>,
    embedder: Option<Arc<dyn Embedder>>,
    store: Arc<dyn FactStore>,
    library: FactLibrary,
    settings: MemorySettings,
}

impl MemoryExtractor {
    /// An extractor writing through `library` (which enforces the per-owner cap).
    pub fn new(
        model: Arc<dyn ChatModel>,
        prompts: Arc<dyn MemoryPrompts>,
        embedder: Option<Arc<dyn Embedder>>,
        store: Arc<dyn FactStore>,
        library: FactLibrary,
        settings: MemorySettings,
    ) -> Self {
        Self {
            model,
            prompts,
            embedder,
            store,
            library,
            settings,
        }
    }

    /// The model that extracts: its name, and where it runs.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.settings.params.model, self.model.describe())
    }

    /// Extracts from the last user message of `request.messages`, reconciles, and (unless a
    /// dry run) changes the store. Counts its outcome in `ragback_memory_extractions_total`.
    #[tracing::instrument(skip_all, fields(request_id = %request.request_id))]
    pub async fn extract(&self, request: ExtractRequest) -> Result<Extraction, MemoryError> {
        let result = self.run(request).await;
        let outcome = match &result {
            Ok(e) if e.already_extracted => "already_extracted",
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        metrics::counter!("ragback_memory_extractions_total", "outcome" => outcome).increment(1);
        if let Ok(extraction) = &result {
            for decision in &extraction.decisions {
                metrics::counter!("ragback_memory_decisions_total", "action" => decision.action.as_str())
                    .increment(1);
            }
        }
        result
    }

    async fn run(&self, request: ExtractRequest) -> Result<Extraction, MemoryError> {
        if !self.model.is_configured() {
            return Err(MemoryError::NoModel);
        }
        let embedder = self.embedder.as_ref().ok_or(MemoryError::NoEmbedder)?;
        let Some(last_user) = request.messages.iter().rposition(|m| m.role == Role::User) else {
            return Ok(Extraction {
                decisions: Vec::new(),
                message_hash: String::new(),
                already_extracted: false,
            });
        };
        let said = request.messages[last_user].text.as_str();
        let message_hash = message_hash(&request.user, said);
        let user_owner = FactOwner::User(request.user.clone());
        if self.extracted_before(&user_owner, &message_hash).await? {
            return Ok(Extraction {
                decisions: Vec::new(),
                message_hash,
                already_extracted: true,
            });
        }
        let first = (last_user + 1).saturating_sub(self.settings.context_messages + 1);
        let context = &request.messages[first..=last_user];
        let prompt = self.prompts.extract(
            request.user.as_str(),
            context,
            self.settings.character_canon,
        )?;
        let schema = answer::candidates_schema(self.settings.character_canon);
        let answer = self.ask(prompt, schema).await?;
        let candidates = parse_candidates(&answer)?;
        let user_words = words(
            &context
                .iter()
                .filter(|m| m.role == Role::User)
                .map(|m| m.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        );

        let mut decisions = Vec::new();
        let mut changes = Changes::default();
        for candidate in &candidates {
            let owner = match (candidate.owner, &request.character) {
                (CandidateOwner::User, _) => user_owner.clone(),
                (CandidateOwner::Character, Some(c)) if self.settings.character_canon => {
                    FactOwner::Character(c.clone())
                }
                (CandidateOwner::Character, _) => {
                    decisions.push(noop(&candidate.text, user_owner.clone(), "not the user's"));
                    continue;
                }
            };
            let Ok(text) = FactText::parse(candidate.text.as_str()) else {
                decisions.push(noop(&candidate.text, owner, "not a valid fact text"));
                continue;
            };
            if owner == user_owner && words(text.as_str()).is_disjoint(&user_words) {
                // The model read the character's line as the user's: "I love skating" said by
                // the character is not the user's fact.
                decisions.push(noop(&candidate.text, owner, "not in the user's words"));
                continue;
            }
            let provenance = Provenance {
                request_id: Some(request.request_id.clone()),
                message_hash: Some(message_hash.clone()),
                ..Provenance::new(FactSource::Extracted, now())
            };
            let proposal = reconcile::Proposal {
                candidate,
                owner,
                text,
                provenance,
            };
            decisions.push(
                self.decide(embedder.as_ref(), proposal, &mut changes)
                    .await?,
            );
        }
        if !request.dry_run {
            self.apply(changes).await?;
        }
        Ok(Extraction {
            decisions,
            message_hash,
            already_extracted: false,
        })
    }

    /// Applies every decided change together, on a task of its own: dropping the caller's
    /// future (a deadline, a client gone) never cuts it in half.
    async fn apply(&self, changes: Changes) -> Result<(), MemoryError> {
        if changes.is_empty() {
            return Ok(());
        }
        let library = self.library.clone();
        tokio::spawn(async move { library.apply(changes).await })
            .await
            .map_err(|e| MemoryError::Interrupted(e.to_string()))?
            .map_err(MemoryError::from)
    }

    /// Whether a stored fact of `owner` was extracted from the message with `hash`.
    async fn extracted_before(&self, owner: &FactOwner, hash: &str) -> Result<bool, MemoryError> {
        Ok(self.store.has_message(owner, hash).await?)
    }

    async fn ask(
        &self,
        messages: Vec<PromptMessage>,
        schema: serde_json::Value,
    ) -> Result<String, MemoryError> {
        let request = ChatRequest {
            messages,
            params: self.settings.params.clone(),
            json_schema: Some(schema),
        };
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        let completion = retry(&self.settings.retry, deadline, "memory model", || {
            self.model.complete(&request)
        })
        .await?;
        Ok(completion.text)
    }
}

fn noop(text: &str, owner: FactOwner, reason: &'static str) -> Decision {
    Decision {
        action: Action::Noop,
        text: text.to_owned(),
        owner,
        target: None,
        fact_id: None,
        reason,
    }
}

/// A stable hash of what a user said (FNV-1a, 64 bits, hex): the same message of the same user
/// always has the same hash.
pub fn message_hash(user: &UserId, text: &str) -> String {
    let hash = crate::stable_hash::fnv1a(&[user.as_str().as_bytes(), text.as_bytes()]);
    format!("{hash:016x}")
}

/// Lowercase words of three letters or more.
fn words(text: &str) -> std::collections::BTreeSet<String> {
    crate::words::words(text)
        .into_iter()
        .filter(|w| w.chars().count() >= 3)
        .collect()
}
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ragback_domain::MessageText;

    use super::*;
    use crate::ports::PromptRole;
    use crate::testing::{InMemoryFactStore, ScriptedChatModel, WordEmbedder, quick_retry, seed};

    /// A model whose calls never end.
    struct Hangs;

    #[async_trait::async_trait]
    impl ChatModel for Hangs {
        fn is_configured(&self) -> bool {
            true
        }

        fn describe(&self) -> String {
            "hangs".into()
        }

        async fn complete(
            &self,
            _: &ChatRequest,
        ) -> Result<crate::ports::Completion, ChatModelError> {
            futures::future::pending().await
        }

        async fn stream(
            &self,
            _: &ChatRequest,
        ) -> Result<crate::ports::ChatStream, ChatModelError> {
            futures::future::pending().await
        }
    }

    /// Renders the messages plainly: the scripted model ignores them.
    struct PlainPrompts;

    impl MemoryPrompts for PlainPrompts {
        fn extract(
            &self,
            user_name: &str,
            context: &[Message],
            _character_canon: bool,
        ) -> Result<Vec<PromptMessage>, PromptError> {
            let lines: Vec<String> = context
                .iter()
                .map(|m| format!("{:?}: {}", m.role, m.text.as_str()))
                .collect();
            Ok(vec![PromptMessage {
                role: PromptRole::User,
                content: format!("{user_name}\n{}", lines.join("\n")),
            }])
        }

        fn reconcile(
            &self,
            candidate: &Candidate,
            stored: &[Fact],
        ) -> Result<Vec<PromptMessage>, PromptError> {
            let stored: Vec<&str> = stored.iter().map(|f| f.text.as_str()).collect();
            Ok(vec![PromptMessage {
                role: PromptRole::User,
                content: format!("{} vs {}", candidate.text, stored.join("; ")),
            }])
        }
    }

    struct Setup {
        store: Arc<InMemoryFactStore>,
        model: Arc<ScriptedChatModel>,
        extractor: MemoryExtractor,
    }

    fn setup(answers: &[&str]) -> Setup {
        let store = Arc::new(InMemoryFactStore::default());
        let embedder = Arc::new(WordEmbedder::default());
        let model = Arc::new(ScriptedChatModel::new(
            answers.iter().map(|a| ScriptedChatModel::reply(a)),
        ));
        let library = FactLibrary::new(
            Some(embedder.clone()),
            store.clone(),
            quick_retry(1),
            Duration::from_secs(5),
        );
        let settings = MemorySettings {
            params: GenerationParams {
                model: "test/model".into(),
                temperature: Some(0.0),
                top_p: None,
                max_tokens: Some(300),
                seed: None,
                routing: Default::default(),
                cache_control: false,
            },
            context_messages: 2,
            character_canon: false,
            duplicate_threshold: 0.9,
            related_threshold: 0.4,
            neighbours: 3,
            retry: quick_retry(2),
            timeout: Duration::from_secs(5),
        };
        let extractor = MemoryExtractor::new(
            model.clone(),
            Arc::new(PlainPrompts),
            Some(embedder),
            store.clone(),
            library,
            settings,
        );
        Setup {
            store,
            model,
            extractor,
        }
    }

    impl Setup {
        /// Stores John's `texts` first.
        async fn seed(&self, texts: &[&str]) {
            seed(&WordEmbedder::default(), &*self.store, &john(), texts).await;
        }

        /// Extracts from John's `turns`, for real.
        async fn run(&self, turns: &[(Role, &str)]) -> Extraction {
            self.extractor.extract(said(turns, false)).await.unwrap()
        }
    }

    fn john() -> FactOwner {
        FactOwner::User(UserId::parse("john").unwrap())
    }

    fn said(turns: &[(Role, &str)], dry_run: bool) -> ExtractRequest {
        ExtractRequest {
            user: UserId::parse("john").unwrap(),
            character: Some(CharacterId::parse("blaze").unwrap()),
            messages: turns
                .iter()
                .map(|(role, text)| Message::new(*role, MessageText::parse(*text).unwrap()))
                .collect(),
            request_id: "req-1".into(),
            dry_run,
        }
    }

    async fn texts(store: &InMemoryFactStore) -> Vec<String> {
        let mut texts: Vec<String> = store
            .list(Some(&john()), None, 100, false)
            .await
            .unwrap()
            .facts
            .into_iter()
            .map(|s| s.fact.text.as_str().to_owned())
            .collect();
        texts.sort();
        texts
    }

    fn actions(extraction: &Extraction) -> Vec<(Action, &str)> {
        extraction
            .decisions
            .iter()
            .map(|d| (d.action, d.reason))
            .collect()
    }

    #[tokio::test]
    async fn a_new_fact_is_added_once_with_its_provenance() {
        let s = setup(&[
            r#"Sure. {"facts": [{"owner": "user", "text": "Has a sister called Mia", "kind": "fact"}]}"#,
        ]);
        let turn = [(Role::User, "my sister Mia is visiting")];
        let first = s.extractor.extract(said(&turn, false)).await.unwrap();
        assert_eq!(actions(&first), [(Action::Add, "new")]);
        assert_eq!(texts(&s.store).await, ["Has a sister called Mia"]);
        let stored = s.store.list(None, None, 10, false).await.unwrap().facts;
        let provenance = stored[0].fact.provenance.clone().unwrap();
        assert_eq!(provenance.source, FactSource::Extracted);
        assert_eq!(provenance.request_id.as_deref(), Some("req-1"));
        assert_eq!(provenance.message_hash, Some(first.message_hash.clone()));

        // The same message again (a retried request): nothing asked, nothing changed.
        let again = s.extractor.extract(said(&turn, false)).await.unwrap();
        assert!(again.already_extracted && again.decisions.is_empty());
        assert_eq!(s.model.requests().len(), 1, "the model was not asked again");
        assert_eq!(texts(&s.store).await, ["Has a sister called Mia"]);
    }

    #[tokio::test]
    async fn a_statement_already_known_is_a_noop() {
        let s = setup(&[r#"{"facts": [{"owner": "user", "text": "has a sister called mia"}]}"#]);
        s.seed(&["Has a sister called Mia"]).await;
        let got = s.run(&[(Role::User, "Mia my sister says hi")]).await;
        assert_eq!(actions(&got), [(Action::Noop, "already known")]);
        assert_eq!(texts(&s.store).await, ["Has a sister called Mia"]);
    }

    #[tokio::test]
    async fn a_move_updates_the_old_fact_and_keeps_its_text_as_history() {
        let s = setup(&[
            r#"{"facts": [{"owner": "user", "text": "Lives in Berlin", "kind": "fact"}]}"#,
            r#"The new city replaces the old one. {"action": "update", "fact": 1}"#,
        ]);
        s.seed(&["Lives in London"]).await;
        let got = s
            .run(&[(Role::User, "I moved from London to Berlin")])
            .await;
        assert_eq!(got.decisions[0].action, Action::Update);
        assert_eq!(
            got.decisions[0].target.as_ref().map(|f| f.text.as_str()),
            Some("Lives in London")
        );
        assert_eq!(texts(&s.store).await, ["Lives in Berlin"]);
        let stored = s.store.list(None, None, 10, false).await.unwrap().facts;
        let provenance = stored[0].fact.provenance.clone().unwrap();
        assert_eq!(provenance.history, ["Lives in London"]);
        assert_eq!(provenance.source, FactSource::Extracted);
        assert!(
            s.model.requests()[1].messages[0]
                .content
                .contains("Lives in London")
        );
    }

    #[tokio::test]
    async fn a_retraction_deletes_the_fact_when_the_model_says_so() {
        let s = setup(&[
            r#"{"facts": [{"owner": "user", "text": "His dog Biscuit passed away", "kind": "retraction"}]}"#,
            r#"{"action": "delete", "fact": 1}"#,
        ]);
        s.seed(&["Has a dog named Biscuit", "Likes jazz"]).await;
        let got = s
            .run(&[(Role::User, "Biscuit passed away last night")])
            .await;
        assert_eq!(actions(&got), [(Action::Delete, "the model: retracted")]);
        assert_eq!(texts(&s.store).await, ["Likes jazz"]);
    }

    #[tokio::test]
    async fn the_characters_lines_never_become_user_facts() {
        let s = setup(&[r#"{"facts": [
            {"owner": "user", "text": "Loves skating"},
            {"owner": "character", "text": "Loves skating"}
        ]}"#]);
        let got = s
            .run(&[
                (Role::Character, "I love skating, I go every Sunday"),
                (Role::User, "haha nice"),
            ])
            .await;
        assert_eq!(
            actions(&got),
            [
                (Action::Noop, "not in the user's words"),
                (Action::Noop, "not the user's")
            ]
        );
        assert!(texts(&s.store).await.is_empty());
    }

    #[tokio::test]
    async fn malformed_output_changes_nothing_and_a_dry_run_only_decides() {
        let s = setup(&[
            "I think the user likes cats!",
            r#"{"facts": [{"owner": "user"}]}"#,
        ]);
        let turn = [(Role::User, "I adopted a cat named Kit")];
        for _ in 0..2 {
            let err = s.extractor.extract(said(&turn, false)).await.unwrap_err();
            assert_eq!(err.outcome(), "invalid_output", "{err}");
        }
        assert!(texts(&s.store).await.is_empty());

        let s = setup(&[r#"{"facts": [{"owner": "user", "text": "Has a cat named Kit"}]}"#]);
        let got = s.extractor.extract(said(&turn, true)).await.unwrap();
        assert_eq!(actions(&got), [(Action::Add, "new")]);
        assert!(texts(&s.store).await.is_empty(), "a dry run stores nothing");
    }

    #[tokio::test]
    async fn a_failure_after_some_candidates_were_decided_changes_nothing_and_a_retry_runs() {
        let s = setup(&[
            r#"{"facts": [
                {"owner": "user", "text": "Has a cat named Kit"},
                {"owner": "user", "text": "Lives in Berlin"}
            ]}"#,
            "no idea",
            r#"{"facts": [{"owner": "user", "text": "Has a cat named Kit"}]}"#,
        ]);
        s.seed(&["Lives in London"]).await;
        let turn = [(
            Role::User,
            "I adopted a cat named Kit and I live in Berlin now",
        )];
        let error = s.extractor.extract(said(&turn, false)).await.unwrap_err();
        assert_eq!(error.outcome(), "invalid_output", "{error}");
        assert_eq!(
            texts(&s.store).await,
            ["Lives in London"],
            "the first candidate was not applied"
        );

        let again = s.extractor.extract(said(&turn, false)).await.unwrap();
        assert!(
            !again.already_extracted,
            "a failed extraction is not remembered as done"
        );
        assert_eq!(actions(&again), [(Action::Add, "new")]);
        assert_eq!(
            texts(&s.store).await,
            ["Has a cat named Kit", "Lives in London"]
        );
    }

    #[tokio::test]
    async fn a_failed_removal_leaves_the_store_as_it_was() {
        let s = setup(&[
            r#"{"facts": [{"owner": "user", "text": "Lives in Berlin", "kind": "fact"}]}"#,
            r#"{"action": "update", "fact": 1}"#,
        ]);
        s.seed(&["Lives in London"]).await;
        s.store.fail_next_deletes(1);
        let error = s
            .extractor
            .extract(said(
                &[(Role::User, "I moved from London to Berlin")],
                false,
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(error, MemoryError::Changes(ChangeError::Refused(_))),
            "{error}"
        );
        assert_eq!(texts(&s.store).await, ["Lives in London"]);
    }

    #[tokio::test]
    async fn an_update_at_the_owners_cap_succeeds() {
        let mut s = setup(&[
            r#"{"facts": [{"owner": "user", "text": "Lives in Berlin", "kind": "fact"}]}"#,
            r#"{"action": "update", "fact": 1}"#,
        ]);
        s.seed(&["Lives in London"]).await;
        s.extractor.library = s.extractor.library.clone().with_owner_cap(1);
        let got = s
            .run(&[(Role::User, "I moved from London to Berlin")])
            .await;
        assert_eq!(got.decisions[0].action, Action::Update);
        assert_eq!(texts(&s.store).await, ["Lives in Berlin"]);
    }

    #[tokio::test]
    async fn a_panicking_extraction_does_not_stop_the_worker() {
        /// Panics on its first call, then answers as `inner`.
        struct PanicsOnce {
            inner: Arc<ScriptedChatModel>,
            calls: std::sync::atomic::AtomicUsize,
        }

        #[async_trait::async_trait]
        impl ChatModel for PanicsOnce {
            fn is_configured(&self) -> bool {
                true
            }

            fn describe(&self) -> String {
                "panics once".into()
            }

            async fn complete(
                &self,
                request: &ChatRequest,
            ) -> Result<crate::ports::Completion, ChatModelError> {
                if self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    panic!("a bug in an adapter (this panic is the test's)");
                }
                self.inner.complete(request).await
            }

            async fn stream(
                &self,
                request: &ChatRequest,
            ) -> Result<crate::ports::ChatStream, ChatModelError> {
                self.inner.stream(request).await
            }
        }

        let s = setup(&[r#"{"facts": [{"owner": "user", "text": "Has a cat named Kit"}]}"#]);
        let extractor = MemoryExtractor {
            model: Arc::new(PanicsOnce {
                inner: s.model.clone(),
                calls: Default::default(),
            }),
            ..s.extractor.clone()
        };
        let queue = MemoryQueue::start(extractor, 4);
        let stopped = queue.stopped();
        assert!(
            queue
                .queue(said(&[(Role::User, "I play the cello")], false))
                .await
        );
        assert!(
            queue
                .queue(said(&[(Role::User, "I adopted a cat named Kit")], false))
                .await
        );
        drop(queue);
        tokio::time::timeout(Duration::from_secs(5), stopped.wait())
            .await
            .expect("the worker stops once the queue is gone");
        assert_eq!(
            texts(&s.store).await,
            ["Has a cat named Kit"],
            "the job after the panic was done"
        );
    }

    #[tokio::test]
    async fn a_full_queue_drops_without_waiting_and_a_free_one_extracts() {
        let stalled = {
            let s = setup(&[]);
            MemoryExtractor {
                model: Arc::new(Hangs),
                ..s.extractor
            }
        };
        let queue = MemoryQueue::start(stalled, 1);
        let turn = [(Role::User, "I adopted a cat named Kit")];
        assert!(queue.queue(said(&turn, false)).await);
        // The worker takes it, and hangs on the model.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = std::time::Instant::now();
        let mut accepted = Vec::new();
        for _ in 0..3 {
            accepted.push(queue.queue(said(&turn, false)).await);
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a queue without a journal never waits"
        );
        assert_eq!(
            accepted,
            [true, false, false],
            "one queued, the rest dropped"
        );

        let s = setup(&[r#"{"facts": [{"owner": "user", "text": "Has a cat named Kit"}]}"#]);
        let queue = MemoryQueue::start(s.extractor.clone(), 4);
        assert!(queue.queue(said(&turn, false)).await);
        for _ in 0..200 {
            if !texts(&s.store).await.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(texts(&s.store).await, ["Has a cat named Kit"]);
    }

    #[tokio::test]
    async fn dropping_the_queue_finishes_what_it_holds_then_stops() {
        let s = setup(&[
            r#"{"facts": [{"owner": "user", "text": "Has a cat named Kit"}]}"#,
            r#"{"facts": [{"owner": "user", "text": "Plays the cello"}]}"#,
        ]);
        let queue = MemoryQueue::start(s.extractor.clone(), 4);
        let stopped = queue.stopped();
        assert!(
            queue
                .queue(said(&[(Role::User, "I adopted a cat named Kit")], false))
                .await
        );
        assert!(
            queue
                .queue(said(&[(Role::User, "I play the cello")], false))
                .await
        );
        drop(queue);
        tokio::time::timeout(Duration::from_secs(5), stopped.wait())
            .await
            .expect("the worker stops once the queue is gone");
        let mut stored = texts(&s.store).await;
        stored.sort();
        assert_eq!(
            stored,
            ["Has a cat named Kit", "Plays the cello"],
            "nothing queued is lost"
        );
    }

    #[tokio::test]
    async fn a_durable_queue_stores_its_jobs_until_done_and_takes_over_a_dead_processs() {
        use crate::jobs::JobJournal;
        use crate::ports::JobStore as _;
        use crate::testing::InMemoryJobStore;
        let jobs = std::sync::Arc::new(InMemoryJobStore::default());
        let s = setup(&[
            r#"{"facts": [{"owner": "user", "text": "Has a cat named Kit"}]}"#,
            r#"{"facts": [{"owner": "user", "text": "Plays the cello"}]}"#,
        ]);
        // A process that acknowledged a turn, stored its job and died before running it.
        let left = JobJournal::new(
            jobs.clone(),
            "dead",
            Duration::ZERO,
            Duration::from_secs(60),
        );
        left.record(
            crate::ports::JobKind::Memory,
            // Either answer fits either turn: the two jobs may run in either order.
            worker_payload(&said(
                &[(
                    Role::User,
                    "I adopted a cat named Kit, and I play the cello.",
                )],
                false,
            )),
        )
        .await
        .unwrap();
        assert_eq!(jobs.pending().await.unwrap(), 1);
        // The next process takes it over at start, runs it and removes it; its own turns are
        // stored while queued and removed once done.
        let live = JobJournal::new(
            jobs.clone(),
            "live",
            Duration::from_secs(60),
            Duration::from_millis(20),
        );
        let queue = MemoryQueue::start_durable(s.extractor.clone(), 4, live);
        let turn = [(
            Role::User,
            "I play the cello, and I adopted a cat named Kit.",
        )];
        assert!(queue.queue(said(&turn, false)).await);
        for _ in 0..400 {
            if texts(&s.store).await.len() == 2 && jobs.pending().await.unwrap() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut stored = texts(&s.store).await;
        stored.sort();
        assert_eq!(stored, ["Has a cat named Kit", "Plays the cello"]);
        assert_eq!(jobs.pending().await.unwrap(), 0, "done jobs are removed");
    }
}
