//! arenapool's own HTTP load generator: the fallback where wrk and h2load
//! are not installed ([`crate::http::clients`]), and the holder of idle
//! connections in the many-idle measurement.
//!
//! [`run`] keeps `connections` keep-alive connections busy for a while,
//! one `GET` at a time on each, spread over `threads` threads with a
//! single-threaded tokio runtime each. Every answer is read whole and
//! checked: status 200 and exactly `Content-Length` bytes of body. The
//! latency of each is recorded from the first byte of the request written
//! to the last byte of the answer read.
//!
//! [`IdleConnections`] opens connections, sends one request on each, reads
//! its answer, and then holds them open and silent until dropped.
//!
//! ```
//! use std::time::Duration;
//! use arenapool_server::http::load::{self, HttpLoadConfig};
//! use arenapool_server::http::{HttpConfig, HttpServer};
//!
//! let server = HttpServer::start(HttpConfig { workers: 1, ..HttpConfig::default() })?;
//! let r = load::run(&HttpLoadConfig {
//!     target: server.local_addr(),
//!     path: "/bytes/64".into(),
//!     connections: 4,
//!     threads: 1,
//!     duration: Duration::from_millis(200),
//! })?;
//! assert!(r.requests > 0);
//! assert_eq!((r.errors, r.bad), (0, 0));
//! assert!(server.shutdown().stats.ok >= r.requests);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream as TokioStream;
use tokio::time::Instant as TokioInstant;

use crate::latency::{self, LatencySummary};

/// What to load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpLoadConfig {
    /// The server.
    pub target: SocketAddr,
    /// The path of every `GET`, such as `/bytes/128`.
    pub path: String,
    /// Busy connections.
    pub connections: usize,
    /// Threads, each with its own runtime and a share of the connections.
    pub threads: usize,
    /// How long to keep them busy.
    pub duration: Duration,
}

/// A setting that cannot work, or a load that could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpLoadError {
    /// `connections` or `threads` is 0.
    #[error("connections and threads must be at least 1")]
    Nothing,
    /// The path is not an absolute path without spaces or line breaks.
    #[error("path {0:?} must start with '/' and hold no whitespace")]
    BadPath(String),
    /// A thread or runtime could not start.
    #[error("starting the load: {0}")]
    Start(io::Error),
}

/// What the load saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpLoadReport {
    /// Answers read whole and checked (status 200, the body's length).
    pub requests: u64,
    /// Answers that were not 200, or whose length was wrong, or that could
    /// not be parsed.
    pub bad: u64,
    /// Connections that failed to connect, or broke before an answer was
    /// complete (not counting those cut by the end of the run).
    pub errors: u64,
    /// Seconds the load ran.
    pub elapsed_s: f64,
    /// Latency of the checked answers.
    pub latency: LatencySummary,
}

impl HttpLoadReport {
    /// Checked answers per second.
    pub fn requests_per_s(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.requests as f64 / self.elapsed_s
        } else {
            0.0
        }
    }
}

/// One thread's share of the results.
struct Tally {
    requests: u64,
    bad: u64,
    errors: u64,
    hist: Histogram<u64>,
}

/// Runs the load and waits for it.
///
/// # Errors
///
/// If the settings are invalid or a thread cannot start. Failed
/// connections and bad answers are counted in the report instead.
pub fn run(config: &HttpLoadConfig) -> Result<HttpLoadReport, HttpLoadError> {
    if config.connections == 0 || config.threads == 0 {
        return Err(HttpLoadError::Nothing);
    }
    if !config.path.starts_with('/') || config.path.contains(char::is_whitespace) {
        return Err(HttpLoadError::BadPath(config.path.clone()));
    }
    let request = request(config.target, &config.path);
    let threads = config.threads.min(config.connections);
    let started = Instant::now();
    let deadline = started + config.duration;
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        // Connections t, t + threads, t + 2 * threads...
        let share = (config.connections - t).div_ceil(threads);
        let (target, request) = (config.target, request.clone());
        let h = thread::Builder::new()
            .name(format!("arenapool-http-load-{t}"))
            .spawn(move || thread_main(target, request, share, deadline))
            .map_err(HttpLoadError::Start)?;
        handles.push(h);
    }
    let mut all = Tally::new();
    for h in handles {
        let t = h
            .join()
            .map_err(|_| HttpLoadError::Start(io::Error::other("a load thread panicked")))?
            .map_err(HttpLoadError::Start)?;
        all.add(&t);
    }
    Ok(HttpLoadReport {
        requests: all.requests,
        bad: all.bad,
        errors: all.errors,
        elapsed_s: started.elapsed().as_secs_f64(),
        latency: LatencySummary::from_histogram(&all.hist),
    })
}

fn request(target: SocketAddr, path: &str) -> Arc<[u8]> {
    format!("GET {path} HTTP/1.1\r\nHost: {target}\r\n\r\n")
        .into_bytes()
        .into()
}

impl Tally {
    fn new() -> Tally {
        Tally {
            requests: 0,
            bad: 0,
            errors: 0,
            hist: latency::histogram(),
        }
    }

    fn add(&mut self, t: &Tally) {
        self.requests += t.requests;
        self.bad += t.bad;
        self.errors += t.errors;
        // Every histogram here has the same bounds: adding cannot fail.
        let _ = self.hist.add(&t.hist);
    }
}

fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn thread_main(
    target: SocketAddr,
    request: Arc<[u8]>,
    connections: usize,
    deadline: Instant,
) -> io::Result<Tally> {
    let deadline = tokio::time::Instant::from_std(deadline);
    runtime()?.block_on(async move {
        let tasks: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(connection(target, Arc::clone(&request), deadline)))
            .collect();
        let mut all = Tally::new();
        for t in tasks {
            match t.await {
                Ok(t) => all.add(&t),
                Err(_) => all.errors += 1,
            }
        }
        Ok(all)
    })
}

/// One busy connection until `deadline`; an answer cut by the deadline is
/// neither counted nor an error.
async fn connection(target: SocketAddr, request: Arc<[u8]>, deadline: TokioInstant) -> Tally {
    let mut t = Tally::new();
    let mut s = match tokio::time::timeout_at(deadline, TokioStream::connect(target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => {
            t.errors += 1;
            return t;
        }
        // Still connecting when the run ended (a backlog full of SYNs):
        // cut by the end, not an error.
        Err(_) => return t,
    };
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; READ_BUFFER];
    while TokioInstant::now() < deadline {
        let start = Instant::now();
        match tokio::time::timeout_at(deadline, exchange(&mut s, &request, &mut buf)).await {
            Err(_) => break,
            Ok(Ok(Answer::Ok)) => {
                t.requests += 1;
                let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                t.hist.saturating_record(ns.max(1));
            }
            Ok(Ok(Answer::Bad)) => {
                // Its framing cannot be trusted: this connection is done.
                t.bad += 1;
                break;
            }
            Ok(Err(_)) => {
                t.errors += 1;
                break;
            }
        }
    }
    t
}

/// Room for an answer's head (and what follows it in the same read).
const READ_BUFFER: usize = 16 * 1024;

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Status 200 and exactly `Content-Length` bytes of body.
    Ok,
    /// Another status, no or a wrong length, or an unparseable head.
    Bad,
}

/// Sends `request` and reads its answer whole.
async fn exchange(s: &mut TokioStream, request: &[u8], buf: &mut [u8]) -> io::Result<Answer> {
    s.write_all(request).await?;
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            return Ok(Answer::Bad);
        }
        let n = s.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
        let Some(head) = parse_head(&buf[..filled]) else {
            continue;
        };
        let Ok((head_len, body_len, ok)) = head else {
            return Ok(Answer::Bad);
        };
        // One request at a time: anything past this body is not ours.
        let mut have = filled - head_len;
        while have < body_len {
            let n = s.read(buf).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            have += n;
        }
        return Ok(if ok && have == body_len {
            Answer::Ok
        } else {
            Answer::Bad
        });
    }
}

/// An answer's head: `None` while incomplete, else its length, the body's
/// length and whether the status is 200; `Err` for a head that does not
/// parse or has no `Content-Length`.
#[allow(clippy::type_complexity)] // the one caller destructures it at once
fn parse_head(bytes: &[u8]) -> Option<Result<(usize, usize, bool), ()>> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut r = httparse::Response::new(&mut headers);
    match r.parse(bytes) {
        Ok(httparse::Status::Partial) => None,
        Err(_) => Some(Err(())),
        Ok(httparse::Status::Complete(head_len)) => Some(
            r.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .map(|len| (head_len, len, r.code == Some(200)))
                .ok_or(()),
        ),
    }
}

/// Connections that each took one answer and then stay open and silent,
/// until dropped: the idle majority of a many-connection measurement.
#[derive(Debug)]
pub struct IdleConnections {
    streams: Vec<TcpStream>,
}

impl IdleConnections {
    /// Connections opened at once, at most: a burst larger than the
    /// server's listen backlog would wait for SYN retries.
    const BURST: usize = 256;

    /// Opens `n` connections to `target`, each sending `GET path` and
    /// reading the answer whole.
    ///
    /// ```
    /// use arenapool_server::http::load::IdleConnections;
    /// use arenapool_server::http::{HttpConfig, HttpServer};
    ///
    /// let server = HttpServer::start(HttpConfig { workers: 1, ..HttpConfig::default() })?;
    /// let idle = IdleConnections::open(server.local_addr(), 20, "/bytes/16")?;
    /// assert_eq!(idle.len(), 20);
    /// assert_eq!(server.stats().open, 20);
    /// drop(idle);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// If a connection cannot be made in 10 s, or its answer is not a 200
    /// with its whole body.
    pub fn open(target: SocketAddr, n: usize, path: &str) -> io::Result<IdleConnections> {
        let request = request(target, path);
        let rt = runtime()?;
        let mut streams = Vec::with_capacity(n);
        rt.block_on(async {
            let mut left = n;
            while left > 0 {
                let burst = left.min(Self::BURST);
                left -= burst;
                let tasks: Vec<_> = (0..burst)
                    .map(|_| {
                        let request = Arc::clone(&request);
                        tokio::spawn(async move {
                            let work = async {
                                let mut s = TokioStream::connect(target).await?;
                                let mut buf = vec![0u8; READ_BUFFER];
                                match exchange(&mut s, &request, &mut buf).await? {
                                    Answer::Ok => s.into_std(),
                                    Answer::Bad => Err(io::Error::other(
                                        "the answer to an idle connection's request was not a 200 with its body",
                                    )),
                                }
                            };
                            tokio::time::timeout(Duration::from_secs(10), work)
                                .await
                                .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
                        })
                    })
                    .collect();
                for t in tasks {
                    let s = t.await.map_err(io::Error::other)??;
                    streams.push(s);
                }
            }
            Ok::<(), io::Error>(())
        })?;
        Ok(IdleConnections { streams })
    }

    /// How many are open.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}
