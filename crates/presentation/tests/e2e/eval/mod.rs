//! `ragback eval` through the binary: the judges against a fake judge that speaks chat
//! completions (exact counts, the judge-health rules, resumption), the report in a browser, and
//! the replay. The fixtures and the commands' helpers are here; the tests are by stage.

mod judging;
mod replay;
mod report_page;
mod simulation;

use std::path::{Path, PathBuf};

use ragback_testkit::fake_openai::FakeOpenAi as FakeJudge;
use ragback_testkit::process::{ragback, run};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ragback");

/// 12 dialogues, 40 pairs: B better in 24, A better in 8, equal quality (different texts) in 8.
fn fixture(dir: &Path) -> (PathBuf, PathBuf) {
    let (mut windows, mut replies) = (String::new(), String::new());
    replies.push_str(
        &json!({"kind": "run", "stage": "replay", "config": {}, "config_sha256": "x"}).to_string(),
    );
    replies.push('\n');
    for i in 0..40 {
        let dialogue = format!("d{:02}", i % 12);
        let id = format!("{dialogue}#{}", i + 2);
        let (qa, qb) = match i {
            0..24 => (1, 2),
            24..32 => (2, 1),
            _ => (1, 1),
        };
        let bucket = ["begin", "middle", "end"][i % 3];
        windows.push_str(&json!({
            "id": id, "dialogue": dialogue, "index": i + 2, "bucket": bucket,
            "user": {"name": "John", "age": 23}, "character": {"name": "Blaze", "description": "A bartender."},
            "scenario": "A bar.", "context": [{"role": "user", "text": format!("Hi <script>alert({i})</script>")}],
            "logged": {"role": "character", "text": "*nods* Yo."}, "logged_model": "A",
        }).to_string());
        windows.push('\n');
        for (arm, q, words) in [("A", qa, "Yo."), ("B", qb, "Hey there, bro!")] {
            let marker = if i == 5 && arm == "A" {
                " ⟦mod:violence⟧"
            } else if i == 39 && arm == "B" {
                " ⟦mod:real_meeting⟧"
            } else {
                ""
            };
            replies.push_str(&json!({
                "kind": "reply", "key": format!("{id}|{arm}|0"), "window": id, "dialogue": dialogue,
                "arm": arm, "status": "ok", "text": format!("*grins* {words} ⟦q={q}⟧{marker}"),
                "usage": {"prompt_tokens": 300, "completion_tokens": 12},
            }).to_string());
            replies.push('\n');
        }
    }
    let (w, r) = (dir.join("windows.jsonl"), dir.join("replies.jsonl"));
    std::fs::write(&w, windows).unwrap();
    std::fs::write(&r, replies).unwrap();
    (w, r)
}

/// `eval ARGS…`, where an argument `@name` is the path of `name` in `dir`.
fn eval_args(dir: &Path, args: &[&str]) -> Vec<String> {
    std::iter::once("eval".to_owned())
        .chain(args.iter().map(|a| match a.strip_prefix('@') {
            Some(file) => dir.join(file).display().to_string(),
            None => (*a).to_owned(),
        }))
        .collect()
}

/// `ragback eval ARGS…` (as [`eval_args`]) with ragback's own pipeline in the process answering
/// from `llm` (an OpenAI-compatible fake), without an embedder, with `vars` on top.
fn local_eval(
    dir: &Path,
    llm: &wiremock::MockServer,
    vars: &[(&str, &str)],
    args: &[&str],
) -> (bool, String, String) {
    let mut command = ragback(BIN, &dir.join("store"), None);
    command
        .env("RAGBACK_LLM__PROVIDER", "openai")
        .env("RAGBACK_LLM__BASE_URL", format!("{}/v1", llm.uri()))
        .env("RAGBACK_EMBEDDER__PROVIDER", "none")
        .envs(vars.iter().copied())
        .args(eval_args(dir, args));
    run(&mut command)
}

fn judge_command(dir: &Path, server: &wiremock::MockServer) -> std::process::Command {
    let mut command = ragback(BIN, &dir.join("store"), None);
    command
        .env(
            "RAGBACK_EVAL__JUDGE__BASE_URL",
            format!("{}/v1", server.uri()),
        )
        .env("RAGBACK_EVAL__JUDGE__API_KEY", "judge-key")
        .env("RAGBACK_EVAL__JUDGE__TIMEOUT_SECS", "1");
    command
}

