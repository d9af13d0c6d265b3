//! On-policy evaluation through the binary: `eval simulate` against the fake LLM's scripted user
//! simulator (resumed after a stop, the same conversations as an uninterrupted run; the
//! simulator's drift found and excluded), whole-dialogue judging, the judge's A/A check (a fair
//! judge passes, a first-slot judge makes the run INVALID) and its agreement with human labels
//! (κ 1, about 0, negative), and `make eval-sim`'s script with its exact numbers.

use std::path::Path;

use ragback_testkit::process::{ragback, run};
use serde_json::{Value, json};

use super::{BIN, FakeJudge, eval_args, fixture, judge_command, local_eval, pairwise, rows};

/// `eval simulate` of `seeds` into `out`, the arms in process on the fake's demo models.
fn simulate(
    dir: &Path,
    llm: &wiremock::MockServer,
    seeds: &str,
    out: &str,
    extra: &[&str],
) -> (bool, String) {
    let url = format!("{}/v1", llm.uri());
    let vars = [
        ("RAGBACK_EVAL__SIMULATOR__BASE_URL", url.as_str()),
        ("RAGBACK_EVAL__SIMULATOR__API_KEY", "sim-key"),
        ("RAGBACK_EVAL__SIMULATOR__MODEL", "simulator"),
    ];
    let out = format!("@{out}");
    let mut args = vec![
        "simulate",
        "--dialogues",
        seeds,
        "--out",
        &out,
        "--facts",
        "none",
        "--arm",
        "A=local,model=demo-a",
        "--arm",
        "B=local,model=demo-late",
        "--turns",
        "6",
        "--backoff-ms",
        "10",
        "--price",
        "simulator=0.15:0.60",
        "--price",
        "demo-a=0.02:0.04",
        "--price",
        "demo-late=0.05:0.10",
    ];
    args.extend_from_slice(extra);
    let (ok, _, stderr) = local_eval(dir, llm, &vars, &args);
    (ok, stderr)
}

/// Two seeds of the demo corpus and the two persona seeds (Lena, and Zed whose simulator
/// speaks as the character).
fn seeds(dir: &Path) -> String {
    let root = ragback_testkit::repo_root();
    let demo = std::fs::read_to_string(root.join("data/eval/dialogues.jsonl")).unwrap();
    let personas = std::fs::read_to_string(root.join("data/eval/persona-seeds.jsonl")).unwrap();
    let text: String = demo
        .lines()
        .take(2)
        .chain(personas.lines())
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("seeds.jsonl"), text).unwrap();
    "@seeds.jsonl".into()
}

