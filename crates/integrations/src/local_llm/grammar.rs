//! A JSON schema as a llama.cpp grammar (GBNF): the local model, sampling under it, can only write
//! one JSON value of that shape — every key present, in order, enums kept, strings and arrays
//! bounded so that a small model cannot ramble past its token budget inside one.
//!
//! The schemas are ours (memory extraction, reconciliation, the judges), so the subset is what
//! they use: `object` (`properties`, all required, in the order of their names), `array` (`items`,
//! `maxItems`), `string` (`enum`, `maxLength`), `integer` (`enum`, `minimum` ≥ 0 for digits
//! only), `number`, `boolean`, `null`, and `anyOf` / `oneOf` of those. Anything else is an error
//! naming the path.

use std::fmt::Write as _;

use serde_json::Value;

/// The longest string when a schema sets no `maxLength` (characters).
const DEFAULT_MAX_STRING: u64 = 200;
/// The most items of an array when a schema sets no `maxItems`.
const DEFAULT_MAX_ITEMS: u64 = 8;

/// Why a schema has no grammar here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the JSON schema at {path} cannot be turned into a grammar: {problem}")]
pub struct SchemaError {
    /// Where, as a JSON pointer.
    pub path: String,
    /// What.
    pub problem: String,
}

/// The GBNF grammar of `schema`, its root rule `root`.
pub fn grammar(schema: &Value) -> Result<String, SchemaError> {
    let mut rules = Rules::default();
    let root = rules.value(schema, "")?;
    let mut out = format!("root ::= {root}\n");
    for (name, body) in &rules.defined {
        let _ = writeln!(out, "{name} ::= {body}");
    }
    out.push_str(COMMON);
    Ok(out)
}

/// Whitespace and the JSON string's characters, shared by every grammar.
const COMMON: &str = r#"ws ::= [ \t\n]{0,8}
char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
number ::= "-"? ([0-9] | [1-9] [0-9]{1,15}) ("." [0-9]{1,15})? ([eE] [-+]? [0-9]{1,3})?
"#;

#[derive(Default)]
struct Rules {
    defined: Vec<(String, String)>,
}

impl Rules {
    /// A rule for `body`, named after `path`; returns its name.
    fn define(&mut self, path: &str, body: String) -> String {
        let tail: String = path
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let base = format!("value{}", tail.trim_end_matches('-'));
        let mut name = base.clone();
        let mut n = 1;
        while self.defined.iter().any(|(taken, _)| *taken == name) {
            n += 1;
            name = format!("{base}-{n}");
        }
        self.defined.push((name.clone(), body));
        name
    }

