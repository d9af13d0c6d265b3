//! What the fake server was asked, one line per request, for tests that check what ragback
//! sends: a collection's layout, each read's consistency, each write's ordering and wait.

use std::sync::Mutex;

use qdrant_client::qdrant::{ReadConsistency, WriteOrdering, read_consistency};

/// The requests seen, in order.
#[derive(Debug, Default)]
pub struct Seen(Mutex<Vec<String>>);

impl Seen {
    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The lines that start with `prefix`.
    pub fn starting(&self, prefix: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }

    pub(super) fn record(&self, line: String) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line);
        }
    }

    /// `read COLLECTION OP consistency=…`.
    pub(super) fn read(&self, collection: &str, op: &str, consistency: Option<&ReadConsistency>) {
        let level = match consistency.and_then(|c| c.value) {
            None => "default".to_owned(),
            Some(read_consistency::Value::Factor(n)) => n.to_string(),
            Some(read_consistency::Value::Type(t)) => match t {
                0 => "all".to_owned(),
                1 => "majority".to_owned(),
                2 => "quorum".to_owned(),
                other => format!("type {other}"),
            },
        };
        self.record(format!("read {collection} {op} consistency={level}"));
    }

    /// `write COLLECTION OP ordering=… wait=…`.
    pub(super) fn write(
        &self,
        collection: &str,
        op: &str,
        ordering: Option<&WriteOrdering>,
        wait: Option<bool>,
    ) {
        let ordering = match ordering.map(|o| o.r#type) {
            None => "default",
            Some(0) => "weak",
            Some(1) => "medium",
            Some(2) => "strong",
            Some(_) => "other",
        };
        self.record(format!(
            "write {collection} {op} ordering={ordering} wait={}",
            wait.unwrap_or(false)
        ));
    }
}
