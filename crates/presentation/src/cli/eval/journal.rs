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
use ragback_integrations::eval_prompts::sha256_hex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

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
/// its header.
pub fn read_journal(path: &Path) -> anyhow::Result<(Value, HashMap<String, Value>)> {
    let rows: Vec<(usize, Value)> = read_lines(path)?;
    let mut header = Value::Null;
    let mut by_key = HashMap::new();
    for (line, row) in rows {
        match row.get("kind").and_then(Value::as_str) {
            Some("run") => header = row,
            _ => {
                let key = row
                    .get("key")
                    .and_then(Value::as_str)
                    .with_context(|| format!("{}:{line}: a row without a key", path.display()))?
                    .to_owned();
                by_key.insert(key, row);
            }
        }
    }
    Ok((header, by_key))
}

/// An output journal being written.
pub struct Journal {
    path: PathBuf,
    file: Mutex<(File, usize)>,
    /// Rows already in the file, by key (the last row of a key).
    pub done: HashMap<String, Value>,
}

impl Journal {
    /// Opens (or creates) `path` for `stage` with `config`: resumes a file of the same
    /// configuration, refuses another unless `new_run`, which starts it over.
    pub fn open(path: &Path, stage: &str, config: &Value, new_run: bool) -> anyhow::Result<Self> {
        let config_sha256 = sha256_hex(config.to_string().as_bytes());
        let mut done = HashMap::new();
        let mut fresh = new_run || !path.exists();
        if !fresh {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if whole < bytes.len() {
                eprintln!(
                    "{}: the last line is incomplete (an interrupted write): it is redone",
                    path.display()
                );
                OpenOptions::new()
                    .write(true)
                    .open(path)
                    .and_then(|f| f.set_len(whole as u64))
                    .with_context(|| format!("cannot truncate {}", path.display()))?;
            }
            if whole == 0 {
                fresh = true;
            } else {
                let (header, rows) = read_journal(path)?;
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

    /// Whether `key` already has a row with `status: ok` (or another final status).
    pub fn is_final(&self, key: &str) -> bool {
        self.done
            .get(key)
            .and_then(|row| row.get("status"))
            .and_then(Value::as_str)
            .is_some_and(|status| FINAL.contains(&status))
    }

    /// Attempts already spent on `key` by earlier runs.
    pub fn attempts(&self, key: &str) -> u32 {
        self.done
            .get(key)
            .and_then(|row| row.get("attempts"))
            .and_then(Value::as_u64)
            .map_or(0, |a| u32::try_from(a).unwrap_or(u32::MAX))
    }

    /// Appends a row as one line, flushed; synced to disk every 50 lines.
    pub fn append(&self, row: &impl Serialize) -> anyhow::Result<()> {
        let line = serde_json::to_string(row)?;
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

/// Statuses that are never redone: a success, a refusal (retrying a refusal does not help), an
/// identical pair, a request the server rejects as invalid.
const FINAL: [&str; 4] = ["ok", "refused", "identical", "invalid"];
