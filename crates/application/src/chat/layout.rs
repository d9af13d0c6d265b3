//! The order of a prompt's messages, made for providers' prompt caches: what is stable for a
//! user and a character comes first and is byte-identical from turn to turn; what changes
//! comes after it.
//!
//! ```text
//! system   the stable part: character, scene, rules, constant lore        ← cache breakpoint
//! …        the chat history (oldest first; lore `at_depth` among it)
//! system   this turn's context: summary, triggered lore, facts
//! user     the last user message (and what follows it)
//! system   instructions after the history (post_history_instructions)
//! ```
//!
//! The history's first message moves in steps of a quarter of the window (never more than the
//! window is kept), so consecutive turns share the history's prefix too, not only the
//! system prompt.

use ragback_domain::{Message, Role};

use super::PromptStats;
use crate::ports::{ChatModel, PromptMessage, PromptRole, RenderedPrompt};

/// The first message of the window of at most `max` of `len` messages: it moves in steps of
/// `max / 4` (at least 1), so most turns start at the same message as the turn before.
pub(super) fn window_start(len: usize, max: usize) -> usize {
    if len <= max {
        return 0;
    }
    let step = step(max);
    (len - max).div_ceil(step) * step
}

fn step(max: usize) -> usize {
    (max / 4).max(1)
}

/// A rendered prompt and the history window, before the budget, with every part's tokens
/// counted once (for the local model a count is a tokenization).
pub(super) struct Layout {
    prompt: RenderedPrompt,
    history: Vec<PromptMessage>,
    /// Tokens of each history message.
    history_tokens: Vec<usize>,
    /// Tokens of the stable part (the first system message).
    stable_tokens: usize,
    /// Tokens of everything but the history.
    fixed_tokens: usize,
    /// Where the window starts in the chat.
    start: usize,
    step: usize,
}

/// Tokens of `content` as a system message.
fn system_tokens(model: &dyn ChatModel, content: &str) -> usize {
    model.count_tokens(&PromptMessage {
        role: PromptRole::System,
        content: content.to_owned(),
    })
}

/// Tokens of the stable part, and of everything but the history.
fn prompt_tokens(model: &dyn ChatModel, p: &RenderedPrompt) -> (usize, usize) {
    let system = |content: &str| system_tokens(model, content);
    let stable = system(&p.system);
    let fixed = stable
        + p.context.as_deref().map_or(0, system)
        + p.opening_cue.as_deref().map_or(0, system)
        + p.after_history.as_deref().map_or(0, system)
        + p.at_depth
            .iter()
            .map(|(_, text)| system(text))
            .sum::<usize>();
    (stable, fixed)
}

impl Layout {
    /// `messages[start..]` under `prompt`; `window` is the configured window's size.
    pub(super) fn new(
        model: &dyn ChatModel,
        prompt: RenderedPrompt,
        messages: &[Message],
        start: usize,
        window: usize,
    ) -> Self {
        let history: Vec<PromptMessage> = messages[start..]
            .iter()
            .map(|m| PromptMessage {
                role: match m.role {
                    Role::User => PromptRole::User,
                    Role::Character => PromptRole::Assistant,
                },
                content: m.text.as_str().to_owned(),
            })
            .collect();
        let history_tokens = history.iter().map(|m| model.count_tokens(m)).collect();
        let (stable_tokens, fixed_tokens) = prompt_tokens(model, &prompt);
        Self {
            prompt,
            history,
            history_tokens,
            stable_tokens,
            fixed_tokens,
            start,
            step: step(window),
        }
    }

    /// The same history under another rendering of the prompt (only the prompt is counted).
    pub(super) fn with_prompt(self, model: &dyn ChatModel, prompt: RenderedPrompt) -> Self {
        let (stable_tokens, fixed_tokens) = prompt_tokens(model, &prompt);
        Self {
            prompt,
            stable_tokens,
            fixed_tokens,
            ..self
        }
    }

    /// The whole prompt's tokens, history included.
    pub(super) fn tokens(&self) -> usize {
        self.fixed_tokens + self.history_tokens.iter().sum::<usize>()
    }

