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
    /// Most datagrams a worker takes off its socket before answering them;
    /// it holds that many buffers at once. Default 32. (io_uring mode
    /// takes whatever completions are ready instead.)
    pub batch: usize,
    /// Datagrams each worker handles before its allocation counting
    /// starts. Default 1000.
    pub warmup: u64,
    /// The sockets' kernel receive buffer (`SO_RCVBUF`) in bytes, if set.
    /// Default 4 MiB (the kernel may cap it).
    pub recv_buffer: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            mode: Mode::Pool,
            workers: 2,
            buffer_size: 2048,
            capacity: 1024,
            batch: 32,
            warmup: 1000,
            recv_buffer: Some(4 << 20),
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
}
