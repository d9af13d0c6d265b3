//! Append-only JSONL files of the evaluation: read with `file:line` errors, and written so that
//! a run can be killed and resumed.
//!
//! An output file starts with a header line `{"kind": "run", "stage", "config", "config_sha256",
//! "ragback_version"}`; every other line is a row with a `key`. Rerunning with the same file
//! resumes it: a torn last line (a crash mid-write) is cut off and redone, rows already there are
//! kept (the last row of a key wins), and a header of another configuration is refused unless the
//! run is started over (`--new-run`).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, bail};
use ragback_integrations::digest::sha256_hex;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::rows::Row;

/// Writes `bytes` to `path` whole or not at all: into a temporary file beside it, synced, then
/// renamed over it. A reader never sees half a report, and a failed write leaves the old one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temporary = tempfile::NamedTempFile::new_in(dir)?;
    temporary.write_all(bytes)?;
    temporary.as_file().sync_data()?;
    temporary.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Reads a JSONL file into `T`s, failing with the `file:line` of the first bad line; blank lines
/// are skipped.
pub fn read_lines<T: DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<(usize, T)>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut rows = Vec::new();
    for (number, line) in BufReader::new(file).lines().enumerate() {
        let line =
            line.with_context(|| format!("{}:{}: cannot read", path.display(), number + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let row = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a valid line", path.display(), number + 1))?;
        rows.push((number + 1, row));
    }
    Ok(rows)
}

/// The rows of a journal written by an earlier stage, by key (the last row of a key wins), with
/// its header. A row of another kind than `R` is refused with its `file:line`.
pub fn read_journal<R: Row>(path: &Path) -> anyhow::Result<(Value, HashMap<String, R>)> {
    let lines: Vec<(usize, Value)> = read_lines(path)?;
    let mut header = Value::Null;
    let mut by_key = HashMap::new();
    for (line, value) in lines {
        match value.get("kind").and_then(Value::as_str) {
            Some("run") => header = value,
            Some(kind) if kind == R::KIND => {
                let row: R = serde_json::from_value(value).with_context(|| {
                    format!("{}:{line}: not a valid {} row", path.display(), R::KIND)
                })?;
                by_key.insert(row.key().to_owned(), row);
            }
            other => bail!(
                "{}:{line}: a {} row where {} rows were expected",
                path.display(),
                other.unwrap_or("kind-less"),
                R::KIND
            ),
        }
    }
    Ok((header, by_key))
}

/// An output journal being written.
pub struct Journal<R> {
    path: PathBuf,
    file: Mutex<(File, usize)>,
    /// Rows already in the file, by key (the last row of a key).
    pub done: HashMap<String, R>,
}

impl<R: Row> Journal<R> {
    /// Opens (or creates) `path` for `stage` with `config`: resumes a file of the same
    /// configuration, refuses another unless `new_run`, which starts it over.
    pub fn open(path: &Path, stage: &str, config: &Value, new_run: bool) -> anyhow::Result<Self> {
        let config_sha256 = sha256_hex(config.to_string().as_bytes());
        let mut done = HashMap::new();
        let mut fresh = new_run || !path.exists();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        // One writer per journal: a second run on the same file (or a --new-run under it) is
        // refused before anything is read, cut or written. The lock goes with the file.
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "{} is being written by another `ragback eval` run; wait for it to end, or give \
                 this one another --out",
                path.display()
            ),
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(error).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        if !fresh {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if whole < bytes.len() {
                eprintln!(
                    "{}: the last line is incomplete (an interrupted write): it is redone",
                    path.display()
                );
                file.set_len(whole as u64)
                    .with_context(|| format!("cannot truncate {}", path.display()))?;
            }
            if whole == 0 {
                fresh = true;
            } else {
                let (header, rows) = read_journal::<R>(path)?;
                if header.get("stage").and_then(Value::as_str) != Some(stage) {
                    bail!(
                        "{} is not the output of `ragback eval {stage}`",
                        path.display()
                    );
                }
                if header.get("config_sha256").and_then(Value::as_str) != Some(&config_sha256) {
                    bail!(
                        "{} was written with another configuration ({} then, {} now): rerun with \
                         the same arguments to resume it, or pass --new-run to start it over",
                        path.display(),
                        header.get("config").unwrap_or(&Value::Null),
                        config
                    );
                }
                done = rows;
            }
        }
        if fresh {
            file.set_len(0)?;
            let header = json!({
                "kind": "run",
                "stage": stage,
                "config": config,
                "config_sha256": config_sha256,
                "ragback_version": env!("CARGO_PKG_VERSION"),
            });
            writeln!(file, "{header}")?;
            file.sync_data()?;
        }
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new((file, 0)),
            done,
        })
    }

    /// Whether `key` already has a row of a final status ([`super::rows::Status::is_final`]).
    pub fn is_final(&self, key: &str) -> bool {
        self.done
            .get(key)
            .is_some_and(|row| row.status().is_final())
    }

    /// Attempts already spent on `key` by earlier runs.
    pub fn attempts(&self, key: &str) -> u32 {
        self.done.get(key).map_or(0, Row::attempts)
    }

    /// What the rows already in the file cost, USD.
    pub fn spent(&self) -> f64 {
        self.done.values().filter_map(Row::cost_usd).sum()
    }

    /// Appends a row as one line with its `kind`, flushed; synced to disk every 50 lines.
    pub fn append(&self, row: &R) -> anyhow::Result<()> {
        let mut value = serde_json::to_value(row)?;
        if let Some(object) = value.as_object_mut() {
            object.insert("kind".into(), R::KIND.into());
        }
        let line = serde_json::to_string(&value)?;
        let mut guard = self
            .file
            .lock()
            .map_err(|_| anyhow::anyhow!("the journal's lock is poisoned"))?;
        let (file, count) = &mut *guard;
        file.write_all(format!("{line}\n").as_bytes())
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        *count += 1;
        if *count % 50 == 0 {
            file.sync_data()?;
        }
        Ok(())
    }

    /// Syncs what was written.
    pub fn finish(&self) -> anyhow::Result<()> {
        let guard = self
            .file
            .lock()
            .map_err(|_| anyhow::anyhow!("the journal's lock is poisoned"))?;
        guard.0.sync_data()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::rows::Reply;
    use super::*;

    #[test]
    fn a_journal_has_one_writer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replies.jsonl");
        let config = json!({"arms": ["a"]});
        let first = Journal::open(&path, "replay", &config, false).unwrap();
        let row: Reply = serde_json::from_value(json!({
            "key": "k1", "window": "d#1", "dialogue": "d", "bucket": "begin", "arm": "a",
            "status": "ok", "text": "Hi."
        }))
        .unwrap();
        first.append(&row).unwrap();
        for new_run in [false, true] {
            let error = Journal::<Reply>::open(&path, "replay", &config, new_run)
                .err()
                .unwrap()
                .to_string();
            assert!(error.contains("another `ragback eval` run"), "{error}");
        }
        first.finish().unwrap();
        assert!(
            std::fs::read_to_string(&path).unwrap().contains("\"k1\""),
            "the refused --new-run cut nothing"
        );
        drop(first);
        let resumed = Journal::<Reply>::open(&path, "replay", &config, false).unwrap();
        assert!(resumed.is_final("k1"));
        assert_eq!(resumed.done["k1"], row, "read back as written");
        let error = read_journal::<super::super::rows::Judgment>(&path)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("a reply row where judgment rows"), "{error}");
    }

    #[test]
    fn atomic_writes_replace_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        write_atomically(&path, b"old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }
}
