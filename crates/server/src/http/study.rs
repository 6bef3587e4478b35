//! The HTTP case study: each server mode against the same client at
//! several connection counts and response sizes, and with most
//! connections idle, measured from outside the server.
//!
//! Every run starts a fresh server process (`arenapool serve --protocol
//! http --json PATH`, from [`StudyConfig::exe`]), so that its resident
//! memory is its own, and stops it with `SIGINT`, after which it writes
//! its report (counters, allocations per request). Around the load this
//! module reads the server's `/proc/<pid>/status`:
//!
//! * `VmRSS` once it listens (`rss_start_kib`), with the idle connections
//!   open (`rss_idle_kib`), and halfway through the load (`rss_busy_kib`);
//! * `VmHWM`, the peak, after the load.
//!
//! Requests/s and latency are the client's own figures
//! ([`crate::http::clients`]). A server that exits with a failure after
//! `SIGINT` fails the study, naming what it printed last. Linux only: it
//! needs `/proc` and signals.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::chart;
use crate::http::clients::{self, Client, ClientReport, ClientRun};
use crate::http::load::IdleConnections;
use crate::http::{HttpMode, HttpReport};
use crate::rss;

/// Many connections, most of them idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdleCase {
    /// Connections in all.
    pub total: usize,
    /// Of which the client keeps this many busy; the rest took one answer
    /// each and stay silent.
    pub busy: usize,
}

/// What to measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyConfig {
    /// The `arenapool` executable that serves.
    pub exe: PathBuf,
    /// The server modes, in table order.
    pub modes: Vec<HttpMode>,
    /// Busy connection counts.
    pub connections: Vec<usize>,
    /// Response sizes: each run loads `GET /bytes/N`.
    pub responses: Vec<usize>,
    /// The many-idle case, run with the first response size.
    pub idle: Option<IdleCase>,
    /// How long the client loads each run.
    pub duration: Duration,
    /// The client.
    pub client: Client,
    /// Client threads.
    pub client_threads: usize,
    /// Server worker threads.
    pub workers: usize,
    /// Where the clients' raw output and the servers' reports go.
    pub scratch: PathBuf,
}

/// One measured run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpRun {
    /// The server's mode.
    pub mode: HttpMode,
    /// Connections the client kept busy.
    pub connections: usize,
    /// Idle connections held open beside them.
    pub idle: usize,
    /// Bytes of each response body.
    pub response_bytes: usize,
    /// What the client reported.
    pub client: ClientReport,
    /// Server RSS once it listened, KiB.
    pub rss_start_kib: Option<u64>,
    /// Server RSS with the idle connections open, before the load, KiB.
    pub rss_idle_kib: Option<u64>,
    /// Server RSS halfway through the load, KiB.
    pub rss_busy_kib: Option<u64>,
    /// Server peak RSS (`VmHWM`) after the load, KiB.
    pub peak_rss_kib: Option<u64>,
    /// The server's own report at shutdown.
    pub server: HttpReport,
}

impl HttpRun {
    /// Connections open during the load.
    pub fn open_connections(&self) -> usize {
        self.connections + self.idle
    }

    /// Server RSS growth from start to halfway through the load, per open
    /// connection, KiB.
    pub fn kib_per_connection(&self) -> Option<f64> {
        let (start, busy) = (self.rss_start_kib?, self.rss_busy_kib?);
        Some(busy.saturating_sub(start) as f64 / self.open_connections().max(1) as f64)
    }

    /// Heap allocations per request on the server's workers, after their
    /// warm-up (`None` when too few requests were served to count).
    pub fn allocations_per_request(&self) -> Option<f64> {
        self.server.allocs.allocations_per_packet()
    }

    /// Errors on either side: the client's failed and non-2xx requests.
    pub fn errors(&self) -> u64 {
        self.client.errors + self.client.non_2xx
    }
}

/// The runs, and how they were made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpStudy {
    /// What was asked for.
    pub config: StudyConfig,
    /// The runs: each mode at each connection count and response size,
    /// then the idle case.
    pub runs: Vec<HttpRun>,
    /// Lines printed under the table.
    pub notes: Vec<String>,
}

/// Why a study stopped.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    /// The server process could not start or did not listen.
    #[error("{mode:?} mode: the server: {why}")]
    Server {
        /// The mode.
        mode: HttpMode,
        /// What went wrong, with the end of its output.
        why: String,
    },
    /// The client gave no figures.
    #[error("{mode:?} mode, {connections} connections: {source}")]
    Client {
        /// The mode.
        mode: HttpMode,
        /// Busy connections.
        connections: usize,
        /// The client's error.
        source: clients::ClientError,
    },
    /// The idle connections could not be opened.
    #[error("{mode:?} mode: opening {n} idle connections: {source}")]
    Idle {
        /// The mode.
        mode: HttpMode,
        /// How many.
        n: usize,
        /// The error.
        source: std::io::Error,
    },
    /// A setting that cannot work.
    #[error("{0}")]
    Config(String),
}

