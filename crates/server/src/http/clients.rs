//! HTTP load from clients nobody here wrote, wrk and h2load (`--h1`), and
//! from our own ([`crate::http::load`]) where they are not installed: one
//! [`ClientReport`] whichever ran, read off the client's own output.
//!
//! * **wrk** (`wrk --latency`): requests/s, the request count, p50 and p99
//!   from its latency distribution, socket errors and non-2xx answers.
//! * **h2load** (`--h1 -D`): requests/s and the counts from its summary;
//!   it prints no percentiles, so p50 and p99 come from its per-request
//!   log (`--log-file`: start, status, microseconds to the end of the
//!   response).
//! * **ours** ([`Client::Builtin`]): its own histogram.
//!
//! ```
//! use arenapool_server::http::clients::parse_wrk;
//! let text = "  Latency Distribution\n     50%  445.00us\n     75%  537.00us\n     90%  656.00us\n     99%    1.13ms\n\
//!             838720 requests in 4.00s, 165.57MB read\nRequests/sec: 209634.65\n";
//! let r = parse_wrk(text)?;
//! assert_eq!(r.requests, 838_720);
//! assert_eq!(r.p99_us, Some(1130.0));
//! # Ok::<(), arenapool_server::http::clients::ClientError>(())
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::http::load::{self, HttpLoadConfig};
use crate::latency;

/// Which client puts the load on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Client {
    /// wrk (Debian: `wrk`).
    Wrk,
    /// h2load in HTTP/1.1 mode (Debian: `nghttp2-client`).
    H2load,
    /// arenapool's own HTTP load generator ([`crate::http::load`]).
    Builtin,
}

impl Client {
    /// Every client, preferred first.
    pub const ALL: [Client; 3] = [Client::Wrk, Client::H2load, Client::Builtin];

    /// Its name, as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Client::Wrk => "wrk",
            Client::H2load => "h2load",
            Client::Builtin => "builtin",
        }
    }

    /// Whether it can run here: its program answers `--version` (ours
    /// always can).
    pub fn installed(self) -> bool {
        match self {
            Client::Builtin => true,
            c => Command::new(c.name())
                .arg("--version")
                .output()
                .is_ok_and(|o| !o.stdout.is_empty() || !o.stderr.is_empty()),
        }
    }

    /// The first of wrk, h2load and ours that is installed.
    pub fn best_installed() -> Client {
        Client::ALL
            .into_iter()
            .find(|c| c.installed())
            .unwrap_or(Client::Builtin)
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Client {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Client::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("unknown client {s:?}: wrk, h2load or builtin"))
    }
}

/// One load run: `connections` keep-alive connections sending `GET path`
/// for `duration`, one request at a time on each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRun {
    /// The client.
    pub client: Client,
    /// The server.
    pub target: SocketAddr,
    /// The request path, such as `/bytes/128`.
    pub path: String,
    /// Concurrent connections.
    pub connections: usize,
    /// Client threads (wrk's and h2load's `-t`; our generator's runtime
    /// threads).
    pub threads: usize,
    /// How long the load lasts.
    pub duration: Duration,
    /// Where the client's raw output (and h2load's request log) goes.
    pub scratch: PathBuf,
}

/// What a client reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientReport {
    /// The client that ran.
    pub client: Client,
    /// Answers it read.
    pub requests: u64,
    /// Its requests/s.
    pub requests_per_s: f64,
    /// Median latency, microseconds.
    pub p50_us: Option<f64>,
    /// 99th percentile latency, microseconds.
    pub p99_us: Option<f64>,
    /// Connection errors, and requests that broke or timed out, each
    /// counted once.
    pub errors: u64,
    /// Answers with a status of 400 or above (wrk's "Non-2xx or 3xx
    /// responses"; for our own client, any answer but a 200 of the right
    /// length).
    pub non_2xx: u64,
}

