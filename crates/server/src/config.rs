//! The server's settings, checked before anything starts.

use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::buffers::Mode;
use crate::wire::HEADER_LEN;

/// How to run a [`Server`](crate::Server).
///
/// ```
/// use arenapool_server::{Mode, ServerConfig};
/// let config = ServerConfig { mode: Mode::Vec, workers: 1, ..ServerConfig::default() };
/// assert!(config.validate().is_ok());
/// assert!(ServerConfig { workers: 0, ..config }.validate().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerConfig {
    /// Address to bind; port 0 picks a free one. Default `127.0.0.1:0`.
    pub bind: SocketAddr,
    /// Where receive buffers come from. Default [`Mode::Pool`].
    pub mode: Mode,
    /// Worker threads, each with its own socket and single-threaded tokio
    /// runtime. Default 2.
    pub workers: usize,
    /// Bytes per receive buffer; the largest datagram accepted is one byte
    /// less. Default 2048.
    pub buffer_size: usize,
    /// Buffers in the pool, shared by all workers (pool and io_uring
    /// modes; in io_uring mode each worker lends up to half its share to
    /// the kernel's provided buffer ring). Default 1024.
    pub capacity: usize,
    /// How pool and Vec mode workers talk to their socket: a system call
    /// per datagram, or a batch per call. Default [`UdpIo::Mmsg`] on
    /// Linux, [`UdpIo::PerDatagram`] elsewhere. (io_uring mode has its
    /// own way: several completions per `io_uring_enter`.)
    pub io: UdpIo,
    /// Most datagrams a worker takes off its socket before answering them
    /// (with [`UdpIo::Mmsg`], in one `recvmmsg`, and answers them in one
    /// `sendmmsg`); it holds that many buffers at once, and with
    /// `recvmmsg` keeps the ones that got no datagram for the next call,
    /// so a pool shared with other code should have room for
    /// `workers * batch` besides. Default 32.
    /// (io_uring mode takes whatever completions are ready instead.)
    pub batch: usize,
    /// UDP GRO on the sockets and GSO on the replies (with
    /// [`UdpIo::Mmsg`], Linux 5.0 and later): the kernel may hand over
    /// several datagrams of one client as one buffer of equal segments,
    /// and the worker answers them all with one send that the kernel
    /// splits again. Each receive buffer is then 64 KiB, whatever
    /// `buffer_size` says (`buffer_size` still bounds each datagram).
    /// Default off.
    pub gso: bool,
    /// Datagrams each worker handles before its allocation counting
    /// starts. Default 1000.
    pub warmup: u64,
    /// The sockets' kernel receive buffer (`SO_RCVBUF`) in bytes, if set.
    /// Default 4 MiB (the kernel may cap it).
    pub recv_buffer: Option<usize>,
    /// Pool and io_uring modes: record where one buffer acquisition in
    /// this many was made (`arenapool::PoolBuilder::track_leaks`), and
    /// list those still out at shutdown ([`ServerReport::leaks`]). 0, the
    /// default, tracks none.
    ///
    /// [`ServerReport::leaks`]: crate::ServerReport::leaks
    #[serde(default)]
    pub track_leaks: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            mode: Mode::Pool,
            workers: 2,
            buffer_size: 2048,
            capacity: 1024,
            io: UdpIo::default(),
            batch: 32,
            gso: false,
            warmup: 1000,
            recv_buffer: Some(4 << 20),
            track_leaks: 0,
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `workers` is 0.
    #[error("workers must be at least 1")]
    NoWorkers,
    /// `batch` is 0.
    #[error("batch must be at least 1")]
    NoBatch,
    /// `capacity` is 0 in pool or io_uring mode.
    #[error("capacity must be at least 1 buffer")]
    NoCapacity,
    /// `batch` is more than a kernel takes in one call.
    #[error("batch {0} is more than {max}, the most one recvmmsg takes", max = crate::config::MAX_BATCH)]
    BatchTooLarge(usize),
    /// `gso` without [`UdpIo::Mmsg`], or in io_uring mode.
    #[error("GRO/GSO needs the recvmmsg loop (io mmsg) in pool or Vec mode")]
    GsoNeedsMmsg,
    /// `buffer_size` cannot hold a header and one more byte.
    #[error("buffer size {0} is too small: at least {min} bytes (a {HEADER_LEN}-byte header and one spare byte)", min = HEADER_LEN + 1)]
    BufferTooSmall(usize),
}

