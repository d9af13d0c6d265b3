//! The guard applied to a turn ([`crate::guard`]): the screen of the user's message and the
//! instructions it adds to the prompt, the decision on a whole reply (asked again once, replaced
//! or trimmed by the policy), and the outlet of a streamed reply, which releases text only a
//! whole sentence at a time, each after the guard passed it.

use ragback_domain::Role;
use tokio::sync::mpsc;

use super::record::Reply;
use super::request::{Deadline, Prepared};
use super::{ChatService, GenerateCommand, GenerateError, ReplyEvent};
use crate::guard::{
    CRISIS_INSTRUCTION, Decision, MINOR_INSTRUCTION, ReplyGuard, Review, SafetyAction,
    SafetyOutcome, Screen, SentenceGate, corrective_instruction, is_unfinished, split_sentences,
    trim_unfinished,
};
use crate::ports::{GuardInput, GuardTag, PromptMessage, PromptRole, Speaker};
use crate::variants::Variant;

impl ChatService {
    /// The same service, every reply checked by `guard`.
    pub fn with_guard(self, guard: ReplyGuard) -> Self {
        Self {
            guard: Some(guard),
            ..self
        }
    }

    /// The guard, when replies are checked.
    pub fn guard(&self) -> Option<&ReplyGuard> {
        self.guard.as_ref()
    }

    /// The guard of `variant`'s replies: the service's, as the variant changes it.
    pub(super) fn guard_for(&self, variant: &Variant) -> Option<ReplyGuard> {
        let guard = self.guard.as_ref()?;
        Some(match &variant.guard {
            Some(changes) => guard.for_variant(changes),
            None => guard.clone(),
        })
    }

