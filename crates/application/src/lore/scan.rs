//! The text a lorebook is matched against: the latest messages, newest first, with an index of
//! their words so that whole-word keys (most keys) are one lookup each.

use std::collections::HashMap;

use ragback_domain::{LoreKey, is_word_char};

/// Scanned messages, newest first (distance 0 is the last message).
pub(super) struct Scan<'a> {
    messages: Vec<&'a str>,
    /// The messages joined newest first, each followed by a line break: the messages within a
    /// depth are a prefix of it, so a phrase is searched once, not once per message.
    joined: String,
    /// The same, lower-cased.
    joined_lower: String,
    /// Where each message ends in `joined`, and in `joined_lower`.
    ends: Vec<usize>,
    ends_lower: Vec<usize>,
    /// Each lower-cased word's nearest distance.
    words: HashMap<String, usize>,
    /// Each word's nearest distance, letter case kept.
    exact_words: HashMap<&'a str, usize>,
}

/// Where a key was found: the distance of the nearest message holding it.
pub(super) type Distance = usize;

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !is_word_char(c))
        .filter(|w| !w.is_empty())
}

impl<'a> Scan<'a> {
    /// The texts, newest first.
    pub(super) fn new(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut scan = Scan {
            messages: Vec::new(),
            joined: String::new(),
            joined_lower: String::new(),
            ends: Vec::new(),
            ends_lower: Vec::new(),
            words: HashMap::new(),
            exact_words: HashMap::new(),
        };
        for (distance, text) in texts.into_iter().enumerate() {
            for word in words(text) {
                scan.exact_words.entry(word).or_insert(distance);
            }
            let lower_start = scan.joined_lower.len();
            scan.joined_lower.push_str(&text.to_lowercase());
            for word in words(&scan.joined_lower[lower_start..]) {
                if !scan.words.contains_key(word) {
                    scan.words.insert(word.to_owned(), distance);
                }
            }
            scan.joined.push_str(text);
            scan.joined.push('\n');
            scan.joined_lower.push('\n');
            scan.ends.push(scan.joined.len());
            scan.ends_lower.push(scan.joined_lower.len());
            scan.messages.push(text);
        }
        scan
    }

    /// The nearest message within `depth` messages that holds `key`.
    pub(super) fn find(
        &self,
        key: &LoreKey,
        case_sensitive: bool,
        whole_words: bool,
        depth: usize,
    ) -> Option<Distance> {
        let depth = depth.min(self.messages.len());
        let within = |d: &Distance| *d < depth;
        match key {
            // On the scanned messages joined, newest first, as SillyTavern scans: `^` is the
            // start of the newest message (of any line with the `m` flag).
            LoreKey::Pattern { regex, .. } => {
                if depth == 0 {
                    return None;
                }
                let at = regex.find(&self.joined[..self.ends[depth - 1]])?.start();
                Some(self.ends.partition_point(|end| *end <= at))
            }
            LoreKey::Text {
                text,
                lower,
                one_word: true,
            } if whole_words => {
                if case_sensitive {
                    self.exact_words.get(text.as_str()).copied().filter(within)
                } else {
                    self.words.get(lower).copied().filter(within)
                }
            }
            LoreKey::Text { text, lower, .. } => {
                if depth == 0 {
                    return None;
                }
                // A phrase of whole words needs each of its words within the depth: most keys
                // are rejected by these lookups, without searching the text.
                if whole_words {
                    let (index, phrase) = if case_sensitive {
                        (None, text.as_str())
                    } else {
                        (Some(&self.words), lower.as_str())
                    };
                    let present = |word: &str| {
                        let distance = match index {
                            Some(words) => words.get(word).copied(),
                            None => self.exact_words.get(word).copied(),
                        };
                        distance.is_some_and(|d| d < depth)
                    };
                    if !words(phrase).all(present) {
                        return None;
                    }
                }
                let (haystack, ends, needle) = if case_sensitive {
                    (&self.joined, &self.ends, text)
                } else {
                    (&self.joined_lower, &self.ends_lower, lower)
                };
                let at = first(&haystack[..ends[depth - 1]], needle, whole_words)?;
                Some(ends.partition_point(|end| *end <= at))
            }
        }
    }
}

/// The first place `needle` occurs in `haystack`, as whole words when asked (no word character
/// right before or after it).
fn first(haystack: &str, needle: &str, whole_words: bool) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack
        .match_indices(needle)
        .find(|(at, _)| {
            !whole_words || {
                let before = haystack[..*at].chars().next_back();
                let after = haystack[at + needle.len()..].chars().next();
                !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
            }
        })
        .map(|(at, _)| at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> LoreKey {
        LoreKey::parse(text).unwrap().unwrap()
    }

    #[test]
    fn keys_are_found_in_the_nearest_message_within_the_depth() {
        let scan = Scan::new(["We sail to Lisbon.", "The old harbour of lisbon", "Cats!"]);
        assert_eq!(scan.find(&key("lisbon"), false, true, 3), Some(0));
        assert_eq!(scan.find(&key("Lisbon"), true, true, 3), Some(0));
        assert_eq!(scan.find(&key("lisbon"), true, true, 3), Some(1));
        assert_eq!(scan.find(&key("cat"), false, true, 3), None, "whole words");
        assert_eq!(scan.find(&key("cat"), false, false, 3), Some(2));
        assert_eq!(
            scan.find(&key("cats"), false, true, 2),
            None,
            "beyond the depth"
        );
        assert_eq!(scan.find(&key("old harbour"), false, true, 3), Some(1));
        assert_eq!(scan.find(&key("old harb"), false, true, 3), None);
        assert_eq!(scan.find(&key("/harbou?r/i"), false, true, 3), Some(1));
        assert_eq!(scan.find(&key("/^We sail/"), false, true, 3), Some(0));
        assert_eq!(
            scan.find(&key("/^Cats/"), false, true, 3),
            None,
            "not the newest"
        );
        assert_eq!(scan.find(&key("/^Cats/m"), false, true, 3), Some(2));
        assert_eq!(scan.find(&key("/^Cats/m"), false, true, 2), None);
    }
}
