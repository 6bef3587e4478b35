//! The HTTP/1.1 case study: a keep-alive, pipelining server on the pool
//! ([`HttpServer`]), with two routes, `GET /bytes/N` (N bytes of a repeating
//! alphabet) and `POST /echo` (the body back), parsed with `httparse`.
//!
//! * [`HttpMode::Pool`]: a connection waits for readability and only then
//!   takes a read buffer from the pool, and gives it back as soon as every
//!   request in it is answered, so an idle keep-alive connection holds no
//!   buffer. Responses are written from a second size class of pooled
//!   buffers. The two classes do not fall into each other, so a
//!   connection holds at most one of each and cannot wait for itself.
//! * [`HttpMode::Vec`]: what typical tokio code does: an 8 KiB `Vec` read
//!   buffer per connection, kept for its life, and a fresh `Vec` per
//!   response.
//!
//! Bad input gets a status and a counted reason, never a panic or an
//! unbounded allocation: a malformed head is a 400 (then the connection
//! closes), a head that does not fit a read buffer or has more than
//! 32 headers a 431, a body above [`HttpConfig::max_body`] a 413,
//! `Transfer-Encoding` a 501; a request head that is still incomplete
//! after [`HttpConfig::header_timeout`] (slowloris), or a body that stops
//! arriving for as long, closes the connection, as do
//! [`HttpConfig::idle_timeout`] of silence between requests and a client
//! that stops reading its answers for as long. `Expect: 100-continue` gets
//! its interim `100 Continue` before the body is read. At
//! [`HttpConfig::max_connections`] the server accepts and at once closes
//! new connections, counted.

pub mod clients;
mod conn;
mod hyper_mode;
pub mod load;
mod parse;
#[cfg(target_os = "linux")]
pub mod study;
#[cfg(target_os = "linux")]
mod uring_mode;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use arenapool::Pool;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::allocs::AllocWindow;

pub use parse::Status;

/// Where an [`HttpServer`]'s buffers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpMode {
    /// Read and response buffers from the pool, held only while a request
    /// is being read or answered.
    Pool,
    /// A `Vec` read buffer per connection and a `Vec` per response.
    Vec,
    /// io_uring (Linux 6.0 or later: multishot receives on stream sockets;
    /// the server checks at start), no tokio: per worker one multishot
    /// accept, a multishot `recv` per connection with buffers from a
    /// provided ring of pool buffers shared by all its connections, and
    /// sends from pooled response buffers. An idle connection holds no
    /// buffer and no task, only a small table entry.
    Uring,
    /// hyper serving the same routes: the reference (its own buffers).
    /// Its refusals differ: hyper answers what it parses itself (a bad
    /// head, an oversized one) before the routes see it, and counts only
    /// reach the routes' statuses.
    Hyper,
}

impl std::str::FromStr for HttpMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pool" => Ok(HttpMode::Pool),
            "vec" => Ok(HttpMode::Vec),
            "uring" => Ok(HttpMode::Uring),
            "hyper" => Ok(HttpMode::Hyper),
            _ => Err(format!(
                "unknown HTTP mode {s:?}: pool, vec, uring or hyper"
            )),
        }
    }
}

