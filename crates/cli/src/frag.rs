//! `arenapool fragmentation`, and part 4 of the demo: memory over time,
//! the same server-like workload in Vec mode under glibc (default and
//! tuned), jemalloc and mimalloc, and in pool mode
//! (`arenapool_bench::fragmentation`), a child process per run.

use std::path::PathBuf;

use arenapool_bench::fragmentation::{self, FragCase, FragConfig, FragMode, FragStudy};
use clap::Args;

/// `arenapool fragmentation`'s flags.
#[derive(Args, Debug, Clone)]
pub(crate) struct FragArgs {
    /// Seconds per run (six runs).
    #[arg(long, default_value_t = 20.0, value_parser = crate::positive_seconds)]
    seconds: f64,
    /// A smoke test: 1.5 s per run.
    #[arg(long)]
    quick: bool,
    /// Worker threads per run, 20,000 requests/s each.
    #[arg(long, default_value_t = 2, value_parser = crate::at_least_one)]
    threads: usize,
    /// Where to write fragmentation.md, .json and -rss.svg.
    #[arg(long, value_name = "DIR", default_value = "arenapool-report")]
    out: PathBuf,
}

/// `arenapool fragmentation-child`'s flags (internal).
#[derive(Args, Debug, Clone)]
pub(crate) struct FragChildArgs {
    #[arg(long)]
    mode: FragMode,
    #[arg(long)]
    seconds: f64,
    #[arg(long)]
    threads: usize,
    /// The allocator the parent put in `ARENAPOOL_ALLOCATOR`, checked
    /// against the one the child runs on.
    #[arg(long)]
    allocator: String,
}

/// The demo's settings: 4 s per run (24 s in all); quick, 1.2 s.
pub(crate) fn demo_config(quick: bool) -> FragConfig {
    FragConfig {
        seconds: if quick { 1.2 } else { 4.0 },
        threads: 2,
    }
}

/// Runs the study, `each` told of every run as it ends.
pub(crate) fn study(config: FragConfig, mut each: impl FnMut(&str)) -> Result<FragStudy, String> {
    fragmentation::study(config, |r| each(&r.case.label()))
}

/// `arenapool fragmentation`.
pub(crate) fn fragmentation(args: &FragArgs) -> Result<(), String> {
    let config = FragConfig {
        seconds: if args.quick { 1.5 } else { args.seconds },
        threads: args.threads,
    };
    let n = fragmentation::cases().len();
    let mut done = 0;
    let study = study(config, |label| {
        done += 1;
        println!("{done}/{n}: {label}");
    })?;
    println!("{}", study.table());
    let files = study
        .write(&args.out)
        .map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    println!("{}", crate::http_bench::written(&files));
    Ok(())
}

/// The child: one run, under the allocator its environment names.
pub(crate) fn child(args: &FragChildArgs) -> Result<(), String> {
    let running = arenapool_bench::Chosen::name();
    if running != args.allocator {
        return Err(format!(
            "asked for {}, running on {running}: {} was not seen",
            args.allocator,
            arenapool_bench::ALLOCATOR_VAR
        ));
    }
    let case = FragCase {
        mode: args.mode,
        allocator: running.into(),
        tunables: std::env::var("GLIBC_TUNABLES").ok(),
    };
    fragmentation::child_main(
        case,
        FragConfig {
            seconds: args.seconds,
            threads: args.threads,
        },
    )
}
