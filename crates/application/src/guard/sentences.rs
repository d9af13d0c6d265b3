//! Sentences of a reply as it streams: text is released only up to the end of its last whole
//! sentence, so that each release can be checked before anyone reads it.

/// Whether `c` ends a sentence (or an action in asterisks).
fn ends_sentence(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…' | '*' | '\n' | '。' | '！' | '？')
}

/// Closing marks that stay with the sentence they close.
fn closes(c: char) -> bool {
    matches!(c, '"' | '\'' | '”' | '’' | ')' | ']' | '»')
}

/// Where each whole sentence of `text` ends: a sentence's end (with its closing quotes), followed
/// by whitespace or at a line break; as the byte offset after it, and after the whitespace that
/// follows it.
fn sentence_ends(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        while let Some((i, c)) = chars.next() {
            if !ends_sentence(c) {
                continue;
            }
            let mut stop = i + c.len_utf8();
            while let Some(&(j, next)) = chars.peek() {
                if closes(next) || ends_sentence(next) {
                    stop = j + next.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            if c == '\n' || chars.peek().is_some_and(|(_, next)| next.is_whitespace()) {
                let mut after = stop;
                while let Some(&(j, next)) = chars.peek() {
                    if !next.is_whitespace() {
                        break;
                    }
                    after = j + next.len_utf8();
                    chars.next();
                }
                return Some((stop, after));
            }
        }
        None
    })
}

/// The byte length of the longest prefix of `text` made of whole sentences: up to a sentence's
/// end (with its closing quotes) followed by whitespace. `None` when there is no whole sentence.
pub fn whole_sentences(text: &str) -> Option<usize> {
    sentence_ends(text).last().map(|(end, _)| end)
}

/// The sentences of `text`, each with the whitespace after it; an unfinished tail is the last.
/// Nothing is lost: the parts concatenate to `text`.
pub fn split_sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (_, after) in sentence_ends(text) {
        out.push(&text[start..after]);
        start = after;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// `text` without its unfinished last sentence, when it has a whole one before it.
pub fn trim_unfinished(text: &str) -> &str {
    let trimmed = text.trim_end();
    if trimmed
        .chars()
        .last()
        .is_some_and(|c| ends_sentence(c) || closes(c))
    {
        return trimmed;
    }
    match whole_sentences(trimmed) {
        Some(end) => trimmed[..end].trim_end(),
        None => trimmed,
    }
}

/// Whether `text` stops mid-sentence.
pub fn is_unfinished(text: &str) -> bool {
    text.trim_end()
        .chars()
        .last()
        .is_some_and(|c| !ends_sentence(c) && !closes(c))
}

/// The most text held back waiting for a sentence to end: past it, the text up to its last
/// space is released (checked like a sentence), so that a run-on sentence still streams.
pub const MAX_HELD_CHARS: usize = 200;

/// Holds streamed text until its sentences are whole.
#[derive(Debug, Default)]
pub struct SentenceGate {
    pending: String,
}

impl SentenceGate {
    /// Adds a piece; returns the whole sentences it completes, if any (or, past
    /// [`MAX_HELD_CHARS`], the held text up to its last space).
    pub fn push(&mut self, piece: &str) -> Option<String> {
        self.pending.push_str(piece);
        let end = whole_sentences(&self.pending).or_else(|| {
            (self.pending.chars().count() > MAX_HELD_CHARS)
                .then(|| self.pending.trim_end().rfind(char::is_whitespace))
                .flatten()
                .filter(|end| *end > 0)
        })?;
        let rest = self.pending.split_off(end);
        Some(std::mem::replace(&mut self.pending, rest))
    }

    /// What is left at the end of the reply.
    pub fn finish(&mut self) -> Option<String> {
        Some(std::mem::take(&mut self.pending)).filter(|rest| !rest.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_sentences_are_released_and_nothing_is_lost() {
        let mut gate = SentenceGate::default();
        let mut out = String::new();
        for piece in [
            "*gri",
            "ns* Yo",
            " John! How",
            "'s it goin",
            "g?\" Tell me",
            " more",
        ] {
            if let Some(released) = gate.push(piece) {
                out.push_str(&released);
            }
        }
        assert_eq!(out, "*grins* Yo John! How's it going?\"");
        out.push_str(&gate.finish().unwrap());
        assert_eq!(out, "*grins* Yo John! How's it going?\" Tell me more");
        assert_eq!(gate.finish(), None);
    }

    #[test]
    fn a_text_splits_into_its_sentences_and_nothing_is_lost() {
        let text = "*grins* Yo John! As an AI I can't. See you at 5pm";
        let parts = split_sentences(text);
        assert_eq!(
            parts,
            [
                "*grins* ",
                "Yo John! ",
                "As an AI I can't. ",
                "See you at 5pm"
            ]
        );
        assert_eq!(parts.concat(), text);
        assert_eq!(split_sentences(""), Vec::<&str>::new());
    }

    #[test]
    fn a_run_on_sentence_is_released_at_a_space_once_too_long() {
        let mut gate = SentenceGate::default();
        let mut released = String::new();
        for _ in 0..100 {
            if let Some(text) = gate.push(" la") {
                assert!(text.chars().count() <= MAX_HELD_CHARS + 3, "{}", text.len());
                released.push_str(&text);
            }
        }
        assert!(!released.is_empty(), "nothing was released");
        released.push_str(&gate.finish().unwrap_or_default());
        assert_eq!(released, " la".repeat(100));
    }

    #[test]
    fn a_cut_reply_is_trimmed_to_its_last_whole_sentence() {
        assert_eq!(
            trim_unfinished("*nods* Sure thing. And then we"),
            "*nods* Sure thing."
        );
        assert_eq!(trim_unfinished("*nods* Sure thing."), "*nods* Sure thing.");
        assert_eq!(trim_unfinished("no end at all"), "no end at all");
        assert!(is_unfinished("*waves* and then we"));
        assert!(!is_unfinished("*waves* Bye!\""));
        assert_eq!(
            whole_sentences("3.5 apples"),
            None,
            "a decimal point ends nothing"
        );
    }
}