/// How to run an [`HttpServer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpConfig {
    /// Address to listen on; port 0 picks a free one. Default `127.0.0.1:0`.
    pub bind: SocketAddr,
    /// Default [`HttpMode::Pool`].
    pub mode: HttpMode,
    /// Worker threads, each with its own listening socket
    /// (`SO_REUSEPORT`) and single-threaded tokio runtime. Default 2.
    pub workers: usize,
    /// Bytes per read buffer, and so the largest request head. Default
    /// 8192.
    pub read_buffer: usize,
    /// Read buffers the pool starts with (pool and io_uring modes); it
    /// grows to `max_connections` of them. Default 256.
    pub buffers: usize,
    /// io_uring mode: read buffers in each worker's provided ring, shared
    /// by all its connections and lent to the kernel for the server's
    /// life (rounded up to a power of two, at most 32,768). Each one the
    /// kernel writes into becomes resident, so fewer cost less memory;
    /// too few for the load make receives run dry (counted in
    /// [`HttpStats::recv_ran_dry`]) and wait. Default 64.
    pub ring_buffers: usize,
    /// Open connections at most; more are accepted and closed at once.
    /// Default 10,000.
    pub max_connections: usize,
    /// Largest `POST /echo` body. Default 1 MiB.
    pub max_body: usize,
    /// Largest N of `GET /bytes/N`. Default 1 MiB.
    pub max_bytes: usize,
    /// How long a request head may take to arrive. Default 10 s.
    pub header_timeout: Duration,
    /// How long a keep-alive connection may stay silent. Default 60 s.
    pub idle_timeout: Duration,
    /// Requests each worker answers before its allocation counting
    /// starts. Default 1000.
    pub warmup: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            mode: HttpMode::Pool,
            workers: 2,
            read_buffer: 8192,
            buffers: 256,
            ring_buffers: 64,
            max_connections: 10_000,
            max_body: 1 << 20,
            max_bytes: 1 << 20,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            warmup: 1000,
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpConfigError {
    /// `workers` is 0.
    #[error("workers must be at least 1")]
    NoWorkers,
    /// `max_connections` is 0.
    #[error("max_connections must be at least 1")]
    NoConnections,
    /// A read buffer cannot hold a small request head.
    #[error("read_buffer {0} is too small: at least 256 bytes")]
    ReadBufferTooSmall(usize),
    /// `buffers` is 0.
    #[error("buffers must be at least 1")]
    NoBuffers,
    /// `ring_buffers` is 0 or above 32,768.
    #[error("ring_buffers {0} must be from 1 to 32768")]
    RingBuffers(usize),
}

impl HttpConfig {
    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// The first [`HttpConfigError`] found.
    pub fn validate(&self) -> Result<(), HttpConfigError> {
        if self.workers == 0 {
            return Err(HttpConfigError::NoWorkers);
        }
        if self.max_connections == 0 {
            return Err(HttpConfigError::NoConnections);
        }
        if self.read_buffer < 256 {
            return Err(HttpConfigError::ReadBufferTooSmall(self.read_buffer));
        }
        if self.buffers == 0 {
            return Err(HttpConfigError::NoBuffers);
        }
        if !(1..=32768).contains(&self.ring_buffers) {
            return Err(HttpConfigError::RingBuffers(self.ring_buffers));
        }
        Ok(())
    }

    /// Bytes per response buffer (pool mode), a size class of its own:
    /// a response head and a body of twice a read buffer, so that a
    /// 16 KiB answer goes out in one write.
    pub(crate) fn write_buffer(&self) -> usize {
        2 * self.read_buffer + parse::HEAD_MAX
    }
}

/// Why an [`HttpServer`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A bad setting.
    #[error(transparent)]
    Config(#[from] HttpConfigError),
    /// The pool could not be built.
    #[error("cannot build the pool: {0}")]
    Pool(#[from] arenapool::BuildError),
    /// A socket, runtime or thread could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
}

fn io_err(what: &'static str) -> impl Fn(io::Error) -> HttpError {
    move |source| HttpError::Io { what, source }
}

/// What an [`HttpServer`] did, summed over its workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpStats {
    /// Connections accepted and served.
    pub connections: u64,
    /// Connections closed at once because `max_connections` were open.
    pub refused: u64,
    /// Connections open now.
    pub open: u64,
    /// Requests answered, whatever the status.
    pub requests: u64,
    /// Answers by status: 200, 400, 404, 405, 413, 431, 501.
    pub ok: u64,
    /// 400.
    pub bad_request: u64,
    /// 404.
    pub not_found: u64,
    /// 405.
    pub method_not_allowed: u64,
    /// 413.
    pub payload_too_large: u64,
    /// 431.
    pub headers_too_large: u64,
    /// 501.
    pub not_implemented: u64,
    /// Connections closed because a request head took longer than
    /// `header_timeout` (slowloris).
    pub header_timeouts: u64,
    /// Keep-alive connections closed after `idle_timeout` of silence.
    pub idle_closed: u64,
    /// Connections closed because a request body stopped arriving for
    /// `header_timeout`.
    pub slow_bodies: u64,
    /// Connections closed because their client stopped reading answers
    /// (a write made no progress for `idle_timeout`).
    pub slow_readers: u64,
    /// Connections that ended with an I/O error: a reset by the peer, for
    /// example when a load generator stops with requests in flight.
    pub io_errors: u64,
    /// Response bytes written.
    pub bytes_out: u64,
    /// io_uring mode: receives that ended because the worker's provided
    /// ring had no buffer (`ENOBUFS`); each was re-armed once buffers came
    /// back, and its bytes waited in the kernel.
    pub recv_ran_dry: u64,
}

