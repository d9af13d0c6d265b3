//! Test support shared by the integration tests of this crate.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod fake_qdrant;
mod fake_qdrant_rpc;
