//! Fuzz target bodies and the seed corpus for `cargo fuzz` (see FUZZING.md).
//!
//! `targets.rs` depends only on `latte-gguf` and `latte-core`, so the main
//! test suite (`crates/latte-core/tests/fuzz_regressions.rs`) includes the
//! same file and replays every saved crash input through the same code.

pub mod seeds;
pub mod targets;
