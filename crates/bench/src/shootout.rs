//! The whole run: every candidate of the [`roster`] through every scenario,
//! then the channel floor, with a progress bar on stderr; the result is a
//! [`Report`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::chart;
use crate::report::{LeftOut, Machine, Parallel, Report, Row};
use crate::roster::{Group, roster};
use crate::rss;
use crate::runner::{self, CHANNEL_NAME, Plan};

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Few, short repetitions (every candidate and scenario still runs).
    pub quick: bool,
    /// Scenario c's largest thread count; default: the available CPUs.
    pub threads: Option<usize>,
    /// Measure each candidate's peak RSS in a child process. Only for an
    /// executable that routes [`rss::CHILD_COMMAND`] to
    /// [`rss::child_main`], as the `arenapool` binary does.
    pub rss: bool,
    /// Run only the candidates whose name contains one of these strings
    /// (all of them when empty).
    pub only: Vec<String>,
}

impl Options {
    /// The measurement plan these options call for.
    pub fn plan(&self) -> Plan {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = self.threads.unwrap_or(cpus).max(1);
        if self.quick {
            Plan::quick(threads)
        } else {
            Plan::full(threads)
        }
    }
}

/// Runs the shoot-out.
///
/// # Panics
///
/// If a candidate panics (an exhausted pool says so in its message).
pub fn run(opts: &Options) -> Report {
    let started = Instant::now();
    let plan = opts.plan();
    let entries = roster();
    let per_candidate = 3 + plan.max_threads as u64 + u64::from(opts.rss);
    let bar = progress(entries.len() as u64 * per_candidate + 1 + u64::from(opts.rss));

    let mut rows = Vec::with_capacity(entries.len() + 1);
    let mut left_out = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let c = match entry.build() {
            Ok(c) => c,
            Err(e) => {
                let what = format!("candidate {index} ({})", entry.group);
                bar.println(format!("{what} left out: {e}"));
                left_out.push(LeftOut {
                    what,
                    reason: e.to_string(),
                });
                bar.inc(per_candidate);
                continue;
            }
        };
        let name = c.name();
        if !opts.only.is_empty() && !opts.only.iter().any(|o| name.contains(o.as_str())) {
            bar.inc(per_candidate);
            continue;
        }
        let step = |what: &str| {
            bar.set_message(format!("{name}: {what}"));
        };
        step("a (round trip)");
        let round_trip_ns = runner::measure_round_trip(&*c, &plan);
        bar.inc(1);
        step("b (64 held)");
        let window_ns = runner::measure_window(&*c, &plan);
        bar.inc(1);
        step("c (threads)");
        let parallel_mops = runner::measure_parallel(&*c, &plan)
            .into_iter()
            .map(|(threads, mops)| Parallel { threads, mops })
            .collect();
        bar.inc(plan.max_threads as u64);
        step("d (hand-off)");
        let handoff_mops = runner::measure_handoff(&*c, &plan);
        bar.inc(1);
        drop(c); // free its pool before the next candidate is built
        let peak_rss_kib = opts.rss.then(|| {
            step("peak RSS (child process)");
            let kib = peak_rss(&bar, &mut left_out, &name, Some(index), opts, &plan);
            bar.inc(1);
            kib
        });
        rows.push(Row {
            name,
            group: entry.group,
            round_trip_ns: Some(round_trip_ns),
            window_ns: Some(window_ns),
            parallel_mops,
            handoff_mops: Some(handoff_mops),
            peak_rss_kib: peak_rss_kib.flatten(),
        });
    }

    bar.set_message("channel alone");
    let floor = runner::measure_channel_floor(&plan);
    bar.inc(1);
    let floor_rss = opts.rss.then(|| {
        let kib = peak_rss(&bar, &mut left_out, "the channel floor", None, opts, &plan);
        bar.inc(1);
        kib
    });
    rows.push(Row {
        name: "channel alone (usize), floor".into(),
        group: Group::Reference,
        round_trip_ns: None,
        window_ns: None,
        parallel_mops: Vec::new(),
        handoff_mops: Some(floor),
        peak_rss_kib: floor_rss.flatten(),
    });
    bar.finish_and_clear();

    Report {
        machine: Machine::detect(),
        quick: opts.quick,
        repetitions: plan.reps,
        sample_ms: plan.sample.as_secs_f64() * 1e3,
        threads: (1..=plan.max_threads).collect(),
        channel: CHANNEL_NAME.into(),
        rss_method: if opts.rss {
            format!(
                "VmHWM of a fresh child process that builds only that candidate and runs \
                 a, b, c@{} and d for {} iterations each (the floor row: the same process \
                 running only the channel)",
                plan.max_threads, plan.rss_iters
            )
        } else {
            "not measured".into()
        },
        rows,
        left_out,
        elapsed_s: started.elapsed().as_secs_f64(),
    }
}

/// The peak RSS of candidate `index` (the channel floor if `None`) from a
/// child process; one that could not be measured goes on the left-out
/// list as "peak RSS of `name`".
fn peak_rss(
    bar: &ProgressBar,
    left_out: &mut Vec<LeftOut>,
    name: &str,
    index: Option<usize>,
    opts: &Options,
    plan: &Plan,
) -> Option<u64> {
    rss::measure(index, opts.quick, plan.max_threads)
        .map_err(|e| {
            bar.println(format!("peak RSS of {name} not measured: {e}"));
            left_out.push(LeftOut {
                what: format!("peak RSS of {name}"),
                reason: e.to_string(),
            });
        })
        .ok()
}

fn progress(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {wide_msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Writes the JSON to `json` and the chart next to it (same stem, `.svg`),
/// creating the folder if need be; returns the chart's path.
///
/// # Errors
///
/// If either file cannot be written.
pub fn write_files(report: &Report, json: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    if let Some(dir) = json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    report
        .write_json(json)
        .map_err(|e| format!("{}: {e}", json.display()))?;
    let svg = json.with_extension("svg");
    chart::write_svg(report, &svg).map_err(|e| format!("{}: {e}", svg.display()))?;
    Ok(svg)
}
