//! Turning a raw model reply into one clean line of dialogue.

/// Markdown emphasis markers that may wrap a name prefix (`**Blaze:**`, `*Blaze*:`).
const MARKUP: [char; 2] = ['*', '_'];
/// The longest parenthetical accepted between a name and its colon (`Blaze (19):`).
const MAX_PARENTHETICAL_BYTES: usize = 40;

/// Cleans a model reply written as `speaker` to `listener`:
/// - strips leading `Speaker:` prefixes, repeated or decorated (`**Blaze:**`, `Blaze (19):`);
/// - cuts the reply where the model starts writing the listener's turn (a line `Listener: …`);
/// - trims surrounding whitespace.
///
/// The result may be empty: the caller decides what an empty reply means.
pub fn clean_reply(raw: &str, speaker: &str, listener: &str) -> String {
    let mut text = raw.trim().to_owned();
    // Each round removes at least the name, so this ends.
    while let Some(rest) = strip_name_prefix(&text, speaker) {
        text = rest.trim().to_owned();
    }
    if let Some(cut) = listener_turn_start(&text, listener) {
        text.truncate(cut);
        text.truncate(text.trim_end().len());
    }
    text
}

/// When `text` starts with `name:` (optionally decorated), returns the text without the prefix.
fn strip_name_prefix(text: &str, name: &str) -> Option<String> {
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let opening = text.len() - text.trim_start_matches(MARKUP).len();
    let after_name = strip_prefix_ignore_case(&text[opening..], name)?;
    // The name must end on a word boundary: `Blazer:` is not `Blaze:`.
    if after_name.chars().next().is_some_and(char::is_alphanumeric) {
        return None;
    }
    let closing_before_colon = after_name.len() - after_name.trim_start_matches(MARKUP).len();
    let mut rest = after_name[closing_before_colon..].trim_start_matches([' ', '\t']);
    if let Some(inner) = rest.strip_prefix('(') {
        let end = inner.find(')')?;
        if end > MAX_PARENTHETICAL_BYTES {
            return None;
        }
        rest = inner[end + 1..].trim_start_matches([' ', '\t']);
    }
    let rest = rest.strip_prefix(':').or_else(|| rest.strip_prefix('：'))?;
    let closing_after_colon = rest.len() - rest.trim_start_matches(MARKUP).len();
    let rest = &rest[closing_after_colon..];
    if opening > 0 && closing_before_colon == 0 && closing_after_colon == 0 {
        // `*Blaze: grins*` is an action that starts with the name: keep the action's markup.
        return Some(format!("{}{}", &text[..opening], rest.trim_start()));
    }
    Some(rest.to_owned())
}

/// Case-insensitive `strip_prefix` that works for any script.
fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let mut chars = text.char_indices();
    for expected in prefix.chars() {
        let (_, actual) = chars.next()?;
        if !actual.to_lowercase().eq(expected.to_lowercase()) {
            return None;
        }
    }
    let end = chars.next().map_or(text.len(), |(index, _)| index);
    Some(&text[end..])
}

/// The byte offset of the first line (after the first) that opens the listener's turn.
fn listener_turn_start(text: &str, listener: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > 0 && strip_name_prefix(line.trim_start(), listener).is_some() {
            return Some(offset);
        }
        offset += line.len();
    }
    None
}

/// Cleans a reply that arrives in pieces (a streamed completion), emitting as early as possible
/// only text that [`clean_reply`] of the whole reply will also start with: a `Bla` + `ze:` split is
/// still stripped, and a last line that may yet open the listener's turn is held back until it is
/// decided. What [`push`](Self::push) and [`finish`](Self::finish) return, concatenated, equals
/// `clean_reply` of everything pushed.
///
/// Each piece re-cleans the reply so far; replies are a few hundred bytes, so this stays cheap.
#[derive(Debug, Clone)]
pub struct ReplyStream {
    speaker: String,
    listener: String,
    raw: String,
    emitted: String,
}

impl ReplyStream {
    /// A stream of a reply written as `speaker` to `listener`.
    pub fn new(speaker: &str, listener: &str) -> Self {
        Self {
            speaker: speaker.to_owned(),
            listener: listener.to_owned(),
            raw: String::new(),
            emitted: String::new(),
        }
    }

