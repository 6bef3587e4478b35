//! The UDP echo-with-checksum server.
//!
//! # Threads and sockets
//!
//! Each worker is an OS thread with its own socket. On Linux the sockets
//! share one address through `SO_REUSEPORT`, and the kernel spreads
//! datagrams over them by a hash of the sender's address and port, so a
//! client needs several sockets (the load generator's `sockets`) to reach
//! several workers. Elsewhere the workers share one socket (duplicated
//! descriptors) and take turns.
//!
//! One thread per worker keeps every datagram's life on one thread: its
//! allocations can be counted per thread ([`crate::allocs`]), and a load
//! generator in the same process is not.
//!
//! # A worker's loop
//!
//! In pool and Vec mode a worker runs a single-threaded tokio runtime and
//! one of the loops of `worker.rs`: a system call per datagram, or
//! `recvmmsg`/`sendmmsg` with up to `batch` datagrams per call (and UDP
//! GRO/GSO with `gso`), as [`UdpIo`](crate::UdpIo) says. Each datagram
//! goes straight into a buffer of its own (pool or fresh `Vec`, see
//! [`Mode`]), is checked, gets its checksum, and is turned into a reply in
//! place and sent back from the same bytes.
//!
//! In io_uring mode ([`Mode::Uring`], Linux) a worker runs no runtime: it
//! serves its socket through an `arenapool::uring::Ring`, as `uring.rs`
//! describes; the sockets, counters, stop signal and reports are the same.

mod worker;

use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};

use arenapool::Pool;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use self::worker::Job;
use crate::allocs::AllocWindow;
use crate::buffers::Mode;
use crate::config::{ConfigError, ServerConfig};
use crate::stats::{Counters, ServerStats};

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A setting cannot work.
    #[error("bad server settings: {0}")]
    Config(#[from] ConfigError),
    /// The pool could not be built.
    #[error("cannot build the pool: {0}")]
    Pool(#[from] arenapool::BuildError),
    /// The pool given to [`Server::with_pool`] has buffers of another size
    /// than [`ServerConfig::recv_buffer_len`].
    #[error("the pool's buffers are {pool} bytes, the settings say {config}")]
    PoolMismatch {
        /// The pool's buffer size.
        pool: usize,
        /// `buffer_size` in the settings.
        config: usize,
    },
    /// The mode needs what this platform does not have (io_uring mode
    /// off Linux).
    #[error("{0} mode is not supported on this platform")]
    Unsupported(Mode),
    /// What the settings ask of the kernel it does not have
    /// (`recvmmsg` off Linux, UDP GRO/GSO before Linux 5.0).
    #[error("not available here: {0}")]
    Unavailable(String),
    /// Binding, configuring a socket or starting a thread failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ServerError {
    move |source| ServerError::Io {
        what: what.into(),
        source,
    }
}

/// The pool's counters, as reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSummary {
    /// Buffers in the pool.
    pub capacity: usize,
    /// Bytes per buffer.
    pub buffer_size: usize,
    /// Most buffers out of the shared free list at once (see
    /// [`arenapool::Stats::high_water`]).
    pub high_water: usize,
    /// `try_acquire` calls that found no buffer.
    pub failed_acquires: u64,
    /// All of the pool's counters at shutdown (acquires, releases, waits,
    /// steals, cache refills and flushes...).
    #[serde(default)]
    pub counters: arenapool::Stats,
}

/// What a stopped server reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerReport {
    /// The settings it ran with.
    pub config: ServerConfig,
    /// Totals over all workers.
    pub stats: ServerStats,
    /// Each worker's counters.
    pub per_worker: Vec<ServerStats>,
    /// Heap activity on the worker threads over the steady state.
    pub allocs: AllocWindow,
    /// The pool's counters (pool and io_uring modes).
    pub pool: Option<PoolSummary>,
    /// With [`ServerConfig::track_leaks`]: the tracked buffers still out
    /// once the workers stopped, each with where it was acquired (none,
    /// unless a buffer leaked).
    #[serde(default)]
    pub leaks: Vec<String>,
}

