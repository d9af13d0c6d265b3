//! `ragback eval pairwise | moderate | report` through the binary against a fake judge that
//! speaks chat completions: exact counts, the judge-health rules, resumption, and the report.

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
    let r = report(dir.path(), "flaky.jsonl", None);
    assert_eq!(criterion(&r, "engagement")["counts"]["win"], 24);
    // Two pairs whose candidates stay malformed after the re-ask: 5 % unjudged is invalid.
    let replies = dir.path().join("replies.jsonl");
    let text = std::fs::read_to_string(&replies).unwrap();
    std::fs::write(&replies, text.replacen("⟦q=2⟧", "⟦q=2⟧ ⟦bad⟧", 2)).unwrap();
    assert!(pairwise(dir.path(), &server, "oracle", "two-bad.jsonl").0);
    let r = report(dir.path(), "two-bad.jsonl", None);
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
    let (ok, _, stderr) = run(judge_command(dir.path(), &server).args(eval_args(
        dir.path(),
        &[
            "moderate",
            "--windows",
            "@windows.jsonl",
            "--replies",
            "@replies.jsonl",
            "--out",
            "@moderation.jsonl",
            "--judge-model",
            "moderator",
        ],
    )));
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

#[test]
fn power_prints_the_reference_sample_size() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) =
        run(ragback(BIN, &dir.path().join("store"), None).args(["eval", "power"]));
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("550 independent pairs; design effect 1.90 -> 1044 windows ≈ 261 dialogues ≈ 6264 judge calls"), "{stdout}");
}

/// A WebDriver session on headless Chromium (chromedriver), for looking at the report as a
/// browser renders it.
struct Browser {
    driver: std::process::Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Browser {
    /// `None`, with a NOT RUN line, when Chromium or chromedriver is missing.
    async fn start() -> Option<Self> {
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let driver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            println!(
                "NOT RUN: the report in a browser needs Chromium and chromedriver (apt-get install chromium chromium-driver; .ci/run installs them)"
            );
            return None;
        };
        let port = ragback_testkit::process::free_port();
        let driver = std::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = ragback_testkit::http_client();
        let capabilities = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                "--window-size=1000,1500", "--disable-background-networking",
                "--no-first-run", "--disable-extensions"]}}}});
        let mut session = None;
        for _ in 0..100 {
            if let Ok(response) = http
                .post(format!("{base}/session"))
                .json(&capabilities)
                .send()
                .await
            {
                let body: Value = response.json().await.unwrap();
                session = Some(
                    body["value"]["sessionId"]
                        .as_str()
                        .expect("a WebDriver session")
                        .to_owned(),
                );
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Some(Self {
            driver,
            base,
            session: session.expect("chromedriver did not start"),
            http,
        })
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}/{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        response.json::<Value>().await.unwrap()["value"].take()
    }

    async fn script(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_renders_in_a_browser_without_fetching_anything() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let (server, _) = FakeJudge::start().await;
    assert!(pairwise(dir.path(), &server, "oracle", "judgments.jsonl").0);
    report(dir.path(), "judgments.jsonl", None);
    let Some(browser) = Browser::start().await else {
        return;
    };
    let url = format!("file://{}", dir.path().join("report.html").display());
    browser
        .command(reqwest::Method::POST, "url", json!({"url": url}))
        .await;
    let banner = browser
        .script(
            "const b = document.getElementById('decision'); const r = b.getBoundingClientRect(); \
                 return [b.innerText, getComputedStyle(b).backgroundColor, r.width, r.height];",
        )
        .await;
    assert!(
        banner[0].as_str().unwrap().starts_with("SHIP")
            || banner[0].as_str().unwrap().starts_with("INCONCLUSIVE"),
        "{banner}"
    );
    assert!(
        banner[2].as_f64().unwrap() > 500.0 && banner[3].as_f64().unwrap() > 40.0,
        "{banner}"
    );
    assert_ne!(
        banner[1], "rgba(0, 0, 0, 0)",
        "the banner is coloured by its verdict"
    );
    // The forest plot: one dot per criterion, drawn with a size.
    let dots = browser
        .script("return [...document.querySelectorAll('svg circle.wr')].map(c => c.getBoundingClientRect().width);")
        .await;
    let dots = dots.as_array().unwrap();
    assert_eq!(dots.len(), 3);
    assert!(dots.iter().all(|w| w.as_f64().unwrap() > 5.0), "{dots:?}");
    // Nothing was fetched: no resource but the page itself, and the page is a file.
    let resources = browser
        .script("return performance.getEntriesByType('resource').map(e => e.name);")
        .await;
    assert_eq!(resources, json!([]), "the report fetched {resources}");
    let screenshot = browser
        .command(reqwest::Method::GET, "screenshot", Value::Null)
        .await;
    let screenshot = screenshot
        .as_str()
        .unwrap_or_else(|| panic!("no screenshot: {screenshot}"));
    assert!(screenshot.len() > 20_000, "a screenshot with content");
    browser
        .command(reqwest::Method::DELETE, "", Value::Null)
        .await;
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
    let r = report(dir.path(), "judgments.jsonl", None);
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
    let r = report(dir.path(), "judgments.jsonl", None);
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
    let html = std::fs::read_to_string(dir.path().join("demo/report.html")).unwrap();
    assert!(html.contains("SHIP</b> to 10 % of users"));
}

/// A rollout's log: five users on `a` who write 4 messages, each reply with one action; five on
/// `b` who write 6, no reply with an action.
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
