//! `ragback eval pairwise | moderate | report` through the binary against a fake judge that
//! speaks chat completions: exact counts, the judge-health rules, resumption, and the report.

use std::path::{Path, PathBuf};

use ragback_testkit::fake_judge::FakeJudge;
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
            let marker = if i == 39 && arm == "B" {
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

fn judge_command(dir: &Path, server: &wiremock::MockServer) -> std::process::Command {
    let mut command = ragback(BIN, &dir.join("store"), None);
    command
        .env(
            "RAGBACK_EVAL__JUDGE__BASE_URL",
            format!("{}/v1", server.uri()),
        )
        .env("RAGBACK_EVAL__JUDGE__API_KEY", "judge-key");
    command
}

fn pairwise(dir: &Path, server: &wiremock::MockServer, model: &str, out: &str) -> (bool, String) {
    let (windows, replies) = (dir.join("windows.jsonl"), dir.join("replies.jsonl"));
    let (ok, _, stderr) = run(judge_command(dir, server).args([
        "eval",
        "pairwise",
        "--windows",
        windows.to_str().unwrap(),
        "--replies",
        replies.to_str().unwrap(),
        "--out",
        dir.join(out).to_str().unwrap(),
        "--judge-model",
        model,
        "--backoff-ms",
        "10",
        "--price",
        &format!("{model}=2.5:10"),
    ]));
    (ok, stderr)
}

fn report(dir: &Path, judgments: &str, moderation: Option<&str>) -> Value {
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
    if let Some(m) = moderation {
        args.extend(["--moderation".into(), dir.join(m).display().to_string()]);
    }
    let (ok, _, stderr) = run(ragback(BIN, &dir.join("store"), None).args(&args));
    assert!(ok, "{stderr}");
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

fn criterion<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["criterion"] == name)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oracle_judge_gives_the_exact_counts_and_the_report_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let (server, judge) = FakeJudge::start().await;
    let (ok, stderr) = pairwise(dir.path(), &server, "oracle", "judgments.jsonl");
    assert!(ok, "{stderr}");
    assert_eq!(judge.calls(), 40 * 3 * 2, "pairs × criteria × 2 orders");
    let first = report(dir.path(), "judgments.jsonl", None);
    for name in ["in_character", "scenario_focus", "engagement"] {
        let c = criterion(&first, name);
        assert_eq!(c["counts"]["win"], 24);
        assert_eq!(c["counts"]["loss"], 8);
        assert_eq!(c["counts"]["tie"], 8);
        assert_eq!(c["counts"]["inconsistent"], 0);
        assert_eq!(c["n_dialogues"], 12);
        assert!((c["win_rate"]["value"].as_f64().unwrap() - 0.7).abs() < 1e-12);
        assert_eq!(c["swap_consistency"], 1.0);
        assert_eq!(
            c["first_slot_rate"], 0.5,
            "the oracle picks A and B equally"
        );
    }
    // Judge tokens: 240 calls × (500 + 30) at $2.5/$10 per million.
    assert_eq!(first["cost"]["judge_calls"], 240);
    assert!(
        (first["cost"]["usd"].as_f64().unwrap() - 240.0 * (500.0 * 2.5 + 30.0 * 10.0) / 1e6).abs()
            < 1e-9
    );
    assert_ne!(first["decision"]["verdict"], "INVALID");
    let bytes = std::fs::read(dir.path().join("report.json")).unwrap();
    // Same inputs, shuffled lines, same seed: the same bytes.
    let path = dir.path().join("judgments.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1..].reverse();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    report(dir.path(), "judgments.jsonl", None);
    assert_eq!(
        std::fs::read(dir.path().join("report.json")).unwrap(),
        bytes
    );
    // The HTML: the decision banner and the plots, no external URL, dialogue text escaped.
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(
        html.contains(r#"id="decision""#)
            && html.contains("<svg")
            && html.contains("<circle class=\"wr\"")
    );
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    assert!(
        !html.contains("<script>"),
        "a script in a dialogue must come out escaped"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_slot_judge_makes_every_pair_inconsistent_and_the_run_invalid() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let (server, _) = FakeJudge::start().await;
    assert!(pairwise(dir.path(), &server, "first", "judgments.jsonl").0);
    let r = report(dir.path(), "judgments.jsonl", None);
    let c = criterion(&r, "engagement");
    assert_eq!(c["counts"]["inconsistent"], 40);
    assert_eq!(c["win_rate"]["value"], 0.5);
    assert_eq!(c["swap_consistency"], 0.0);
    assert_eq!(c["first_slot_rate"], 1.0);
    assert_eq!(r["decision"]["verdict"], "INVALID");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_refusing_and_flaky_judges_are_counted_as_specified() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let (server, judge) = FakeJudge::start().await;
    // Malformed: each call is asked once more, then the pair is unjudged.
    assert!(pairwise(dir.path(), &server, "malformed", "malformed.jsonl").0);
    assert_eq!(judge.calls(), 240 * 2);
    let r = report(dir.path(), "malformed.jsonl", None);
    assert_eq!(criterion(&r, "engagement")["counts"]["unjudged"], 40);
    assert_eq!(r["decision"]["verdict"], "INVALID");
    // Refusing: never retried.
    let before = judge.calls();
    assert!(pairwise(dir.path(), &server, "refuse", "refused.jsonl").0);
    assert_eq!(judge.calls() - before, 240);
    let r = report(dir.path(), "refused.jsonl", None);
    assert_eq!(criterion(&r, "engagement")["refusal_rate"], 1.0);
    // Flaky: one 429 with Retry-After, then every call succeeds.
    let (server, judge) = FakeJudge::start().await;
    assert!(pairwise(dir.path(), &server, "flaky", "flaky.jsonl").0);
    assert_eq!(judge.calls(), 241);
    let r = report(dir.path(), "flaky.jsonl", None);
    assert_eq!(criterion(&r, "engagement")["counts"]["win"], 24);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_run_makes_exactly_the_missing_calls_and_refuses_another_config() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let (server, judge) = FakeJudge::start().await;
    assert!(pairwise(dir.path(), &server, "oracle", "judgments.jsonl").0);
    // As if killed: the last 10 rows lost and the 11th from the end torn mid-write.
    let path = dir.path().join("judgments.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let kept = &lines[..lines.len() - 11];
    let torn = &lines[lines.len() - 11][..20];
    std::fs::write(&path, kept.join("\n") + "\n" + torn).unwrap();
    let before = judge.calls();
    let (ok, stderr) = pairwise(dir.path(), &server, "oracle", "judgments.jsonl");
    assert!(ok, "{stderr}");
    assert!(stderr.contains("incomplete"), "{stderr}");
    assert_eq!(judge.calls() - before, 11);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut keys: Vec<String> = text
        .lines()
        .skip(1)
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(keys.len(), 240);
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 240, "no duplicate rows");
    // Another judge into the same file is refused.
    let (ok, stderr) = pairwise(dir.path(), &server, "first", "judgments.jsonl");
    assert!(!ok && stderr.contains("--new-run"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn moderation_flags_reach_the_report_and_a_regression_blocks_the_ship() {
    let dir = tempfile::tempdir().unwrap();
    let (windows, replies) = fixture(dir.path());
    let (server, _) = FakeJudge::start().await;
    assert!(pairwise(dir.path(), &server, "oracle", "judgments.jsonl").0);
    let (ok, _, stderr) = run(judge_command(dir.path(), &server).args([
        "eval",
        "moderate",
        "--windows",
        windows.to_str().unwrap(),
        "--replies",
        replies.to_str().unwrap(),
        "--out",
        dir.path().join("moderation.jsonl").to_str().unwrap(),
        "--judge-model",
        "moderator",
    ]));
    assert!(ok, "{stderr}");
    let r = report(dir.path(), "judgments.jsonl", Some("moderation.jsonl"));
    let b = r["moderation"]["arms"][1][1]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "real_meeting")
        .unwrap()
        .clone();
    assert_eq!(
        (b["flagged"].as_u64(), b["n"].as_u64()),
        (Some(1), Some(40))
    );
    assert_eq!(r["flagged"][0]["window"], "d03#41");
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("Moderation floor") && html.contains("real_meeting"));
}

#[test]
fn power_prints_the_reference_sample_size() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) =
        run(ragback(BIN, &dir.path().join("store"), None).args(["eval", "power"]));
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("550 independent pairs; design effect 1.90 -> 1044 windows ≈ 261 dialogues ≈ 6264 judge calls"), "{stdout}");
}
