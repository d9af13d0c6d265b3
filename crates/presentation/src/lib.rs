//! ragback's presentation layer: the HTTP API (axum) and the command line.
//!
//! [`api::router`] builds the routes over [`api::AppState`]; [`api::serve`] runs them on a bound
//! listener until a shutdown signal, so tests can bind port 0.

pub mod api;
pub mod cli;
pub mod wire;