fn pairwise(dir: &Path, server: &wiremock::MockServer, model: &str, out: &str) -> (bool, String) {
    let (ok, _, stderr) = run(judge_command(dir, server).args(eval_args(
        dir,
        &[
            "pairwise",
            "--windows",
            "@windows.jsonl",
            "--replies",
            "@replies.jsonl",
            "--out",
            &format!("@{out}"),
            "--judge-model",
            model,
            "--backoff-ms",
            "10",
            "--price",
            &format!("{model}=2.5:10"),
        ],
    )));
    (ok, stderr)
}

/// `ragback eval moderate` of the fixture's replies into `out` by the judge at `server`, with
/// `extra` arguments.
fn moderate(
    dir: &Path,
    server: &wiremock::MockServer,
    out: &str,
    extra: &[&str],
) -> (bool, String, String) {
    let out = format!("@{out}");
    let mut args = vec![
        "moderate",
        "--windows",
        "@windows.jsonl",
        "--replies",
        "@replies.jsonl",
        "--out",
        &out,
        "--judge-model",
        "moderator",
    ];
    args.extend_from_slice(extra);
    run(judge_command(dir, server).args(eval_args(dir, &args)))
}

fn report(dir: &Path, judgments: &str, moderation: &[&str]) -> Value {
    let mut args = vec![
        "eval".to_owned(),
        "report".into(),
        "--judgments".into(),
        dir.join(judgments).display().to_string(),
        "--bootstrap".into(),
        "400".into(),
        "--html".into(),
        dir.join("report.html").display().to_string(),
        "--json".into(),
        dir.join("report.json").display().to_string(),
    ];
    for m in moderation {
        args.extend(["--moderation".into(), dir.join(m).display().to_string()]);
    }
    let (ok, _, stderr) = run(ragback(BIN, &dir.join("store"), None).args(&args));
    assert!(ok, "{stderr}");
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

/// The decision lines (`decision: …` and its reasons) of the transcript in docs/evaluation.md
/// that follows `first_line`: what a run of the demo must print again, so that the page never
/// shows numbers of an older build.
fn documented_decision(first_line: &str) -> Vec<String> {
    let page =
        std::fs::read_to_string(ragback_testkit::repo_root().join("docs/evaluation.md")).unwrap();
    let start = page
        .find(first_line)
        .expect("the transcript is in docs/evaluation.md");
    let block = &page[start
        ..page[start..]
            .find("```")
            .map_or(page.len(), |end| start + end)];
    let lines: Vec<String> = block
        .lines()
        .filter(|l| l.starts_with("decision: ") || l.starts_with("  - "))
        .map(str::to_owned)
        .collect();
    assert!(
        !lines.is_empty(),
        "no decision in the transcript of {first_line}"
    );
    lines
}

fn criterion<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["criterion"] == name)
        .unwrap()
}

fn demo_windows(dir: &Path) -> PathBuf {
    let out = dir.join("windows.jsonl");
    let (ok, _, stderr) = run(ragback(BIN, &dir.join("store"), None).args(eval_args(
        dir,
        &[
            "windows",
            "--dialogues",
            "data/eval/dialogues.jsonl",
            "--out",
            "@windows.jsonl",
            "--sample",
            "20",
            "--seed",
            "3",
        ],
    )));
    assert!(ok, "{stderr}");
    assert!(stderr.starts_with("20 windows of 30 dialogues"), "{stderr}");
    out
}

fn rows(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn rollout_log(dir: &Path) -> PathBuf {
    let mut log = String::new();
    for i in 0..10 {
        let (variant, turns, reply) = if i < 5 {
            ("a", 4, "*nods* Sure thing.")
        } else {
            ("b", 6, "Sure thing, bro.")
        };
        let mut messages = Vec::new();
        for t in 0..turns {
            messages.push(json!({"role": "user", "text": format!("Message {t} of user {i}.")}));
            messages.push(
                json!({"role": "character", "text": reply, "variant": variant,
                                 "model": format!("model-{variant}")}),
            );
        }
        log.push_str(
            &json!({
                "id": format!("r-{i:02}"), "user": {"id": format!("user-{i}"), "name": "John"},
                "character": {"name": "Blaze", "description": "A bartender."}, "messages": messages,
            })
            .to_string(),
        );
        log.push('\n');
    }
    let path = dir.join("rollout.jsonl");
    std::fs::write(&path, log).unwrap();
    path
}

#[test]
fn power_prints_the_reference_sample_size() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) =
        run(ragback(BIN, &dir.path().join("store"), None).args(["eval", "power"]));
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("550 independent pairs; design effect 1.90 -> 1044 windows ≈ 261 dialogues ≈ 6264 judge calls"), "{stdout}");
}
