//! The reply as it is written: [`ChatService::generate_stream`] and its [`ReplyEvent`]s.

use futures::StreamExt;
use ragback_domain::{ReplyStream, ScoredFact};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use super::attempt::{AttemptError, UsageTally, generation_error};
use super::record::{Reply, TurnRecord};
use super::request::Prepared;
use super::{ChatService, GenerateCommand, GenerateError, Generation};
use crate::guard::Screen;
use crate::ports::{ChatChunk, ChatStream, TokenUsage};
use crate::retrieval::RetrievalStatus;
use crate::retry::retry;

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
    Done(Box<Generation>),
    /// The generation failed; nothing follows.
    Failed(GenerateError),
}

impl ChatService {
    /// Generates the character's next line as a stream of events: the facts, the clean reply in
    /// pieces as the model writes it, then the whole generation or the error. Failed attempts
    /// before the first piece is sent are retried like [`generate`](Self::generate)'s (an empty
    /// reply is one); after it they end the stream. Dropping the receiver cancels the generation
    /// and closes the upstream request.
    pub fn generate_stream(&self, cmd: GenerateCommand) -> mpsc::Receiver<ReplyEvent> {
        let (events, receiver) = mpsc::channel(64);
        let span = tracing::info_span!(
            "generate_stream",
            user = cmd.user.id.as_ref().map(|id| id.as_str()),
            character = cmd.character.id.as_ref().map(|id| id.as_str()),
            messages = cmd.messages.len(),
            variant = tracing::field::Empty,
        );
        let this = self.clone();
        let task = async move {
            tokio::select! {
                () = events.closed() => tracing::info!("the client left: generation cancelled"),
                () = this.run_stream(cmd, &events) => {}
            }
        };
        tokio::spawn(task.instrument(span));
        receiver
    }

    async fn run_stream(&self, cmd: GenerateCommand, events: &mpsc::Sender<ReplyEvent>) {
        let record = TurnRecord::start();
        let turn = self.turn_deadline(record.started(), cmd.timeout);
        let variant = self.variant_of(&cmd);
        let guard = self.guard_for(&variant);
        let screen = self.screen(&cmd, guard.as_ref()).await;
        let (retrieval, prepared) = self.prepare(cmd, &variant, guard, turn.at).await;
        let facts = ReplyEvent::Facts {
            status: retrieval.status,
            facts: retrieval.facts.clone(),
        };
        if events.send(facts).await.is_err() {
            return;
        }
        let streamed = match prepared {
            Ok(mut prepared) => {
                prepared.instruct(&screen);
                let reply = self.stream_reply(&prepared, turn, events, &screen).await;
                if reply.is_ok() {
                    self.queue_summary(prepared.summary_job.take()).await;
                }
                reply
            }
            Err(error) => Err(Some(error)),
        };
        let event = match streamed {
            Ok(reply) => ReplyEvent::Done(Box::new(record.finish(retrieval, reply))),
            Err(Some(error)) => {
                record.fail(&error, &variant.name);
                ReplyEvent::Failed(error)
            }
            // The client left.
            Err(None) => return,
        };
        let _ = events.send(event).await;
    }

