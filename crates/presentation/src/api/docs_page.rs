//! `GET /docs`: the API reference rendered by ragback itself from its OpenAPI document — every
//! route with its parameters, body and responses, then every schema — as one HTML page with its
//! style inline and no script: it loads nothing from anywhere, so it works offline and behind
//! a strict proxy.

use std::fmt::Write as _;

use serde_json::Value;

/// The page of `document` (OpenAPI 3.1, as `/openapi.json` serves it).
pub(crate) fn render(document: &Value) -> String {
    let info = &document["info"];
    let title = text(&info["title"]);
    let mut page = String::with_capacity(64 * 1024);
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} API</title>\n<link rel=\"icon\" href=\"data:,\">\n\
         <style>{STYLE}</style>\n</head>\n<body>\n\
         <header><h1>{title} <small>{version}</small></h1><p>{description}</p>\
         <p>The machine-readable document: <a href=\"/openapi.json\">/openapi.json</a>.</p>\
         </header>\n<nav>",
        title = escape(&title),
        version = escape(&text(&info["version"])),
        description = prose(&text(&info["description"])),
    );
    let operations = operations(document);
    let tags = tags(document, &operations);
    for (tag, _) in &tags {
        let _ = write!(
            page,
            "<a href=\"#tag-{id}\">{tag}</a> ",
            id = anchor(tag),
            tag = escape(tag)
        );
    }
    page.push_str("<a href=\"#schemas\">schemas</a></nav>\n<main>\n");
    for (tag, description) in &tags {
        let _ = writeln!(
            page,
            "<section id=\"tag-{id}\"><h2>{tag}</h2><p>{description}</p>",
            id = anchor(tag),
            tag = escape(tag),
            description = prose(description)
        );
        for operation in operations.iter().filter(|o| &o.tag == tag) {
            operation.render(&mut page);
        }
        page.push_str("</section>\n");
    }
    page.push_str("<section id=\"schemas\"><h2>schemas</h2>\n");
    if let Some(schemas) = document["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            render_schema(&mut page, name, schema);
        }
    }
    page.push_str("</section>\n</main>\n</body>\n</html>\n");
    page
}

/// One route and method.
struct Operation<'a> {
    method: String,
    path: &'a str,
    tag: String,
    body: &'a Value,
}

/// Every operation of the document, in its paths' order.
fn operations(document: &Value) -> Vec<Operation<'_>> {
    let mut all = Vec::new();
    let Some(paths) = document["paths"].as_object() else {
        return all;
    };
    for (path, methods) in paths {
        let Some(methods) = methods.as_object() else {
            continue;
        };
        for (method, body) in methods {
            let tag = body["tags"][0].as_str().unwrap_or("other").to_owned();
            all.push(Operation {
                method: method.to_ascii_uppercase(),
                path,
                tag,
                body,
            });
        }
    }
    all
}

/// The document's tags with their descriptions, then any tag only an operation names.
fn tags(document: &Value, operations: &[Operation<'_>]) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = document["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .map(|t| (text(&t["name"]), text(&t["description"])))
                .collect()
        })
        .unwrap_or_default();
    for operation in operations {
        if !tags.iter().any(|(name, _)| *name == operation.tag) {
            tags.push((operation.tag.clone(), String::new()));
        }
    }
    tags
}