    /// The expression of one value of `schema` at `path`.
    fn value(&mut self, schema: &Value, path: &str) -> Result<String, SchemaError> {
        let error = |problem: &str| SchemaError {
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            problem: problem.to_owned(),
        };
        let object = schema.as_object().ok_or_else(|| error("not an object"))?;
        if let Some(options) = object.get("anyOf").or_else(|| object.get("oneOf")) {
            let options = options
                .as_array()
                .ok_or_else(|| error("anyOf is not a list"))?;
            let mut alternatives = Vec::new();
            for (i, option) in options.iter().enumerate() {
                alternatives.push(self.value(option, &format!("{path}/{i}"))?);
            }
            if alternatives.is_empty() {
                return Err(error("anyOf is empty"));
            }
            return Ok(self.define(path, alternatives.join(" | ")));
        }
        if let Some(values) = object.get("enum") {
            let values = values
                .as_array()
                .ok_or_else(|| error("enum is not a list"))?;
            let literals: Vec<String> = values.iter().map(literal).collect();
            if literals.is_empty() {
                return Err(error("enum is empty"));
            }
            return Ok(format!("({})", literals.join(" | ")));
        }
        if let Some(constant) = object.get("const") {
            return Ok(literal(constant));
        }
        let kind = object
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| error("no type"))?;
        let bound =
            |key: &str, default: u64| object.get(key).and_then(Value::as_u64).unwrap_or(default);
        match kind {
            "object" => {
                let properties = object
                    .get("properties")
                    .and_then(Value::as_object)
                    .ok_or_else(|| error("an object without properties"))?;
                let mut members = Vec::new();
                for (key, property) in properties {
                    let value = self.value(property, &format!("{path}/{key}"))?;
                    members.push(format!(
                        "{} ws \":\" ws {value}",
                        literal(&Value::from(key.as_str()))
                    ));
                }
                let body = if members.is_empty() {
                    "\"{\" ws \"}\"".to_owned()
                } else {
                    format!("\"{{\" ws {} ws \"}}\"", members.join(" ws \",\" ws "))
                };
                Ok(self.define(path, body))
            }
            "array" => {
                let items = object
                    .get("items")
                    .ok_or_else(|| error("an array without items"))?;
                let item = self.value(items, &format!("{path}/items"))?;
                let most = bound("maxItems", DEFAULT_MAX_ITEMS);
                let body = if most == 0 {
                    "\"[\" ws \"]\"".to_owned()
                } else {
                    format!(
                        "\"[\" ws ({item} (ws \",\" ws {item}){{0,{}}})? ws \"]\"",
                        most - 1
                    )
                };
                Ok(self.define(path, body))
            }
            "string" => Ok(format!(
                "\"\\\"\" char{{0,{}}} \"\\\"\"",
                bound("maxLength", DEFAULT_MAX_STRING)
            )),
            "integer" => Ok(
                if object
                    .get("minimum")
                    .and_then(Value::as_i64)
                    .is_some_and(|m| m >= 0)
                {
                    "([0-9] | [1-9] [0-9]{1,15})".to_owned()
                } else {
                    "\"-\"? ([0-9] | [1-9] [0-9]{1,15})".to_owned()
                },
            ),
            "number" => Ok("number".to_owned()),
            "boolean" => Ok("(\"true\" | \"false\")".to_owned()),
            "null" => Ok("\"null\"".to_owned()),
            other => Err(error(&format!("type `{other}` is not supported"))),
        }
    }
}

/// `value` as a GBNF literal of its JSON text.
fn literal(value: &Value) -> String {
    let json = value.to_string();
    let mut out = String::with_capacity(json.len() + 2);
    out.push('"');
    for c in json.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn a_schema_becomes_rules_with_every_key_in_order() {
        let schema = json!({
            "type": "object",
            "properties": {
                "facts": {"type": "array", "maxItems": 3, "items": {
                    "type": "object",
                    "properties": {
                        "owner": {"enum": ["user", "character"]},
                        "text": {"type": "string", "maxLength": 120}
                    }
                }}
            }
        });
        let grammar = grammar(&schema).unwrap();
        assert!(grammar.starts_with("root ::= value\n"), "{grammar}");
        assert!(
            grammar.contains(r#"value ::= "{" ws "\"facts\"" ws ":" ws value-facts ws "}""#),
            "{grammar}"
        );
        assert!(
            grammar.contains(
                r#"value-facts ::= "[" ws (value-facts-items (ws "," ws value-facts-items){0,2})? ws "]""#
            ),
            "{grammar}"
        );
        assert!(
            grammar.contains(r#""\"owner\"" ws ":" ws ("\"user\"" | "\"character\"")"#),
            "{grammar}"
        );
        assert!(grammar.contains(r#""\"" char{0,120} "\"""#), "{grammar}");
    }

    #[test]
    fn alternatives_constants_and_scalars() {
        let schema = json!({"anyOf": [
            {"type": "object", "properties": {"action": {"const": "update"}, "fact": {"type": "integer", "minimum": 1}}},
            {"type": "object", "properties": {"action": {"const": "add"}}}
        ]});
        let grammar = grammar(&schema).unwrap();
        assert!(
            grammar.contains("root ::= value\nvalue-0 ::= "),
            "{grammar}"
        );
        assert!(grammar.contains("value ::= value-0 | value-1"), "{grammar}");
        assert!(grammar.contains(r#""\"update\"""#), "{grammar}");
        assert!(grammar.contains("([0-9] | [1-9] [0-9]{1,15})"), "{grammar}");
        let error =
            super::grammar(&json!({"type": "object", "properties": {"x": {"type": "date"}}}))
                .unwrap_err();
        assert_eq!(error.path, "/x");
    }
}
