//! The HTML report as headless Chromium renders it.

use super::*;

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
    report(dir.path(), "judgments.jsonl", &[]);
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