/// The live counters: relaxed atomics, shared by a worker's tasks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    connections: AtomicU64,
    refused: AtomicU64,
    requests: AtomicU64,
    by_status: [AtomicU64; 7],
    header_timeouts: AtomicU64,
    pub(crate) slow_bodies: AtomicU64,
    pub(crate) slow_readers: AtomicU64,
    idle_closed: AtomicU64,
    io_errors: AtomicU64,
    bytes_out: AtomicU64,
    pub(crate) recv_ran_dry: AtomicU64,
}

impl Counters {
    pub(crate) fn answered(&self, status: Status, bytes: usize) {
        self.requests.fetch_add(1, Relaxed);
        self.by_status[status as usize].fetch_add(1, Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Relaxed);
    }

    fn snapshot(&self, open: &AtomicUsize) -> HttpStats {
        let s = |i: usize| self.by_status[i].load(Relaxed);
        HttpStats {
            connections: self.connections.load(Relaxed),
            refused: self.refused.load(Relaxed),
            open: open.load(Relaxed) as u64,
            requests: self.requests.load(Relaxed),
            ok: s(Status::Ok as usize),
            bad_request: s(Status::BadRequest as usize),
            not_found: s(Status::NotFound as usize),
            method_not_allowed: s(Status::MethodNotAllowed as usize),
            payload_too_large: s(Status::PayloadTooLarge as usize),
            headers_too_large: s(Status::HeadersTooLarge as usize),
            not_implemented: s(Status::NotImplemented as usize),
            header_timeouts: self.header_timeouts.load(Relaxed),
            slow_bodies: self.slow_bodies.load(Relaxed),
            slow_readers: self.slow_readers.load(Relaxed),
            idle_closed: self.idle_closed.load(Relaxed),
            io_errors: self.io_errors.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            recv_ran_dry: self.recv_ran_dry.load(Relaxed),
        }
    }
}

/// What [`HttpServer::shutdown`] reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpReport {
    /// The settings it ran with.
    pub config: HttpConfig,
    /// The counters at the end.
    pub stats: HttpStats,
    /// Heap activity of the workers after their warm-up, per request
    /// (`packets` counts requests here).
    pub allocs: AllocWindow,
    /// Most pooled buffers out at once (pool mode): read and response
    /// classes.
    pub pool_high_water: Option<(usize, usize)>,
}

/// A running HTTP server; [`shutdown`](Self::shutdown) stops it.
///
/// ```
/// use std::io::{Read, Write};
/// use arenapool_server::http::{HttpConfig, HttpServer};
///
/// let server = HttpServer::start(HttpConfig { workers: 1, ..HttpConfig::default() })?;
/// let mut c = std::net::TcpStream::connect(server.local_addr())?;
/// c.write_all(b"GET /bytes/5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
/// let mut answer = String::new();
/// c.read_to_string(&mut answer)?;
/// assert!(answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("\r\n\r\nabcde"));
/// assert_eq!(server.shutdown().stats.ok, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct HttpServer {
    config: HttpConfig,
    local_addr: SocketAddr,
    pool: Option<Pool>,
    open: Arc<AtomicUsize>,
    workers: Vec<Worker>,
}