    /// The screen of a turn before its prompt: a minor, a crisis.
    pub(super) async fn screen(&self, cmd: &GenerateCommand, guard: Option<&ReplyGuard>) -> Screen {
        let Some(guard) = guard else {
            return Screen::default();
        };
        let minor = cmd.user.age.is_some_and(|age| age.years() < 18);
        let last = cmd
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.text.as_str());
        let screen = guard
            .screen(
                last,
                cmd.user.name.as_str(),
                cmd.character.name.as_str(),
                minor,
            )
            .await;
        if screen.crisis {
            tracing::warn!(
                "the user's message shows self-harm intent: the crisis protocol applies"
            );
        }
        screen
    }

    /// The whole reply, checked, with what the guard did (`None` without a guard).
    pub(super) async fn guarded_reply(
        &self,
        prepared: &Prepared,
        turn: Deadline,
        screen: &Screen,
    ) -> Result<Reply, GenerateError> {
        let first = self.reply(prepared, turn).await?;
        let Some(guard) = &prepared.guard else {
            return Ok(first);
        };
        let mut outcome = SafetyOutcome::pass(screen, guard.policy());
        let mut reply = self
            .judge(guard, prepared, turn, screen, first, &mut outcome)
            .await;
        outcome.record();
        reply.safety = Some(outcome);
        Ok(reply)
    }

    /// Applies the policy to `reply`: let through, trimmed, asked again once (a safety tag that
    /// stays is replaced; a consistency tag that stays leaves the best cleaned attempt), or
    /// replaced. Never fails: a second attempt that fails falls back on the first's outcome.
    async fn judge(
        &self,
        guard: &ReplyGuard,
        prepared: &Prepared,
        turn: Deadline,
        screen: &Screen,
        mut reply: Reply,
        outcome: &mut SafetyOutcome,
    ) -> Reply {
        if reply.cut && is_unfinished(&reply.text) {
            let trimmed = trim_unfinished(&reply.text);
            if trimmed.len() < reply.text.len() {
                reply.text = trimmed.to_owned();
                outcome.flag(&[GuardTag::Truncated]);
                outcome.action = SafetyAction::Trimmed;
            }
        }
        let review = guard.review(&input(prepared, &reply.text, screen)).await;
        note(outcome, &review);
        let tags = match guard.decide(&review, screen.minor) {
            Decision::Pass => return reply,
            Decision::Trim => {
                reply.text = trim_unfinished(&reply.text).to_owned();
                outcome.action = SafetyAction::Trimmed;
                return reply;
            }
            Decision::Replace(tag) => return replaced(guard, reply, tag, outcome),
            Decision::Regenerate(tags) => tags,
        };
        let corrected = prepared.corrected(&corrective_instruction(&tags));
        let second = match self.reply(&corrected, turn).await {
            Ok(second) => second,
            Err(error) => {
                tracing::warn!(%error, "the corrected attempt failed");
                return self
                    .settle(guard, prepared, screen, reply, &tags, outcome)
                    .await;
            }
        };
        let mut second = second.after(&reply);
        let review = guard.review(&input(prepared, &second.text, screen)).await;
        note(outcome, &review);
        match guard.decide(&review, screen.minor) {
            Decision::Pass => {
                outcome.action = SafetyAction::Regenerated;
                second
            }
            Decision::Trim => {
                second.text = trim_unfinished(&second.text).to_owned();
                outcome.action = SafetyAction::Regenerated;
                second
            }
            Decision::Replace(tag) => replaced(guard, second, tag, outcome),
            Decision::Regenerate(again) => {
                self.settle(guard, prepared, screen, second, &again, outcome)
                    .await
            }
        }
    }

    /// The end of a reply that still raises `tags` after its one second chance: replaced for a
    /// safety tag; for consistency tags, its sentences that pass (replaced when none does).
    async fn settle(
        &self,
        guard: &ReplyGuard,
        prepared: &Prepared,
        screen: &Screen,
        mut reply: Reply,
        tags: &[GuardTag],
        outcome: &mut SafetyOutcome,
    ) -> Reply {
        if let Some(tag) = tags.iter().find(|t| t.is_safety()) {
            return replaced(guard, reply, Some(*tag), outcome);
        }
        let mut kept = String::new();
        for sentence in split_sentences(&reply.text) {
            let review = guard.review(&input(prepared, sentence, screen)).await;
            if review.tags.is_empty() && review.failed.is_none() {
                kept.push_str(sentence);
            }
        }
        let kept = trim_unfinished(kept.trim()).to_owned();
        if kept.is_empty() {
            return replaced(guard, reply, tags.first().copied(), outcome);
        }
        reply.text = kept;
        outcome.action = SafetyAction::Regenerated;
        reply
    }

    /// Where a streamed reply's clean pieces go: straight to the client without a guard, else
    /// one checked sentence at a time.
    pub(super) fn outlet<'a>(
        &'a self,
        events: &'a mpsc::Sender<ReplyEvent>,
        prepared: &'a Prepared,
        screen: &'a Screen,
    ) -> Outlet<'a> {
        Outlet {
            events,
            gated: prepared.guard.as_ref().map(|guard| Gated {
                guard,
                prepared,
                screen,
                gate: SentenceGate::default(),
                sent: String::new(),
                outcome: SafetyOutcome::pass(screen, guard.policy()),
                blocked: None,
            }),
        }
    }

    /// The end of a guarded stream: what was blocked resolved by the policy, the text the client
    /// received and the outcome set on `reply`. `Err(())`: the client left.
    pub(super) async fn settle_stream(
        &self,
        outlet: Outlet<'_>,
        turn: Deadline,
        mut reply: Reply,
    ) -> Result<Reply, ()> {
        let Some(mut gated) = outlet.gated else {
            return Ok(reply);
        };
        let events = outlet.events;
        if let Some(blocked) = gated.blocked.take() {
            let mut outcome = gated.outcome;
            if gated.sent.is_empty() {
                // Nothing was shown: the blocked attempt is judged whole, asked again if need be.
                reply.text = blocked;
                reply = self
                    .judge(
                        gated.guard,
                        gated.prepared,
                        turn,
                        gated.screen,
                        reply,
                        &mut outcome,
                    )
                    .await;
                send(events, &reply.text).await?;
                gated.sent = reply.text.clone();
            } else if outcome.flags.iter().any(|t| t.is_safety()) || outcome.guard_error.is_some() {
                let tag = outcome.flags.iter().find(|t| t.is_safety()).copied();
                let deflection = format!(" {}", gated.guard.deflection(tag));
                send(events, &deflection).await?;
                gated.sent.push_str(&deflection);
                outcome.action = SafetyAction::Replaced;
            } else {
                outcome.action = SafetyAction::Trimmed;
            }
            gated.outcome = outcome;
        }
        reply.text = gated.sent;
        gated.outcome.record();
        reply.safety = Some(gated.outcome);
        Ok(reply)
    }
}

/// The guard's input for a reply's text.
fn input<'a>(prepared: &'a Prepared, text: &'a str, screen: &Screen) -> GuardInput<'a> {
    GuardInput {
        text,
        speaker: Speaker::Character,
        user_name: &prepared.listener,
        character_name: &prepared.speaker,
        minor: screen.minor,
        replying_to: prepared
            .request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == PromptRole::User)
            .map(|m| m.content.as_str()),
    }
}

/// Adds a review's tags and failure to the outcome.
fn note(outcome: &mut SafetyOutcome, review: &Review) {
    outcome.flag(&review.tags);
    if let Some(error) = &review.failed {
        outcome.guard_error = Some(error.kind());
    }
}