/// One run's shape.
#[derive(Debug, Clone, Copy)]
struct Case {
    mode: HttpMode,
    connections: usize,
    idle: usize,
    response_bytes: usize,
}

impl StudyConfig {
    /// The runs it makes, in order.
    fn cases(&self) -> Vec<Case> {
        let mut out = Vec::new();
        for &response_bytes in &self.responses {
            for &connections in &self.connections {
                for &mode in &self.modes {
                    out.push(Case {
                        mode,
                        connections,
                        idle: 0,
                        response_bytes,
                    });
                }
            }
        }
        if let (Some(idle), Some(&response_bytes)) = (self.idle, self.responses.first()) {
            for &mode in &self.modes {
                out.push(Case {
                    mode,
                    connections: idle.busy,
                    idle: idle.total - idle.busy,
                    response_bytes,
                });
            }
        }
        out
    }

    /// How many runs it makes.
    pub fn run_count(&self) -> usize {
        self.cases().len()
    }

    fn validate(&self) -> Result<(), StudyError> {
        let bad = |s: &str| Err(StudyError::Config(s.into()));
        if self.modes.is_empty() || self.connections.is_empty() || self.responses.is_empty() {
            return bad("the study needs at least one mode, connection count and response size");
        }
        if self.connections.contains(&0) {
            return bad("connection counts must be at least 1");
        }
        if let Some(i) = self.idle
            && (i.busy == 0 || i.busy > i.total)
        {
            return bad("the idle case needs 1 <= busy <= total connections");
        }
        if self.duration < Duration::from_secs(1) {
            return bad("each run lasts at least 1 s (wrk and h2load count whole seconds)");
        }
        Ok(())
    }
}

/// Runs the study, calling `each` after every run (for progress).
///
/// # Errors
///
/// If a server does not start, a client gives no figures, or the settings
/// cannot work. Errors a client counted (timeouts, bad answers) are not
/// failures: they are in the runs.
pub fn run(config: &StudyConfig, mut each: impl FnMut(&HttpRun)) -> Result<HttpStudy, StudyError> {
    config.validate()?;
    // The idle connections are this process's descriptors, and the
    // clients, started from here, inherit the limit.
    let limit = match crate::http::raise_open_files() {
        Ok((_, after)) => format!("open-file limit {after}"),
        Err(e) => format!("open-file limit not raised: {e}"),
    };
    std::fs::create_dir_all(&config.scratch)
        .map_err(|e| StudyError::Config(format!("creating {}: {e}", config.scratch.display())))?;
    let mut runs = Vec::new();
    for case in config.cases() {
        let r = one(config, case)?;
        each(&r);
        runs.push(r);
    }
    let notes = vec![
        format!(
            "client: {} ({} threads), {:.0} s per run, one request at a time per connection, keep-alive; \
             the client and the server share the machine's CPUs",
            config.client,
            config.client_threads,
            config.duration.as_secs_f64()
        ),
        format!(
            "server: `arenapool serve --protocol http`, {} worker threads, a fresh process per run; RSS from its \
             /proc/<pid>/status: at start, with idle connections open, halfway through the load (KiB/conn is the \
             growth from start over open connections), and its peak",
            config.workers
        ),
        format!(
            "allocs/req: the server's heap allocations on its workers after each worker's first 1000 requests \
             (arenapool-alloc's Counting); {limit}"
        ),
    ];
    Ok(HttpStudy {
        config: config.clone(),
        runs,
        notes,
    })
}

/// A server process of one run.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    report: PathBuf,
    output: mpsc::Receiver<String>,
}

impl ServerProcess {
    fn start(config: &StudyConfig, case: Case, tag: &str) -> Result<ServerProcess, StudyError> {
        let fail = |why: String| StudyError::Server {
            mode: case.mode,
            why,
        };
        let report = config.scratch.join(format!("serve-{tag}.json"));
        let _ = std::fs::remove_file(&report);
        let max = case.connections + case.idle + 1000;
        // A cap on its life, should this process die without stopping it.
        let cap = config.duration.as_secs() + 120;
        let mut child = Command::new(&config.exe)
            .args(["serve", "--protocol", "http", "--bind", "127.0.0.1:0"])
            .args(["--mode", mode_name(case.mode)])
            .args(["--workers", &config.workers.to_string()])
            .args(["--max-connections", &max.to_string()])
            .args(["--duration", &cap.to_string()])
            .arg("--json")
            .arg(&report)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("{}: {e}", config.exe.display())))?;
        let (tx, output) = mpsc::channel();
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match output.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = listening_address(&line) {
                        break addr;
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(fail(format!(
                        "it did not say where it listens: {}",
                        seen.join(" | ")
                    )));
                }
            }
        };
        Ok(ServerProcess {
            child,
            addr,
            report,
            output,
        })
    }

    fn status_kib(&self, field: &str) -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        rss::parse_status_kib(&text, field)
    }

    /// Stops it with SIGINT and reads its report.
    fn stop(mut self, mode: HttpMode) -> Result<HttpReport, StudyError> {
        let fail = |why: String| StudyError::Server { mode, why };
        let pid = rustix::process::Pid::from_raw(self.child.id().cast_signed())
            .ok_or_else(|| fail("no process id".into()))?;
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        let status = self.child.wait().map_err(|e| fail(e.to_string()))?;
        // What it printed last: the reader threads end with its pipes.
        let rest: Vec<String> = self.output.iter().collect();
        if !status.success() {
            // A server that fails on the way out (an error, or a checker
            // such as valgrind it runs under) fails the run.
            let start = rest.len().saturating_sub(20);
            return Err(fail(format!(
                "it exited with {status}: {}",
                rest[start..].join(" | ")
            )));
        }
        let text = std::fs::read_to_string(&self.report).map_err(|e| {
            fail(format!(
                "no report in {} ({e}); it exited with {status}: {}",
                self.report.display(),
                rest.join(" | ")
            ))
        })?;
        serde_json::from_str(&text).map_err(|e| fail(format!("its report: {e}")))
    }
}