struct Worker {
    thread: thread::JoinHandle<AllocWindow>,
    stop: Arc<Notify>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("local_addr", &self.local_addr)
            .field("mode", &self.config.mode)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

/// What one worker runs with.
pub(crate) struct Ctx {
    pub(crate) config: HttpConfig,
    pub(crate) pool: Option<Pool>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) open: Arc<AtomicUsize>,
}

impl HttpServer {
    /// Binds the listening sockets and starts the workers; in pool mode
    /// builds a pool of two size classes (read buffers and response
    /// buffers), each growing up to `max_connections` buffers.
    ///
    /// # Errors
    ///
    /// If the settings are invalid, the pool cannot be built, or a socket,
    /// runtime or thread cannot be set up.
    pub fn start(config: HttpConfig) -> Result<HttpServer, HttpError> {
        config.validate()?;
        let pool = match config.mode {
            HttpMode::Pool | HttpMode::Uring => {
                let most = config.max_connections.max(config.buffers);
                // io_uring mode: each worker's provided ring holds a share
                // of read buffers beside those the connections hold.
                let lent = lent_buffers(&config);
                Some(
                    Pool::builder()
                        .growing_class(config.read_buffer, config.buffers, most + lent)
                        .growing_class(config.write_buffer(), config.buffers, most)
                        .fall_up(false)
                        .build()?,
                )
            }
            HttpMode::Vec | HttpMode::Hyper => None,
        };
        let listeners = bind(config.bind, config.workers)?;
        let local_addr = listeners[0]
            .local_addr()
            .map_err(io_err("reading the bound address"))?;
        let open = Arc::new(AtomicUsize::new(0));
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
        let mut server = HttpServer {
            config,
            local_addr,
            pool,
            open,
            workers: Vec::new(),
        };
        for (i, listener) in listeners.into_iter().enumerate() {
            let stop = Arc::new(Notify::new());
            let counters = Arc::new(Counters::default());
            let ctx = Ctx {
                config,
                pool: server.pool.clone(),
                counters: Arc::clone(&counters),
                open: Arc::clone(&server.open),
            };
            let ready = ready_tx.clone();
            let stop2 = Arc::clone(&stop);
            let thread = thread::Builder::new()
                .name(format!("arenapool-http-{i}"))
                .spawn(move || match ctx.config.mode {
                    #[cfg(target_os = "linux")]
                    HttpMode::Uring => uring_mode::worker(listener, ctx, stop2, ready),
                    _ => conn::worker(listener, ctx, stop2, ready),
                })
                .map_err(io_err("starting a worker thread"))?;
            server.workers.push(Worker {
                thread,
                stop,
                counters,
            });
        }
        drop(ready_tx);
        crate::workers::wait_ready(&ready_rx, config.workers)
            .map_err(|(what, e)| io_err(what)(e))?;
        Ok(server)
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The pool (pool and io_uring modes).
    pub fn pool(&self) -> Option<&Pool> {
        self.pool.as_ref()
    }

    /// Read buffers lent to the kernel for good: in io_uring mode, each
    /// worker's provided ring holds [`HttpConfig::ring_buffers`] of them
    /// (rounded up to a power of two), whatever the connections do; 0 in
    /// the other modes.
    /// They count as in use in the pool's stats.
    pub fn lent_buffers(&self) -> usize {
        lent_buffers(&self.config)
    }

    /// The counters now, summed over the workers.
    pub fn stats(&self) -> HttpStats {
        self.workers
            .iter()
            .map(|w| w.counters.snapshot(&self.open))
            .fold(HttpStats::default(), |a, b| a.plus(&b))
    }

    /// Stops the workers (open connections are dropped, and their buffers
    /// go back), waits for them and reports.
    pub fn shutdown(mut self) -> HttpReport {
        let workers = std::mem::take(&mut self.workers);
        for w in &workers {
            w.stop.notify_one();
        }
        let mut allocs = AllocWindow::default();
        let mut stats = HttpStats::default();
        for w in workers {
            if let Ok(window) = w.thread.join() {
                allocs.add(&window);
            }
            stats = stats.plus(&w.counters.snapshot(&self.open));
        }
        HttpReport {
            config: self.config,
            stats,
            allocs,
            pool_high_water: self.pool.as_ref().map(|p| {
                let c = p.class_stats();
                (c[0].stats.high_water, c[1].stats.high_water)
            }),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        for w in &self.workers {
            w.stop.notify_one();
        }
        for w in self.workers.drain(..) {
            let _ = w.thread.join();
        }
    }
}

impl HttpStats {
    /// Two workers' counters added up (`open` is shared: the larger).
    fn plus(&self, o: &HttpStats) -> HttpStats {
        HttpStats {
            connections: self.connections + o.connections,
            refused: self.refused + o.refused,
            open: self.open.max(o.open),
            requests: self.requests + o.requests,
            ok: self.ok + o.ok,
            bad_request: self.bad_request + o.bad_request,
            not_found: self.not_found + o.not_found,
            method_not_allowed: self.method_not_allowed + o.method_not_allowed,
            payload_too_large: self.payload_too_large + o.payload_too_large,
            headers_too_large: self.headers_too_large + o.headers_too_large,
            not_implemented: self.not_implemented + o.not_implemented,
            header_timeouts: self.header_timeouts + o.header_timeouts,
            slow_bodies: self.slow_bodies + o.slow_bodies,
            slow_readers: self.slow_readers + o.slow_readers,
            idle_closed: self.idle_closed + o.idle_closed,
            io_errors: self.io_errors + o.io_errors,
            bytes_out: self.bytes_out + o.bytes_out,
            recv_ran_dry: self.recv_ran_dry + o.recv_ran_dry,
        }
    }
}

/// See [`HttpServer::lent_buffers`].
fn lent_buffers(config: &HttpConfig) -> usize {
    match config.mode {
        #[cfg(target_os = "linux")]
        HttpMode::Uring => config.workers * uring_mode::ring_entries(config.ring_buffers) as usize,
        _ => 0,
    }
}

/// `workers` listening sockets on one address (`SO_REUSEPORT` on Linux,
/// so the kernel spreads connections over them).
fn bind(addr: SocketAddr, workers: usize) -> Result<Vec<std::net::TcpListener>, HttpError> {
    use socket2::{Domain, Socket, Type};
    let mut out = Vec::with_capacity(workers);
    let mut addr = addr;
    for _ in 0..workers {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)
            .map_err(io_err("creating a socket"))?;
        s.set_reuse_address(true).map_err(io_err("SO_REUSEADDR"))?;
        #[cfg(target_os = "linux")]
        s.set_reuse_port(true).map_err(io_err("SO_REUSEPORT"))?;
        s.set_nonblocking(true).map_err(io_err("O_NONBLOCK"))?;
        s.bind(&addr.into()).map_err(io_err("binding"))?;
        s.listen(4096).map_err(io_err("listening"))?;
        let l: std::net::TcpListener = s.into();
        // The next sockets share the port the first one got.
        addr = l
            .local_addr()
            .map_err(io_err("reading the bound address"))?;
        out.push(l);
        if !cfg!(target_os = "linux") {
            break;
        }
    }
    Ok(out)
}

/// Raises this process's open-file limit (`RLIMIT_NOFILE`) to its hard
/// limit, for servers with many connections. Returns the soft limit before
/// and after.
///
/// # Errors
///
/// If the limit cannot be read or set.
#[cfg(target_os = "linux")]
pub fn raise_open_files() -> io::Result<(u64, u64)> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let old = getrlimit(Resource::Nofile);
    let before = old.current.unwrap_or(u64::MAX);
    let mut new = old;
    new.current = old.maximum;
    setrlimit(Resource::Nofile, new).map_err(io::Error::from)?;
    Ok((before, new.current.unwrap_or(u64::MAX)))
}