    /// Leaves out the oldest messages (in the window's steps) until the prompt fits `budget`
    /// tokens, then puts the messages in order. The stable system prompt and the last user
    /// message, with what follows it, always stay, even when they alone do not fit: the model
    /// then says so.
    pub(super) fn fit(self, budget: usize) -> (Vec<PromptMessage>, PromptStats) {
        let mut tokens = self.tokens();
        let counts = &self.history_tokens;
        let keep_from = self
            .history
            .iter()
            .rposition(|m| m.role == PromptRole::User)
            .unwrap_or(self.history.len());
        let mut first = 0;
        while tokens > budget && first < keep_from {
            let next = (first + self.step).min(keep_from);
            tokens -= counts[first..next].iter().sum::<usize>();
            first = next;
        }
        let Self {
            prompt,
            mut history,
            start,
            stable_tokens,
            ..
        } = self;
        let history: Vec<PromptMessage> = history.drain(first..).collect();
        let kept = history.len();
        // Inserts, by position in the kept history: lore at a depth, then the turn's context
        // right before the last user message.
        let mut inserts: Vec<(usize, PromptMessage)> = prompt
            .at_depth
            .into_iter()
            .map(|(depth, content)| (kept.saturating_sub(depth), system(content)))
            .collect();
        if let Some(context) = prompt.context {
            let before_user = keep_from.saturating_sub(first).min(kept);
            inserts.push((before_user, system(context)));
        }
        inserts.sort_by_key(|(at, _)| *at);
        let mut messages = Vec::with_capacity(kept + inserts.len() + 3);
        messages.push(system(prompt.system));
        let mut inserts = inserts.into_iter().peekable();
        for (i, message) in history.into_iter().enumerate() {
            while let Some((_, insert)) = inserts.next_if(|(at, _)| *at == i) {
                messages.push(insert);
            }
            messages.push(message);
        }
        messages.extend(inserts.map(|(_, m)| m));
        if let Some(cue) = prompt.opening_cue.filter(|_| kept == 0) {
            messages.push(PromptMessage {
                role: PromptRole::User,
                content: cue,
            });
        }
        if let Some(after) = prompt.after_history {
            messages.push(system(after));
        }
        let stats = PromptStats {
            tokens,
            messages: messages
                .iter()
                .skip(1)
                .filter(|m| m.role != PromptRole::System)
                .count(),
            dropped_messages: first,
            history_from: start + first,
            stable_tokens,
            summarized: 0,
        };
        (messages, stats)
    }
}

fn system(content: String) -> PromptMessage {
    PromptMessage {
        role: PromptRole::System,
        content,
    }
}

#[cfg(test)]
mod tests {
    use ragback_domain::MessageText;

    use super::*;
    use crate::testing::ScriptedChatModel;

    fn chat(n: usize, words: usize) -> Vec<Message> {
        (0..n)
            .map(|i| {
                let role = if i % 2 == 0 {
                    Role::User
                } else {
                    Role::Character
                };
                let text = format!("m{i} {}", "word ".repeat(words));
                Message::new(role, MessageText::parse(text.trim()).unwrap())
            })
            .collect()
    }

    fn prompt() -> RenderedPrompt {
        RenderedPrompt {
            system: "stable".into(),
            opening_cue: Some("open".into()),
            after_history: Some("after".into()),
            context: Some("context".into()),
            at_depth: vec![(2, "lore at 2".into())],
        }
    }

    fn contents(messages: &[PromptMessage]) -> Vec<&str> {
        messages
            .iter()
            .map(|m| m.content.split(' ').next().unwrap())
            .collect()
    }

    #[test]
    fn the_window_moves_in_steps_and_never_holds_more_than_asked() {
        assert_eq!(window_start(10, 20), 0);
        assert_eq!(window_start(21, 20), 5);
        assert_eq!(window_start(25, 20), 5);
        assert_eq!(window_start(26, 20), 10);
        for len in 0..200 {
            let start = window_start(len, 20);
            assert!(
                len - start <= 20 && (len <= 20 || len - start > 15),
                "{len}"
            );
        }
        assert_eq!(window_start(3, 1), 2);
    }

    #[test]
    fn the_stable_part_leads_and_the_context_precedes_the_last_user_message() {
        let model = ScriptedChatModel::default();
        let messages = chat(5, 1);
        let layout = Layout::new(&model, prompt(), &messages, 0, 20);
        let (fitted, stats) = layout.fit(10_000);
        assert_eq!(
            contents(&fitted),
            [
                "stable", "m0", "m1", "m2", "lore", "m3", "context", "m4", "after"
            ]
        );
        assert_eq!(stats.messages, 5);
        assert_eq!(stats.dropped_messages, 0);

        let (greeting, _) = Layout::new(&model, prompt(), &[], 0, 20).fit(10_000);
        assert_eq!(
            contents(&greeting),
            ["stable", "lore", "context", "open", "after"]
        );
    }

    #[test]
    fn the_oldest_messages_go_in_steps_and_the_last_user_message_stays() {
        let model = ScriptedChatModel::default();
        let messages = chat(9, 100);
        let layout = Layout::new(&model, prompt(), &messages, 0, 8);
        let all = layout.tokens();
        let each = model.count_tokens(&PromptMessage {
            role: PromptRole::User,
            content: messages[0].text.as_str().to_owned(),
        });
        let (fitted, stats) = Layout::new(&model, prompt(), &messages, 0, 8).fit(all - each);
        assert_eq!(stats.dropped_messages, 2, "a step of 8 / 4");
        assert_eq!(stats.history_from, 2);
        assert_eq!(contents(&fitted)[1], "m2");
        assert_eq!(stats.tokens, all - 2 * each);

        let (least, stats) = Layout::new(&model, prompt(), &messages, 0, 8).fit(1);
        assert_eq!(stats.dropped_messages, 8);
        assert_eq!(
            contents(&least),
            ["stable", "lore", "context", "m8", "after"]
        );
    }
}
