//! [`ChatService`]: retrieve → render → complete → clean.

use std::sync::Arc;
use std::time::Duration;

use ragback_domain::{Role, clean_reply};
use tokio::time::Instant;

use super::{GenerateCommand, GenerateError, GenerateFailure, Generation, StageTimings};
use crate::ports::{
    ChatModel, ChatModelError, ChatRequest, Completion, GenerationParams, PromptContext,
    PromptMessage, PromptRenderer, PromptRole,
};
use crate::retrieval::FactRetriever;
use crate::retry::{RetryError, RetryPolicy, retry};

/// Generation defaults, from configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatSettings {
    /// Model and sampling when the request does not override them.
    pub defaults: GenerationParams,
    /// How many of the latest messages go into the prompt.
    pub history_messages: usize,
    /// Retries of the model call.
    pub retry: RetryPolicy,
    /// Deadline of the model stage, retries included.
    pub timeout: Duration,
}

/// Writes the character's next line.
#[derive(Clone)]
pub struct ChatService {
    retriever: FactRetriever,
    renderer: Arc<dyn PromptRenderer>,
    model: Arc<dyn ChatModel>,
    settings: ChatSettings,
}

impl ChatService {
    /// Wires the use case to its ports.
    pub fn new(
        retriever: FactRetriever,
        renderer: Arc<dyn PromptRenderer>,
        model: Arc<dyn ChatModel>,
        settings: ChatSettings,
    ) -> Self {
        Self {
            retriever,
            renderer,
            model,
            settings,
        }
    }

    /// The retriever, for callers that search facts directly.
    pub fn retriever(&self) -> &FactRetriever {
        &self.retriever
    }

    /// Whether the model can be called at all.
    pub fn model_configured(&self) -> bool {
        self.model.is_configured()
    }