impl Operation<'_> {
    fn render(&self, page: &mut String) {
        let body = self.body;
        let _ = write!(
            page,
            "<article id=\"{id}\"><h3><span class=\"method {class}\">{method}</span> \
             <code>{path}</code> {summary}</h3>",
            id = anchor(&format!("{} {}", self.method, self.path)),
            class = self.method.to_ascii_lowercase(),
            method = self.method,
            path = escape(self.path),
            summary = prose(&text(&body["summary"])),
        );
        let description = text(&body["description"]);
        if !description.is_empty() {
            let _ = write!(page, "<p>{}</p>", prose(&description));
        }
        if let Some(parameters) = body["parameters"].as_array().filter(|p| !p.is_empty()) {
            page.push_str(
                "<table><tr><th>parameter</th><th>in</th><th>type</th><th>description</th></tr>",
            );
            for parameter in parameters {
                let required = if parameter["required"].as_bool() == Some(true) {
                    " <em>required</em>"
                } else {
                    ""
                };
                let _ = write!(
                    page,
                    "<tr><td><code>{name}</code>{required}</td><td>{place}</td><td>{kind}</td>\
                     <td>{description}</td></tr>",
                    name = escape(&text(&parameter["name"])),
                    place = escape(&text(&parameter["in"])),
                    kind = type_of(&parameter["schema"]),
                    description = prose(&text(&parameter["description"])),
                );
            }
            page.push_str("</table>");
        }
        if let Some(content) = body["requestBody"]["content"].as_object() {
            for (media, media_body) in content {
                let _ = write!(
                    page,
                    "<p class=\"body\">body <code>{}</code>: {}</p>",
                    escape(media),
                    type_of(&media_body["schema"])
                );
            }
        }
        if let Some(responses) = body["responses"].as_object() {
            page.push_str("<table><tr><th>status</th><th>description</th><th>body</th></tr>");
            for (status, response) in responses {
                let kinds: Vec<String> = response["content"]
                    .as_object()
                    .map(|content| {
                        content
                            .iter()
                            .map(|(media, m)| {
                                format!("<code>{}</code> {}", escape(media), type_of(&m["schema"]))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let _ = write!(
                    page,
                    "<tr><td>{status}</td><td>{description}</td><td>{kinds}</td></tr>",
                    status = escape(status),
                    description = prose(&text(&response["description"])),
                    kinds = kinds.join("<br>"),
                );
            }
            page.push_str("</table>");
        }
        page.push_str("</article>\n");
    }
}

fn render_schema(page: &mut String, name: &str, schema: &Value) {
    let _ = write!(
        page,
        "<article id=\"schema-{id}\"><h3><code>{name}</code></h3>",
        id = anchor(name),
        name = escape(name)
    );
    let description = text(&schema["description"]);
    if !description.is_empty() {
        let _ = write!(page, "<p>{}</p>", prose(&description));
    }
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<String> = values
            .iter()
            .map(|v| format!("<code>{}</code>", escape(&v.to_string())))
            .collect();
        let _ = write!(page, "<p>one of {}</p>", values.join(", "));
    }
    if let Some(variants) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        let kinds: Vec<String> = variants.iter().map(type_of).collect();
        let _ = write!(page, "<p>one of {}</p>", kinds.join(" | "));
    }
    if let Some(properties) = schema["properties"].as_object() {
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        page.push_str("<table><tr><th>field</th><th>type</th><th>description</th></tr>");
        for (field, property) in properties {
            let mark = if required.contains(&field.as_str()) {
                " <em>required</em>"
            } else {
                ""
            };
            let _ = write!(
                page,
                "<tr><td><code>{field}</code>{mark}</td><td>{kind}</td><td>{description}</td></tr>",
                field = escape(field),
                kind = type_of(property),
                description = prose(&text(&property["description"])),
            );
        }
        page.push_str("</table>");
    }
    page.push_str("</article>\n");
}

/// A schema's type in a few words, schemas named by a link to their entry.
fn type_of(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!("<a href=\"#schema-{}\">{}</a>", anchor(name), escape(name));
    }
    if let Some(variants) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        let kinds: Vec<String> = variants.iter().map(type_of).collect();
        return kinds.join(" | ");
    }
    let kind = match &schema["type"] {
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        Value::String(kind) => kind.clone(),
        _ => String::new(),
    };
    match kind.as_str() {
        "array" | "array | null" => format!("list of {}", type_of(&schema["items"])),
        "" => "any".to_owned(),
        _ => escape(&kind),
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// `id` usable in an `id` attribute and a fragment.
fn anchor(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// A description: escaped, its `code` spans set as code.
fn prose(text: &str) -> String {
    let escaped = escape(text);
    let mut out = String::with_capacity(escaped.len());
    for (i, part) in escaped.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2330}\
header,main,nav{max-width:1000px;margin:0 auto;padding:0 1.5rem}\
header{padding-top:1.5rem}h1 small{font-size:.5em;color:#667}\
nav{position:sticky;top:0;background:#fff;padding:.5rem 1.5rem;border-bottom:1px solid #dde}\
nav a{margin-right:1rem}h2{margin-top:2.5rem;border-bottom:2px solid #dde}\
article{border:1px solid #e3e6ee;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}\
h3{font-size:1rem;margin:.4rem 0}code{font:13px ui-monospace,monospace}\
.method{display:inline-block;min-width:4.5em;text-align:center;border-radius:4px;color:#fff;\
font:600 12px ui-monospace,monospace;padding:2px 0}.get{background:#2f7d4f}\
.post{background:#2a62b8}.put{background:#8a5a00}.patch{background:#6b4bb0}\
.delete{background:#b3372f}table{border-collapse:collapse;width:100%;margin:.5rem 0}\
th,td{text-align:left;border-top:1px solid #eef;padding:.25rem .5rem;vertical-align:top}\
th{font-weight:600;color:#445}em{color:#b3372f;font-style:normal;font-size:12px}";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn routes_schemas_and_escaping() {
        let document = json!({
            "info": {"title": "ragback", "version": "1.2.3", "description": "Replies <fast>."},
            "tags": [{"name": "facts", "description": "Facts"}],
            "paths": {
                "/users/{id}/facts": {"get": {"tags": ["facts"], "summary": "List",
                    "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "The facts", "content": {"application/json":
                        {"schema": {"$ref": "#/components/schemas/FactPage"}}}}}}}
            },
            "components": {"schemas": {"FactPage": {"type": "object", "required": ["facts"],
                "properties": {"facts": {"type": "array", "items": {"$ref": "#/components/schemas/Fact"}}}}}}
        });
        let page = render(&document);
        assert!(page.contains("<code>/users/{id}/facts</code>"), "{page}");
        assert!(page.contains("Replies &lt;fast&gt;."), "{page}");
        assert_eq!(prose("a `b` c"), "a <code>b</code> c");
        assert!(
            page.contains("<a href=\"#schema-FactPage\">FactPage</a>"),
            "{page}"
        );
        assert!(
            page.contains("list of <a href=\"#schema-Fact\">Fact</a>"),
            "{page}"
        );
        assert!(!page.contains("<script"), "no script");
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "nothing external"
        );
    }
}
