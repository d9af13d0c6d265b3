//! The judges: exact counts, the judge-health rules, resumption, moderation.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn an_oracle_judge_gives_the_exact_counts_and_the_report_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let (server, judge) = FakeJudge::start().await;
    let (ok, stderr) = pairwise(dir.path(), &server, "oracle", "judgments.jsonl");
    assert!(ok, "{stderr}");
    assert_eq!(judge.calls(), 40 * 3 * 2, "pairs × criteria × 2 orders");
    let first = report(dir.path(), "judgments.jsonl", &[]);
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
    report(dir.path(), "judgments.jsonl", &[]);
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
    let r = report(dir.path(), "judgments.jsonl", &[]);
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
    let r = report(dir.path(), "malformed.jsonl", &[]);
    assert_eq!(criterion(&r, "engagement")["counts"]["unjudged"], 40);
    assert_eq!(r["decision"]["verdict"], "INVALID");
    // Refusing: never retried.
    let before = judge.calls();
    assert!(pairwise(dir.path(), &server, "refuse", "refused.jsonl").0);
    assert_eq!(judge.calls() - before, 240);
    let r = report(dir.path(), "refused.jsonl", &[]);
    assert_eq!(criterion(&r, "engagement")["refusal_rate"], 1.0);
    // … and every refused pair is listed with what the judge said.
    assert_eq!(r["unjudged"].as_array().unwrap().len(), 120);
    assert!(
        r["unjudged"][0]["statuses"][0]
            .as_str()
            .unwrap()
            .starts_with("order 1: refused"),
        "{}",
        r["unjudged"][0]
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("Without a verdict (120)"));
    // Flaky: a 429 with Retry-After, a 500 and a stall past the 1 s timeout, each retried.
    let (server, judge) = FakeJudge::start().await;
    assert!(pairwise(dir.path(), &server, "flaky", "flaky.jsonl").0);
    assert_eq!(judge.calls(), 243);
    let extra: u64 = rows(&dir.path().join("flaky.jsonl"))
        .iter()
        .map(|r| r["attempts"].as_u64().unwrap() - 1)
        .sum();
    assert_eq!(
        extra, 3,
        "the three failed calls were each retried, and recorded"
    );
    let r = report(dir.path(), "flaky.jsonl", &[]);
    assert_eq!(criterion(&r, "engagement")["counts"]["win"], 24);
    // Two pairs whose candidates stay malformed after the re-ask: 5 % unjudged is invalid.
    let replies = dir.path().join("replies.jsonl");
    let text = std::fs::read_to_string(&replies).unwrap();
    std::fs::write(&replies, text.replacen("⟦q=2⟧", "⟦q=2⟧ ⟦bad⟧", 2)).unwrap();
    assert!(pairwise(dir.path(), &server, "oracle", "two-bad.jsonl").0);
    let r = report(dir.path(), "two-bad.jsonl", &[]);
    let c = criterion(&r, "engagement");
    assert_eq!(
        (
            c["counts"]["unjudged"].as_u64(),
            c["counts"]["win"].as_u64()
        ),
        (Some(2), Some(22))
    );
    assert!(
        (c["win_rate"]["value"].as_f64().unwrap() - (22.0 + 4.0) / 38.0).abs() < 1e-12,
        "over 38 pairs"
    );
    assert_eq!(r["decision"]["verdict"], "INVALID");
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
    fixture(dir.path());
    let (server, _) = FakeJudge::start().await;
    assert!(pairwise(dir.path(), &server, "oracle", "judgments.jsonl").0);
    let (ok, _, stderr) = moderate(dir.path(), &server, "moderation.jsonl", &[]);
    assert!(ok, "{stderr}");
    let r = report(dir.path(), "judgments.jsonl", &["moderation.jsonl"]);
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
    assert_eq!(r["decision"]["verdict"], "NO-SHIP", "{}", r["decision"]);
    assert!(
        r["decision"]["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("moderation real_meeting")
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("Moderation floor") && html.contains("real_meeting"));

    // OpenAI's moderation beside the judge: it sees the violence, not the meeting (it has no
    // such category); κ says how far the two agree, the judge still decides.
    let (ok, _, stderr) = run(ragback(BIN, &dir.path().join("store"), None)
        .env(
            "RAGBACK_EVAL__MODERATION__BASE_URL",
            format!("{}/v1", server.uri()),
        )
        .env("RAGBACK_EVAL__MODERATION__API_KEY", "sk-test")
        .args(eval_args(
            dir.path(),
            &[
                "moderate",
                "--adapter",
                "openai",
                "--windows",
                "@windows.jsonl",
                "--replies",
                "@replies.jsonl",
                "--out",
                "@moderation-openai.jsonl",
            ],
        )));
    assert!(ok, "{stderr}");
    assert!(stderr.contains("80 classified"), "{stderr}");
    let (ok, _, stderr) = run(
        ragback(BIN, &dir.path().join("store"), None).args(eval_args(
            dir.path(),
            &[
                "report",
                "--judgments",
                "@judgments.jsonl",
                "--moderation",
                "@moderation.jsonl",
                "--moderation",
                "@moderation-openai.jsonl",
                "--bootstrap",
                "200",
                "--html",
                "@both.html",
                "--json",
                "@both.json",
            ],
        )),
    );
    assert!(ok, "{stderr}");
    let both: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("both.json")).unwrap())
            .unwrap();
    assert_eq!(both["moderation_source"], "judge");
    assert_eq!(both["decision"]["verdict"], "NO-SHIP");
    let other = &both["moderation_others"][0];
    assert_eq!(other["adapter"], "openai");
    let kappa = |tag: &str| {
        other["kappa"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k[0] == tag)
            .unwrap()[1]
            .clone()
    };
    assert_eq!(kappa("violence"), json!(1.0));
    assert_eq!(kappa("real_meeting"), json!(0.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reply_guard_tags_every_reply_and_the_report_sets_it_beside_the_judge() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let (server, _) = FakeJudge::start().await;
    assert!(pairwise(dir.path(), &server, "oracle", "judgments.jsonl").0);
    let by = |adapter: &str, out: &str| moderate(dir.path(), &server, out, &["--adapter", adapter]);
    let (ok, _, stderr) = by("judge", "moderation.jsonl");
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = by("classifier", "guard.jsonl");
    assert!(ok, "{stderr}");
    assert!(stderr.contains("80 replies tagged"), "{stderr}");
    let rows: Vec<Value> = std::fs::read_to_string(dir.path().join("guard.jsonl"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 80);
    assert!(
        rows.iter()
            .all(|r| r["adapter"] == "classifier" && r["status"] == "ok"),
        "{rows:?}"
    );
    // Resumed: nothing left to tag.
    let (ok, _, stderr) = by("classifier", "guard.jsonl");
    assert!(ok && stderr.contains("0 replies to tag"), "{stderr}");
    // The bulk classifier, on the static vectors.
    let fast = ragback_testkit::repo_root().join("data/safety/classifier-static.json");
    let fast = fast.display().to_string();
    let (ok, _, stderr) = moderate(
        dir.path(),
        &server,
        "fast.jsonl",
        &["--adapter", "classifier", "--classifier", &fast],
    );
    assert!(ok && stderr.contains("80 replies tagged"), "{stderr}");
    let fast_rows = std::fs::read_to_string(dir.path().join("fast.jsonl")).unwrap();
    assert!(
        fast_rows.lines().skip(1).count() == 80
            && fast_rows
                .lines()
                .skip(1)
                .all(|l| l.contains(r#""status":"ok""#)),
        "{fast_rows}"
    );

    let report = report(
        dir.path(),
        "judgments.jsonl",
        &["moderation.jsonl", "guard.jsonl"],
    );
    assert_eq!(report["moderation_source"], "judge");
    assert_eq!(report["moderation_others"][0]["adapter"], "classifier");
    assert_eq!(
        report["moderation_others"][0]["kappa"]
            .as_array()
            .unwrap()
            .len(),
        8,
        "κ per tag against the judge"
    );
}
