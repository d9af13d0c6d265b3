//! The HTML report as headless Chromium renders it.

use ragback_testkit::browser::Browser;

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_report_renders_in_a_browser_without_fetching_anything() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let (server, _) = FakeJudge::start().await;
    assert!(pairwise(dir.path(), &server, "oracle", "judgments.jsonl").0);
    report(dir.path(), "judgments.jsonl", &[]);
    let Some(browser) = Browser::start(&[]).await else {
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
