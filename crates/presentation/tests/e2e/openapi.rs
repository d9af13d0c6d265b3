//! `GET /openapi.json` describes exactly the routes the server has; `GET /docs` shows it.

use std::collections::BTreeSet;

use ragback_testkit::{Setup, TestApp};
use serde_json::{Value, json};

/// Every route of the API, as (method, path template).
const ROUTES: &[(&str, &str)] = &[
    ("post", "/generate"),
    ("post", "/api/v1/chat"),
    ("post", "/{kind}/{id}/facts"),
    ("get", "/{kind}/{id}/facts"),
    ("delete", "/{kind}/{id}/facts"),
    ("delete", "/{kind}/{id}/facts/{fact_id}"),
    ("post", "/facts/search"),
    ("post", "/users/{id}/memories:extract"),
    ("get", "/users/{id}/conversations/{conversation_id}/summary"),
    (
        "delete",
        "/users/{id}/conversations/{conversation_id}/summary",
    ),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
];

#[tokio::test(flavor = "multi_thread")]
async fn the_document_lists_every_route_and_every_listed_route_exists() {
    let app = TestApp::spawn_with(Setup {
        vars: vec![(
            "RAGBACK_SERVER__API_KEYS".into(),
            "reader-key-123-0123456789".into(),
        )],
        ..Setup::default()
    })
    .await;
    // Open without a key.
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, expected);
    // The authorization policy decides every documented route, and no other.
    let decided: BTreeSet<(String, String)> = ragback_presentation::api::route_policy()
        .into_iter()
        .map(|(m, p, _)| (m.to_lowercase(), p.to_owned()))
        .collect();
    assert_eq!(
        decided, expected,
        "api::access::ROUTES and the router differ"
    );

    // Each documented operation is served: not the router's 404 or 405.
    for (method, template) in &documented {
        let path = template
            .replace("{kind}", "users")
            .replace("{id}", "john")
            .replace("{fact_id}", "6f1c1f9e-8a4b-4a8e-9a53-0f4f7f3f4f11");
        let request = app
            .client
            .request(method.to_uppercase().parse().unwrap(), app.url(&path))
            .bearer_auth("reader-key-123-0123456789");
        let request = if method == "get" || method == "delete" {
            request
        } else {
            request.json(&json!({}))
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert!(
            status != 404 || body["error"]["code"] != "not_found",
            "{method} {path} is documented but not routed: {body}"
        );
    }
    // And a route that is not documented is not served.
    let missing = app
        .client
        .get(app.url("/admin"))
        .bearer_auth("reader-key-123-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // Every operation documents its responses, errors with the shared error body.
    let generate = &doc["paths"]["/generate"]["post"];
    assert_eq!(
        generate["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/GenerateRequest"
    );
    assert_eq!(
        generate["responses"]["422"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test(flavor = "multi_thread")]
async fn docs_is_a_page_over_the_document_that_works_offline() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    assert!(!page.contains("<script"), "a page without scripts");
    let doc = app.get_json("/openapi.json").await;
    let mut routes: Vec<String> = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for method in methods.as_object().unwrap().keys() {
            routes.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    assert!(routes.len() >= 12, "{routes:?}");

    // As a browser with no network but this machine renders it.
    let Some(browser) =
        ragback_testkit::browser::Browser::start(&[ragback_testkit::browser::OFFLINE]).await
    else {
        return;
    };
    browser.open(&app.url("/docs")).await;
    let seen = browser
        .script(
            "return [Array.from(document.querySelectorAll('article h3')).map(h => \
             h.querySelector('.method') ? h.querySelector('.method').innerText + ' ' + \
             h.querySelector('code').innerText : ''), \
             performance.getEntriesByType('resource').map(r => r.name), \
             document.querySelectorAll('#schemas article').length];",
        )
        .await;
    let listed: Vec<&str> = seen[0]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for route in &routes {
        assert!(
            listed.contains(&route.as_str()),
            "{route} not in {listed:?}"
        );
    }
    assert_eq!(seen[1], json!([]), "the page fetched: {}", seen[1]);
    assert!(seen[2].as_u64().unwrap() >= 10, "the schemas: {}", seen[2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_error_code_is_in_the_document_and_in_the_api_reference() {
    let app = TestApp::spawn().await;
    let doc = app.get_json("/openapi.json").await;
    let codes: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("no ErrorCode enum in {}", doc["components"]["schemas"]))
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"llm_timeout") && codes.len() >= 20,
        "{codes:?}"
    );
    // The detail's code is documented as one of them.
    assert_eq!(
        doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
    let reference = "docs/api.md";
    let text = std::fs::read_to_string(ragback_testkit::repo_root().join(reference)).unwrap();
    let missing: Vec<&&str> = codes
        .iter()
        .filter(|code| !text.contains(&format!("`{code}`")))
        .collect();
    assert!(missing.is_empty(), "{reference} does not list {missing:?}");
}
