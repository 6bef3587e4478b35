//! Where a worker's receive buffers come from: the [`Mode`] of the server.
//!
//! Both modes go through one trait, so the worker loop is the same code
//! for both and only the buffer source differs:
//!
//! * [`Mode::Pool`]: a buffer from the shared [`arenapool::Pool`] with
//!   `try_acquire`; when the pool is empty there is no buffer, and the
//!   worker drops the datagram and counts it (it never allocates around
//!   the pool).
//! * [`Mode::Vec`]: a fresh `vec![0u8; buffer_size]` per datagram, freed
//!   after the reply is sent: what a server without a pool does.
//!
//! [`Mode::Uring`] takes its buffers from the pool too, but through the
//! kernel: its workers run on io_uring (`uring.rs`), not on this trait.

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use arenapool::{Pool, PoolBuf};
use serde::{Deserialize, Serialize};

/// How the server gets its receive buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One [`arenapool::Pool`] buffer per datagram, returned after the reply.
    Pool,
    /// One fresh `Vec<u8>` per datagram.
    Vec,
    /// Pool buffers lent to the kernel through an io_uring provided buffer
    /// ring, received with multishot `recvmsg` and answered with `sendmsg`
    /// from the same buffer (Linux; see [`Mode::unavailable`]).
    Uring,
}

impl Mode {
    /// Every mode: pool, Vec, io_uring.
    pub const ALL: [Mode; 3] = [Mode::Pool, Mode::Vec, Mode::Uring];

    /// `pool`, `vec` or `uring`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Pool => "pool",
            Mode::Vec => "vec",
            Mode::Uring => "uring",
        }
    }

    /// Whether the buffers come from the pool (pool and io_uring modes).
    pub fn uses_pool(self) -> bool {
        matches!(self, Mode::Pool | Mode::Uring)
    }

    /// Why this mode cannot run on this machine, if it cannot: io_uring
    /// mode needs Linux and a kernel that lets this process use io_uring
    /// with provided buffer rings (5.19 or later, not disabled by
    /// `kernel.io_uring_disabled` or seccomp). `None` for the other modes.
    ///
    /// ```
    /// use arenapool_server::Mode;
    /// assert_eq!(Mode::Pool.unavailable(), None);
    /// if let Some(why) = Mode::Uring.unavailable() {
    ///     println!("no io_uring here: {why}");
    /// }
    /// ```
    pub fn unavailable(self) -> Option<String> {
        match self {
            Mode::Pool | Mode::Vec => None,
            #[cfg(target_os = "linux")]
            Mode::Uring => crate::uring::unavailable(),
            #[cfg(not(target_os = "linux"))]
            Mode::Uring => Some("io_uring is Linux only".into()),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A mode name that is not `pool`, `vec` or `uring`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode {0:?}: expected \"pool\", \"vec\" or \"uring\"")]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;

    /// ```
    /// use arenapool_server::Mode;
    /// assert_eq!("pool".parse::<Mode>(), Ok(Mode::Pool));
    /// assert!("heap".parse::<Mode>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pool" => Ok(Mode::Pool),
            "vec" => Ok(Mode::Vec),
            "uring" => Ok(Mode::Uring),
            other => Err(UnknownMode(other.to_owned())),
        }
    }
}

/// A receive buffer: the whole of it to receive into, then the filled part.
pub(crate) trait PacketBuf: Deref<Target = [u8]> {
    /// The whole buffer, to receive into.
    fn as_full_mut(&mut self) -> &mut [u8];
    /// Marks the first `n` bytes as the filled part; `false` if `n` is
    /// more than the buffer holds.
    fn set_filled(&mut self, n: usize) -> bool;
}

impl PacketBuf for PoolBuf<'_> {
    #[inline]
    fn as_full_mut(&mut self) -> &mut [u8] {
        PoolBuf::as_full_mut(self)
    }

    #[inline]
    fn set_filled(&mut self, n: usize) -> bool {
        self.set_len(n).is_ok()
    }
}

impl PacketBuf for Vec<u8> {
    #[inline]
    fn as_full_mut(&mut self) -> &mut [u8] {
        self
    }

    #[inline]
    fn set_filled(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.truncate(n);
        true
    }
}

/// Where buffers come from.
pub(crate) trait BufSource {
    /// The buffer handed out.
    type Buf<'a>: PacketBuf
    where
        Self: 'a;
    /// A buffer, or `None` if there is none to be had (an exhausted pool).
    fn take(&self) -> Option<Self::Buf<'_>>;
}

impl BufSource for Pool {
    type Buf<'a> = PoolBuf<'a>;

    #[inline]
    fn take(&self) -> Option<PoolBuf<'_>> {
        self.try_acquire()
    }
}

/// Fresh, zeroed vectors of one size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FreshVecs {
    pub(crate) size: usize,
}

impl BufSource for FreshVecs {
    type Buf<'a> = Vec<u8>;

    #[inline]
    fn take(&self) -> Option<Vec<u8>> {
        Some(vec![0u8; self.size])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise<S: BufSource>(src: &S) {
        let mut b = src.take().unwrap();
        let n = b.as_full_mut().len();
        b.as_full_mut()[..3].copy_from_slice(b"abc");
        assert!(b.set_filled(3));
        assert_eq!(&b[..], b"abc");
        assert!(!b.set_filled(n + 1));
    }

    #[test]
    fn both_sources_behave_alike() {
        exercise(&Pool::new(64, 1).unwrap());
        exercise(&FreshVecs { size: 64 });
    }

    #[test]
    fn an_empty_pool_gives_nothing() {
        let pool = Pool::new(64, 1).unwrap();
        let held = pool.take();
        assert!(held.is_some());
        assert!(pool.take().is_none());
    }

    #[test]
    fn modes_parse_and_print() {
        for m in Mode::ALL {
            assert_eq!(m.to_string().parse::<Mode>(), Ok(m));
        }
        assert_eq!("Pool".parse::<Mode>(), Err(UnknownMode("Pool".into())));
    }
}