fn mode_name(mode: HttpMode) -> &'static str {
    match mode {
        HttpMode::Pool => "pool",
        HttpMode::Vec => "vec",
        HttpMode::Hyper => "hyper",
    }
}

/// The address in the server's "HTTP on http://ADDR" line.
fn listening_address(line: &str) -> Option<SocketAddr> {
    let rest = line.split_once("HTTP on http://")?.1;
    rest.split_whitespace().next()?.parse().ok()
}

fn one(config: &StudyConfig, case: Case) -> Result<HttpRun, StudyError> {
    let tag = format!(
        "{}-{}c-{}i-{}b",
        mode_name(case.mode),
        case.connections,
        case.idle,
        case.response_bytes
    );
    let server = ServerProcess::start(config, case, &tag)?;
    thread::sleep(Duration::from_millis(200));
    let rss_start_kib = server.status_kib("VmRSS");
    let path = format!("/bytes/{}", case.response_bytes);
    let idle = if case.idle > 0 {
        let conns = IdleConnections::open(server.addr, case.idle, &path);
        match conns {
            Ok(c) => Some(c),
            Err(source) => {
                let _ = server.stop(case.mode);
                return Err(StudyError::Idle {
                    mode: case.mode,
                    n: case.idle,
                    source,
                });
            }
        }
    } else {
        None
    };
    let rss_idle_kib = idle.as_ref().and_then(|_| {
        thread::sleep(Duration::from_millis(200));
        server.status_kib("VmRSS")
    });
    let run = ClientRun {
        client: config.client,
        target: server.addr,
        path,
        connections: case.connections,
        threads: config.client_threads,
        duration: config.duration,
        scratch: config.scratch.join(&tag),
    };
    let client = thread::spawn(move || clients::run(&run));
    thread::sleep(config.duration / 2);
    let rss_busy_kib = server.status_kib("VmRSS");
    let client = client
        .join()
        .map_err(|_| StudyError::Config("the client thread panicked".into()))?;
    let peak_rss_kib = server.status_kib("VmHWM");
    let report = server.stop(case.mode);
    drop(idle);
    let client = client.map_err(|source| StudyError::Client {
        mode: case.mode,
        connections: case.connections,
        source,
    })?;
    Ok(HttpRun {
        mode: case.mode,
        connections: case.connections,
        idle: case.idle,
        response_bytes: case.response_bytes,
        client,
        rss_start_kib,
        rss_idle_kib,
        rss_busy_kib,
        peak_rss_kib,
        server: report?,
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_gives_the_address() {
        let line = "arenapool: HTTP on http://127.0.0.1:40123 (Pool mode, 2 workers, at most 10000 connections); Ctrl-C stops";
        assert_eq!(
            listening_address(line),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(listening_address("arenapool: open-file limit 20000"), None);
    }

    fn config() -> StudyConfig {
        StudyConfig {
            exe: PathBuf::from("arenapool"),
            modes: vec![HttpMode::Pool, HttpMode::Vec],
            connections: vec![10, 100],
            responses: vec![128, 16384],
            idle: Some(IdleCase {
                total: 1000,
                busy: 10,
            }),
            duration: Duration::from_secs(1),
            client: Client::Builtin,
            client_threads: 1,
            workers: 1,
            scratch: PathBuf::from("target/x"),
        }
    }

    #[test]
    fn every_mode_at_every_count_and_size_then_the_idle_case() {
        let c = config();
        let cases = c.cases();
        assert_eq!(cases.len(), 2 * 2 * 2 + 2);
        let idle = &cases[8..];
        assert!(
            idle.iter()
                .all(|k| (k.connections, k.idle, k.response_bytes) == (10, 990, 128))
        );
        assert_eq!(c.run_count(), 10);
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let mut c = config();
        c.idle = Some(IdleCase { total: 5, busy: 10 });
        assert!(c.validate().is_err());
        let mut c = config();
        c.connections = vec![0];
        assert!(c.validate().is_err());
        let mut c = config();
        c.duration = Duration::from_millis(10);
        assert!(c.validate().is_err());
        assert!(config().validate().is_ok());
    }
}