/// Why a client run gave no report.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The program could not be started.
    #[error("{client}: cannot run it: {source}")]
    Spawn {
        /// The client.
        client: Client,
        /// The error.
        source: std::io::Error,
    },
    /// It exited with a failure.
    #[error("{client} failed ({status}): {output}")]
    Failed {
        /// The client.
        client: Client,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The end of what it printed.
        output: String,
    },
    /// Its output lacks a figure it always prints.
    #[error("{client}'s output has no {what}: {output}")]
    Output {
        /// The client.
        client: Client,
        /// The missing figure.
        what: &'static str,
        /// The end of what it printed.
        output: String,
    },
    /// Our own generator could not run.
    #[error(transparent)]
    Builtin(#[from] load::HttpLoadError),
    /// Writing or reading the scratch files.
    #[error("{path}: {source}")]
    Scratch {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn tail(text: &str) -> String {
    let start = text.len().saturating_sub(600);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    text[start..].trim().to_string()
}

/// Runs `run` and reads the client's figures.
///
/// # Errors
///
/// If the client cannot start, fails, or prints no figures.
pub fn run(run: &ClientRun) -> Result<ClientReport, ClientError> {
    let url = format!("http://{}{}", run.target, run.path);
    let threads = run.threads.clamp(1, run.connections.max(1));
    let secs = run.duration.as_secs().max(1);
    let scratch = |e: std::io::Error| ClientError::Scratch {
        path: run.scratch.clone(),
        source: e,
    };
    std::fs::create_dir_all(&run.scratch).map_err(scratch)?;
    match run.client {
        Client::Builtin => {
            let r = load::run(&HttpLoadConfig {
                target: run.target,
                path: run.path.clone(),
                connections: run.connections,
                threads,
                duration: run.duration,
            })?;
            Ok(ClientReport {
                client: Client::Builtin,
                requests: r.requests,
                requests_per_s: r.requests_per_s(),
                p50_us: Some(latency::micros(r.latency.p50_ns)),
                p99_us: Some(latency::micros(r.latency.p99_ns)),
                errors: r.errors,
                non_2xx: r.bad,
            })
        }
        Client::Wrk => {
            let text = output(
                Client::Wrk,
                Command::new("wrk").args([
                    format!("-t{threads}"),
                    format!("-c{}", run.connections),
                    format!("-d{secs}s"),
                    "--latency".into(),
                    url,
                ]),
            )?;
            write_scratch(&run.scratch.join("wrk.out"), &text)?;
            parse_wrk(&text)
        }
        Client::H2load => {
            let log = run.scratch.join("h2load-requests.log");
            let text = output(
                Client::H2load,
                Command::new("h2load").args([
                    "--h1".to_string(),
                    format!("-t{threads}"),
                    format!("-c{}", run.connections),
                    format!("-D{secs}"),
                    format!("--log-file={}", log.display()),
                    url,
                ]),
            )?;
            write_scratch(&run.scratch.join("h2load.out"), &text)?;
            let requests = std::fs::read_to_string(&log).map_err(|e| ClientError::Scratch {
                path: log.clone(),
                source: e,
            })?;
            let report = parse_h2load(&text, &requests);
            // The log can be tens of MiB; only the figures stay.
            let _ = std::fs::remove_file(&log);
            report
        }
    }
}

fn write_scratch(path: &Path, text: &str) -> Result<(), ClientError> {
    std::fs::write(path, text).map_err(|e| ClientError::Scratch {
        path: path.to_path_buf(),
        source: e,
    })
}

fn output(client: Client, cmd: &mut Command) -> Result<String, ClientError> {
    let out = cmd
        .output()
        .map_err(|source| ClientError::Spawn { client, source })?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(ClientError::Failed {
            client,
            status: out.status,
            output: tail(&text),
        });
    }
    Ok(text)
}

/// A duration as wrk prints it (`445.00us`, `1.13ms`, `2.00s`, `1.00m`),
/// in microseconds.
fn wrk_duration_us(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(n * scale)
}

/// The numbers in `line` after `label`, in order (`12,` reads as 12).
fn numbers_after(line: &str, label: &str) -> Vec<u64> {
    line.split_once(label).map_or_else(Vec::new, |(_, rest)| {
        rest.split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .filter_map(|w| w.parse().ok())
            .collect()
    })
}

/// Reads `wrk --latency` output.
///
/// # Errors
///
/// If it has no request count or no requests/s line.
pub fn parse_wrk(text: &str) -> Result<ClientReport, ClientError> {
    let missing = |what| ClientError::Output {
        client: Client::Wrk,
        what,
        output: tail(text),
    };
    let mut report = ClientReport {
        client: Client::Wrk,
        requests: 0,
        requests_per_s: 0.0,
        p50_us: None,
        p99_us: None,
        errors: 0,
        non_2xx: 0,
    };
    let mut requests = None;
    let mut rps = None;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", d] => report.p50_us = wrk_duration_us(d),
            ["99%", d] => report.p99_us = wrk_duration_us(d),
            ["Requests/sec:", n] => rps = n.parse().ok(),
            [n, "requests", "in", ..] => requests = n.parse().ok(),
            _ if line.trim_start().starts_with("Socket errors:") => {
                report.errors = numbers_after(line, "Socket errors:").iter().sum();
            }
            _ if line.trim_start().starts_with("Non-2xx or 3xx responses:") => {
                report.non_2xx = numbers_after(line, "responses:").iter().sum();
            }
            _ => {}
        }
    }
    report.requests = requests.ok_or_else(|| missing("request count"))?;
    report.requests_per_s = rps.ok_or_else(|| missing("Requests/sec"))?;
    Ok(report)
}

