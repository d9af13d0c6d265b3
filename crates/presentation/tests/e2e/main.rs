//! ragback's router and end-to-end tests, in one binary so that the crate links one test
//! executable (zero2prod's `tests/api/main.rs`). The harness lives in `ragback-testkit`.
//!
//! End-to-end tests run the real server (in process, or the `ragback` binary) on port 0 over a
//! real Qdrant Edge store in a temporary directory, with local servers speaking Cohere's and
//! OpenRouter's wire formats. Router tests (`api_errors`) go through `tower::ServiceExt::oneshot`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_errors;
mod attacks;
mod auth;
mod chat;
mod cli;
mod cli_facts;
mod deployment;
mod docs;
mod durability;
mod eval;
mod facts_api;
mod faults;
mod generate;
mod guard;
#[cfg(feature = "local-llm")]
mod local_model;
mod memory;
mod openapi;
mod operations;
#[cfg(feature = "qdrant-server")]
mod qdrant_backend;
mod queued_jobs;
#[cfg(feature = "qdrant-server")]
mod replicas;
mod serve_process;
mod streaming;
mod variants;

use std::path::Path;
use std::process::Command;

use wiremock::MockServer;

/// The `ragback` binary under test, as [`ragback_testkit::process::ragback`] sets it up.
fn ragback(store: &Path, cohere: Option<&MockServer>) -> Command {
    ragback_testkit::process::ragback(env!("CARGO_BIN_EXE_ragback"), store, cohere)
}
