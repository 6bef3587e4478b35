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

use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::http::clients::{self, Client, ClientReport, ClientRun};
use crate::http::load::IdleConnections;
use crate::http::{HttpMode, HttpReport};

mod process;
mod report;

use process::{ServerProcess, mode_name};

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

    /// Errors the client counted: broken or timed-out requests, and
    /// answers of 400 or above.
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
    let mut notes = vec![
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
             growth from start over open connections), and its peak (VmHWM, in the JSON)",
            config.workers
        ),
        format!(
            "allocs/req: the server's heap allocations on its workers after each worker's first 1000 requests \
             (arenapool-alloc's Counting); {limit}"
        ),
    ];
    let uring: Vec<&HttpRun> = runs.iter().filter(|r| r.mode == HttpMode::Uring).collect();
    if let Some(first) = uring.first() {
        let dry: u64 = uring.iter().map(|r| r.server.stats.recv_ran_dry).sum();
        notes.push(format!(
            "uring: each worker's provided ring lends the kernel {} pool buffers for the server's life \
             (resident once written into); receives that found it empty, over all uring runs: {dry}",
            first.server.config.ring_buffers.next_power_of_two()
        ));
    }
    Ok(HttpStudy {
        config: config.clone(),
        runs,
        notes,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

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