/// Reads `h2load --h1` output and its `--log-file` (one request a line:
/// start, status, microseconds to the end of the response).
///
/// ```
/// use arenapool_server::http::clients::parse_h2load;
/// let summary = "finished in 2.00s, 1500.00 req/s, 300KB/s\n\
///     requests: 3000 total, 3000 started, 3000 done, 2997 succeeded, 3 failed, 2 errored, 1 timeout\n\
///     status codes: 2996 2xx, 1 3xx, 1 4xx, 0 5xx\n";
/// let log = "1700000000000000\t200\t100\n1700000000000100\t200\t300\n";
/// let r = parse_h2load(summary, log)?;
/// // The timed-out request is one of the two errored ones; the 4xx is
/// // the other failure.
/// assert_eq!((r.requests, r.errors, r.non_2xx), (3000, 2, 1));
/// assert_eq!(r.requests_per_s, 1500.0);
/// assert!(r.p99_us.unwrap() >= 299.0);
/// # Ok::<(), arenapool_server::http::clients::ClientError>(())
/// ```
///
/// # Errors
///
/// If it has no `finished in` or no `requests:` line.
pub fn parse_h2load(text: &str, request_log: &str) -> Result<ClientReport, ClientError> {
    let missing = |what| ClientError::Output {
        client: Client::H2load,
        what,
        output: tail(text),
    };
    let finished = text
        .lines()
        .find(|l| l.starts_with("finished in"))
        .ok_or_else(|| missing("'finished in' line"))?;
    let rps: f64 = finished
        .split(", ")
        .find_map(|part| part.strip_suffix(" req/s"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| missing("req/s"))?;
    let counts = text
        .lines()
        .find(|l| l.starts_with("requests:"))
        .map(|l| numbers_after(l, "requests:"))
        .ok_or_else(|| missing("'requests:' line"))?;
    // total, started, done, succeeded, failed, errored, timeout
    // total, started, done, succeeded, failed, errored, timeout. h2load
    // counts a timed-out request as errored too, and an errored one, or
    // an answer of 400 or above, as failed: `errored` alone counts each
    // broken request once, and the status line the bad answers.
    let [total, _, done, _, _, errored, _] = counts[..] else {
        return Err(missing("seven request counts"));
    };
    let non_2xx = text
        .lines()
        .find(|l| l.starts_with("status codes:"))
        .map_or(0, |l| {
            // "N 2xx, N 3xx, N 4xx, N 5xx": the digits of "2xx" are read
            // too, so the counts are every other number; 4xx and 5xx are
            // what wrk counts as "Non-2xx or 3xx".
            let n = numbers_after(l, "status codes:");
            n.iter().step_by(2).skip(2).sum()
        });
    let mut h = latency::histogram();
    for line in request_log.lines() {
        let mut cols = line.split('\t');
        if let (Some(_), Some(_), Some(us)) = (cols.next(), cols.next(), cols.next())
            && let Ok(us) = us.trim().parse::<u64>()
        {
            h.saturating_record(us.saturating_mul(1000).max(1));
        }
    }
    let q = |q: f64| (!h.is_empty()).then(|| latency::micros(h.value_at_quantile(q)));
    Ok(ClientReport {
        client: Client::H2load,
        requests: if done > 0 { done } else { total },
        requests_per_s: rps,
        p50_us: q(0.5),
        p99_us: q(0.99),
        errors: errored,
        non_2xx,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Printed by wrk 4.1.0 against `arenapool serve --protocol http`.
    const WRK: &str = "Running 2s test @ http://127.0.0.1:7070/bytes/128
  2 threads and 100 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   474.43us  200.35us   6.68ms   80.50%
    Req/Sec   105.36k     8.42k  118.66k    75.00%
  Latency Distribution
     50%  445.00us
     75%  537.00us
     90%  656.00us
     99%    1.13ms
  419360 requests in 2.00s, 82.79MB read
  Socket errors: connect 0, read 12, write 0, timeout 3
  Non-2xx or 3xx responses: 5
Requests/sec: 209634.65
Transfer/sec:     41.38MB
";

    #[test]
    fn wrk_figures_and_errors_are_read() {
        let r = parse_wrk(WRK).unwrap();
        assert_eq!(r.requests, 419_360);
        assert!((r.requests_per_s - 209_634.65).abs() < 1e-6);
        assert_eq!(r.p50_us, Some(445.0));
        assert_eq!(r.p99_us, Some(1130.0));
        assert_eq!((r.errors, r.non_2xx), (15, 5));
    }

    #[test]
    fn wrk_output_without_figures_is_an_error() {
        let e = parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n").unwrap_err();
        assert!(e.to_string().contains("request count"), "{e}");
    }

    #[test]
    fn wrk_durations_in_every_unit() {
        assert_eq!(wrk_duration_us("12.50us"), Some(12.5));
        assert_eq!(wrk_duration_us("2.00ms"), Some(2000.0));
        assert_eq!(wrk_duration_us("1.50s"), Some(1_500_000.0));
        assert_eq!(wrk_duration_us("1.00m"), Some(60_000_000.0));
        assert_eq!(wrk_duration_us("3.0parsecs"), None);
        assert_eq!(wrk_duration_us("fast"), None);
    }

    #[test]
    fn h2load_percentiles_come_from_its_request_log() {
        let summary = "finished in 1.00s, 100.00 req/s, 20KB/s\n\
            requests: 100 total, 100 started, 100 done, 100 succeeded, 0 failed, 0 errored, 0 timeout\n\
            status codes: 100 2xx, 0 3xx, 0 4xx, 0 5xx\n";
        let log: String = (1..=100)
            .map(|i| format!("17000000{i:08}\t200\t{}\n", i * 10))
            .collect();
        let r = parse_h2load(summary, &log).unwrap();
        assert_eq!((r.requests, r.errors, r.non_2xx), (100, 0, 0));
        let (p50, p99) = (r.p50_us.unwrap(), r.p99_us.unwrap());
        assert!((499.0..=501.0).contains(&p50), "{p50}");
        assert!((989.0..=991.0).contains(&p99), "{p99}");
        // No log lines: no percentiles, and no made-up ones.
        assert_eq!(parse_h2load(summary, "").unwrap().p50_us, None);
        assert!(parse_h2load("requests: 1 total\n", "").is_err());
    }
}
