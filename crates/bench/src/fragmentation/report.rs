//! A fragmentation study's verdicts, its tables, JSON and chart.

use std::error::Error;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::Serialize;

use super::{FragMode, FragRun, FragStudy};

/// What a run's samples say.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Verdict {
    /// Requests per second done.
    pub requests_per_s: f64,
    /// CPU microseconds of the process per request.
    pub cpu_us_per_request: f64,
    /// Mean bytes held over the last second, MiB.
    pub live_mib: f64,
    /// Mean RSS over the last second, MiB.
    pub rss_mib: f64,
    /// `rss_mib / live_mib`.
    pub rss_to_live: f64,
    /// RSS at the end against RSS at the end of the warm-up (the first
    /// quarter of the run), in percent.
    pub growth_pct: f64,
    /// Highest RSS sampled, MiB.
    pub peak_mib: f64,
}

impl FragRun {
    /// The verdicts; `None` with fewer than 8 samples.
    pub fn verdict(&self) -> Option<Verdict> {
        let n = self.samples.len();
        if n < 8 {
            return None;
        }
        let last = &self.samples[n - (n / 4).clamp(1, 10)..];
        let mean = |f: &dyn Fn(&super::FragSample) -> u64| {
            last.iter().map(|s| f(s) as f64).sum::<f64>() / last.len() as f64 / 1024.0
        };
        let (rss, live) = (mean(&|s| s.rss_kib), mean(&|s| s.live_kib));
        let warm = self.samples[n / 4 - 1].rss_kib as f64;
        let end = self.samples[n - 1].rss_kib as f64;
        Some(Verdict {
            requests_per_s: self.requests as f64 / self.elapsed_s.max(1e-9),
            cpu_us_per_request: self.cpu_s * 1e6 / (self.requests.max(1) as f64),
            live_mib: live,
            rss_mib: rss,
            rss_to_live: if live > 0.0 { rss / live } else { f64::NAN },
            growth_pct: (end - warm) / warm.max(1.0) * 100.0,
            peak_mib: self.samples.iter().map(|s| s.rss_kib).max().unwrap_or(0) as f64 / 1024.0,
        })
    }
}

impl FragRun {
    /// The verdict's figures as table cells (dashes for a run too short
    /// to judge).
    fn cells(&self) -> [String; 7] {
        match self.verdict() {
            Some(v) => [
                format!("{:.0}", v.requests_per_s),
                format!("{:.2}", v.cpu_us_per_request),
                format!("{:.1}", v.live_mib),
                format!("{:.1}", v.rss_mib),
                format!("{:.2}", v.rss_to_live),
                format!("{:+.1} %", v.growth_pct),
                format!("{:.1}", v.peak_mib),
            ],
            None => std::array::from_fn(|_| "-".to_string()),
        }
    }
}

/// The report's JSON: settings, runs with their samples, verdicts.
#[derive(Serialize)]
struct Json<'a> {
    study: &'a FragStudy,
    verdicts: Vec<Option<Verdict>>,
    notes: Vec<String>,
}

impl FragStudy {
    fn notes(&self) -> Vec<String> {
        vec![
            format!(
                "workload: {} threads, 20,000 requests/s each for {:.0} s; sizes 64 B to 256 KiB, P(size > s) = (64/s)^0.6; \
                 90 % released at once, 8 % held 50-500 ms, 2 % held 1-5 s; each buffer filled",
                self.config.threads, self.config.seconds
            ),
            "each run a fresh process; RSS (RssAnon: heap, arenas, stacks; not the executable) and the bytes held sampled every 100 ms; end figures are means over the last second; \
             growth: RSS at the end against the end of the first quarter"
                .into(),
            format!(
                "tuned: GLIBC_TUNABLES={}; pool: one class per power of two from 64 B to 256 KiB, growing as needed, per-thread caches of 128 buffers a class (pool-uncached: none)",
                super::GLIBC_TUNED
            ),
        ]
    }

    /// The runs as a text table, the notes under it.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<22} {:>11} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9}\n",
            "run",
            "requests/s",
            "CPU us/r",
            "live MiB",
            "RSS MiB",
            "RSS/live",
            "growth",
            "peak MiB"
        );
        for r in &self.runs {
            let cells = r.cells();
            out += &format!("{:<22}", r.case.label());
            for (c, w) in cells.iter().zip([11, 9, 9, 9, 9, 10, 9]) {
                out += &format!(" {c:>w$}");
            }
            out += "\n";
        }
        for n in self.notes() {
            out += &format!("  {n}\n");
        }
        out
    }

    /// The runs as a markdown table.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| run | requests/s | CPU µs/request | live MiB | RSS MiB | RSS / live | RSS growth after warm-up | peak RSS MiB |\n\
             |---|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        for r in &self.runs {
            out += &format!("| {} | {} |\n", r.case.label(), r.cells().join(" | "));
        }
        out += "\n";
        for n in self.notes() {
            out += &format!("- {n}\n");
        }
        out
    }

    /// Writes `fragmentation.md`, `fragmentation.json` and
    /// `fragmentation-rss.svg` into `dir`; returns their paths.
    ///
    /// # Errors
    ///
    /// If a file cannot be written or the chart drawn.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, Box<dyn Error>> {
        std::fs::create_dir_all(dir)?;
        let md = dir.join("fragmentation.md");
        std::fs::write(
            &md,
            format!(
                "# Memory over time: the same workload under each allocator\n\n{}\n![RSS over time](fragmentation-rss.svg)\n",
                self.markdown()
            ),
        )?;
        let json = dir.join("fragmentation.json");
        let body = Json {
            study: self,
            verdicts: self.runs.iter().map(FragRun::verdict).collect(),
            notes: self.notes(),
        };
        std::fs::write(&json, serde_json::to_string_pretty(&body)?)?;
        let svg = dir.join("fragmentation-rss.svg");
        self.chart(&svg)?;
        Ok(vec![md, json, svg])
    }

    /// RSS over time, one line per run, and the bytes held (dotted).
    fn chart(&self, path: &Path) -> Result<(), Box<dyn Error>> {
        let t_hi = self.config.seconds.max(0.1);
        let y_hi = self
            .runs
            .iter()
            .flat_map(|r| r.samples.iter().map(|s| s.rss_kib as f64 / 1024.0))
            .fold(1.0, f64::max)
            * 1.1;
        let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Server RSS over time, same workload", ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..t_hi, 0.0..y_hi)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("RSS, MiB")
            .draw()?;
        let colours = [
            RGBColor(230, 81, 0),
            RGBColor(255, 167, 38),
            RGBColor(106, 27, 154),
            RGBColor(0, 131, 143),
            RGBColor(46, 125, 50),
            RGBColor(21, 101, 192),
        ];
        for (i, r) in self.runs.iter().enumerate() {
            let c = colours[i % colours.len()];
            let pts: Vec<(f64, f64)> = r
                .samples
                .iter()
                .map(|s| (s.t, s.rss_kib as f64 / 1024.0))
                .collect();
            let width = if r.case.mode == FragMode::Vec { 2 } else { 3 };
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(width)))?
                .label(r.case.label())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
        }
        if let Some(r) = self.runs.first() {
            let pts: Vec<(f64, f64)> = r
                .samples
                .iter()
                .map(|s| (s.t, s.live_kib as f64 / 1024.0))
                .collect();
            chart
                .draw_series(LineSeries::new(pts, BLACK.mix(0.5).stroke_width(1)))?
                .label("bytes held (vec / glibc)")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    }
}
