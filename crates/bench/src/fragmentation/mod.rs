//! Memory over time: the seed article's claim that `Vec::with_capacity`
//! and drop fragment the heap and that a pool ends it, measured.
//!
//! The workload (`workload.rs`) is a server's buffers: sizes heavy-tailed
//! from 64 B to 256 KiB, 90 % released at once, 8 % held 50 to 500 ms, 2 %
//! held 1 to 5 s, at 20,000 requests a second on each of several threads.
//! Each run is a fresh child process (`<exe> fragmentation-child ...`), so
//! that its memory is its own and so that its global allocator can be
//! chosen ([`Chosen`](crate::Chosen), through
//! [`ALLOCATOR_VAR`](crate::ALLOCATOR_VAR)). The runs:
//!
//! * Vec mode under glibc, under glibc tuned ([`GLIBC_TUNED`]: a fixed
//!   mmap threshold), under jemalloc and under mimalloc;
//! * pool mode: a pool of size classes (powers of two from 64 B to
//!   256 KiB), glibc for everything else; with its default per-thread
//!   caches, and without.
//!
//! The child samples its resident anonymous memory (`RssAnon`: the heap,
//! the pool's arenas and the stacks, without the executable's pages) and
//! the bytes the workload holds every 100 ms and reports them; [`FragStudy`] turns them into the verdicts:
//! the RSS-to-live ratio at the end (over the last second), the growth of
//! RSS after warm-up (the first quarter of the run), CPU per request.

mod report;
mod workload;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use workload::{FragMode, FragSample};

/// The hidden subcommand of the executable that runs one child; the
/// executable must route it to [`child_main`].
pub const CHILD_COMMAND: &str = "fragmentation-child";

const REPORT_PREFIX: &str = "arenapool-fragmentation:";

/// One run of the study: a mode under an allocator and its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragCase {
    /// Where buffers come from.
    pub mode: FragMode,
    /// The global allocator (one of [`CHOICES`](crate::CHOICES)).
    pub allocator: String,
    /// `GLIBC_TUNABLES` for the child, if tuned.
    pub tunables: Option<String>,
}

impl FragCase {
    /// Its label in the tables: `vec / glibc`, `pool / glibc`...
    pub fn label(&self) -> String {
        let tuned = if self.tunables.is_some() {
            ", tuned"
        } else {
            ""
        };
        format!("{} / {}{tuned}", self.mode.name(), self.allocator)
    }
}

/// glibc tuned: a fixed mmap threshold of 64 KiB
/// (`M_MMAP_THRESHOLD`, which also turns off glibc's dynamic threshold), so
/// that every buffer of 64 KiB or more is its own mapping, returned to the
/// kernel when freed. By default the threshold rises (up to 32 MiB) each
/// time such a buffer is freed, and later large buffers come from the
/// heap, where they fragment it. (`MALLOC_ARENA_MAX`, the other usual
/// advice, changed nothing here: two threads have two arenas either way.)
pub const GLIBC_TUNED: &str = "glibc.malloc.mmap_threshold=65536";

/// The runs, in table order.
pub fn cases() -> Vec<FragCase> {
    let case = |mode, allocator: &str, tunables: Option<&str>| FragCase {
        mode,
        allocator: allocator.into(),
        tunables: tunables.map(Into::into),
    };
    vec![
        case(FragMode::Vec, "glibc", None),
        case(FragMode::Vec, "glibc", Some(GLIBC_TUNED)),
        case(FragMode::Vec, "jemalloc", None),
        case(FragMode::Vec, "mimalloc", None),
        case(FragMode::Pool, "glibc", None),
        case(FragMode::PoolUncached, "glibc", None),
    ]
}

/// How long and how wide.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FragConfig {
    /// Seconds per run.
    pub seconds: f64,
    /// Worker threads per run.
    pub threads: usize,
}

/// What one child measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FragRun {
    /// What ran.
    pub case: FragCase,
    /// The allocator the child found itself running on.
    pub allocator_seen: String,
    /// Every 100 ms.
    pub samples: Vec<FragSample>,
    /// Requests done.
    pub requests: u64,
    /// Requests a full pool refused (pool mode; 0 expected).
    pub refused: u64,
    /// Seconds the workload ran.
    pub elapsed_s: f64,
    /// CPU seconds of the process (user + system) over the run.
    pub cpu_s: f64,
}

