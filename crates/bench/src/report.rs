//! The results: [`Report`] and its [`Row`]s, printed as a table
//! ([`Report::table`]) or written as JSON ([`Report::write_json`]).

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use serde::Serialize;

use crate::roster::Group;

/// Everything one run measured, and how.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The machine, as far as the process can tell.
    pub machine: Machine,
    /// Whether this was a `--quick` run.
    pub quick: bool,
    /// Timed batches per figure (the median is reported).
    pub repetitions: usize,
    /// Target length of one timed batch, in milliseconds.
    pub sample_ms: f64,
    /// Thread counts of scenario c.
    pub threads: Vec<usize>,
    /// The channel of scenario d.
    pub channel: String,
    /// How `peak_rss_kib` was measured.
    pub rss_method: String,
    /// One row per candidate, then the channel floor.
    pub rows: Vec<Row>,
    /// What the run meant to measure and could not: a candidate that
    /// failed to build, a peak RSS whose child process failed. Empty in a
    /// complete run; `arenapool bench` fails in strict mode otherwise.
    pub left_out: Vec<LeftOut>,
    /// Seconds the whole run took.
    pub elapsed_s: f64,
}

/// One thing a run could not measure, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeftOut {
    /// What is missing: a candidate (by its place in the roster) or a
    /// figure of one.
    pub what: String,
    /// The error that kept it out.
    pub reason: String,
}

/// The machine the figures come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// The CPU model from `/proc/cpuinfo`, if readable.
    pub cpu: String,
    /// `std::thread::available_parallelism`.
    pub cpus: usize,
    /// `std::env::consts::OS` / `ARCH`.
    pub os: String,
}

impl Machine {
    /// Describes this machine.
    pub fn detect() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, name)| name.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        Self {
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            os: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }
}

/// One candidate's figures (medians). `None` where a scenario does not
/// apply (the channel floor has only scenario d) or was not measured.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The candidate's label.
    pub name: String,
    /// What kind of candidate it is.
    pub group: Group,
    /// a: ns per acquire + touch + release, one thread.
    pub round_trip_ns: Option<f64>,
    /// b: ns per round trip with 64 buffers held, released oldest first.
    pub window_ns: Option<f64>,
    /// c: total Mops/s with each of `threads` threads doing a.
    pub parallel_mops: Vec<Parallel>,
    /// d: Mops/s, acquired and touched on one thread, released on another.
    pub handoff_mops: Option<f64>,
    /// Peak RSS of a child process running the standard workload, KiB.
    pub peak_rss_kib: Option<u64>,
}

/// One point of scenario c.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Parallel {
    /// Threads running at once.
    pub threads: usize,
    /// Their round trips per second together, in millions.
    pub mops: f64,
}

impl Row {
    /// Scenario c's figure at `threads` threads, if measured.
    pub fn parallel_at(&self, threads: usize) -> Option<f64> {
        self.parallel_mops
            .iter()
            .find(|p| p.threads == threads)
            .map(|p| p.mops)
    }
}

