//! A test that cannot run here says so where a reader sees it, and fails
//! in strict mode.
//!
//! Shared by the workspace's test suites through `#[path]` (the server's
//! and the CLI's tests include this file too), so that every
//! environment-dependent skip goes through one place:
//!
//! - With `ARENAPOOL_STRICT=1` (`.ci/run` sets it) a skip is a failure:
//!   [`skip`] panics, naming the test and what it could not do. There every
//!   check must run.
//! - Otherwise it writes `SKIPPED <suite>::<test>: <why>` to the process's
//!   standard error with `io::stderr()`. libtest captures what `eprintln!`
//!   prints in a passing test and never shows it; a direct write reaches the
//!   terminal.
//! - And, when `ARENAPOOL_SKIP_LOG` names a file, appends the same line to
//!   it: `.ci/run` counts those lines after each step (`skipped: N`).

#![allow(dead_code)] // each suite uses what it needs

use std::fmt::Display;
use std::io::Write;

/// Whether this run is strict (`ARENAPOOL_STRICT=1`): no check may skip.
pub fn strict() -> bool {
    std::env::var_os("ARENAPOOL_STRICT").is_some_and(|v| v == "1")
}

/// Skips the calling test (the caller returns right after): a failure in
/// strict mode, a visible and counted line otherwise.
///
/// # Panics
///
/// In strict mode, always.
#[track_caller]
pub fn skip(why: impl Display) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("(unnamed thread)");
    let suite = env!("CARGO_CRATE_NAME");
    if strict() {
        panic!("ARENAPOOL_STRICT=1: {suite}::{test} did not run: {why}");
    }
    let line = format!("SKIPPED {suite}::{test}: {why}\n");
    // One write each, so lines from tests on other threads do not mix.
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(path) = std::env::var_os("ARENAPOOL_SKIP_LOG") {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path);
        match log {
            Ok(mut f) => {
                let _ = f.write_all(line.as_bytes());
            }
            Err(e) => panic!(
                "cannot record the skip in ARENAPOOL_SKIP_LOG={}: {e}",
                std::path::Path::new(&path).display()
            ),
        }
    }
}
