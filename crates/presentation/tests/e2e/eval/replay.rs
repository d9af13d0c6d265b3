//! The replay (through a server and in process), length bias, the smoke-test judge, the demo
//! script and variants in logged dialogues.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn replay_through_a_server_counts_cost_stops_at_the_budget_and_resumes_exactly() {
    // The operator lets requests ask for the candidate model.
    let app = ragback_testkit::TestApp::spawn_with(ragback_testkit::Setup {
        vars: vec![("RAGBACK_LLM__ALLOWED_MODELS".into(), "demo-b".into())],
        ..ragback_testkit::Setup::default()
    })
    .await;
    let fake = ragback_testkit::fake_openai::FakeOpenAi::default();
    fake.mount(&app.llm).await;
    let dir = tempfile::tempdir().unwrap();
    demo_windows(dir.path());
    let out = dir.path().join("replies.jsonl");
    let replay = |extra: &[&str]| {
        let mut command = ragback(BIN, &dir.path().join("store"), None);
        command.args(eval_args(
            dir.path(),
            &[
                "replay",
                "--windows",
                "@windows.jsonl",
                "--out",
                "@replies.jsonl",
                "--arm",
                "A=logged",
                "--arm",
                &format!("B=server:{},model=demo-b", app.url("")),
                "--price",
                "demo-b=1:2",
                "--concurrency",
                "1",
                "--backoff-ms",
                "10",
            ],
        ));
        command.args(extra);
        command.output().unwrap()
    };
    // A budget of one call's worth: the run stops, exit 3, and says how to go on.
    let stopped = replay(&["--max-cost", "0.0001"]);
    assert_eq!(
        stopped.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    assert!(String::from_utf8_lossy(&stopped.stderr).contains("budget reached"));
    let first = fake.calls();
    assert!(
        (1..20).contains(&first),
        "{first} calls before the budget ran out"
    );
    // Rerun: exactly the missing replies are made.
    let resumed = replay(&[]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(
        fake.calls(),
        20,
        "one call per window of arm B over both runs"
    );
    let rows = rows(&out);
    assert_eq!(rows.len(), 40, "20 windows × 2 arms, no duplicates");
    for row in rows.iter().filter(|r| r["arm"] == "B") {
        assert_eq!(row["status"], "ok");
        assert_eq!(row["model"], "demo-b");
        let (p, c) = (
            row["usage"]["prompt_tokens"].as_f64().unwrap(),
            row["usage"]["completion_tokens"].as_f64().unwrap(),
        );
        assert!((row["cost_usd"].as_f64().unwrap() - (p + 2.0 * c) / 1e6).abs() < 1e-12);
    }
    // Another set of arms into the same file is refused.
    let refused = replay(&["--facts", "none"]);
    assert!(
        !refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("--new-run")
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_in_process_runs_ragbacks_own_pipeline_and_records_rejections() {
    let (server, _) = FakeJudge::start().await;
    let dir = tempfile::tempdir().unwrap();
    let windows = demo_windows(dir.path());
    // One window ragback must refuse: a user without a name.
    let mut text = std::fs::read_to_string(&windows).unwrap();
    let first = text.lines().next().unwrap().to_owned();
    let mut bad: Value = serde_json::from_str(&first).unwrap();
    bad["id"] = json!("bad#1");
    bad["user"] = json!({"name": ""});
    text.push_str(&format!("{bad}\n"));
    std::fs::write(&windows, text).unwrap();
    let out = dir.path().join("replies.jsonl");
    let (ok, _, stderr) = local_eval(
        dir.path(),
        &server,
        &[],
        &[
            "replay",
            "--windows",
            "@windows.jsonl",
            "--out",
            "@replies.jsonl",
            "--arm",
            "A=local,model=demo-a",
            "--arm",
            "B=local,model=demo-b",
            "--facts",
            "none",
        ],
    );
    assert!(ok, "{stderr}");
    let rows = rows(&out);
    assert_eq!(rows.len(), 42);
    let bad: Vec<&Value> = rows.iter().filter(|r| r["window"] == "bad#1").collect();
    assert!(
        bad.iter()
            .all(|r| r["status"] == "invalid" && r["attempts"] == 1),
        "{bad:?}"
    );
    assert!(
        rows.iter()
            .filter(|r| r["window"] != "bad#1")
            .all(|r| r["status"] == "ok")
    );
    let a = rows
        .iter()
        .find(|r| r["arm"] == "A" && r["status"] == "ok")
        .unwrap();
    assert_eq!(a["model"], "demo-a");
    assert!(a["text"].as_str().unwrap().starts_with("*nods"), "{a}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_length_biased_judge_is_caught_by_the_length_controlled_rate() {
    // 1,000 pairs of 200 dialogues, one criterion; B is the longer reply in 75 % of them, quality
    // has nothing to do with it, and the judge picks the longer one with probability 0.75 in
    // each order: the raw win rate rises (0.625 expected), the length-controlled one does not.
    let dir = tempfile::tempdir().unwrap();
    let (mut windows, mut replies) = (
        String::new(),
        String::from(
            "{\"kind\":\"run\",\"stage\":\"replay\",\"config\":{},\"config_sha256\":\"x\"}\n",
        ),
    );
    for i in 0..1000 {
        let (dialogue, id) = (
            format!("d{:03}", i % 200),
            format!("d{:03}#{}", i % 200, i + 2),
        );
        windows.push_str(&json!({"id": id, "dialogue": dialogue, "index": i + 2, "bucket": "middle",
            "user": {"name": "John"}, "character": {"name": "Blaze"}, "scenario": null,
            "context": [{"role": "user", "text": "Hi"}], "logged": {"role": "character", "text": "Yo."}}).to_string());
        windows.push('\n');
        let long = format!("*leans in* Yo, that's wild{}", ", bro".repeat(1 + i % 9));
        let short = "*nods* Yo.".to_owned();
        let (a, b) = if i % 4 == 0 {
            (&long, &short)
        } else {
            (&short, &long)
        };
        for (arm, text) in [("A", a), ("B", b)] {
            replies.push_str(
                &json!({"kind": "reply", "key": format!("{id}|{arm}|0"), "window": id,
                "dialogue": dialogue, "arm": arm, "status": "ok", "text": format!("{text} {i}")})
                .to_string(),
            );
            replies.push('\n');
        }
    }
    std::fs::write(dir.path().join("windows.jsonl"), windows).unwrap();
    std::fs::write(dir.path().join("replies.jsonl"), replies).unwrap();
    let (server, _) = FakeJudge::start().await;
    let (ok, _, stderr) = run(judge_command(dir.path(), &server).args(eval_args(
        dir.path(),
        &[
            "pairwise",
            "--windows",
            "@windows.jsonl",
            "--replies",
            "@replies.jsonl",
            "--out",
            "@judgments.jsonl",
            "--judge-model",
            "longer:0.75",
            "--criteria",
            "engagement",
            "--concurrency",
            "8",
        ],
    )));
    assert!(ok, "{stderr}");
    let r = report(dir.path(), "judgments.jsonl", &[]);
    let c = criterion(&r, "engagement");
    let (raw, lc) = (
        c["win_rate"]["value"].as_f64().unwrap(),
        c["length_controlled"]["value"].as_f64().unwrap(),
    );
    assert!((0.59..0.66).contains(&raw), "raw win rate {raw}");
    assert!((lc - 0.5).abs() < 0.05, "LC {lc}");
    let warnings = c["warnings"].to_string();
    assert!(
        warnings.contains("length-driven") && warnings.contains("more than 0.10"),
        "{warnings}"
    );
    assert_ne!(r["decision"]["verdict"], "SHIP");
}

/// With no judge URL, the local chat model judges — and every output says it is a smoke test.
#[cfg(feature = "local-llm")]
#[tokio::test(flavor = "multi_thread")]
async fn without_a_judge_url_the_local_model_is_a_labelled_smoke_test_judge() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    // One pair is enough to see the label.
    let keep = |path: &Path, lines: usize| {
        let text = std::fs::read_to_string(path).unwrap();
        let kept: Vec<&str> = text.lines().take(lines).collect();
        std::fs::write(path, kept.join("\n") + "\n").unwrap();
    };
    keep(&dir.path().join("windows.jsonl"), 1);
    let model = ragback_testkit::repo_root().join(ragback_testkit::CHAT_MODEL);
    let (ok, _, stderr) = run(ragback(BIN, &dir.path().join("store"), None)
        .env("RAGBACK_LLM__LOCAL__MODEL_PATH", &model)
        .args(eval_args(
            dir.path(),
            &[
                "pairwise",
                "--windows",
                "@windows.jsonl",
                "--replies",
                "@replies.jsonl",
                "--out",
                "@judgments.jsonl",
                "--criteria",
                "engagement",
                "--concurrency",
                "1",
            ],
        )));
    assert!(ok, "{stderr}");
    assert!(stderr.contains("SMOKE-TEST JUDGE"), "{stderr}");
    let judged = rows(&dir.path().join("judgments.jsonl"));
    assert_eq!(judged.len(), 2, "both orders");
    assert!(judged.iter().all(|r| r["smoke_test_judge"] == true
        && r["judge_model"].as_str().unwrap().starts_with("local/")));
    // Held to the verdict's JSON schema, the local model always gives one.
    assert!(
        judged
            .iter()
            .all(|r| r["status"] == "ok" && r["verdict_slot"].is_string()),
        "{judged:?}"
    );
    let r = report(dir.path(), "judgments.jsonl", &[]);
    assert_eq!(r["smoke_test_judge"], true);
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("Smoke-test judge"));
}

/// `make eval-demo`'s script, end to end, with the fake LLM in this process.
#[tokio::test(flavor = "multi_thread")]
async fn the_demo_script_runs_the_whole_chain_and_ships() {
    let (server, _) = FakeJudge::start().await;
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new("bash")
        .arg(ragback_testkit::repo_root().join("scripts/eval-demo.sh"))
        .env("RAGBACK", BIN)
        .env("FAKE_URL", server.uri())
        .env("OUT", dir.path().join("demo"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("116 replies made, 0 failed"), "{stderr}");
    assert!(stderr.contains("decision: SHIP"), "{stderr}");
    for line in super::documented_decision("$ make eval-demo") {
        assert!(
            stderr.contains(&line),
            "docs/evaluation.md shows {line:?}, the run:\n{stderr}"
        );
    }
    let html = std::fs::read_to_string(dir.path().join("demo/report.html")).unwrap();
    assert!(html.contains("SHIP</b> to 10 % of users"));
}

/// `make eval-long`'s script: the rolling summary on (B) vs off (A) on long dialogues, with the
/// fake LLM in this process: only with the summary does the model see the facts of the first
/// turns when it is asked about them 150 turns later, and the judge prefers those replies.
#[tokio::test(flavor = "multi_thread")]
async fn the_long_dialogue_script_shows_the_summary_win() {
    let (server, _) = FakeJudge::start().await;
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new("bash")
        .arg(ragback_testkit::repo_root().join("scripts/eval-long.sh"))
        .env("RAGBACK", BIN)
        .env("FAKE_URL", server.uri())
        .env("OUT", dir.path().join("long"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("12 windows of 3 dialogues"), "{stderr}");
    assert!(stderr.contains("24 replies made, 0 failed"), "{stderr}");
    assert!(stderr.contains("decision: SHIP"), "{stderr}");
    let replies = std::fs::read_to_string(dir.path().join("long/replies.jsonl")).unwrap();
    let (mut with, mut without) = (0, 0);
    for row in replies
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        let recalled = row["text"]
            .as_str()
            .is_some_and(|t| t.contains("Of course. Remember:"));
        match (row["arm"].as_str(), recalled) {
            (Some("B"), true) => with += 1,
            (Some("A"), true) => without += 1,
            _ => {}
        }
    }
    assert_eq!((with, without), (12, 0), "{replies}");
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("long/report.json")).unwrap(),
    )
    .unwrap();
    for criterion in report["criteria"].as_array().unwrap() {
        assert_eq!(criterion["counts"]["win"], 12, "{criterion}");
        assert_eq!(criterion["win_rate"]["value"], 1.0, "{criterion}");
    }
    assert_eq!(report["decision"]["verdict"], "SHIP");
}

/// A rollout's log: five users on `a` who write 4 messages, each reply with one action; five on
/// `b` who write 6, no reply with an action.
#[tokio::test(flavor = "multi_thread")]
async fn logged_dialogues_are_grouped_by_variant_and_a_variant_is_replayed_by_name() {
    let dir = tempfile::tempdir().unwrap();
    rollout_log(dir.path());
    let eval = |args: &[&str]| {
        run(ragback(BIN, &dir.path().join("store"), None).args(eval_args(dir.path(), args)))
    };

    let (ok, stdout, stderr) = eval(&[
        "variants",
        "--dialogues",
        "@rollout.jsonl",
        "--baseline",
        "a",
        "--out",
        "@variants.json",
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("user msgs/dialogue") && stdout.contains("  − a"),
        "{stdout}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("variants.json")).unwrap())
            .unwrap();
    let variants = report["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 2);
    let (a, b) = (&variants[0], &variants[1]);
    assert_eq!(
        (
            a["variant"].as_str(),
            a["dialogues"].as_u64(),
            a["replies"].as_u64()
        ),
        (Some("a"), Some(5), Some(20))
    );
    assert_eq!(a["one_action_rate"]["value"], 1.0);
    assert_eq!(b["user_messages_per_dialogue"]["value"], 6.0);
    assert_eq!(b["one_action_rate"]["value"], 0.0);
    let versus = &b["versus_baseline"];
    assert_eq!(versus["user_messages_per_dialogue"]["value"], 2.0);
    assert_eq!(versus["one_action_rate"]["value"], -1.0);
    assert!(a["versus_baseline"].is_null());

    // B's real replies, for the moderation floor: windows of b's targets only, replayed as logged.
    let (ok, _, stderr) = eval(&[
        "windows",
        "--dialogues",
        "@rollout.jsonl",
        "--out",
        "@b-windows.jsonl",
        "--logged-variant",
        "b",
        "--min-context",
        "1",
        "--stride",
        "2",
    ]);
    assert!(ok, "{stderr}");
    let windows: Vec<Value> = std::fs::read_to_string(dir.path().join("b-windows.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!windows.is_empty());
    assert!(
        windows.iter().all(|w| w["logged_variant"] == "b"),
        "{windows:?}"
    );

    // The same windows replayed by ragback in this process, asking for variant b by name.
    let (server, _) = FakeJudge::start().await;
    let (ok, _, stderr) = local_eval(
        dir.path(),
        &server,
        &[("RAGBACK_VARIANTS__B__MODEL", "demo-b")],
        &[
            "replay",
            "--windows",
            "@b-windows.jsonl",
            "--out",
            "@b-replies.jsonl",
            "--arm",
            "logged=logged",
            "--arm",
            "replayed=local,variant=b",
            "--facts",
            "none",
        ],
    );
    assert!(ok, "{stderr}");
    let replayed = rows(&dir.path().join("b-replies.jsonl"));
    assert_eq!(replayed.len(), 2 * windows.len());
    for row in &replayed {
        assert_eq!(row["status"], "ok", "{row}");
        assert_eq!(row["variant"], "b", "{row}");
    }
    assert!(
        replayed
            .iter()
            .filter(|r| r["arm"] == "replayed")
            .all(|r| r["model"] == "demo-b")
    );

    // An unknown variant is refused by ragback, and recorded as such.
    let (ok, _, stderr) = local_eval(
        dir.path(),
        &server,
        &[],
        &[
            "replay",
            "--windows",
            "@b-windows.jsonl",
            "--out",
            "@c-replies.jsonl",
            "--arm",
            "c=local,variant=c",
        ],
    );
    assert!(ok, "{stderr}");
    let refused = rows(&dir.path().join("c-replies.jsonl"));
    assert!(
        refused.iter().all(|r| r["status"] == "invalid"
            && r["error"].as_str().unwrap().contains("unknown variant `c`")),
        "{refused:?}"
    );
}
