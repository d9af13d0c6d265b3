//! [`ChatService`]: retrieve → render → complete → clean.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ragback_domain::{ReplyStream, Role, ScoredFact, clean_reply};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use super::{GenerateCommand, GenerateError, GenerateFailure, Generation, StageTimings};
use crate::ports::{
    ChatChunk, ChatModel, ChatModelError, ChatRequest, ChatStream, Completion, GenerationParams,
    PromptContext, PromptMessage, PromptRenderer, PromptRole, TokenUsage,
};
use crate::retrieval::{FactRetriever, Retrieval, RetrievalStatus};
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
    /// Deadline of a whole turn (retrieval and model); a command may ask for a shorter one.
    pub request_timeout: Duration,
}

/// When a stage must be done, and the length of the limit that set it (for error messages).
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Instant,
    length: Duration,
}

impl Deadline {
    fn after(start: Instant, length: Duration) -> Self {
        Self {
            at: start + length,
            length,
        }
    }

    /// The earlier of the two.
    fn min(self, other: Self) -> Self {
        if other.at < self.at { other } else { self }
    }
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
        let turn = self.turn_deadline(started, cmd.timeout);
        let (retrieval, prepared) = self.prepare(cmd, turn.at).await;
        let outcome: Result<_, GenerateError> = async {
            let prepared = prepared?;
            let llm_started = Instant::now();
            let deadline = turn.min(Deadline::after(llm_started, self.settings.timeout));
            let clean =
                |c: &Completion| clean_reply(&c.text, &prepared.speaker, &prepared.listener);
            let mut completion = self.complete(&prepared.request, deadline).await?;
            let mut usage = completion.usage;
            let mut text = clean(&completion);
            if text.is_empty() {
                tracing::warn!("the model returned an empty reply; asking once more");
                completion = self.complete(&prepared.request, deadline).await?;
                usage = match (usage, completion.usage) {
                    (Some(a), Some(b)) => Some(a.plus(b)),
                    (a, b) => a.or(b),
                };
                text = clean(&completion);
                if text.is_empty() {
                    return Err(GenerateError::EmptyReply);
                }
            }
            Ok((
                completion.model,
                text,
                usage,
                prepared.render,
                llm_started.elapsed(),
            ))
        }
        .await;
        match outcome {
            Ok((model, text, usage, render, llm)) => Ok(finished(
                started, retrieval, text, model, usage, render, llm, None,
            )),
            Err(error) => Err(GenerateFailure {
                error,
                retrieval: Some(retrieval),
            }),
        }
    }

    /// Generates the character's next line as a stream of events: the facts, the clean reply in
    /// pieces as the model writes it, then the whole generation or the error. Failures before the
    /// first piece is sent are retried like [`generate`](Self::generate)'s; after it they end the
    /// stream. Dropping the receiver cancels the generation and closes the upstream request.
    pub fn generate_stream(&self, cmd: GenerateCommand) -> mpsc::Receiver<ReplyEvent> {
        let (events, receiver) = mpsc::channel(64);
        let this = self.clone();
        let task = async move {
            tokio::select! {
                () = events.closed() => tracing::info!("the client left: generation cancelled"),
                () = this.run_stream(cmd, &events) => {}
            }
        };
        tokio::spawn(task.instrument(tracing::Span::current()));
        receiver
    }

    async fn run_stream(&self, cmd: GenerateCommand, events: &mpsc::Sender<ReplyEvent>) {
        let started = Instant::now();
        let turn = self.turn_deadline(started, cmd.timeout);
        let (retrieval, prepared) = self.prepare(cmd, turn.at).await;
        let facts = ReplyEvent::Facts {
            status: retrieval.status,
            facts: retrieval.facts.clone(),
        };
        if events.send(facts).await.is_err() {
            return;
        }
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                let _ = events.send(ReplyEvent::Failed(error)).await;
                return;
            }
        };
        let llm_started = Instant::now();
        let deadline = turn.min(Deadline::after(llm_started, self.settings.timeout));
        let opened = retry(&self.settings.retry, deadline.at, "model stream", || {
            self.open_stream(&prepared)
        })
        .await;
        let mut open = match opened {
            Ok(open) => open,
            Err(error) => {
                let _ = events
                    .send(ReplyEvent::Failed(model_error(error, deadline)))
                    .await;
                return;
            }
        };
        let first_token = open.first_token.map(|t| t - llm_started);
        if let Some(piece) = open.first.take()
            && events.send(ReplyEvent::Delta(piece)).await.is_err()
        {
            return;
        }
        while !open.ended {
            match tokio::time::timeout_at(deadline.at, open.stream.next()).await {
                Ok(Some(Ok(chunk))) => {
                    open.absorb(&chunk);
                    if let Some(piece) = open.reply.push(&chunk.text)
                        && events.send(ReplyEvent::Delta(piece)).await.is_err()
                    {
                        return;
                    }
                }
                Ok(Some(Err(source))) => {
                    tracing::warn!(error = %source, "the model stream failed after the first piece");
                    let error = GenerateError::ModelFailed {
                        attempts: 1,
                        source,
                    };
                    let _ = events.send(ReplyEvent::Failed(error)).await;
                    return;
                }
                Ok(None) => open.ended = true,
                Err(_elapsed) => {
                    metrics::counter!(
                        "ragback_upstream_failures_total",
                        "operation" => "model stream",
                        "cause" => "deadline"
                    )
                    .increment(1);
                    let error = GenerateError::DeadlineExceeded {
                        deadline: deadline.length,
                        attempts: 1,
                    };
                    let _ = events.send(ReplyEvent::Failed(error)).await;
                    return;
                }
            }
        }
        if let Some(piece) = open.reply.finish()
            && events.send(ReplyEvent::Delta(piece)).await.is_err()
        {
            return;
        }
        let model = open
            .model
            .unwrap_or_else(|| prepared.request.params.model.clone());
        let generation = finished(
            started,
            retrieval,
            open.reply.text().to_owned(),
            model,
            open.usage,
            prepared.render,
            llm_started.elapsed(),
            first_token,
        );
        let _ = events.send(ReplyEvent::Done(generation)).await;
    }

    /// Opens a model stream and reads it until the first clean piece can be shown (or the reply
    /// ends). Errors here are still retryable: nothing has been sent.
    async fn open_stream(&self, prepared: &Prepared) -> Result<OpenStream, ChatModelError> {
        let stream = self.model.stream(&prepared.request).await?;
        let mut open = OpenStream {
            stream,
            reply: ReplyStream::new(&prepared.speaker, &prepared.listener),
            first: None,
            first_token: None,
            model: None,
            usage: None,
            ended: false,
        };
        while open.first.is_none() {
            match open.stream.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    open.absorb(&chunk);
                    open.first = open.reply.push(&chunk.text);
                }
                None => {
                    open.ended = true;
                    open.first = open.reply.finish();
                    if open.first.is_none() {
                        return Err(ChatModelError::InvalidResponse(EMPTY_REPLY.into()));
                    }
                }
            }
        }
        Ok(open)
    }

    /// The deadline of a turn starting at `started`: the configured one, or the command's when
    /// shorter.
    fn turn_deadline(&self, started: Instant, asked: Option<Duration>) -> Deadline {
        let configured = self.settings.request_timeout;
        Deadline::after(started, asked.map_or(configured, |t| t.min(configured)))
    }

    /// Retrieval, then the prompt. Retrieval never fails; the prompt may.
    async fn prepare(
        &self,
        cmd: GenerateCommand,
        deadline: Instant,
    ) -> (Retrieval, Result<Prepared, GenerateError>) {
        let GenerateCommand {
            messages,
            user,
            mut character,
            scenario,
            generation,
            retrieval: retrieval_overrides,
            timeout: _,
        } = cmd;

        let owners = self
            .retriever
            .owners(user.id.as_ref(), character.id.as_ref());
        let retrieval = self
            .retriever
            .retrieve(&messages, owners, &retrieval_overrides, deadline)
            .await;

        let render_started = Instant::now();
        character.resolve_macros(user.name.as_str());
        let scenario = scenario
            .as_ref()
            .map(|s| s.as_str())
            .or_else(|| character.card.as_ref().and_then(|c| c.scenario.as_deref()));
        let prompt = match self.renderer.render(&PromptContext {
            character: &character,
            user: &user,
            scenario,
            facts: &retrieval.facts,
            greeting: messages.is_empty(),
        }) {
            Ok(prompt) => prompt,
            Err(error) => return (retrieval, Err(error.into())),
        };
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
        tracing::debug!(prompt = ?request.messages, "prompt rendered");
        let prepared = Prepared {
            request,
            render: render_started.elapsed(),
            speaker: character.name.as_str().to_owned(),
            listener: user.name.as_str().to_owned(),
        };
        (retrieval, Ok(prepared))
    }

    async fn complete(
        &self,
        request: &ChatRequest,
        deadline: Deadline,
    ) -> Result<Completion, GenerateError> {
        retry(&self.settings.retry, deadline.at, "model call", || {
            self.model.complete(request)
        })
        .await
        .map_err(|error| model_error(error, deadline))
    }
}