    /// Adds a piece of the raw reply; returns the clean text that can be shown now, if any.
    pub fn push(&mut self, piece: &str) -> Option<String> {
        self.raw.push_str(piece);
        if self.head_undecided() {
            return None;
        }
        let clean = clean_reply(&self.raw, &self.speaker, &self.listener);
        let safe = match clean.rfind('\n') {
            Some(newline)
                if may_become_prefix(clean[newline + 1..].trim_start(), &self.listener) =>
            {
                clean[..newline].trim_end()
            }
            _ => clean.as_str(),
        };
        self.emit_up_to(safe)
    }

    /// Ends the reply; returns the clean text not shown yet, if any.
    pub fn finish(&mut self) -> Option<String> {
        let clean = clean_reply(&self.raw, &self.speaker, &self.listener);
        self.emit_up_to(&clean)
    }

    /// The clean text shown so far (after `finish`, the whole clean reply).
    pub fn text(&self) -> &str {
        &self.emitted
    }

    /// Whether the start of the reply may still turn out to be a `Speaker:` prefix.
    fn head_undecided(&self) -> bool {
        let mut rest = self.raw.trim_start().to_owned();
        while let Some(stripped) = strip_name_prefix(&rest, &self.speaker) {
            rest = stripped.trim_start().to_owned();
        }
        may_become_prefix(&rest, &self.speaker)
    }

    fn emit_up_to(&mut self, safe: &str) -> Option<String> {
        let piece = safe.strip_prefix(self.emitted.as_str())?;
        if piece.is_empty() {
            return None;
        }
        let piece = piece.to_owned();
        self.emitted.push_str(&piece);
        Some(piece)
    }
}

