//! Lorebooks on the wire: a Character Card V2 `character_book` and a request's `lorebook`, in
//! the card spec's format with SillyTavern's `extensions` understood (docs/lorebooks.md).
//!
//! The DTOs serialize back to what they read (numbers as written, `extensions` kept), so a card
//! passes through ragback unchanged.

use ragback_domain::{
    LoreEntry, LoreKey, LorePosition, LoreSource, Lorebook, SelectiveLogic, lore_limits,
    out_of_range,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use super::error::ApiError;

/// A lorebook (`character_book` of a Character Card V2, or a request's `lorebook`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct LorebookDto {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// Messages scanned for keys (default `RAGBACK_LORE__SCAN_DEPTH`, 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    scan_depth: Option<Number>,
    /// The most tokens its entries take (the global `RAGBACK_LORE__TOKEN_BUDGET` caps it too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    token_budget: Option<Number>,
    /// Scan inserted entries for more keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recursive_scanning: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Object)]
    extensions: Map<String, Value>,
    entries: Vec<LoreEntryDto>,
}

/// One lorebook entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct LoreEntryDto {
    /// Any of these triggers it; `/pattern/flags` is a regular expression.
    keys: Vec<String>,
    content: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    extensions: Map<String, Value>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "zero")]
    #[schema(value_type = i64)]
    insertion_order: Number,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    case_sensitive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    priority: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    selective: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secondary_keys: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    constant: Option<bool>,
    /// `before_char`, `after_char`, or `at_depth` (with `extensions.depth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    position: Option<String>,
    /// Character Card V3: every key is a regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    use_regex: Option<bool>,
}

fn yes() -> bool {
    true
}

fn zero() -> Number {
    Number::from(0)
}

/// A whole number, from an integer or a float as some editors write them.
fn integer(n: &Number) -> i64 {
    n.as_i64()
        .or_else(|| n.as_f64().map(|f| f.round() as i64))
        .unwrap_or(0)
}

/// A count: negative is zero.
fn count(n: &Number) -> usize {
    usize::try_from(integer(n)).unwrap_or(0)
}

impl LorebookDto {
    /// The validated book; errors name the field under `path`.
    pub(crate) fn into_domain(self, source: LoreSource, path: &str) -> Result<Lorebook, ApiError> {
        if self.entries.len() > lore_limits::ENTRIES {
            return Err(ApiError::invalid_field(
                format!("{path}.entries"),
                format!(
                    "at most {} entries are accepted, got {}",
                    lore_limits::ENTRIES,
                    self.entries.len()
                ),
            ));
        }
        let scan_depth = self.scan_depth.as_ref().map(count);
        if let Some(depth) = scan_depth.filter(|d| *d > lore_limits::SCAN_DEPTH) {
            return Err(ApiError::invalid_field(
                format!("{path}.scan_depth"),
                out_of_range(depth, lore_limits::SCAN_DEPTH).to_string(),
            ));
        }
        let entries: Vec<LoreEntry> = self
            .entries
            .into_iter()
            .enumerate()
            .map(|(i, entry)| entry.into_domain(i, &format!("{path}.entries[{i}]")))
            .collect::<Result<_, _>>()?;
        let patterns = entries
            .iter()
            .flat_map(|e| e.keys.iter().chain(&e.secondary_keys))
            .filter(|k| matches!(k, LoreKey::Pattern { .. }))
            .count();
        if patterns > lore_limits::REGEX_KEYS {
            return Err(ApiError::invalid_field(
                format!("{path}.entries"),
                format!(
                    "at most {} regular-expression keys per book, got {patterns}",
                    lore_limits::REGEX_KEYS
                ),
            ));
        }
        Ok(Lorebook {
            source,
            name: self.name,
            scan_depth,
            token_budget: self.token_budget.as_ref().map(count),
            recursive_scanning: self.recursive_scanning.unwrap_or(false),
            entries,
        })
    }
}

