//! Evaluation: how good retrieval is, and whether a candidate model or prompt (arm B) writes better
//! replies than the current one (arm A).
//!
//! Pure logic, no I/O: [`retrieval`] measures retrieval against labelled queries; [`windows`]
//! cuts dialogues into replay windows; [`verdict`] reads a pairwise judge's answer and combines
//! the two orders of a pair; [`moderation`] reads a moderation judge's tags; [`stats`] holds the
//! dialogue-clustered bootstrap, the length-controlled win rate, Wilson intervals and sample
//! sizes; [`simulation`] reads a simulated user's turns and checks the simulator's health;
//! [`agreement`] measures how far the judge agrees with people; [`policy`] turns the numbers into a ship decision; [`variants`] compares the real
//! dialogues of a rollout's variants. The command line (`ragback eval`)
//! reads and writes the files and calls the judges.

pub mod agreement;
pub mod memory;
pub mod moderation;
pub mod policy;
pub mod retrieval;
pub mod scoring;
pub mod simulation;
pub mod stats;
pub mod variance;
pub mod variants;
pub mod verdict;
pub mod windows;

pub use retrieval::{EvalReport, LabelledQuery, SweepRow, evaluate};
