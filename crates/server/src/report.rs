//! The case study's results side by side: a text table for the terminal, a
//! markdown table for the report, the JSON, and the SVG charts.
//!
//! ```
//! use arenapool_server::report::CaseStudy;
//! let study = CaseStudy { runs: Vec::new(), notes: Vec::new() };
//! assert!(study.table().contains("packets/s"));
//! ```

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::case::CaseResult;
use crate::chart;
use crate::latency::micros;
use crate::stats::DropReason;

/// Runs to compare (one per mode, usually), and notes on how they were
/// made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseStudy {
    /// The runs, in table order.
    pub runs: Vec<CaseResult>,
    /// Lines printed under the table (machine, settings, caveats).
    pub notes: Vec<String>,
}

fn opt_kib(v: Option<u64>) -> String {
    v.map_or_else(|| "n/a".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

fn per_packet(r: &CaseResult) -> String {
    match r.server.allocs.allocations_per_packet() {
        Some(a) => format!("{a:.3}"),
        None => "n/a".into(),
    }
}

/// The rows of the table: a label and one cell per run.
fn rows(runs: &[CaseResult]) -> Vec<(String, Vec<String>)> {
    let cell = |f: &dyn Fn(&CaseResult) -> String| runs.iter().map(f).collect::<Vec<_>>();
    let mut rows = vec![
        ("requests sent".into(), cell(&|r| r.load.sent.to_string())),
        (
            "replies verified".into(),
            cell(&|r| r.load.received.to_string()),
        ),
        (
            "lost / late / bad".into(),
            cell(&|r| format!("{} / {} / {}", r.load.lost, r.load.late, r.load.bad)),
        ),
        (
            "packets/s".into(),
            cell(&|r| format!("{:.0}", r.load.throughput())),
        ),
        (
            "RTT p50 (us)".into(),
            cell(&|r| format!("{:.1}", micros(r.load.latency.p50_ns))),
        ),
        (
            "RTT p99 (us)".into(),
            cell(&|r| format!("{:.1}", micros(r.load.latency.p99_ns))),
        ),
        (
            "RTT p99.9 (us)".into(),
            cell(&|r| format!("{:.1}", micros(r.load.latency.p999_ns))),
        ),
        (
            "RTT max (us)".into(),
            cell(&|r| format!("{:.1}", micros(r.load.latency.max_ns))),
        ),
        (
            "server CPU (us/packet)".into(),
            cell(&|r| {
                let s = &r.server.stats;
                if s.cpu_ns > 0 && s.handled() > 0 {
                    format!("{:.2}", s.cpu_ns as f64 / 1e3 / s.handled() as f64)
                } else {
                    "n/a".into()
                }
            }),
        ),
        (
            "client CPU (us/packet)".into(),
            cell(&|r| {
                if r.load.cpu_s > 0.0 && r.load.received > 0 {
                    format!("{:.2}", r.load.cpu_s * 1e6 / r.load.received as f64)
                } else {
                    "n/a".into()
                }
            }),
        ),
        (
            "server / client CPU (%)".into(),
            cell(&|r| {
                let wall = r.load.elapsed_s;
                if wall > 0.0 && r.server.stats.cpu_ns > 0 {
                    format!(
                        "{:.0} / {:.0}",
                        r.server.stats.cpu_ns as f64 / 1e9 / wall * 100.0,
                        r.load.cpu_s / wall * 100.0
                    )
                } else {
                    "n/a".into()
                }
            }),
        ),
        (
            "datagrams per syscall".into(),
            cell(&|r| match r.server.stats.datagrams_per_call() {
                Some(d) => format!("{d:.2}"),
                None => "n/a".into(),
            }),
        ),
        (
            "uring: completions/enter".into(),
            cell(&|r| {
                let s = &r.server.stats;
                match r.mode {
                    crate::Mode::Uring if s.io_calls > 0 => {
                        format!("{:.2}", s.completions as f64 / s.io_calls as f64)
                    }
                    _ => "-".into(),
                }
            }),
        ),
        ("server allocs/packet".into(), cell(&per_packet)),
        (
            "  (allocs / packets counted)".into(),
            cell(&|r| {
                format!(
                    "{} / {}",
                    r.server.allocs.allocations, r.server.allocs.packets
                )
            }),
        ),
        (
            "server bytes alloc'd/packet".into(),
            cell(&|r| {
                let a = &r.server.allocs;
                if a.counted && a.packets > 0 {
                    format!("{:.0}", a.bytes_allocated as f64 / a.packets as f64)
                } else {
                    "n/a".into()
                }
            }),
        ),
        (
            "peak RSS (MiB)".into(),
            cell(&|r| opt_kib(r.memory.peak_rss_kib)),
        ),
        (
            "pool acquires / steals".into(),
            cell(&|r| match r.server.pool {
                Some(p) => format!("{} / {}", p.counters.acquires, p.counters.steals),
                None => "-".into(),
            }),
        ),
        (
            "pool arena (MiB)".into(),
            cell(&|r| match r.server.pool {
                Some(p) => format!(
                    "{:.1}",
                    (p.capacity * p.buffer_size) as f64 / (1 << 20) as f64
                ),
                None => "-".into(),
            }),
        ),
    ];
    for reason in DropReason::ALL {
        rows.push((
            format!("drops: {}", reason.name()),
            cell(&|r| r.server.stats.drops.get(reason).to_string()),
        ));
    }
    rows.push((
        "uring: ring ran dry (ENOBUFS)".into(),
        cell(&|r| match r.mode {
            crate::Mode::Uring => r.server.stats.enobufs.to_string(),
            _ => "-".into(),
        }),
    ));
    rows.push((
        "recv / send errors".into(),
        cell(&|r| {
            format!(
                "{} / {}",
                r.server.stats.recv_errors, r.server.stats.send_errors
            )
        }),
    ));
    rows
}

impl CaseStudy {
    /// A fixed-width text table, one column per run.
    pub fn table(&self) -> String {
        let rows = rows(&self.runs);
        let w0 = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0).max(10);
        let mut out = format!("{:<w0$}", "");
        for r in &self.runs {
            out += &format!(" {:>16}", r.server.config.label());
        }
        out += "\n";
        for (label, cells) in &rows {
            out += &format!("{label:<w0$}");
            for c in cells {
                out += &format!(" {c:>16}");
            }
            out += "\n";
        }
        if self.runs.is_empty() {
            out += "packets/s: no runs\n";
        }
        for n in &self.notes {
            out += &format!("{n}\n");
        }
        out
    }

    /// The same as a markdown table, with the notes as a list.
    pub fn markdown(&self) -> String {
        let mut out = String::from("| |");
        for r in &self.runs {
            out += &format!(" {} |", r.server.config.label());
        }
        out += "\n|---|";
        for _ in &self.runs {
            out += "---:|";
        }
        out += "\n";
        for (label, cells) in rows(&self.runs) {
            out += &format!("| {} |", label.trim());
            for c in cells {
                out += &format!(" {c} |");
            }
            out += "\n";
        }
        out += "\n";
        for n in &self.notes {
            out += &format!("- {n}\n");
        }
        out
    }

    /// Writes the charts into `dir`: `latency-cdf.svg` and
    /// `throughput.svg`; returns their paths.
    ///
    /// # Errors
    ///
    /// If a file cannot be written.
    pub fn write_charts(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let cdf = dir.join("latency-cdf.svg");
        let tput = dir.join("throughput.svg");
        chart::latency_cdf(&self.runs, &cdf).map_err(|e| io::Error::other(e.to_string()))?;
        chart::throughput(&self.runs, &tput).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(vec![cdf, tput])
    }
}