    /// Generates the character's next line for this chat.
    #[tracing::instrument(
        skip_all,
        fields(
            user = cmd.user.id.as_ref().map(|id| id.as_str()),
            character = cmd.character.id.as_ref().map(|id| id.as_str()),
            messages = cmd.messages.len(),
        )
    )]
    pub async fn generate(&self, cmd: GenerateCommand) -> Result<Generation, GenerateFailure> {
        let started = Instant::now();
        let GenerateCommand {
            messages,
            user,
            mut character,
            scenario,
            generation,
            retrieval: retrieval_overrides,
        } = cmd;

        let owners = self
            .retriever
            .owners(user.id.as_ref(), character.id.as_ref());
        let retrieval = self
            .retriever
            .retrieve(&messages, owners, &retrieval_overrides)
            .await;

        let outcome: Result<_, GenerateError> = async {
            let render_started = Instant::now();
            character.resolve_macros(user.name.as_str());
            let scenario = scenario
                .as_ref()
                .map(|s| s.as_str())
                .or_else(|| character.card.as_ref().and_then(|c| c.scenario.as_deref()));
            let prompt = self.renderer.render(&PromptContext {
                character: &character,
                user: &user,
                scenario,
                facts: &retrieval.facts,
                greeting: messages.is_empty(),
            })?;
            let history = &messages[messages
                .len()
                .saturating_sub(self.settings.history_messages)..];
            let mut prompt_messages = Vec::with_capacity(history.len() + 2);
            prompt_messages.push(PromptMessage {
                role: PromptRole::System,
                content: prompt.system,
            });
            prompt_messages.extend(history.iter().map(|m| PromptMessage {
                role: match m.role {
                    Role::User => PromptRole::User,
                    Role::Character => PromptRole::Assistant,
                },
                content: m.text.as_str().to_owned(),
            }));
            if let Some(cue) = prompt.opening_cue.filter(|_| history.is_empty()) {
                prompt_messages.push(PromptMessage {
                    role: PromptRole::User,
                    content: cue,
                });
            }
            let request = ChatRequest {
                messages: prompt_messages,
                params: GenerationParams {
                    model: generation
                        .model
                        .unwrap_or_else(|| self.settings.defaults.model.clone()),
                    temperature: generation
                        .temperature
                        .or(self.settings.defaults.temperature),
                    top_p: generation.top_p.or(self.settings.defaults.top_p),
                    max_tokens: generation.max_tokens.or(self.settings.defaults.max_tokens),
                },
            };
            let render = render_started.elapsed();
            tracing::debug!(prompt = ?request.messages, "prompt rendered");

            let llm_started = Instant::now();
            let deadline = llm_started + self.settings.timeout;
            let speaker = character.name.as_str();
            let listener = user.name.as_str();
            let mut completion = self.complete(&request, deadline).await?;
            let mut usage = completion.usage;
            let mut text = clean_reply(&completion.text, speaker, listener);
            if text.is_empty() {
                tracing::warn!("the model returned an empty reply; asking once more");
                completion = self.complete(&request, deadline).await?;
                usage = match (usage, completion.usage) {
                    (Some(a), Some(b)) => Some(a.plus(b)),
                    (a, b) => a.or(b),
                };
                text = clean_reply(&completion.text, speaker, listener);
                if text.is_empty() {
                    return Err(GenerateError::EmptyReply);
                }
            }
            let llm = llm_started.elapsed();
            Ok((completion.model, text, usage, render, llm))
        }
        .await;
        let (model, text, usage, render, llm) = match outcome {
            Ok(done) => done,
            Err(error) => {
                return Err(GenerateFailure {
                    error,
                    retrieval: Some(retrieval),
                });
            }
        };

        let timings = StageTimings {
            embed: retrieval.embed,
            search: retrieval.search,
            render,
            llm,
            total: started.elapsed(),
        };
        tracing::info!(
            retrieval = retrieval.status.as_str(),
            facts = retrieval.facts.len(),
            model = %model,
            embed_ms = ms(timings.embed),
            search_ms = ms(timings.search),
            llm_ms = ms(timings.llm),
            total_ms = ms(timings.total),
            "reply generated"
        );
        Ok(Generation {
            text,
            facts: retrieval.facts,
            model,
            usage,
            retrieval: retrieval.status,
            timings,
        })
    }

    async fn complete(
        &self,
        request: &ChatRequest,
        deadline: Instant,
    ) -> Result<Completion, GenerateError> {
        retry(&self.settings.retry, deadline, "model call", || {
            self.model.complete(request)
        })
        .await
        .map_err(|error| match error {
            RetryError::Failed {
                last: ChatModelError::NotConfigured(hint),
                ..
            } => GenerateError::ModelNotConfigured(hint),
            RetryError::Failed { attempts, last } => GenerateError::ModelFailed {
                attempts,
                source: last,
            },
            RetryError::DeadlineExceeded { attempts } => GenerateError::DeadlineExceeded {
                deadline: self.settings.timeout,
                attempts,
            },
        })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

#[cfg(test)]
mod tests {
    use ragback_domain::{
        Character, CharacterCard, CharacterId, FactOwner, Message, MessageText, Name, Scenario,
        User, UserId,
    };

    use super::*;
    use crate::GenerationOverrides;
    use crate::retrieval::{RetrievalOverrides, RetrievalStatus};
    use crate::testing::{
        InMemoryFactStore, PlainRenderer, ScriptedChatModel, WordEmbedder, quick_retry,
        retrieval_settings, seed,
    };

    fn settings() -> ChatSettings {
        ChatSettings {
            defaults: GenerationParams {
                model: "default/model".into(),
                temperature: Some(0.8),
                top_p: Some(0.95),
                max_tokens: Some(200),
            },
            history_messages: 2,
            retry: quick_retry(3),
            timeout: Duration::from_secs(5),
        }
    }

    async fn service(model: Arc<ScriptedChatModel>) -> ChatService {
        let store = Arc::new(InMemoryFactStore::default());
        let embedder = Arc::new(WordEmbedder::default());
        let john = FactOwner::User(UserId::parse("john").unwrap());
        seed(&*embedder, &*store, &john, &["ran the london marathon"]).await;
        let retriever = FactRetriever::new(
            Some(embedder),
            store,
            retrieval_settings(None, quick_retry(3)),
        );
        ChatService::new(retriever, Arc::new(PlainRenderer), model, settings())
    }

    fn command(messages: &[(Role, &str)]) -> GenerateCommand {
        GenerateCommand {
            messages: messages
                .iter()
                .map(|(role, text)| Message::new(*role, MessageText::parse(*text).unwrap()))
                .collect(),
            user: User {
                id: Some(UserId::parse("john").unwrap()),
                name: Name::parse("John").unwrap(),
                age: None,
            },
            character: Character::new(
                Some(CharacterId::parse("blaze").unwrap()),
                Name::parse("Blaze").unwrap(),
                None,
                "Street persona; calls {{user}} bro",
                Some(CharacterCard {
                    scenario: Some("A rooftop.".into()),
                    ..Default::default()
                }),
            )
            .unwrap(),
            scenario: None,
            generation: GenerationOverrides::default(),
            retrieval: RetrievalOverrides::default(),
        }
    }

    #[tokio::test]
    async fn a_reply_uses_facts_history_window_and_cleans_the_prefix() {
        let model = Arc::new(ScriptedChatModel::new([ScriptedChatModel::reply(
            "Blaze: *grins* A marathon? Dope.",
        )]));
        let svc = service(model.clone()).await;
        let cmd = command(&[
            (Role::User, "old message"),
            (Role::Character, "*nods* sup"),
            (Role::User, "I ran the marathon"),
        ]);

        let generation = svc.generate(cmd).await.unwrap();

        assert_eq!(generation.text, "*grins* A marathon? Dope.");
        assert_eq!(generation.retrieval, RetrievalStatus::Ok);
        assert_eq!(generation.facts.len(), 1);
        let t = generation.timings;
        assert!(t.total >= t.embed + t.search + t.render + t.llm);

        let request = &model.requests()[0];
        let system = &request.messages[0].content;
        assert!(system.contains("fact: ran the london marathon"));
        assert!(
            system.contains("calls John bro"),
            "card macros resolved: {system}"
        );
        assert!(
            system.contains("scenario: A rooftop."),
            "card scenario used: {system}"
        );
        let turns: Vec<_> = request.messages[1..]
            .iter()
            .map(|m| (m.role, m.content.as_str()))
            .collect();
        assert_eq!(
            turns,
            [
                (PromptRole::Assistant, "*nods* sup"),
                (PromptRole::User, "I ran the marathon")
            ]
        );
        assert_eq!(request.params.model, "default/model");
    }

    #[tokio::test]
    async fn request_overrides_win_over_defaults() {
        let model = Arc::new(ScriptedChatModel::new([ScriptedChatModel::reply("yo")]));
        let svc = service(model.clone()).await;
        let mut cmd = command(&[(Role::User, "hey")]);
        cmd.generation = GenerationOverrides {
            model: Some("other/model".into()),
            temperature: Some(0.1),
            top_p: None,
            max_tokens: Some(50),
        };
        cmd.scenario = Some(Scenario::parse("A bar.").unwrap());

        svc.generate(cmd).await.unwrap();

        let request = &model.requests()[0];
        assert_eq!(request.params.model, "other/model");
        assert_eq!(request.params.temperature, Some(0.1));
        assert_eq!(request.params.top_p, Some(0.95));
        assert_eq!(request.params.max_tokens, Some(50));
        assert!(request.messages[0].content.contains("scenario: A bar."));
    }

    #[tokio::test]
    async fn a_greeting_sends_the_opening_cue_and_skips_retrieval() {
        let model = Arc::new(ScriptedChatModel::new([ScriptedChatModel::reply(
            "*waves* Yo!",
        )]));
        let svc = service(model.clone()).await;

        let generation = svc.generate(command(&[])).await.unwrap();

        assert_eq!(generation.retrieval, RetrievalStatus::Skipped);
        let request = &model.requests()[0];
        assert_eq!(request.messages.len(), 2);
        assert_eq!(request.messages[1].role, PromptRole::User);
        assert_eq!(request.messages[1].content, "open the chat");
    }

    #[tokio::test]
    async fn an_empty_reply_is_retried_once_then_fails() {
        let model = Arc::new(ScriptedChatModel::new([
            ScriptedChatModel::reply("Blaze:"),
            ScriptedChatModel::reply("  "),
        ]));
        let svc = service(model.clone()).await;

        let err = svc
            .generate(command(&[(Role::User, "hey")]))
            .await
            .unwrap_err();

        assert_eq!(err.error, GenerateError::EmptyReply);
        assert_eq!(model.requests().len(), 2);
    }

    #[tokio::test]
    async fn an_empty_reply_then_a_good_one_succeeds_with_summed_usage() {
        let model = Arc::new(ScriptedChatModel::new([
            ScriptedChatModel::reply(""),
            ScriptedChatModel::reply("yo"),
        ]));
        let svc = service(model).await;

        let generation = svc.generate(command(&[(Role::User, "hey")])).await.unwrap();

        assert_eq!(generation.text, "yo");
        assert_eq!(generation.usage.unwrap().completion_tokens, 10);
    }

    #[tokio::test]
    async fn transient_model_errors_are_retried_and_permanent_ones_reported() {
        let model = Arc::new(ScriptedChatModel::new([
            Err(ChatModelError::unavailable("500")),
            ScriptedChatModel::reply("yo"),
        ]));
        let svc = service(model.clone()).await;
        assert_eq!(
            svc.generate(command(&[(Role::User, "hey")]))
                .await
                .unwrap()
                .text,
            "yo"
        );
        assert_eq!(model.requests().len(), 2);

        let rejected = ChatModelError::Rejected {
            status: 400,
            message: "bad model".into(),
        };
        let model = Arc::new(ScriptedChatModel::new([Err(rejected.clone())]));
        let err = service(model)
            .await
            .generate(command(&[(Role::User, "hey")]))
            .await
            .unwrap_err();
        assert_eq!(
            err.error,
            GenerateError::ModelFailed {
                attempts: 1,
                source: rejected
            }
        );
    }

    #[tokio::test]
    async fn a_missing_key_is_reported_as_not_configured() {
        let model = Arc::new(ScriptedChatModel::new([Err(
            ChatModelError::NotConfigured("set RAGBACK_LLM__API_KEY".into()),
        )]));
        let err = service(model)
            .await
            .generate(command(&[(Role::User, "hey")]))
            .await
            .unwrap_err();
        assert_eq!(
            err.error,
            GenerateError::ModelNotConfigured("set RAGBACK_LLM__API_KEY".into())
        );
        // Retrieval ran before the model failed, and the failure says how it went.
        let retrieval = err.retrieval.expect("retrieval ran");
        assert_eq!(retrieval.status, RetrievalStatus::Ok);
    }
}