struct Worker {
    thread: JoinHandle<AllocWindow>,
    stop: Arc<Notify>,
    counters: Arc<Counters>,
}

/// A running server; [`shutdown`](Self::shutdown) stops it (dropping it
/// does too, without a report).
///
/// ```
/// use arenapool_server::{Server, ServerConfig, wire};
///
/// let server = Server::start(ServerConfig { workers: 1, ..ServerConfig::default() })?;
/// let client = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// let mut request = [0u8; wire::HEADER_LEN + 4];
/// wire::Header { kind: wire::Kind::Request, payload_len: 4, seq: 1, sent_ns: 0, checksum: 0 }
///     .write(&mut request)?;
/// client.send_to(&request, server.local_addr())?;
///
/// let mut reply = [0u8; 64];
/// let n = client.recv(&mut reply)?;
/// assert_eq!(wire::parse(&reply[..n])?.header.kind, wire::Kind::Reply);
/// assert_eq!(server.shutdown().stats.replied, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Server {
    config: ServerConfig,
    local_addr: SocketAddr,
    pool: Option<Pool>,
    workers: Vec<Worker>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("mode", &self.config.mode)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the sockets and starts the workers; in pool mode builds a pool
    /// of `capacity` buffers of `buffer_size` bytes (in io_uring mode,
    /// [`arenapool::uring::RECVMSG_HEADROOM`] bytes more each, for the
    /// kernel's header and the source address).
    ///
    /// # Errors
    ///
    /// If the settings are invalid, the pool cannot be built, or a socket
    /// or thread cannot be set up.
    pub fn start(config: ServerConfig) -> Result<Server, ServerError> {
        config.validate()?;
        let pool = match config.mode {
            Mode::Pool => Some(
                Pool::builder()
                    .buffer_size(config.recv_buffer_len())
                    .capacity(config.capacity)
                    .track_leaks(config.track_leaks)
                    .build()?,
            ),
            Mode::Vec => None,
            #[cfg(target_os = "linux")]
            Mode::Uring => Some(
                Pool::builder()
                    // The kernel's recvmsg header and the source address
                    // come first: the payload keeps `buffer_size` bytes.
                    .buffer_size(config.buffer_size + crate::uring::RECVMSG_HEADROOM)
                    .capacity(config.capacity)
                    .track_leaks(config.track_leaks)
                    .build()?,
            ),
            #[cfg(not(target_os = "linux"))]
            Mode::Uring => return Err(ServerError::Unsupported(Mode::Uring)),
        };
        Self::launch(config, pool)
    }

    /// Starts a pool-mode server on a pool the caller built (and may hold
    /// buffers of, as the exhaustion tests do). `config.mode` is ignored;
    /// `config.capacity` is taken from the pool.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start), and [`ServerError::PoolMismatch`] if the
    /// pool's buffers are not `config.buffer_size` bytes.
    pub fn with_pool(config: ServerConfig, pool: Pool) -> Result<Server, ServerError> {
        let config = ServerConfig {
            mode: Mode::Pool,
            capacity: pool.stats().max_capacity,
            ..config
        };
        config.validate()?;
        if pool.buffer_size() != config.recv_buffer_len() {
            return Err(ServerError::PoolMismatch {
                pool: pool.buffer_size(),
                config: config.recv_buffer_len(),
            });
        }
        Self::launch(config, Some(pool))
    }

    fn launch(config: ServerConfig, pool: Option<Pool>) -> Result<Server, ServerError> {
        if let Some(why) = config.io.unavailable() {
            return Err(ServerError::Unavailable(why.into()));
        }
        if config.gso
            && let Some(why) = crate::gso_unavailable()
        {
            return Err(ServerError::Unavailable(why));
        }
        let sockets = bind(config.bind, config.workers, config.recv_buffer)?;
        let local_addr = sockets[0]
            .local_addr()
            .map_err(io_err("reading the bound address"))?;
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
        let mut server = Server {
            config,
            local_addr,
            pool,
            workers: Vec::with_capacity(config.workers),
        };
        for (i, socket) in sockets.into_iter().enumerate() {
            let stop = Arc::new(Notify::new());
            let counters = Arc::new(Counters::default());
            let job = Job {
                socket,
                config,
                pool: server.pool.clone(),
                stop: Arc::clone(&stop),
                counters: Arc::clone(&counters),
                ready: ready_tx.clone(),
            };
            let thread = thread::Builder::new()
                .name(format!("arenapool-worker-{i}"))
                .spawn(move || job.run())
                .map_err(io_err("starting a worker thread"))?;
            server.workers.push(Worker {
                thread,
                stop,
                counters,
            });
        }
        drop(ready_tx);
        crate::workers::wait_ready(&ready_rx, config.workers)
            .map_err(|(what, e)| io_err(format!("{what} or ring"))(e))?;
        Ok(server)
    }

    /// The address the server answers on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The settings it runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The pool (pool mode).
    pub fn pool(&self) -> Option<&Pool> {
        self.pool.as_ref()
    }

    /// The counters now, summed over the workers.
    pub fn stats(&self) -> ServerStats {
        let mut total = ServerStats::default();
        for w in &self.workers {
            total.add(&w.counters.snapshot());
        }
        total
    }

    /// Stops the workers, waits for them and reports.
    pub fn shutdown(mut self) -> ServerReport {
        let workers = std::mem::take(&mut self.workers);
        for w in &workers {
            w.stop.notify_one();
        }
        let mut allocs = AllocWindow::default();
        let mut per_worker = Vec::with_capacity(workers.len());
        let mut stats = ServerStats::default();
        for w in workers {
            // A worker panics only through a bug; its counters still count.
            if let Ok(window) = w.thread.join() {
                allocs.add(&window);
            }
            let s = w.counters.snapshot();
            stats.add(&s);
            per_worker.push(s);
        }
        ServerReport {
            config: self.config,
            stats,
            per_worker,
            allocs,
            leaks: self
                .pool
                .as_ref()
                .map(|p| p.outstanding().iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            pool: self.pool.as_ref().map(|p| {
                let s = p.stats();
                PoolSummary {
                    capacity: s.capacity,
                    buffer_size: p.buffer_size(),
                    high_water: s.high_water,
                    failed_acquires: s.failed_acquires,
                    counters: s,
                }
            }),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for w in &self.workers {
            w.stop.notify_one();
        }
        for w in self.workers.drain(..) {
            let _ = w.thread.join();
        }
    }
}

/// Binds `n` sockets to `addr` (see the module docs).
fn bind(
    addr: SocketAddr,
    n: usize,
    recv_buffer: Option<usize>,
) -> Result<Vec<StdUdpSocket>, ServerError> {
    let open = |addr: SocketAddr| -> io::Result<StdUdpSocket> {
        use socket2::{Domain, Protocol, Socket, Type};
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        s.set_reuse_port(true)?;
        if let Some(bytes) = recv_buffer {
            s.set_recv_buffer_size(bytes)?;
        }
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        Ok(s.into())
    };
    let first = open(addr).map_err(io_err(format!("binding {addr}")))?;
    let bound = first
        .local_addr()
        .map_err(io_err("reading the bound address"))?;
    let mut sockets = vec![first];
    for _ in 1..n {
        let next = if cfg!(any(target_os = "linux", target_os = "android")) {
            open(bound).map_err(io_err(format!("binding {bound} again (SO_REUSEPORT)")))?
        } else {
            sockets[0]
                .try_clone()
                .map_err(io_err("duplicating the socket"))?
        };
        sockets.push(next);
    }
    Ok(sockets)
}