    /// Streams the model's reply into `events` as clean pieces (through the guard, when there
    /// is one: a sentence at a time). `Err(None)` when the client left.
    async fn stream_reply(
        &self,
        prepared: &Prepared,
        turn: super::request::Deadline,
        events: &mpsc::Sender<ReplyEvent>,
        screen: &Screen,
    ) -> Result<Reply, Option<GenerateError>> {
        let started = Instant::now();
        let deadline = self.model_deadline(turn);
        let usage = UsageTally::default();
        let opened = retry(&self.settings.retry, deadline.at, "model stream", || {
            self.open_stream(prepared, &usage)
        })
        .await;
        let mut open = opened
            .map_err(|error| Some(generation_error(error, deadline, self.model.slow_hint())))?;
        let first_token = open.first_token.map(|t| t - started);
        let mut outlet = self.outlet(events, prepared, screen);
        let mut reading = true;
        if let Some(piece) = open.first.take() {
            reading = outlet.piece(piece).await.map_err(|()| None)?;
        }
        while reading && !open.ended {
            match tokio::time::timeout_at(deadline.at, open.stream.next()).await {
                Ok(Some(Ok(chunk))) => {
                    open.absorb(&chunk);
                    if let Some(piece) = open.reply.push(&chunk.text) {
                        reading = outlet.piece(piece).await.map_err(|()| None)?;
                    }
                }
                Ok(Some(Err(source))) => {
                    tracing::warn!(error = %source, "the model stream failed after the first piece");
                    return Err(Some(GenerateError::ModelFailed {
                        attempts: 1,
                        source,
                    }));
                }
                Ok(None) => open.ended = true,
                Err(_elapsed) => {
                    metrics::counter!(
                        "ragback_upstream_failures_total",
                        "operation" => "model stream",
                        "cause" => "deadline"
                    )
                    .increment(1);
                    return Err(Some(GenerateError::DeadlineExceeded {
                        deadline: deadline.length,
                        attempts: 1,
                        hint: self.model.slow_hint(),
                    }));
                }
            }
        }
        if reading {
            if let Some(piece) = open.reply.finish() {
                reading = outlet.piece(piece).await.map_err(|()| None)?;
            }
            if reading {
                outlet.finish().await.map_err(|()| None)?;
            }
        }
        usage.add(open.usage);
        let reply = Reply {
            text: open.reply.text().to_owned(),
            model: open
                .model
                .unwrap_or_else(|| prepared.request.params.model.clone()),
            usage: usage.total(),
            render: prepared.render,
            prompt: prepared.stats,
            llm: started.elapsed(),
            first_token,
            variant: prepared.variant.clone(),
            lore: prepared.lore.clone(),
            safety: None,
            cut: false,
        };
        self.settle_stream(outlet, turn, reply)
            .await
            .map_err(|()| None)
    }

    /// Opens a model stream and reads it until the first clean piece can be shown (or the reply
    /// ends). Failures here are still retryable: nothing has been sent.
    async fn open_stream(
        &self,
        prepared: &Prepared,
        usage: &UsageTally,
    ) -> Result<OpenStream, AttemptError> {
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
                        usage.add(open.usage);
                        return Err(AttemptError::Empty);
                    }
                }
            }
        }
        Ok(open)
    }
}

/// A model stream that has produced its first clean piece.
struct OpenStream {
    stream: ChatStream,
    reply: ReplyStream,
    first: Option<String>,
    first_token: Option<Instant>,
    model: Option<String>,
    /// The latest usage the stream reported (providers send it on the last chunk).
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use ragback_domain::Role;

    use super::super::fixtures::{command, deltas, done_chunk, service, stream_events};
    use super::*;
    use crate::ports::ChatModelError;
    use crate::testing::{EndlessChatModel, ScriptedChatModel, StallingChatModel};

    fn marathon() -> GenerateCommand {
        command(&[(Role::User, "I ran the london marathon")])
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

        let events = stream_events(&service(model).await, marathon()).await;

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

        let events = stream_events(&service(model.clone()).await, marathon()).await;

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

        let events = stream_events(&service(model.clone()).await, marathon()).await;

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

        let events = stream_events(&service(model.clone()).await, marathon()).await;

        assert_eq!(
            events.last(),
            Some(&ReplyEvent::Failed(GenerateError::EmptyReply {
                attempts: 3
            }))
        );
        assert_eq!(model.requests().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_stream_ends_at_the_deadline() {
        let stalling = service(Arc::new(StallingChatModel)).await;

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

    #[tokio::test]
    async fn dropping_the_receiver_stops_the_generation() {
        let model = Arc::new(EndlessChatModel::default());
        let endless = service(model.clone()).await;

        let mut events = endless.generate_stream(command(&[(Role::User, "hey")]));
        while !matches!(events.recv().await, Some(ReplyEvent::Delta(_))) {}
        drop(events);

        for _ in 0..100 {
            if model.stream_dropped() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the upstream stream was not dropped");
    }
}
