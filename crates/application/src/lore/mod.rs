//! Lorebooks at work: which entries of a card's `character_book` and of the request's
//! `lorebook` go into this turn's prompt, and why.
//!
//! Semantics follow SillyTavern's World Info (docs/lorebooks.md lists where they differ): an
//! enabled entry is inserted when it is `constant`, or when one of its `keys` appears in the
//! last `scan_depth` messages and its `secondary_keys` satisfy its selective logic; inserted
//! entries' content is scanned again (books with `recursive_scanning`, up to a depth limit);
//! within the token budget the highest priorities win; the chosen entries are put in
//! `insertion_order`.

mod scan;

use ragback_domain::{LoreEntry, LoreKey, LorePosition, LoreSource, Lorebook, Message};
use serde::Deserialize;

use scan::Scan;

/// Lorebook settings (`RAGBACK_LORE__*`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoreSettings {
    /// Messages scanned for keys when a book does not say (SillyTavern's default: 2).
    pub scan_depth: usize,
    /// The most tokens all inserted entries take together; a book's own `token_budget` caps
    /// its entries further.
    pub token_budget: usize,
    /// How many rounds of recursive scanning, at most.
    pub max_recursion: usize,
}

impl Default for LoreSettings {
    fn default() -> Self {
        Self {
            scan_depth: 2,
            token_budget: 1_024,
            max_recursion: 3,
        }
    }
}

impl LoreSettings {
    /// Checks what parses but cannot be used; keys are relative to the section.
    pub fn validate(&self) -> Result<(), crate::bounds::InvalidSetting> {
        use crate::bounds::Bound;
        let depth = ragback_domain::lore_limits::SCAN_DEPTH as f64;
        Bound::between(0.0, depth).setting_count("scan_depth", self.scan_depth)?;
        Bound::between(0.0, 10.0).setting_count("max_recursion", self.max_recursion)
    }
}

/// Why an entry was inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoreTrigger {
    /// It is constant.
    Constant,
    /// A key in a message `messages_back` from the end (1: the last message).
    Key {
        /// The key, as the book writes it.
        key: String,
        /// How far back the message is.
        messages_back: usize,
    },
    /// A key in the content of another inserted entry.
    Recursion {
        /// The key.
        key: String,
        /// The id of the entry whose content held it.
        from: String,
    },
}

impl LoreTrigger {
    /// `constant`, `key` or `recursion`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Constant => "constant",
            Self::Key { .. } => "key",
            Self::Recursion { .. } => "recursion",
        }
    }
}

/// An entry inserted into the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoreUse {
    /// Whose book.
    pub source: LoreSource,
    /// The entry's id.
    pub id: String,
    /// Its name.
    pub name: Option<String>,
    /// Why.
    pub trigger: LoreTrigger,
    /// Where it goes.
    pub position: LorePosition,
    /// Its content (macros resolved).
    pub content: String,
    /// Its tokens, as counted for the budget.
    pub tokens: usize,
    /// Its place: `insertion_order`, then the book (the card's first), then the book's order.
    order: (i64, usize, usize),
}

/// The entries chosen for one turn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoreSelection {
    /// In insertion order (lowest `insertion_order` first; ties in book order, the card's book
    /// first).
    pub entries: Vec<LoreUse>,
    /// Entries that triggered but did not fit the budget.
    pub over_budget: usize,
    /// Tokens of the chosen entries.
    pub tokens: usize,
}

impl LoreSelection {
    /// The constant entries at `position`: stable across turns, they belong in the stable part
    /// of the prompt.
    pub fn constant(&self, position: LorePosition) -> impl Iterator<Item = &LoreUse> {
        self.entries
            .iter()
            .filter(move |e| e.trigger == LoreTrigger::Constant && e.position == position)
    }

    /// The entries triggered this turn (not constant) at `position`.
    pub fn triggered(&self, position: LorePosition) -> impl Iterator<Item = &LoreUse> {
        self.entries
            .iter()
            .filter(move |e| e.trigger != LoreTrigger::Constant && e.position == position)
    }

    /// Entries to insert into the history at a depth, with their depth.
    pub fn at_depth(&self) -> impl Iterator<Item = (usize, &LoreUse)> {
        self.entries.iter().filter_map(|e| match e.position {
            LorePosition::AtDepth(depth) => Some((depth, e)),
            _ => None,
        })
    }
}

/// A candidate: which book, which entry, why.
struct Hit<'a> {
    book: usize,
    index: usize,
    entry: &'a LoreEntry,
    trigger: LoreTrigger,
}

