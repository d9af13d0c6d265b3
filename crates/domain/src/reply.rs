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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn cleaning_never_panics_and_is_idempotent(raw in "\\PC{0,80}", name in "\\PC{0,12}") {
            let once = clean_reply(&raw, &name, "John");
            let twice = clean_reply(&once, &name, "John");
            prop_assert_eq!(&once, &twice);
            prop_assert_eq!(once.trim(), once.as_str());
        }

        #[test]
        fn prefixed_replies_lose_the_prefix(body in "[a-zA-Z*][a-zA-Z ,.!*]{0,40}[a-zA-Z.!*]") {
            prop_assume!(strip_name_prefix(&body, "Blaze").is_none());
            let raw = format!("Blaze: {body}");
            prop_assert_eq!(clean_reply(&raw, "Blaze", "John"), body.trim().to_owned());
        }
    }
}