/// Whether more text could turn `text` into a `name:` prefix that [`strip_name_prefix`] strips
/// (mirrors its grammar: markup, the name, markup, an optional parenthetical, a colon).
fn may_become_prefix(text: &str, name: &str) -> bool {
    let name = name.trim();
    if name.is_empty() {
        return false;
    }
    let mut chars = text.trim_start_matches(MARKUP).chars();
    for expected in name.chars() {
        match chars.next() {
            None => return true,
            Some(actual) if actual.to_lowercase().eq(expected.to_lowercase()) => {}
            Some(_) => return false,
        }
    }
    let after = chars.as_str();
    if after.chars().next().is_some_and(char::is_alphanumeric) {
        return false;
    }
    let rest = after
        .trim_start_matches(MARKUP)
        .trim_start_matches([' ', '\t']);
    if rest.is_empty() {
        return true;
    }
    let Some(inner) = rest.strip_prefix('(') else {
        return false;
    };
    match inner.find(')') {
        None => inner.len() <= MAX_PARENTHETICAL_BYTES,
        Some(end) => {
            end <= MAX_PARENTHETICAL_BYTES
                && inner[end + 1..].trim_start_matches([' ', '\t']).is_empty()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn clean(raw: &str) -> String {
        clean_reply(raw, "Blaze", "John")
    }

    #[test]
    fn plain_reply_is_only_trimmed() {
        assert_eq!(clean("  *grins* Yo John!  \n"), "*grins* Yo John!");
    }

    #[test]
    fn name_prefixes_are_stripped_even_repeated() {
        assert_eq!(clean("Blaze: Yo!"), "Yo!");
        assert_eq!(clean("Blaze: blaze:  Yo!"), "Yo!");
        assert_eq!(clean("BLAZE：Yo!"), "Yo!");
    }

    #[test]
    fn decorated_prefixes_are_stripped() {
        assert_eq!(clean("**Blaze:** *grins* Yo!"), "*grins* Yo!");
        assert_eq!(clean("**Blaze**: Yo!"), "Yo!");
        assert_eq!(clean("Blaze (19): Yo!"), "Yo!");
    }

    #[test]
    fn an_action_that_starts_with_the_name_keeps_its_markup() {
        assert_eq!(clean("*Blaze: grins* Yo!"), "*grins* Yo!");
    }

    #[test]
    fn the_name_inside_the_reply_is_kept() {
        assert_eq!(clean("Blaze says hi"), "Blaze says hi");
        assert_eq!(clean("Blazer: hi"), "Blazer: hi");
        assert_eq!(clean("Yo. Blaze: that's me"), "Yo. Blaze: that's me");
    }

    #[test]
    fn the_listeners_turn_is_cut_off() {
        assert_eq!(
            clean("*nods* Cool, bro.\nJohn: Thanks!\nBlaze: Anytime."),
            "*nods* Cool, bro."
        );
    }

    #[test]
    fn a_reply_that_is_only_a_prefix_becomes_empty() {
        assert_eq!(clean("Blaze:"), "");
        assert_eq!(clean("   "), "");
    }

    /// Pushes `pieces`, returning what was shown after each and the final text.
    fn stream(pieces: &[&str]) -> (Vec<Option<String>>, String) {
        let mut reply = ReplyStream::new("Blaze", "John");
        let mut shown: Vec<Option<String>> = pieces.iter().map(|p| reply.push(p)).collect();
        shown.push(reply.finish());
        (shown, reply.text().to_owned())
    }

    #[test]
    fn a_prefix_split_across_pieces_is_still_stripped() {
        let (shown, text) = stream(&["Bla", "ze", ":", " *grins*", " Yo!"]);
        assert_eq!(text, "*grins* Yo!");
        assert_eq!(shown[..3], [None, None, None]);
        assert_eq!(shown[3].as_deref(), Some("*grins*"));
        assert_eq!(shown[4].as_deref(), Some(" Yo!"));
    }

    #[test]
    fn plain_text_streams_at_once() {
        let (shown, text) = stream(&["*nods*", " Cool", " bro."]);
        assert_eq!(text, "*nods* Cool bro.");
        assert_eq!(shown[0].as_deref(), Some("*nods*"));
        assert_eq!(shown[2].as_deref(), Some(" bro."));
    }

    #[test]
    fn a_line_that_may_open_the_listeners_turn_waits() {
        let (shown, text) = stream(&["Yo!\n", "Jo", "hn: hey", " there"]);
        assert_eq!(text, "Yo!");
        assert_eq!(shown[1], None);
        let (_, text) = stream(&["Yo!\n", "Jo", "lly good."]);
        assert_eq!(text, "Yo!\nJolly good.");
    }

    #[test]
    fn a_name_that_is_not_a_prefix_is_released() {
        let (shown, text) = stream(&["Blaze", " grins"]);
        assert_eq!(shown[0], None);
        assert_eq!(shown[1].as_deref(), Some("Blaze grins"));
        assert_eq!(text, "Blaze grins");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000)
        ))]

        #[test]
        fn cleaning_never_panics_and_is_idempotent(raw in "\\PC{0,80}", name in "\\PC{0,12}") {
            let once = clean_reply(&raw, &name, "John");
            let twice = clean_reply(&once, &name, "John");
            prop_assert_eq!(&once, &twice);
            prop_assert_eq!(once.trim(), once.as_str());
        }

        #[test]
        /// Whatever the reply and however it is split, the streamed text is the clean reply.
        #[test]
        fn streaming_equals_cleaning_the_whole(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("Blaze"), Just("blaze"), Just("John"), Just(":"), Just("："), Just(" "),
                    Just("\n"), Just("*"), Just("**"), Just("_"), Just("("), Just(")"), Just("19"),
                    Just("Blazer"), Just("yo"), Just("Jo"), Just("hn"), Just("Bla"), Just("ze"),
                    Just("\t"), Just("é"),
                ],
                0..24,
            ),
            cuts in proptest::collection::vec(0usize..200, 0..8),
        ) {
            let raw: String = parts.concat();
            let mut bounds: Vec<usize> = cuts
                .into_iter()
                .map(|c| c % (raw.len() + 1))
                .filter(|c| raw.is_char_boundary(*c))
                .collect();
            bounds.sort_unstable();
            let mut reply = ReplyStream::new("Blaze", "John");
            let mut shown = String::new();
            let mut start = 0;
            for end in bounds.into_iter().chain([raw.len()]) {
                shown.extend(reply.push(&raw[start..end]));
                start = end;
            }
            shown.extend(reply.finish());
            let whole = clean_reply(&raw, "Blaze", "John");
            prop_assert_eq!(&shown, &whole);
            prop_assert_eq!(reply.text(), whole.as_str());
        }

        #[test]
        fn prefixed_replies_lose_the_prefix(body in "[a-zA-Z*][a-zA-Z ,.!*]{0,40}[a-zA-Z.!*]") {
            prop_assume!(strip_name_prefix(&body, "Blaze").is_none());
            let raw = format!("Blaze: {body}");
            prop_assert_eq!(clean_reply(&raw, "Blaze", "John"), body.trim().to_owned());
        }
    }
}