/// A figure with about three significant digits, or a dash.
fn fmt_num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if !v.is_finite() => "?".into(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

impl Report {
    /// The table: rows = candidates, columns = a, b, c@1..N, d, peak RSS.
    pub fn table(&self) -> String {
        let mut header: Vec<String> = vec!["candidate".into(), "a ns".into(), "b ns".into()];
        header.extend(self.threads.iter().map(|t| format!("c@{t} Mops/s")));
        header.extend(["d Mops/s".into(), "peak RSS MiB".into()]);

        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                let mut cells = vec![
                    r.name.clone(),
                    fmt_num(r.round_trip_ns),
                    fmt_num(r.window_ns),
                ];
                cells.extend(self.threads.iter().map(|&t| fmt_num(r.parallel_at(t))));
                cells.push(fmt_num(r.handoff_mops));
                cells.push(fmt_num(r.peak_rss_kib.map(|k| k as f64 / 1024.0)));
                cells
            })
            .collect();

        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([header[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let pad = widths[i] - cell.chars().count();
                if i == 0 {
                    let _ = write!(s, "| {cell}{} ", " ".repeat(pad));
                } else {
                    let _ = write!(s, "| {}{cell} ", " ".repeat(pad));
                }
            }
            s.push_str("|\n");
            s
        };
        let mut out = line(&header);
        out.push('|');
        for (i, w) in widths.iter().enumerate() {
            let dashes = "-".repeat(w + 1);
            if i == 0 {
                let _ = write!(out, "{dashes}-|");
            } else {
                let _ = write!(out, "{dashes}:|");
            }
        }
        out.push('\n');
        for r in &rows {
            out.push_str(&line(r));
        }
        out
    }

    /// A few lines on how the figures were taken, for under the table.
    pub fn legend(&self) -> String {
        format!(
            "a: 1 thread, acquire + write 64 B + release, ns. b: 1 thread, 64 held, oldest \
             released first, ns.\nc@N: N threads each doing a, total Mops/s. d: acquire + write \
             on one thread, release on another via {}, Mops/s.\nMedian of {} batches of ~{} ms \
             after warm-up. Peak RSS: {}.\n{} ({} CPUs, {}); run took {:.1} s{}.",
            self.channel,
            self.repetitions,
            self.sample_ms,
            self.rss_method,
            self.machine.cpu,
            self.machine.cpus,
            self.machine.os,
            self.elapsed_s,
            if self.quick { ", --quick" } else { "" },
        ) + &self.left_out_lines()
    }

    /// One line per thing left out (see [`Report::left_out`]), each
    /// starting with a newline; empty when nothing was.
    pub fn left_out_lines(&self) -> String {
        self.left_out.iter().fold(String::new(), |mut s, l| {
            let _ = write!(s, "\nLEFT OUT: {}: {}", l.what, l.reason);
            s
        })
    }

    /// Writes the report as pretty-printed JSON.
    ///
    /// # Errors
    ///
    /// If the file cannot be written.
    pub fn write_json(&self, path: &Path) -> io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
        std::fs::write(path, json + "\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            machine: Machine {
                cpu: "test cpu".into(),
                cpus: 2,
                os: "linux/x86_64".into(),
            },
            quick: true,
            repetitions: 3,
            sample_ms: 1.0,
            threads: vec![1, 2],
            channel: "chan".into(),
            rss_method: "child VmHWM".into(),
            rows: vec![
                Row {
                    name: "arenapool".into(),
                    group: Group::Arenapool,
                    round_trip_ns: Some(4.25),
                    window_ns: Some(5.0),
                    parallel_mops: vec![
                        Parallel {
                            threads: 1,
                            mops: 230.0,
                        },
                        Parallel {
                            threads: 2,
                            mops: 120.4,
                        },
                    ],
                    handoff_mops: Some(20.0),
                    peak_rss_kib: Some(4096),
                },
                Row {
                    name: "channel only (usize)".into(),
                    group: Group::Reference,
                    round_trip_ns: None,
                    window_ns: None,
                    parallel_mops: vec![],
                    handoff_mops: Some(28.0),
                    peak_rss_kib: None,
                },
            ],
            left_out: vec![],
            elapsed_s: 1.0,
        }
    }

    #[test]
    fn table_has_a_column_per_scenario_and_aligned_rows() {
        let table = sample().table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        let width = lines[0].len();
        assert!(lines.iter().all(|l| l.len() == width), "{table}");
        let cells = |l: &str| -> Vec<String> {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect()
        };
        assert_eq!(
            cells(lines[0]),
            [
                "candidate",
                "a ns",
                "b ns",
                "c@1 Mops/s",
                "c@2 Mops/s",
                "d Mops/s",
                "peak RSS MiB"
            ]
        );
        assert_eq!(
            cells(lines[2]),
            ["arenapool", "4.25", "5.00", "230", "120", "20.0", "4.00"]
        );
        assert_eq!(
            cells(lines[3]),
            ["channel only (usize)", "-", "-", "-", "-", "28.0", "-"]
        );
    }

    #[test]
    fn what_was_left_out_is_in_the_legend_and_the_json() {
        let mut report = sample();
        assert!(!report.legend().contains("LEFT OUT"));
        report.left_out.push(LeftOut {
            what: "candidate 7 (arenapool)".into(),
            reason: "no huge pages".into(),
        });
        let legend = report.legend();
        assert!(
            legend.ends_with("\nLEFT OUT: candidate 7 (arenapool): no huge pages"),
            "{legend}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["left_out"][0]["what"], "candidate 7 (arenapool)");
        assert_eq!(json["left_out"][0]["reason"], "no huge pages");
    }

    #[test]
    fn json_round_trips_through_serde() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(json["rows"][0]["group"], "arenapool");
        assert_eq!(json["rows"][0]["parallel_mops"][1]["threads"], 2);
        assert!(json["rows"][1]["round_trip_ns"].is_null());
    }
}
