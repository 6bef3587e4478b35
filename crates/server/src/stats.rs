//! The server's counters: what happened to every datagram.
//!
//! Each worker owns one [`Counters`] (relaxed atomics, written by that
//! worker only, read by anyone); [`ServerStats`] is a snapshot, summed
//! over the workers.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

use crate::wire::WireError;

/// Why a datagram got no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DropReason {
    /// Shorter than the header.
    Short,
    /// Wrong magic, version or kind.
    BadHeader,
    /// The length field disagrees with the datagram's size.
    LengthMismatch,
    /// The datagram filled the receive buffer: too large (and truncated).
    Oversized,
    /// No buffer was free (pool mode): the datagram was read into a small
    /// scratch array and discarded. Back-pressure, never an allocation.
    PoolExhausted,
}

impl DropReason {
    /// Every reason, in report order.
    pub const ALL: [DropReason; 5] = [
        DropReason::Short,
        DropReason::BadHeader,
        DropReason::LengthMismatch,
        DropReason::Oversized,
        DropReason::PoolExhausted,
    ];

    /// Its label in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Short => "short",
            DropReason::BadHeader => "bad header",
            DropReason::LengthMismatch => "length lies",
            DropReason::Oversized => "oversized",
            DropReason::PoolExhausted => "pool exhausted",
        }
    }

    /// The reason a parse error counts as; `None` for errors that only a
    /// writer can have.
    pub fn from_wire(e: WireError) -> Option<DropReason> {
        match e {
            WireError::Short(_) => Some(DropReason::Short),
            WireError::BadHeader => Some(DropReason::BadHeader),
            WireError::LengthMismatch { .. } => Some(DropReason::LengthMismatch),
            WireError::Oversized(_) => Some(DropReason::Oversized),
            WireError::NoRoom { .. } => None,
        }
    }
}

/// One worker's live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    replied: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    recv_errors: AtomicU64,
    send_errors: AtomicU64,
    enobufs: AtomicU64,
}

impl Counters {
    pub(crate) fn replied(&self) {
        self.replied.fetch_add(1, Relaxed);
    }

    pub(crate) fn dropped(&self, reason: DropReason) {
        self.dropped[reason as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn recv_error(&self) {
        self.recv_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn send_error(&self) {
        self.send_errors.fetch_add(1, Relaxed);
    }

    #[cfg(target_os = "linux")]
    pub(crate) fn enobufs(&self) {
        self.enobufs.fetch_add(1, Relaxed);
    }

    /// A snapshot of these counters.
    pub(crate) fn snapshot(&self) -> ServerStats {
        let mut s = ServerStats {
            replied: self.replied.load(Relaxed),
            recv_errors: self.recv_errors.load(Relaxed),
            send_errors: self.send_errors.load(Relaxed),
            enobufs: self.enobufs.load(Relaxed),
            ..ServerStats::default()
        };
        for r in DropReason::ALL {
            s.drops.set(r, self.dropped[r as usize].load(Relaxed));
        }
        s
    }
}

/// Datagrams dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drops {
    /// [`DropReason::Short`].
    pub short: u64,
    /// [`DropReason::BadHeader`].
    pub bad_header: u64,
    /// [`DropReason::LengthMismatch`].
    pub length_mismatch: u64,
    /// [`DropReason::Oversized`].
    pub oversized: u64,
    /// [`DropReason::PoolExhausted`].
    pub pool_exhausted: u64,
}

impl Drops {
    /// The count for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::Short => self.short,
            DropReason::BadHeader => self.bad_header,
            DropReason::LengthMismatch => self.length_mismatch,
            DropReason::Oversized => self.oversized,
            DropReason::PoolExhausted => self.pool_exhausted,
        }
    }

    fn set(&mut self, reason: DropReason, n: u64) {
        let slot = match reason {
            DropReason::Short => &mut self.short,
            DropReason::BadHeader => &mut self.bad_header,
            DropReason::LengthMismatch => &mut self.length_mismatch,
            DropReason::Oversized => &mut self.oversized,
            DropReason::PoolExhausted => &mut self.pool_exhausted,
        };
        *slot = n;
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        DropReason::ALL.iter().map(|&r| self.get(r)).sum()
    }
}

/// What the server did, summed over its workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStats {
    /// Requests answered.
    pub replied: u64,
    /// Datagrams dropped, by reason.
    pub drops: Drops,
    /// Failed receives other than "would block" (e.g. an ICMP error
    /// reported on the socket).
    pub recv_errors: u64,
    /// Replies that could not be sent.
    pub send_errors: u64,
    /// io_uring mode: times the multishot receive ended because the
    /// worker's provided buffer ring was empty (`ENOBUFS`); each time the
    /// receive was re-armed once buffers were back. The datagrams waited
    /// in the socket meanwhile (or the kernel dropped them if its buffer
    /// filled, which no counter here sees; the client counts them lost).
    #[serde(default)]
    pub enobufs: u64,
}

impl ServerStats {
    /// Datagrams the server took off its sockets: replied or dropped.
    pub fn handled(&self) -> u64 {
        self.replied + self.drops.total()
    }

    /// Adds another snapshot to this one.
    pub fn add(&mut self, other: &ServerStats) {
        self.replied += other.replied;
        self.recv_errors += other.recv_errors;
        self.send_errors += other.send_errors;
        self.enobufs += other.enobufs;
        for r in DropReason::ALL {
            self.drops.set(r, self.drops.get(r) + other.drops.get(r));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up() {
        let c = Counters::default();
        c.replied();
        c.replied();
        for (i, r) in DropReason::ALL.into_iter().enumerate() {
            for _ in 0..=i {
                c.dropped(r);
            }
        }
        c.recv_error();
        let s = c.snapshot();
        assert_eq!(s.replied, 2);
        assert_eq!(s.drops.short, 1);
        assert_eq!(s.drops.pool_exhausted, 5);
        assert_eq!(s.drops.total(), 15);
        assert_eq!(s.handled(), 17);
        let mut sum = s;
        sum.add(&s);
        assert_eq!(sum.drops.total(), 30);
        assert_eq!(sum.recv_errors, 2);
    }

    #[test]
    fn wire_errors_map_to_reasons() {
        assert_eq!(
            DropReason::from_wire(WireError::Short(3)),
            Some(DropReason::Short)
        );
        assert_eq!(
            DropReason::from_wire(WireError::Oversized(9)),
            Some(DropReason::Oversized)
        );
        assert_eq!(
            DropReason::from_wire(WireError::NoRoom { need: 1, have: 0 }),
            None
        );
    }
}