fn dialogues(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_simulation_resumes_into_the_same_conversations() {
    let (llm, _) = FakeJudge::start().await;
    let dir = tempfile::tempdir().unwrap();
    let seeds = seeds(dir.path());
    // Stopped by the budget after its first calls, then resumed.
    let (ok, stderr) = simulate(dir.path(), &llm, &seeds, "sim", &["--max-cost", "0.00002"]);
    assert!(!ok, "the budget stops it: {stderr}");
    let partial = rows(&dir.path().join("sim/journal.jsonl")).len();
    let (ok, stderr) = simulate(dir.path(), &llm, &seeds, "sim", &[]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!("({partial} turns already in")),
        "{stderr}"
    );
    // The same as a run that was never stopped.
    let (ok, stderr) = simulate(dir.path(), &llm, &seeds, "fresh", &[]);
    assert!(ok, "{stderr}");
    let (resumed, fresh) = (
        dialogues(&dir.path().join("sim/dialogues.jsonl")),
        dialogues(&dir.path().join("fresh/dialogues.jsonl")),
    );
    assert_eq!(resumed, fresh);
    assert_eq!(resumed.len(), 8, "4 seeds × 2 arms");
    assert!(
        stderr.contains("2 excluded by the simulator's health check"),
        "{stderr}"
    );

    let by_id = |id: &str| resumed.iter().find(|d| d["id"] == id).unwrap();
    // Both arms met the same user: the same first simulated line, the same seed opening.
    let (a, b) = (by_id("persona-01~A"), by_id("persona-01~B"));
    assert_eq!(
        a["messages"].as_array().unwrap()[..2],
        b["messages"].as_array().unwrap()[..2]
    );
    assert_eq!(a["messages"][2]["model"], "demo-a");
    assert_eq!(b["messages"][2]["model"], "demo-late");
    assert_eq!(a["messages"][3], b["messages"][3]);
    assert_eq!(a["messages"][3]["text"], "I moved back last month.");
    let simulation = &a["simulation"];
    assert_eq!(simulation["replies"], 6);
    assert_eq!(simulation["complete"], true);
    assert_eq!(simulation["excluded"], json!([]));
    // Zed speaks as Blaze on his second line, then leaves: excluded, listed, ended early.
    let zed = &by_id("persona-02~B")["simulation"];
    assert_eq!(zed["excluded"], json!(["speaks_as_character in 1 turn(s)"]));
    assert_eq!(zed["health"]["ended_early"], true);
    assert_eq!(
        zed["health"]["drifts"],
        json!([["speaks_as_character", [1]]])
    );
    // Every simulated reply is a window with its reply row, for `moderate`.
    let windows = std::fs::read_to_string(dir.path().join("sim/windows.jsonl")).unwrap();
    let replies = rows(&dir.path().join("sim/replies.jsonl"));
    assert_eq!(windows.lines().count(), replies.len());
    assert!(
        replies
            .iter()
            .all(|r| r["kind"] == "reply" && r["status"] == "ok")
    );
    // The log is a dialogue log: `eval windows` reads it unchanged.
    let (ok, _, stderr) = run(
        ragback(BIN, &dir.path().join("store"), None).args(eval_args(
            dir.path(),
            &[
                "windows",
                "--dialogues",
                "@sim/dialogues.jsonl",
                "--out",
                "@w.jsonl",
            ],
        )),
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("of 8 dialogues"), "{stderr}");
    // Whole-dialogue pairs: Zed's seed left out, listed.
    let (ok, _, stderr) = run(judge_command(dir.path(), &llm).args(eval_args(
        dir.path(),
        &[
            "pairwise",
            "--unit",
            "dialogue",
            "--dialogues",
            "@sim/dialogues.jsonl",
            "--out",
            "@dj.jsonl",
            "--judge-model",
            "oracle",
        ],
    )));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("1 seed conversations left out")
            && stderr.contains("persona-02~A: speaks_as_character"),
        "{stderr}"
    );
    let judged = rows(&dir.path().join("dj.jsonl"));
    assert_eq!(judged.len(), 3 * 3 * 2, "3 seeds × 3 criteria × 2 orders");
    assert!(
        judged
            .iter()
            .all(|r| r["unit"] == "dialogue" && r.get("bucket").is_none())
    );
}

/// A windows and replies fixture where arm A has two samples of equal quality: what an A/A
/// check compares.
fn aa_fixture(dir: &Path) {
    let (_, replies) = fixture(dir);
    let mut text = std::fs::read_to_string(&replies).unwrap();
    for i in 0..40 {
        let dialogue = format!("d{:02}", i % 12);
        let id = format!("{dialogue}#{}", i + 2);
        let words = if i % 2 == 0 { "Yo, man." } else { "Sup." };
        // The fixture's own quality of A's sample 0: another wording, the same quality.
        let q = if (24..32).contains(&i) { 2 } else { 1 };
        text.push_str(
            &json!({
                "kind": "reply", "key": format!("{id}|A|1"), "window": id, "dialogue": dialogue,
                "arm": "A", "sample": 1, "status": "ok", "text": format!("*waves* {words} ⟦q={q}⟧"),
            })
            .to_string(),
        );
        text.push('\n');
    }
    std::fs::write(replies, text).unwrap();
}