/// The generation error for a model call that did not succeed before `deadline`.
fn model_error(error: RetryError<ChatModelError>, deadline: Deadline) -> GenerateError {
    match error {
        RetryError::Failed {
            last: ChatModelError::NotConfigured(hint),
            ..
        } => GenerateError::ModelNotConfigured(hint),
        RetryError::Failed {
            last: ChatModelError::InvalidResponse(message),
            ..
        } if message == EMPTY_REPLY => GenerateError::EmptyReply,
        RetryError::Failed { attempts, last } => GenerateError::ModelFailed {
            attempts,
            source: last,
        },
        RetryError::DeadlineExceeded { attempts } => GenerateError::DeadlineExceeded {
            deadline: deadline.length,
            attempts,
        },
    }
}

/// What a streamed reply reports besides its pieces.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyEvent {
    /// Retrieval is done: the facts given to the model.
    Facts {
        /// How retrieval went.
        status: RetrievalStatus,
        /// The facts, best first.
        facts: Vec<ScoredFact>,
    },
    /// A piece of the clean reply.
    Delta(String),
    /// The reply is complete; its text is the concatenation of the pieces.
    Done(Generation),
    /// The generation failed; nothing follows.
    Failed(GenerateError),
}

/// The message of the sentinel error for a reply that is empty once cleaned.
const EMPTY_REPLY: &str = "the reply is empty once cleaned";