/// The child's side: runs the workload in `mode` for `config` and prints
/// a [`FragRun`] (its `case` as given) on stdout.
///
/// # Errors
///
/// If pool mode's pool cannot be built or a thread cannot start.
pub fn child_main(case: FragCase, config: FragConfig) -> Result<(), String> {
    let pool = match case.mode {
        FragMode::Vec => None,
        FragMode::Pool => Some(workload::pool(128).map_err(|e| e.to_string())?),
        FragMode::PoolUncached => Some(workload::pool(0).map_err(|e| e.to_string())?),
    };
    let shared = Arc::new(workload::Shared::default());
    let cpu0 = workload::cpu_s();
    let start = Instant::now();
    let mut threads = Vec::new();
    for i in 0..config.threads.max(1) {
        let (p, s) = (pool.clone(), Arc::clone(&shared));
        let t = std::thread::Builder::new()
            .name(format!("frag-{i}"))
            .spawn(move || workload::worker(p, s, 0x5EED + i as u64))
            .map_err(|e| format!("starting a worker: {e}"))?;
        threads.push(t);
    }
    let mut samples = Vec::new();
    let total = Duration::from_secs_f64(config.seconds);
    let mut next = start;
    while start.elapsed() < total {
        next += Duration::from_millis(100);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let (rss_kib, vm_rss_kib) = workload::rss_kib();
        samples.push(FragSample {
            t: start.elapsed().as_secs_f64(),
            rss_kib,
            vm_rss_kib,
            live_kib: shared.live.load(Relaxed) / 1024,
        });
    }
    shared.stop.store(true, Relaxed);
    for t in threads {
        t.join().map_err(|_| "a worker panicked".to_string())?;
    }
    let run = FragRun {
        allocator_seen: crate::Chosen::name().into(),
        case,
        samples,
        requests: shared.ops.load(Relaxed),
        refused: shared.refused.load(Relaxed),
        elapsed_s: start.elapsed().as_secs_f64(),
        cpu_s: workload::cpu_s() - cpu0,
    };
    let json = serde_json::to_string(&run).map_err(|e| e.to_string())?;
    println!("{REPORT_PREFIX} {json}");
    Ok(())
}

/// The parent's side of one run: the child with the case's allocator and
/// settings in its environment.
///
/// # Errors
///
/// If the executable cannot be run, or the child fails or reports
/// nothing.
pub fn measure(case: &FragCase, config: FragConfig) -> Result<FragRun, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(&exe);
    cmd.arg(CHILD_COMMAND)
        .arg("--mode")
        .arg(case.mode.name())
        .arg("--seconds")
        .arg(config.seconds.to_string())
        .arg("--threads")
        .arg(config.threads.to_string())
        .arg("--allocator")
        .arg(&case.allocator)
        .env(crate::ALLOCATOR_VAR, &case.allocator)
        .env_remove("GLIBC_TUNABLES");
    if let Some(t) = &case.tunables {
        cmd.env("GLIBC_TUNABLES", t);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            case.label(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(REPORT_PREFIX))
        .ok_or_else(|| format!("{} reported nothing: {stdout}", case.label()))?;
    let mut run: FragRun = serde_json::from_str(line.trim()).map_err(|e| e.to_string())?;
    run.case = case.clone();
    Ok(run)
}

/// Every run of [`cases`], in order; `each` sees each run as it ends.
///
/// # Errors
///
/// The first run that fails.
pub fn study(config: FragConfig, mut each: impl FnMut(&FragRun)) -> Result<FragStudy, String> {
    let mut runs = Vec::new();
    for case in cases() {
        let run = measure(&case, config)?;
        each(&run);
        runs.push(run);
    }
    Ok(FragStudy { config, runs })
}

/// All runs of a study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FragStudy {
    /// The settings.
    pub config: FragConfig,
    /// In [`cases`] order.
    pub runs: Vec<FragRun>,
}