fn aa(dir: &Path, server: &wiremock::MockServer, model: &str, out: &str) {
    let (ok, _, stderr) = run(judge_command(dir, server).args(eval_args(
        dir,
        &[
            "pairwise",
            "--aa",
            "--a",
            "A",
            "--windows",
            "@windows.jsonl",
            "--replies",
            "@replies.jsonl",
            "--out",
            &format!("@{out}"),
            "--judge-model",
            model,
        ],
    )));
    assert!(ok, "{stderr}");
}

fn report_of(dir: &Path, judgments: &[&str], extra: &[&str]) -> Value {
    let mut args = vec![
        "report",
        "--bootstrap",
        "400",
        "--html",
        "@r.html",
        "--json",
        "@r.json",
    ];
    let paths: Vec<String> = judgments.iter().map(|j| format!("@{j}")).collect();
    for path in &paths {
        args.extend(["--judgments", path.as_str()]);
    }
    args.extend_from_slice(extra);
    let (ok, _, stderr) = run(ragback(BIN, &dir.join("store"), None).args(eval_args(dir, &args)));
    assert!(ok, "{stderr}");
    serde_json::from_str(&std::fs::read_to_string(dir.join("r.json")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aa_check_passes_a_fair_judge_and_invalidates_a_first_slot_judge() {
    let (server, _) = FakeJudge::start().await;
    let dir = tempfile::tempdir().unwrap();
    aa_fixture(dir.path());
    let (ok, stderr) = pairwise(dir.path(), &server, "oracle", "judgments.jsonl");
    assert!(ok, "{stderr}");
    aa(dir.path(), &server, "oracle", "aa-fair.jsonl");
    aa(dir.path(), &server, "first", "aa-first.jsonl");
    let aa_rows = rows(&dir.path().join("aa-fair.jsonl"));
    assert_eq!(aa_rows.len(), 40 * 3 * 2);
    assert!(
        aa_rows
            .iter()
            .all(|r| r["aa"] == true && r["arms"] == json!(["A#0", "A#1"]))
    );

    let fair = report_of(dir.path(), &["judgments.jsonl", "aa-fair.jsonl"], &[]);
    assert_eq!(fair["decision"]["verdict"], "SHIP", "{}", fair["decision"]);
    let check = &fair["calibration"]["aa"][0];
    assert_eq!(check["passed"], true);
    for c in check["criteria"].as_array().unwrap() {
        assert_eq!(c["win_rate"]["value"], 0.5, "{c}");
        assert_eq!(c["counts"]["tie"], 40, "{c}");
    }

    let first = report_of(dir.path(), &["judgments.jsonl", "aa-first.jsonl"], &[]);
    assert_eq!(first["decision"]["verdict"], "INVALID");
    let check = &first["calibration"]["aa"][0];
    assert_eq!(check["passed"], false);
    let c = &check["criteria"][0];
    // Every pair flips with the order: a win rate of 0.5 that hides a judge reading slots.
    assert_eq!(c["win_rate"]["value"], 0.5, "{c}");
    assert_eq!(c["first_slot_rate"], 1.0, "{c}");
    assert_eq!(c["swap_consistency"], 0.0, "{c}");
    let reasons = first["decision"]["reasons"].to_string();
    assert!(
        reasons.contains("A/A engagement: the judge picks the first-shown reply 100 %"),
        "{reasons}"
    );
    let html = std::fs::read_to_string(dir.path().join("r.html")).unwrap();
    assert!(html.contains("A/A on replies (replay): <span class=\"warn\">FAILS</span>"));
}

/// How human labels relate to the oracle's verdicts.
#[derive(Debug, Clone, Copy)]
enum Agree {
    /// The same verdicts.
    All,
    /// The judge's verdicts swapped between pairs until half match: the same mix of A, B and
    /// tie, agreeing on 50 % — little above chance, which this mix puts at 44 %.
    Half,
    /// Every verdict changed (A → B → tie → A).
    None,
}

/// Labels of the oracle's judged pairs, related to its verdicts as `how` says.
fn labels(dir: &Path, judgments: &Value, how: Agree) -> String {
    let pairs = pairs_of(judgments);
    let judge: Vec<&str> = pairs.iter().map(|(_, _, v)| v.as_str()).collect();
    let mut human = judge.clone();
    match how {
        Agree::All => {}
        Agree::None => {
            for v in &mut human {
                *v = match *v {
                    "A" => "B",
                    "B" => "tie",
                    _ => "A",
                };
            }
        }
        Agree::Half => {
            let matching = |h: &[&str]| h.iter().zip(&judge).filter(|(a, b)| a == b).count();
            'swap: for i in 0..human.len() {
                for j in i + 1..human.len() {
                    if matching(&human) <= judge.len() / 2 {
                        break 'swap;
                    }
                    if human[i] == judge[i] && human[j] == judge[j] && human[i] != human[j] {
                        human.swap(i, j);
                        continue 'swap;
                    }
                }
            }
        }
    }
    let mut text = String::new();
    for ((pair, criterion, _), verdict) in pairs.iter().zip(human) {
        text.push_str(
            &json!({"window_id": pair, "criterion": criterion, "verdict": verdict}).to_string(),
        );
        text.push('\n');
    }
    let name = format!("labels-{how:?}.jsonl");
    std::fs::write(dir.join(&name), text).unwrap();
    format!("@{name}")
}

/// (pair, criterion, verdict) of every judged pair of a report's journal, sorted.
fn pairs_of(judgments: &Value) -> Vec<(String, String, String)> {
    let mut verdicts = std::collections::BTreeMap::new();
    for row in judgments.as_array().unwrap() {
        let verdict = row["verdict_arm"].as_str().unwrap_or("tie").to_owned();
        verdicts
            .entry((
                row["pair"].as_str().unwrap().to_owned(),
                row["criterion"].as_str().unwrap().to_owned(),
            ))
            .or_insert_with(Vec::new)
            .push(verdict);
    }
    verdicts
        .into_iter()
        .map(|((pair, criterion), v)| {
            let verdict = if v.iter().all(|x| *x == v[0]) {
                v[0].clone()
            } else {
                "tie".into()
            };
            (pair, criterion, verdict)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn human_labels_measure_the_judge_and_a_judge_people_disagree_with_is_invalid() {
    let (server, _) = FakeJudge::start().await;
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let (ok, stderr) = pairwise(dir.path(), &server, "oracle", "judgments.jsonl");
    assert!(ok, "{stderr}");
    let judged = Value::Array(rows(&dir.path().join("judgments.jsonl")));
    let agree = |labels: &str| {
        let (ok, stdout, stderr) = run(ragback(BIN, &dir.path().join("store"), None).args(
            eval_args(
                dir.path(),
                &[
                    "agree",
                    "--human",
                    labels,
                    "--judgments",
                    "@judgments.jsonl",
                    "--bootstrap",
                    "300",
                    "--json",
                    "@agree.json",
                ],
            ),
        ));
        assert!(ok, "{stderr}");
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("agree.json")).unwrap())
                .unwrap();
        let all = json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["criterion"] == "all")
            .unwrap()
            .clone();
        (stdout, all["agreement"].clone())
    };
    let (stdout, full) = agree(&labels(dir.path(), &judged, Agree::All));
    assert_eq!(full["n"], 120, "40 pairs × 3 criteria");
    assert_eq!(full["agreement"], 1.0);
    assert!(
        (full["kappa"].as_f64().unwrap() - 1.0).abs() < 1e-9,
        "{full}"
    );
    assert!(
        stdout.contains("reply engagement: judge agrees with people on 100 % of 40 pairs, κ 1.00"),
        "{stdout}"
    );
    let (_, half) = agree(&labels(dir.path(), &judged, Agree::Half));
    assert_eq!(half["agreement"], 0.5);
    let kappa = half["kappa"].as_f64().unwrap();
    assert!(
        kappa.abs() < 0.15,
        "agreement near chance: κ near 0, got {kappa}"
    );
    let (_, none) = agree(&labels(dir.path(), &judged, Agree::None));
    assert_eq!(none["agreement"], 0.0);
    assert!(none["kappa"].as_f64().unwrap() < 0.0, "{none}");

    let good = labels(dir.path(), &judged, Agree::All);
    let r = report_of(dir.path(), &["judgments.jsonl"], &["--human", &good]);
    assert_eq!(r["decision"]["verdict"], "SHIP", "{}", r["decision"]);
    let bad = labels(dir.path(), &judged, Agree::None);
    let r = report_of(dir.path(), &["judgments.jsonl"], &["--human", &bad]);
    assert_eq!(r["decision"]["verdict"], "INVALID");
    assert!(
        r["decision"]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("agrees with people at κ -"),
        "{}",
        r["decision"]
    );
    let html = std::fs::read_to_string(dir.path().join("r.html")).unwrap();
    assert!(html.contains("Agreement with people"));
}

#[test]
fn power_plans_whole_dialogue_judging() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = run(ragback(BIN, &dir.path().join("store"), None)
        .args(["eval", "power", "--unit", "dialogue", "--delta", "0.1"]));
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout.trim(),
        "138 seed conversations (one pair each) ≈ 828 judge calls (3 criteria × 2 orders); \
         simulating them: 276 conversations of 8 replies ≈ 2208 simulator calls and 2208 calls to /generate"
    );
}