/// A rendered prompt, ready for the model.
struct Prepared {
    request: ChatRequest,
    render: Duration,
    speaker: String,
    listener: String,
}

/// A model stream that has produced its first clean piece.
struct OpenStream {
    stream: ChatStream,
    reply: ReplyStream,
    first: Option<String>,
    first_token: Option<Instant>,
    model: Option<String>,
    usage: Option<TokenUsage>,
    ended: bool,
}

impl OpenStream {
    fn absorb(&mut self, chunk: &ChatChunk) {
        if self.first_token.is_none() && !chunk.text.is_empty() {
            self.first_token = Some(Instant::now());
        }
        if let Some(model) = chunk.model.as_ref().filter(|m| !m.is_empty()) {
            self.model = Some(model.clone());
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
    }
}

/// The generation, with its timings, logged.
#[allow(clippy::too_many_arguments)]
fn finished(
    started: Instant,
    retrieval: Retrieval,
    text: String,
    model: String,
    usage: Option<TokenUsage>,
    render: Duration,
    llm: Duration,
    first_token: Option<Duration>,
) -> Generation {
    let timings = StageTimings {
        embed: retrieval.embed,
        search: retrieval.search,
        render,
        llm,
        first_token,
        total: started.elapsed(),
    };
    record(&timings, retrieval.facts.len(), usage);
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
    Generation {
        text,
        facts: retrieval.facts,
        model,
        usage,
        retrieval: retrieval.status,
        timings,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// The metrics of a finished generation (retrieval records its own stages).
fn record(timings: &StageTimings, facts: usize, usage: Option<TokenUsage>) {
    let stage = |name: &'static str, d: Duration| {
        metrics::histogram!("ragback_stage_duration_seconds", "stage" => name).record(d);
    };
    stage("render", timings.render);
    stage("llm", timings.llm);
    if let Some(first_token) = timings.first_token {
        stage("first_token", first_token);
    }
    stage("total", timings.total);
    metrics::counter!("ragback_generations_total", "outcome" => "ok").increment(1);
    metrics::histogram!("ragback_facts_per_reply").record(facts as f64);
    if let Some(usage) = usage {
        let tokens = |kind: &'static str, n: u32| {
            metrics::counter!("ragback_llm_tokens_total", "kind" => kind).increment(u64::from(n));
        };
        tokens("prompt", usage.prompt_tokens);
        tokens("completion", usage.completion_tokens);
    }
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
            request_timeout: Duration::from_secs(10),
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
            timeout: None,
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

    /// Runs a streamed generation to its end.
    async fn stream_events(model: Arc<ScriptedChatModel>) -> Vec<ReplyEvent> {
        let mut events = service(model)
            .await
            .generate_stream(command(&[(Role::User, "I ran the london marathon")]));
        let mut all = Vec::new();
        while let Some(event) = events.recv().await {
            all.push(event);
        }
        all
    }

    fn deltas(events: &[ReplyEvent]) -> String {
        events
            .iter()
            .filter_map(|e| match e {
                ReplyEvent::Delta(piece) => Some(piece.as_str()),
                _ => None,
            })
            .collect()
    }

    fn done_chunk() -> Result<ChatChunk, ChatModelError> {
        Ok(ChatChunk {
            text: String::new(),
            model: Some("served/model".into()),
            usage: Some(TokenUsage {
                prompt_tokens: 7,
                completion_tokens: 3,
            }),
        })
    }

    #[tokio::test]
    async fn a_stream_sends_facts_then_clean_pieces_then_the_whole() {
        let piece = ScriptedChatModel::piece;
        let model = Arc::new(ScriptedChatModel::streaming([Ok(vec![
            piece("Bla"),
            piece("ze:"),
            piece(" *grins*"),
            piece(" No way"),
            piece(", bro!"),
            done_chunk(),
        ])]));

        let events = stream_events(model).await;

        let ReplyEvent::Facts { status, facts } = &events[0] else {
            panic!("facts come first: {events:?}");
        };
        assert_eq!(*status, RetrievalStatus::Ok);
        assert_eq!(facts[0].fact.text.as_str(), "ran the london marathon");
        let ReplyEvent::Done(done) = events.last().unwrap() else {
            panic!("done comes last: {events:?}");
        };
        assert_eq!(done.text, "*grins* No way, bro!");
        assert_eq!(deltas(&events), done.text);
        assert!(matches!(&events[1], ReplyEvent::Delta(p) if p == "*grins*"));
        assert_eq!(done.model, "served/model");
        assert_eq!(done.usage.unwrap().completion_tokens, 3);
        assert!(done.timings.first_token.is_some());
    }

    #[tokio::test]
    async fn failures_before_the_first_piece_are_retried() {
        let piece = ScriptedChatModel::piece;
        let model = Arc::new(ScriptedChatModel::streaming([
            Err(ChatModelError::unavailable("503")),
            // Fails after a piece that was not shown yet (it could still be a name prefix).
            Ok(vec![
                piece("Blaze"),
                Err(ChatModelError::unavailable("reset")),
            ]),
            Ok(vec![piece("Yo!"), done_chunk()]),
        ]));

        let events = stream_events(model.clone()).await;

        assert_eq!(deltas(&events), "Yo!");
        assert!(matches!(events.last(), Some(ReplyEvent::Done(_))));
        assert_eq!(model.requests().len(), 3);
    }

    #[tokio::test]
    async fn a_failure_after_the_first_piece_ends_the_stream_without_retry() {
        let piece = ScriptedChatModel::piece;
        let model = Arc::new(ScriptedChatModel::streaming([Ok(vec![
            piece("Yo"),
            piece(" bro"),
            Err(ChatModelError::unavailable("reset")),
        ])]));

        let events = stream_events(model.clone()).await;

        assert_eq!(deltas(&events), "Yo bro");
        assert!(matches!(
            events.last(),
            Some(ReplyEvent::Failed(GenerateError::ModelFailed { .. }))
        ));
        assert_eq!(model.requests().len(), 1);
    }

    #[tokio::test]
    async fn an_empty_stream_is_retried_then_reported_empty() {
        let empty = || Ok(vec![ScriptedChatModel::piece("Blaze: "), done_chunk()]);
        let model = Arc::new(ScriptedChatModel::streaming([empty(), empty(), empty()]));

        let events = stream_events(model.clone()).await;

        assert_eq!(
            events.last(),
            Some(&ReplyEvent::Failed(GenerateError::EmptyReply))
        );
        assert_eq!(model.requests().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_stream_ends_at_the_deadline() {
        struct Stalling;
        #[async_trait::async_trait]
        impl ChatModel for Stalling {
            fn is_configured(&self) -> bool {
                true
            }
            async fn complete(&self, _: &ChatRequest) -> Result<Completion, ChatModelError> {
                Err(ChatModelError::unavailable("unused"))
            }
            async fn stream(&self, _: &ChatRequest) -> Result<ChatStream, ChatModelError> {
                let first = futures::stream::iter([ScriptedChatModel::piece("Yo")]);
                Ok(Box::pin(first.chain(futures::stream::pending())))
            }
        }
        let base = service(Arc::new(ScriptedChatModel::default())).await;
        let stalling = ChatService::new(
            base.retriever().clone(),
            Arc::new(PlainRenderer),
            Arc::new(Stalling),
            settings(),
        );

        let mut events = stalling.generate_stream(command(&[(Role::User, "hey")]));
        let mut last = None;
        while let Some(event) = events.recv().await {
            last = Some(event);
        }

        assert!(matches!(
            last,
            Some(ReplyEvent::Failed(GenerateError::DeadlineExceeded { .. }))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn the_turn_deadline_is_the_earliest_of_command_request_and_model_limits() {
        struct Silent;
        #[async_trait::async_trait]
        impl ChatModel for Silent {
            fn is_configured(&self) -> bool {
                true
            }
            async fn complete(&self, _: &ChatRequest) -> Result<Completion, ChatModelError> {
                std::future::pending().await
            }
            async fn stream(&self, _: &ChatRequest) -> Result<ChatStream, ChatModelError> {
                std::future::pending().await
            }
        }
        let base = service(Arc::new(ScriptedChatModel::default())).await;
        // Model stage 5 s; whole turn 3 s.
        let silent = ChatService::new(
            base.retriever().clone(),
            Arc::new(PlainRenderer),
            Arc::new(Silent),
            ChatSettings {
                request_timeout: Duration::from_secs(3),
                ..settings()
            },
        );
        let cases = [
            (None, Duration::from_secs(3)),
            (
                Some(Duration::from_millis(1_500)),
                Duration::from_millis(1_500),
            ),
            (Some(Duration::from_secs(60)), Duration::from_secs(3)),
        ];
        for (asked, expected) in cases {
            let mut cmd = command(&[(Role::User, "hey")]);
            cmd.timeout = asked;
            let started = Instant::now();
            let failure = silent.generate(cmd.clone()).await.unwrap_err();
            assert!(
                matches!(failure.error, GenerateError::DeadlineExceeded { deadline, .. } if deadline == expected),
                "{asked:?}: {:?}",
                failure.error
            );
            assert_eq!(started.elapsed(), expected, "{asked:?}");

            let mut events = silent.generate_stream(cmd);
            let mut last = None;
            while let Some(event) = events.recv().await {
                last = Some(event);
            }
            assert!(
                matches!(last, Some(ReplyEvent::Failed(GenerateError::DeadlineExceeded { deadline, .. })) if deadline == expected),
                "stream {asked:?}: {last:?}"
            );
        }
    }

    #[tokio::test]
    async fn dropping_the_receiver_stops_the_generation() {
        struct Endless(Arc<std::sync::atomic::AtomicBool>);
        #[async_trait::async_trait]
        impl ChatModel for Endless {
            fn is_configured(&self) -> bool {
                true
            }
            async fn complete(&self, _: &ChatRequest) -> Result<Completion, ChatModelError> {
                Err(ChatModelError::unavailable("unused"))
            }
            async fn stream(&self, _: &ChatRequest) -> Result<ChatStream, ChatModelError> {
                struct Flag(Arc<std::sync::atomic::AtomicBool>);
                impl Drop for Flag {
                    fn drop(&mut self) {
                        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                let flag = Flag(self.0.clone());
                let pieces = futures::stream::repeat_with(move || {
                    let _alive = &flag;
                    ScriptedChatModel::piece("la ")
                })
                .then(|p| async {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    p
                });
                Ok(Box::pin(pieces))
            }
        }
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let base = service(Arc::new(ScriptedChatModel::default())).await;
        let endless = ChatService::new(
            base.retriever().clone(),
            Arc::new(PlainRenderer),
            Arc::new(Endless(dropped.clone())),
            settings(),
        );

        let mut events = endless.generate_stream(command(&[(Role::User, "hey")]));
        while !matches!(events.recv().await, Some(ReplyEvent::Delta(_))) {}
        drop(events);

        for _ in 0..100 {
            if dropped.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the upstream stream was not dropped");
    }
}
