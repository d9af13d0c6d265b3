//! The documentation keeps its shape: short READMEs that map every page of `docs/`, and no link
//! (to a file, or to a heading in it) that leads nowhere.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ragback_testkit::repo_root;

/// The pages whose links are checked: both READMEs, SECURITY.md and every page of `docs/`.
fn pages() -> Vec<PathBuf> {
    let root = repo_root();
    let mut pages: Vec<PathBuf> = ["README.md", "README-EN.md", "SECURITY.md"]
        .iter()
        .map(|p| root.join(p))
        .collect();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The lines of `text` outside fenced code blocks.
fn prose(text: &str) -> impl Iterator<Item = &str> {
    let mut fenced = false;
    text.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            return false;
        }
        !fenced
    })
}

/// GitHub's anchors of a page's headings: lowercase, punctuation dropped, spaces as hyphens, a
/// repeated heading numbered.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    for line in prose(text) {
        let Some(title) = line.strip_prefix('#').map(|t| t.trim_start_matches('#')) else {
            continue;
        };
        let slug: String = title
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut unique = slug.clone();
        let mut n = 1;
        while !seen.insert(unique.clone()) {
            unique = format!("{slug}-{n}");
            n += 1;
        }
    }
    seen
}

/// The targets of the inline links of a page: `[text](target)`.
fn links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    for line in prose(text) {
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            links.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    links
}

#[test]
fn every_link_of_the_documentation_leads_somewhere() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let dir = page.parent().unwrap();
        for link in links(&text) {
            if link.starts_with("http://")
                || link.starts_with("https://")
                || link.starts_with("mailto:")
            {
                continue;
            }
            let (file, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target: PathBuf = if file.is_empty() {
                page.clone()
            } else {
                dir.join(file)
            };
            if !target.exists() {
                broken.push(format!("{}: {link} (no such file)", page.display()));
                continue;
            }
            if !anchor.is_empty() && target.extension().is_some_and(|e| e == "md") {
                let headings = anchors(&std::fs::read_to_string(&target).unwrap());
                if !headings.contains(anchor) {
                    broken.push(format!("{}: {link} (no such heading)", page.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readmes_are_short_and_map_every_page_of_the_reference() {
    let root = repo_root();
    for readme in ["README.md", "README-EN.md"] {
        let text = std::fs::read_to_string(root.join(readme)).unwrap();
        assert!(
            text.len() < 15_000,
            "{readme} is {} bytes: the reference belongs in docs/",
            text.len()
        );
        for page in pages()
            .iter()
            .filter(|p| p.parent().is_some_and(|d| d.ends_with("docs")))
        {
            let name = page.file_name().unwrap().to_string_lossy();
            assert!(
                text.contains(&format!("](docs/{name})")),
                "{readme} does not link docs/{name}"
            );
        }
    }
}

#[test]
fn the_link_checker_sees_headings_and_links_as_github_does() {
    let page = "# Title\n## Measuring retrieval: `ragback eval retrieval`\n```sh\n# not a heading [x](nowhere)\n```\n## Title\nsee [a](b.md#c) and [d](#title-1)\n";
    let headings = anchors(page);
    assert!(
        headings.contains("measuring-retrieval-ragback-eval-retrieval"),
        "{headings:?}"
    );
    assert!(
        headings.contains("title") && headings.contains("title-1"),
        "{headings:?}"
    );
    assert!(!headings.contains("not-a-heading-xnowhere"));
    assert_eq!(links(page), ["b.md#c", "#title-1"]);
    assert!(Path::new("docs").is_relative());
}

#[test]
fn the_workflow_caches_by_files_that_exist() {
    let root = repo_root();
    let workflow = std::fs::read_to_string(root.join(".github/workflows/ci.yml")).unwrap();
    let hashed: Vec<&str> = workflow
        .split("hashFiles('")
        .skip(1)
        .filter_map(|rest| rest.split_once("')").map(|(path, _)| path))
        .collect();
    assert!(!hashed.is_empty(), "the workflow hashes no file");
    for path in hashed {
        assert!(
            root.join(path).is_file(),
            "the cache key hashes {path}, which is not there: the key would never change"
        );
    }
}

/// The answer the quick start shows (written by `scripts/readme-sample.sh` from a real run of the
/// build): in both READMEs alike, with the fields a real answer has today, facts best first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_start_sample_has_the_shape_of_a_real_answer() {
    let root = ragback_testkit::repo_root();
    let sample = |readme: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(root.join(readme)).unwrap();
        let after = "\"generation\": {\"seed\": 7}}'\n";
        let start = text
            .find(after)
            .unwrap_or_else(|| panic!("{readme}: no request"))
            + after.len();
        let end = start + text[start..].find("\n}\n").expect("the answer's end") + 2;
        serde_json::from_str(&text[start..end])
            .unwrap_or_else(|e| panic!("{readme}: the sample is not JSON: {e}"))
    };
    let (en, ru) = (sample("README-EN.md"), sample("README.md"));
    assert_eq!(en, ru, "both READMEs show the same run");
    let scores: Vec<f64> = en["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );

    // The same request to this build (a scripted model): the same fields, at every level.
    let app = ragback_testkit::TestApp::spawn_with(ragback_testkit::Setup {
        facts: vec![(
            ragback_domain::FactOwner::User(ragback_domain::UserId::parse("john").unwrap()),
            vec!["Completed the London Marathon in 2024"],
        )],
        ..ragback_testkit::Setup::default()
    })
    .await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ragback_testkit::ScriptedReplies::new(&[
            "*grins* No way, bro!",
        ]))
        .mount(&app.llm)
        .await;
    let mut request = ragback_testkit::demo_request();
    request["generation"] = serde_json::json!({"seed": 7});
    let (status, real) = app.post_json("/generate", &request).await;
    assert_eq!(status, 200, "{real}");
    let keys = |v: &serde_json::Value| -> Vec<String> {
        v.as_object()
            .unwrap_or_else(|| panic!("not an object: {v}"))
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(keys(&en), keys(&real), "run scripts/readme-sample.sh");
    for field in ["usage", "prompt", "timings_ms", "safety"] {
        assert_eq!(
            keys(&en[field]),
            keys(&real[field]),
            "{field}: run scripts/readme-sample.sh"
        );
    }
    assert_eq!(keys(&en["facts"][0]), keys(&real["facts"][0]));
}
