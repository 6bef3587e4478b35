//! Peak memory per candidate, measured in a child process.
//!
//! `VmHWM` in `/proc/self/status` is the process's peak resident set: it
//! never goes down, and allocators keep freed memory, so measuring one
//! candidate after another in one process (or taking `VmRSS` after minus
//! before) charges each one for its predecessors' leftovers and misses
//! peaks between the two readings. Instead each candidate gets a fresh
//! process: the parent re-runs its own executable as
//! `<exe> bench-rss-child <index> [--quick] --threads N`, the child builds only that
//! candidate, runs the standard workload ([`workload`]) and prints its
//! `VmHWM`. A child with no index runs the same harness over the bare
//! channel: the floor every figure includes (the executable, the three
//! allocators' own start-up, thread stacks).

use std::fmt;
use std::process::Command;

use crate::candidate::Contender;
use crate::roster::roster;
use crate::runner::{Plan, channel_floor};

/// The hidden subcommand of the executable that runs one child; the
/// executable must route it to [`child_main`].
pub const CHILD_COMMAND: &str = "bench-rss-child";

const REPORT_PREFIX: &str = "arenapool-bench VmHWM kB:";

/// The standard workload, the same for every candidate: scenario a, b, c
/// (on all `plan.max_threads` threads) and d, `plan.rss_iters` iterations
/// each.
pub fn workload(c: &dyn Contender, plan: &Plan) {
    let n = plan.rss_iters;
    c.round_trip(n);
    c.window(n);
    c.parallel(plan.max_threads, n, 1);
    c.handoff(n, 1);
}

/// The child's side: build candidate `index` of the roster (or none), run
/// the [`workload`], print the peak RSS on stdout.
///
/// # Errors
///
/// If the index is out of range, the candidate cannot be built, or
/// `/proc/self/status` cannot be read.
pub fn child_main(index: Option<usize>, plan: &Plan) -> Result<(), String> {
    match index {
        Some(i) => {
            let entries = roster();
            let entry = entries
                .get(i)
                .ok_or_else(|| format!("no candidate {i}; there are {}", entries.len()))?;
            let c = entry.build().map_err(|e| e.to_string())?;
            workload(&*c, plan);
        }
        None => {
            let n = plan.rss_iters;
            channel_floor(n, 1);
            channel_floor(n, 1);
        }
    }
    let kib = status_kib("VmHWM")?;
    println!("{REPORT_PREFIX} {kib}");
    Ok(())
}

/// Why a child's peak could not be had.
#[derive(Debug)]
pub struct RssError(String);

impl fmt::Display for RssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RssError {}

/// The parent's side: runs the child for candidate `index` (or the floor)
/// with the same plan (`--quick`, `--threads`) and returns its peak RSS in
/// KiB.
///
/// # Errors
///
/// If the executable cannot be found or run, or the child fails or prints
/// no figure.
pub fn measure(index: Option<usize>, quick: bool, threads: usize) -> Result<u64, RssError> {
    let exe = std::env::current_exe().map_err(|e| RssError(format!("current_exe: {e}")))?;
    let mut cmd = Command::new(&exe);
    cmd.arg(CHILD_COMMAND);
    if let Some(i) = index {
        cmd.arg(i.to_string());
    }
    if quick {
        cmd.arg("--quick");
    }
    cmd.arg("--threads").arg(threads.to_string());
    let out = cmd
        .output()
        .map_err(|e| RssError(format!("{}: {e}", exe.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(RssError(format!(
            "child {index:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(REPORT_PREFIX))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| RssError(format!("child {index:?} printed no figure: {stdout}")))
}

/// A `kB` field of `/proc/self/status`.
fn status_kib(field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("/proc/self/status: {e}"))?;
    parse_status_kib(&status, field).ok_or_else(|| format!("no {field} in /proc/self/status"))
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_fields() {
        let status = "Name:\tx\nVmHWM:\t   12345 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(12345));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(2048));
        assert_eq!(parse_status_kib(status, "VmPeak"), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn reads_own_peak() {
        assert!(status_kib("VmHWM").unwrap() > 0);
    }
}