impl ServerConfig {
    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.workers == 0 {
            return Err(ConfigError::NoWorkers);
        }
        if self.batch == 0 {
            return Err(ConfigError::NoBatch);
        }
        if self.batch > MAX_BATCH {
            return Err(ConfigError::BatchTooLarge(self.batch));
        }
        if self.gso && (self.io != UdpIo::Mmsg || self.mode == Mode::Uring) {
            return Err(ConfigError::GsoNeedsMmsg);
        }
        if self.mode.uses_pool() && self.capacity == 0 {
            return Err(ConfigError::NoCapacity);
        }
        if self.buffer_size <= HEADER_LEN {
            return Err(ConfigError::BufferTooSmall(self.buffer_size));
        }
        Ok(())
    }

    /// The largest payload a request may carry.
    pub fn max_payload(&self) -> usize {
        self.buffer_size.saturating_sub(HEADER_LEN + 1)
    }

    /// Bytes per receive buffer: `buffer_size`, or 64 KiB with `gso`
    /// (the most one GRO receive can fill).
    pub fn recv_buffer_len(&self) -> usize {
        if self.gso {
            GRO_BUFFER.max(self.buffer_size)
        } else {
            self.buffer_size
        }
    }

    /// These settings in every way their mode can talk to the socket:
    /// pool and Vec mode with a system call per datagram, with
    /// `recvmmsg`/`sendmmsg`, and with those and GRO/GSO; io_uring mode as
    /// it is. What cannot run here is still listed: ask
    /// [`unavailable`](Self::unavailable).
    ///
    /// ```
    /// use arenapool_server::{Mode, ServerConfig};
    /// let ways = ServerConfig { mode: Mode::Pool, ..ServerConfig::default() }.every_io();
    /// let labels: Vec<String> = ways.iter().map(ServerConfig::label).collect();
    /// assert_eq!(labels, ["pool", "pool mmsg", "pool mmsg+gso"]);
    /// ```
    pub fn every_io(&self) -> Vec<ServerConfig> {
        if self.mode == Mode::Uring {
            return vec![*self];
        }
        [
            (UdpIo::PerDatagram, false),
            (UdpIo::Mmsg, false),
            (UdpIo::Mmsg, true),
        ]
        .into_iter()
        .map(|(io, gso)| ServerConfig { io, gso, ..*self })
        .collect()
    }

    /// Why these settings cannot run on this machine, if they cannot: the
    /// mode ([`Mode::unavailable`]), the way of talking to the socket
    /// ([`UdpIo::unavailable`]) or GRO/GSO ([`gso_unavailable`]).
    pub fn unavailable(&self) -> Option<String> {
        if let Some(why) = self.mode.unavailable() {
            return Some(format!("{} mode: {why}", self.mode));
        }
        if self.mode != Mode::Uring
            && let Some(why) = self.io.unavailable()
        {
            return Some(format!("{}: {why}", self.io));
        }
        if self.gso
            && let Some(why) = gso_unavailable()
        {
            return Some(format!("GRO/GSO: {why}"));
        }
        None
    }

    /// A short name for tables: the mode, then how it talks to the
    /// socket (`pool`, `pool mmsg`, `vec mmsg+gso`, `uring`).
    pub fn label(&self) -> String {
        match (self.mode, self.io, self.gso) {
            (Mode::Uring, ..) => self.mode.name().to_owned(),
            (m, UdpIo::PerDatagram, _) => m.name().to_owned(),
            (m, UdpIo::Mmsg, false) => format!("{m} mmsg"),
            (m, UdpIo::Mmsg, true) => format!("{m} mmsg+gso"),
        }
    }
}

/// Most datagrams in one `recvmmsg` or `sendmmsg` (`UIO_MAXIOV`).
pub const MAX_BATCH: usize = 1024;

/// Bytes per receive buffer with GRO on: the most the kernel coalesces.
pub const GRO_BUFFER: usize = 65_536;

/// How a pool or Vec mode worker talks to its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UdpIo {
    /// One `recvfrom` per datagram and one `sendto` per reply: the loop
    /// every server starts with.
    PerDatagram,
    /// `recvmmsg` and `sendmmsg`: up to `batch` datagrams per system call,
    /// each in a buffer of its own (Linux).
    Mmsg,
}

impl Default for UdpIo {
    /// [`UdpIo::Mmsg`] on Linux, [`UdpIo::PerDatagram`] elsewhere.
    fn default() -> Self {
        if cfg!(target_os = "linux") {
            UdpIo::Mmsg
        } else {
            UdpIo::PerDatagram
        }
    }
}

impl UdpIo {
    /// Both ways.
    pub const ALL: [UdpIo; 2] = [UdpIo::PerDatagram, UdpIo::Mmsg];

    /// `per-datagram` or `mmsg`.
    pub fn name(self) -> &'static str {
        match self {
            UdpIo::PerDatagram => "per-datagram",
            UdpIo::Mmsg => "mmsg",
        }
    }

    /// Why this cannot run here, if it cannot (`mmsg` off Linux).
    pub fn unavailable(self) -> Option<&'static str> {
        match self {
            UdpIo::Mmsg if !cfg!(target_os = "linux") => {
                Some("recvmmsg and sendmmsg are Linux only")
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for UdpIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for UdpIo {
    type Err = String;

    /// ```
    /// use arenapool_server::UdpIo;
    /// assert_eq!("mmsg".parse::<UdpIo>(), Ok(UdpIo::Mmsg));
    /// assert!("batch".parse::<UdpIo>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UdpIo::ALL
            .into_iter()
            .find(|io| io.name() == s)
            .ok_or_else(|| format!("unknown io {s:?}: expected \"per-datagram\" or \"mmsg\""))
    }
}

/// Why UDP GRO/GSO cannot be used here, if it cannot (before Linux 5.0,
/// or off Linux).
///
/// ```
/// if let Some(why) = arenapool_server::gso_unavailable() {
///     println!("no UDP offload here: {why}");
/// }
/// ```
pub fn gso_unavailable() -> Option<String> {
    #[cfg(target_os = "linux")]
    return crate::mmsg::offload_unavailable();
    #[cfg(not(target_os = "linux"))]
    return Some("UDP GRO and GSO are Linux only".into());
}
