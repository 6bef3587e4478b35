//! The study's tables, JSON and charts.

use std::path::{Path, PathBuf};

use super::process::mode_name;
use super::{HttpRun, HttpStudy};
use crate::chart;

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "n/a".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.digits$}"))
}

/// The columns of the tables.
const HEADER: [&str; 11] = [
    "mode",
    "connections",
    "response",
    "requests/s",
    "p50 us",
    "p99 us",
    "RSS start MiB",
    "RSS busy MiB",
    "KiB/conn",
    "allocs/req",
    "errors",
];

impl HttpRun {
    fn cells(&self) -> [String; 11] {
        [
            format!("{:?}", self.mode).to_lowercase(),
            if self.idle > 0 {
                format!("{} + {} idle", self.connections, self.idle)
            } else {
                self.connections.to_string()
            },
            format!("{} B", self.response_bytes),
            format!("{:.0}", self.client.requests_per_s),
            opt(self.client.p50_us, 0),
            opt(self.client.p99_us, 0),
            mib(self.rss_start_kib),
            if self.idle > 0 {
                format!(
                    "{} ({} idle)",
                    mib(self.rss_busy_kib),
                    mib(self.rss_idle_kib)
                )
            } else {
                mib(self.rss_busy_kib)
            },
            opt(self.kib_per_connection(), 2),
            opt(self.allocations_per_request(), 3),
            self.errors().to_string(),
        ]
    }
}

impl HttpStudy {
    /// The runs as a text table, the notes under it.
    pub fn table(&self) -> String {
        let rows: Vec<[String; 11]> = self.runs.iter().map(HttpRun::cells).collect();
        let mut width = HEADER.map(str::len);
        for r in &rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.len());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, (c, w)) in cells.iter().zip(width).enumerate() {
                if i == 0 {
                    s += &format!("{c:<w$}");
                } else {
                    s += &format!("  {c:>w$}");
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = line(&HEADER.map(String::from));
        for r in &rows {
            out += &line(r);
        }
        for n in &self.notes {
            out += &format!("  {n}\n");
        }
        out
    }

    /// The runs as a markdown table, the notes as a list.
    pub fn markdown(&self) -> String {
        let mut out = format!("| {} |\n|", HEADER.join(" | "));
        out += &"---|".repeat(HEADER.len());
        out.push('\n');
        for r in &self.runs {
            out += &format!("| {} |\n", r.cells().join(" | "));
        }
        out.push('\n');
        for n in &self.notes {
            out += &format!("- {n}\n");
        }
        out
    }

    /// Writes `http.json`, `http.md` and the two charts into `dir`;
    /// returns their paths.
    ///
    /// # Errors
    ///
    /// If a file cannot be written.
    pub fn write(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let json = dir.join("http.json");
        std::fs::write(&json, serde_json::to_string_pretty(self)?)?;
        let md = dir.join("http.md");
        std::fs::write(
            &md,
            format!(
                "# The HTTP server under load ({} client)\n\n{}\n\
                 ![server RSS against connections](http-rss.svg)\n\n\
                 ![requests/s against connections](http-rps.svg)\n",
                self.config.client,
                self.markdown()
            ),
        )?;
        let mut files = vec![json, md];
        let busy: Vec<&HttpRun> = self.runs.iter().filter(|r| r.idle == 0).collect();
        let size = self.config.responses.first().copied().unwrap_or(0);
        let series = |f: &dyn Fn(&HttpRun) -> Option<f64>| -> Vec<chart::Series> {
            self.config
                .modes
                .iter()
                .map(|&m| chart::Series {
                    name: mode_name(m).into(),
                    colour: chart::http_colour(m),
                    points: busy
                        .iter()
                        .filter(|r| r.mode == m && r.response_bytes == size)
                        .filter_map(|r| Some((r.connections as f64, f(r)?)))
                        .collect(),
                })
                .collect()
        };
        let rss = dir.join("http-rss.svg");
        chart::lines_by_connections(
            &format!("Server RSS against busy connections (GET /bytes/{size})"),
            "server RSS halfway through the load (MiB)",
            &series(&|r| Some(r.rss_busy_kib? as f64 / 1024.0)),
            &rss,
        )
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        let rps = dir.join("http-rps.svg");
        chart::lines_by_connections(
            &format!("Requests/s against busy connections (GET /bytes/{size})"),
            "requests/s (client's figure)",
            &series(&|r| Some(r.client.requests_per_s)),
            &rps,
        )
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        files.push(rss);
        files.push(rps);
        Ok(files)
    }
}