/// `make eval-sim`'s script, with the fake LLM in this process: the replay of early windows
/// cannot see the candidate's strength, the simulation can; both judges calibrated.
#[tokio::test(flavor = "multi_thread")]
async fn the_simulation_script_finds_what_the_replay_misses() {
    let (server, _) = FakeJudge::start().await;
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new("bash")
        .arg(ragback_testkit::repo_root().join("scripts/eval-sim.sh"))
        .env("RAGBACK", BIN)
        .env("FAKE_URL", server.uri())
        .env("OUT", dir.path().join("sim"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("5 source periods, sampled alike"),
        "{stderr}"
    );
    assert!(stderr.contains("120 replies made, 0 failed"), "{stderr}");
    assert!(
        stderr.contains("128 conversations done, 0 stopped by a failure; 4 excluded"),
        "{stderr}"
    );
    assert!(stderr.contains("decision: SHIP"), "{stderr}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("sim/report.json")).unwrap())
            .unwrap();
    assert_eq!(report["replay_decision"]["verdict"], "INCONCLUSIVE");
    assert_eq!(report["simulation"]["decision"]["verdict"], "SHIP");
    let replay = &report["criteria"][0];
    assert_eq!(
        replay["counts"],
        json!({"win": 12, "tie": 28, "inconsistent": 0, "loss": 20, "identical": 0, "unjudged": 0})
    );
    let simulated = &report["simulation"]["criteria"][0];
    assert_eq!(
        simulated["counts"],
        json!({"win": 57, "tie": 4, "inconsistent": 0, "loss": 1, "identical": 0, "unjudged": 0})
    );
    assert_eq!(simulated["n_dialogues"], 31);
    let aa = report["calibration"]["aa"].as_array().unwrap();
    assert_eq!(aa.len(), 2);
    assert!(aa.iter().all(|a| a["passed"] == true), "{aa:?}");
    let human = &report["calibration"]["human"][0];
    assert_eq!(human["criterion"], "all");
    assert_eq!(human["agreement"]["agreement"], 0.8);
    let health = &report["health"];
    assert_eq!(
        (health["dialogues"].as_u64(), health["ended_early"].as_u64()),
        (Some(128), Some(32))
    );
    assert_eq!(health["excluded"].as_array().unwrap().len(), 4);
    let html = std::fs::read_to_string(dir.path().join("sim/report.html")).unwrap();
    for section in [
        "Simulated conversations (whole-dialogue judging)",
        "Simulator health",
        "Judge calibration",
        "By source period",
        "Variance across samples",
    ] {
        assert!(html.contains(section), "{section}");
    }
}