/// `reply` replaced by the deflection of `tag`.
fn replaced(
    guard: &ReplyGuard,
    mut reply: Reply,
    tag: Option<GuardTag>,
    outcome: &mut SafetyOutcome,
) -> Reply {
    reply.text = guard.deflection(tag).to_owned();
    outcome.action = SafetyAction::Replaced;
    reply
}

async fn send(events: &mpsc::Sender<ReplyEvent>, text: &str) -> Result<(), ()> {
    if text.is_empty() {
        return Ok(());
    }
    events
        .send(ReplyEvent::Delta(text.to_owned()))
        .await
        .map_err(|_| ())
}

/// A streamed reply's way to the client.
pub(super) struct Outlet<'a> {
    events: &'a mpsc::Sender<ReplyEvent>,
    gated: Option<Gated<'a>>,
}

/// The guard's side of a streamed reply.
struct Gated<'a> {
    guard: &'a ReplyGuard,
    prepared: &'a Prepared,
    screen: &'a Screen,
    gate: SentenceGate,
    /// What the client received.
    sent: String,
    outcome: SafetyOutcome,
    /// The text held back when a sentence did not pass: the model is read no further.
    blocked: Option<String>,
}

impl Outlet<'_> {
    /// Passes a clean piece on: at once without a guard; else held until its sentence is whole,
    /// then sent if the guard passes it. `Ok(false)`: a sentence was blocked, stop reading the
    /// model. `Err(())`: the client left.
    pub(super) async fn piece(&mut self, piece: String) -> Result<bool, ()> {
        let Some(gated) = &mut self.gated else {
            send(self.events, &piece).await?;
            return Ok(true);
        };
        match gated.gate.push(&piece) {
            Some(sentences) => gated.release(self.events, sentences, false).await,
            None => Ok(true),
        }
    }

    /// The model's reply ended: its unfinished tail is checked too (and dropped when it is only
    /// cut off after whole sentences).
    pub(super) async fn finish(&mut self) -> Result<(), ()> {
        let Some(gated) = &mut self.gated else {
            return Ok(());
        };
        if gated.blocked.is_some() {
            return Ok(());
        }
        if let Some(rest) = gated.gate.finish() {
            gated.release(self.events, rest, true).await?;
        }
        Ok(())
    }
}

impl Gated<'_> {
    async fn release(
        &mut self,
        events: &mpsc::Sender<ReplyEvent>,
        text: String,
        last: bool,
    ) -> Result<bool, ()> {
        // The text so far with the new part: a pattern across two releases (an address, then its
        // time) is seen too.
        let so_far = format!("{}{text}", self.sent);
        let review = self
            .guard
            .review(&input(self.prepared, &so_far, self.screen))
            .await;
        note(&mut self.outcome, &review);
        match self.guard.decide(&review, self.screen.minor) {
            Decision::Pass => {}
            Decision::Trim if last && !self.sent.is_empty() && is_unfinished(&text) => {
                // A reply cut mid-sentence ends at its last whole one.
                self.outcome.action = SafetyAction::Trimmed;
                return Ok(false);
            }
            Decision::Trim => {}
            Decision::Regenerate(_) | Decision::Replace(_) => {
                self.blocked = Some(so_far);
                return Ok(false);
            }
        }
        send(events, &text).await?;
        self.sent.push_str(&text);
        Ok(true)
    }
}

impl Prepared {
    /// The same request with `instruction` after the conversation, as a system message.
    fn corrected(&self, instruction: &str) -> Self {
        let mut request = self.request.clone();
        request.messages.push(PromptMessage {
            role: PromptRole::System,
            content: instruction.to_owned(),
        });
        Self {
            request,
            speaker: self.speaker.clone(),
            listener: self.listener.clone(),
            variant: self.variant.clone(),
            guard: self.guard.clone(),
            lore: self.lore.clone(),
            summary_job: None,
            ..*self
        }
    }

    /// Adds the screen's instructions to the system prompt.
    pub(super) fn instruct(&mut self, screen: &Screen) {
        let extra: Vec<&str> = [
            screen.crisis.then_some(CRISIS_INSTRUCTION),
            screen.minor.then_some(MINOR_INSTRUCTION),
        ]
        .into_iter()
        .flatten()
        .collect();
        if extra.is_empty() {
            return;
        }
        if let Some(system) = self
            .request
            .messages
            .first_mut()
            .filter(|m| m.role == PromptRole::System)
        {
            for instruction in extra {
                system.content.push_str("\n\n");
                system.content.push_str(instruction);
            }
        }
    }
}

impl Reply {
    /// This reply, written after `earlier`: their tokens and model time add up.
    fn after(mut self, earlier: &Reply) -> Self {
        self.usage = match (earlier.usage, self.usage) {
            (Some(a), Some(b)) => Some(a.plus(b)),
            (a, b) => a.or(b),
        };
        self.llm += earlier.llm;
        self
    }
}
