//! The OpenAPI 3.1 document (`GET /openapi.json`) and the reference page rendered from it
//! (`GET /docs`, [`super::docs_page`]).
//!
//! The document is collected from the `#[utoipa::path]` annotations of the handlers that
//! [`super::router`] registers through `utoipa_axum`, so a route cannot exist without its entry.

use std::sync::Arc;

use axum::response::Html;
use axum::{Extension, Json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, Server};
use utoipa::{Modify, OpenApi};

/// The static part of the document; paths and schemas come from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ragback",
        description = "Writes the next line of a role-play character, with facts about the user \
            retrieved from a vector store. Errors are `{\"error\": {\"code\", \"message\", \
            \"field\"?, \"request_id\"}}`. With API keys configured, every route but `/health`, \
            `/ready`, `/openapi.json` and `/docs` needs `Authorization: Bearer <key>`."
    ),
    tags(
        (name = "generate", description = "Replies"),
        (name = "facts", description = "What ragback knows about users and characters"),
        (name = "summaries", description = "Rolling summaries of long conversations"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    ),
    modifiers(&BearerAuth)
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
        openapi.servers = Some(vec![Server::new("/")]);
    }
}

/// The finished document, shared by the handlers below, and its page (rendered once).
#[derive(Clone)]
pub(crate) struct Spec(pub Arc<Document>, pub Arc<str>);

impl Spec {
    /// The document and its reference page.
    pub(crate) fn new(document: Document) -> Self {
        let json = serde_json::to_value(&document).unwrap_or_default();
        let page = super::docs_page::render(&json);
        Self(Arc::new(document), page.into())
    }
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    summary = "This document",
    responses((status = 200, description = "OpenAPI 3.1", body = Object))
)]
pub(crate) async fn document(Extension(spec): Extension<Spec>) -> Json<Arc<Document>> {
    Json(spec.0)
}

/// `GET /docs`: the API reference, rendered by ragback from this document: no script, nothing
/// fetched from anywhere.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "operations",
    summary = "A browsable API reference",
    responses((status = 200, description = "HTML", body = String, content_type = "text/html"))
)]
pub(crate) async fn docs(Extension(spec): Extension<Spec>) -> Html<String> {
    Html(spec.1.to_string())
}