/// Chooses the entries of `books` for a chat whose messages are `messages` (oldest first);
/// `count` counts a text's tokens.
pub fn select(
    books: &[&Lorebook],
    messages: &[Message],
    settings: &LoreSettings,
    count: &dyn Fn(&str) -> usize,
) -> LoreSelection {
    let deepest = books
        .iter()
        .flat_map(|b| {
            let book_depth = b.scan_depth.unwrap_or(settings.scan_depth);
            std::iter::once(book_depth).chain(b.entries.iter().filter_map(|e| e.scan_depth))
        })
        .max()
        .unwrap_or(0);
    let chat = Scan::new(messages.iter().rev().take(deepest).map(|m| m.text.as_str()));
    let mut chosen: Vec<Vec<bool>> = books.iter().map(|b| vec![false; b.entries.len()]).collect();
    let mut budget = Budget::new(books, settings.token_budget);
    let mut selection = LoreSelection::default();

    // Round 0: constants and keys in the chat.
    let mut hits = Vec::new();
    for (b, book) in books.iter().enumerate() {
        let book_depth = book.scan_depth.unwrap_or(settings.scan_depth);
        for (index, entry) in book.entries.iter().enumerate() {
            if !entry.enabled {
                continue;
            }
            let depth = entry.scan_depth.unwrap_or(book_depth);
            let trigger = if entry.constant {
                Some(LoreTrigger::Constant)
            } else {
                matches(entry, &chat, depth).map(|(key, distance)| LoreTrigger::Key {
                    key,
                    messages_back: distance + 1,
                })
            };
            if let Some(trigger) = trigger {
                hits.push(Hit {
                    book: b,
                    index,
                    entry,
                    trigger,
                });
            }
        }
    }
    let mut newly = admit(hits, &mut budget, &mut chosen, &mut selection, books, count);

    // Recursion: the content of what was just inserted may trigger more.
    for _ in 0..settings.max_recursion {
        // The content of what was just inserted, one scanned "message" per entry: the
        // distance of a match names the entry whose content held the key.
        let sources: Vec<&LoreUse> = newly
            .iter()
            .map(|&i| &selection.entries[i])
            .filter(|u| !prevents_recursion(books, u))
            .collect();
        if sources.is_empty() {
            break;
        }
        let scan = Scan::new(sources.iter().map(|u| u.content.as_str()));
        let mut hits = Vec::new();
        for (b, book) in books.iter().enumerate() {
            if !book.recursive_scanning {
                continue;
            }
            for (index, entry) in book.entries.iter().enumerate() {
                if chosen[b][index] || !entry.enabled || entry.exclude_recursion {
                    continue;
                }
                if let Some((key, source)) = matches(entry, &scan, sources.len()) {
                    hits.push(Hit {
                        book: b,
                        index,
                        entry,
                        trigger: LoreTrigger::Recursion {
                            key,
                            from: sources[source].id.clone(),
                        },
                    });
                }
            }
        }
        newly = admit(hits, &mut budget, &mut chosen, &mut selection, books, count);
    }

    selection.entries.sort_by_key(|u| u.order);
    selection
}

/// Whether `entry` triggers on `scan` within `depth` messages: the first primary key found
/// (with its distance), when the secondary keys agree.
fn matches(entry: &LoreEntry, scan: &Scan<'_>, depth: usize) -> Option<(String, usize)> {
    let find = |key: &LoreKey| scan.find(key, entry.case_sensitive, entry.whole_words, depth);
    let (key, distance) = entry
        .keys
        .iter()
        .find_map(|key| find(key).map(|d| (key, d)))?;
    if entry.selective && !entry.secondary_keys.is_empty() {
        let found = entry
            .secondary_keys
            .iter()
            .filter(|k| find(k).is_some())
            .count();
        if !entry.logic.admits(found, entry.secondary_keys.len()) {
            return None;
        }
    }
    Some((key.as_written(), distance))
}

fn prevents_recursion(books: &[&Lorebook], used: &LoreUse) -> bool {
    let (_, book, index) = used.order;
    books[book].entries[index].prevent_recursion
}

/// Tokens left, in all and per book.
struct Budget {
    total: usize,
    per_book: Vec<usize>,
}

impl Budget {
    fn new(books: &[&Lorebook], total: usize) -> Self {
        Self {
            total,
            per_book: books
                .iter()
                .map(|b| b.token_budget.unwrap_or(usize::MAX))
                .collect(),
        }
    }

    fn take(&mut self, book: usize, tokens: usize) -> bool {
        if tokens > self.total || tokens > self.per_book[book] {
            return false;
        }
        self.total -= tokens;
        self.per_book[book] -= tokens;
        true
    }
}

/// Admits `hits` by priority (constants first, then the highest priority, then book order)
/// while the budget lasts; returns the indices of the admitted ones in `selection.entries`.
fn admit(
    mut hits: Vec<Hit<'_>>,
    budget: &mut Budget,
    chosen: &mut [Vec<bool>],
    selection: &mut LoreSelection,
    books: &[&Lorebook],
    count: &dyn Fn(&str) -> usize,
) -> Vec<usize> {
    hits.sort_by_key(|h| {
        (
            h.trigger != LoreTrigger::Constant,
            std::cmp::Reverse(h.entry.priority),
            h.book,
            h.index,
        )
    });
    let mut admitted = Vec::new();
    for hit in hits {
        if chosen[hit.book][hit.index] {
            continue;
        }
        let tokens = count(&hit.entry.content);
        if !budget.take(hit.book, tokens) {
            selection.over_budget += 1;
            continue;
        }
        chosen[hit.book][hit.index] = true;
        selection.tokens += tokens;
        admitted.push(selection.entries.len());
        selection.entries.push(LoreUse {
            source: books[hit.book].source,
            id: hit.entry.id.clone(),
            name: hit.entry.name.clone(),
            trigger: hit.trigger,
            position: hit.entry.position,
            content: hit.entry.content.clone(),
            tokens,
            order: (hit.entry.insertion_order, hit.book, hit.index),
        });
    }
    admitted
}

#[cfg(test)]
mod tests;