impl LoreEntryDto {
    fn into_domain(self, index: usize, path: &str) -> Result<LoreEntry, ApiError> {
        let ext = |key: &str| self.extensions.get(key).filter(|v| !v.is_null());
        let flag = |key: &str| ext(key).and_then(Value::as_bool);
        let number = |key: &str| ext(key).and_then(Value::as_u64);
        let use_regex = self.use_regex.unwrap_or(false);
        let case_sensitive = self
            .case_sensitive
            .or_else(|| flag("case_sensitive"))
            .unwrap_or(false);
        let keys = |field: &str, keys: &[String]| -> Result<Vec<LoreKey>, ApiError> {
            let mut parsed = Vec::with_capacity(keys.len());
            for (k, key) in keys.iter().enumerate() {
                let written = if use_regex && !key.starts_with('/') {
                    format!("/{key}/{}", if case_sensitive { "" } else { "i" })
                } else {
                    key.clone()
                };
                match LoreKey::parse(&written) {
                    Ok(Some(key)) => parsed.push(key),
                    Ok(None) => {}
                    Err(e) => {
                        return Err(ApiError::invalid_field(
                            format!("{path}.{field}[{k}]"),
                            e.to_string(),
                        ));
                    }
                }
            }
            Ok(parsed)
        };
        let depth = number("depth").map_or(4, |d| d as usize);
        let position = match (
            ext("position").and_then(Value::as_u64),
            self.position.as_deref(),
        ) {
            (Some(4), _) | (None, Some("at_depth")) => LorePosition::AtDepth(depth),
            (Some(1 | 3 | 6), _) | (None, Some("after_char")) => LorePosition::AfterChar,
            (Some(_), _) | (None, Some("before_char") | None) => LorePosition::BeforeChar,
            (None, Some(other)) => {
                return Err(ApiError::invalid_field(
                    format!("{path}.position"),
                    format!(
                        "must be `before_char`, `after_char` or `at_depth`, got `{}`",
                        super::error::printable(other)
                    ),
                ));
            }
        };
        let logic = match ext("selectiveLogic").and_then(Value::as_u64) {
            None => SelectiveLogic::AndAny,
            Some(n) => SelectiveLogic::from_number(n).ok_or_else(|| {
                ApiError::invalid_field(
                    format!("{path}.extensions.selectiveLogic"),
                    "must be 0 (AND ANY), 1 (NOT ALL), 2 (NOT ANY) or 3 (AND ALL)",
                )
            })?,
        };
        let insertion_order = integer(&self.insertion_order);
        let entry = LoreEntry {
            id: match &self.id {
                Some(Value::String(id)) => id.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => index.to_string(),
            },
            name: self
                .name
                .clone()
                .or_else(|| self.comment.clone())
                .filter(|n| !n.trim().is_empty()),
            keys: keys("keys", &self.keys)?,
            secondary_keys: keys(
                "secondary_keys",
                self.secondary_keys.as_deref().unwrap_or(&[]),
            )?,
            selective: self.selective.unwrap_or(false),
            logic,
            content: self.content.trim().to_owned(),
            constant: self.constant.unwrap_or(false),
            enabled: self.enabled && !flag("disable").unwrap_or(false),
            insertion_order,
            priority: self.priority.as_ref().map_or(insertion_order, integer),
            position,
            case_sensitive,
            whole_words: flag("match_whole_words").unwrap_or(true),
            scan_depth: number("scan_depth").map(|d| d as usize),
            exclude_recursion: flag("exclude_recursion").unwrap_or(false),
            prevent_recursion: flag("prevent_recursion").unwrap_or(false),
        };
        entry.check().map_err(|(field, e)| {
            ApiError::invalid_field(format!("{path}.{field}"), e.to_string())
        })?;
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::dto::CardDto;

    /// The cards written for the project (`data/cards/`).
    fn cards() -> Vec<(String, Value)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/cards");
        let mut cards: Vec<(String, Value)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                (
                    path.display().to_string(),
                    serde_json::from_str(&text).unwrap(),
                )
            })
            .collect();
        cards.sort_by(|a, b| a.0.cmp(&b.0));
        assert!(cards.len() >= 2, "{cards:?}");
        cards
    }

    /// The Character Card V2 fields of `data`.
    const V2_FIELDS: [&str; 15] = [
        "name",
        "description",
        "personality",
        "scenario",
        "first_mes",
        "mes_example",
        "creator_notes",
        "system_prompt",
        "post_history_instructions",
        "alternate_greetings",
        "character_book",
        "tags",
        "creator",
        "character_version",
        "extensions",
    ];

    #[test]
    fn cards_pass_through_unchanged_and_their_lorebooks_are_read() {
        for (path, card) in cards() {
            let dto: CardDto = serde_json::from_value(card.clone()).unwrap();
            let back = serde_json::to_value(&dto).unwrap();
            for field in V2_FIELDS {
                assert_eq!(
                    back["data"][field], card["data"][field],
                    "{path}: data.{field} changed on the way through"
                );
            }
            assert_eq!(back["spec"], card["spec"]);
            let book: LorebookDto =
                serde_json::from_value(card["data"]["character_book"].clone()).unwrap();
            let book = book
                .into_domain(LoreSource::Character, "character_book")
                .unwrap();
            let written = card["data"]["character_book"]["entries"]
                .as_array()
                .unwrap();
            assert_eq!(book.entries.len(), written.len(), "{path}");
        }
    }

    #[test]
    fn sillytavern_extensions_and_v3_regex_keys_are_understood() {
        let (_, mira) = &cards()[0];
        let book: LorebookDto =
            serde_json::from_value(mira["data"]["character_book"].clone()).unwrap();
        let book = book.into_domain(LoreSource::Character, "b").unwrap();
        let entry = |id: &str| book.entries.iter().find(|e| e.id == id).unwrap();
        assert!(entry("1").constant);
        assert_eq!(entry("1").position, LorePosition::BeforeChar);
        assert_eq!(entry("2").position, LorePosition::AfterChar);
        assert!(matches!(entry("4").keys[0], LoreKey::Pattern { .. }));
        assert!(entry("5").selective && entry("5").secondary_keys.len() == 2);
        assert_eq!(entry("6").position, LorePosition::AtDepth(1));
        assert!(entry("6").exclude_recursion);
        assert!(!entry("7").enabled);
        assert_eq!(book.scan_depth, Some(2));
        assert_eq!(book.token_budget, Some(400));
        assert!(book.recursive_scanning);

        let v3: LorebookDto = serde_json::from_value(json!({
            "entries": [{"keys": ["owl(s)?"], "use_regex": true, "content": "Owls.",
                         "insertion_order": 1.0}]
        }))
        .unwrap();
        let v3 = v3.into_domain(LoreSource::Scene, "lorebook").unwrap();
        let LoreKey::Pattern { regex, .. } = &v3.entries[0].keys[0] else {
            panic!("a regex key");
        };
        assert!(
            regex.is_match("Two OWLS"),
            "not case sensitive unless asked"
        );
        assert_eq!(v3.entries[0].insertion_order, 1);
    }

    #[test]
    fn bad_entries_are_refused_with_their_path() {
        let cases = [
            (
                json!({"keys": ["/(/"], "content": "x"}),
                "lorebook.entries[0].keys[0]",
            ),
            (
                json!({"keys": ["a"], "content": "x", "position": "middle"}),
                "lorebook.entries[0].position",
            ),
            (
                json!({"keys": ["a"], "content": "x", "extensions": {"selectiveLogic": 7}}),
                "lorebook.entries[0].extensions.selectiveLogic",
            ),
            (
                json!({"keys": ["a"], "content": "x\u{0}"}),
                "lorebook.entries[0].content",
            ),
        ];
        let many: Vec<Value> = (0..=lore_limits::REGEX_KEYS)
            .map(|i| json!({"keys": [format!("/k{i}/")], "content": "x"}))
            .collect();
        let book: LorebookDto = serde_json::from_value(json!({ "entries": many })).unwrap();
        let error = book.into_domain(LoreSource::Scene, "lorebook").unwrap_err();
        assert_eq!(
            error.body().error.field.as_deref(),
            Some("lorebook.entries")
        );
        for (entry, field) in cases {
            let book: LorebookDto = serde_json::from_value(json!({ "entries": [entry] })).unwrap();
            let error = book.into_domain(LoreSource::Scene, "lorebook").unwrap_err();
            assert_eq!(
                error.body().error.field.as_deref(),
                Some(field),
                "{error:?}"
            );
        }
    }
}
