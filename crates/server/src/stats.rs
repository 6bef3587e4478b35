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
    io_calls: AtomicU64,
    completions: AtomicU64,
    cpu_ns: AtomicU64,
}

impl Counters {
    pub(crate) fn replied(&self, n: u64) {
        self.replied.fetch_add(n, Relaxed);
    }

    pub(crate) fn dropped(&self, reason: DropReason) {
        self.dropped_n(reason, 1);
    }

    pub(crate) fn dropped_n(&self, reason: DropReason, n: u64) {
        self.dropped[reason as usize].fetch_add(n, Relaxed);
    }

    pub(crate) fn recv_error(&self) {
        self.recv_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn send_error(&self, n: u64) {
        self.send_errors.fetch_add(n, Relaxed);
    }

    /// One system call that receives or sends (`io_uring_enter` too).
    pub(crate) fn io_call(&self) {
        self.io_calls.fetch_add(1, Relaxed);
    }

    /// io_uring mode: completions reaped.
    #[cfg(target_os = "linux")]
    pub(crate) fn completions(&self, n: u64) {
        self.completions.fetch_add(n, Relaxed);
    }

    /// The worker thread's CPU time, set once when it stops.
    pub(crate) fn set_cpu(&self, cpu: Option<std::time::Duration>) {
        if let Some(cpu) = cpu {
            let ns = u64::try_from(cpu.as_nanos()).unwrap_or(u64::MAX);
            self.cpu_ns.store(ns, Relaxed);
        }
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
            io_calls: self.io_calls.load(Relaxed),
            completions: self.completions.load(Relaxed),
            cpu_ns: self.cpu_ns.load(Relaxed),
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
    /// System calls that received or sent: `recvfrom`, `sendto`,
    /// `recvmmsg`, `sendmmsg`, or in io_uring mode `io_uring_enter`
    /// (readiness waits in `epoll_wait` are not counted).
    #[serde(default)]
    pub io_calls: u64,
    /// io_uring mode: completions reaped (receives and sends).
    #[serde(default)]
    pub completions: u64,
    /// CPU time (user and system) of the worker threads, in nanoseconds,
    /// from their start to their stop; 0 until they stop, and where the
    /// platform does not say.
    #[serde(default)]
    pub cpu_ns: u64,
}

impl ServerStats {
    /// Datagrams the server took off its sockets: replied or dropped.
    pub fn handled(&self) -> u64 {
        self.replied + self.drops.total()
    }

    /// Datagrams handled per receive or send system call; `None` before
    /// any call.
    ///
    /// ```
    /// let s = arenapool_server::ServerStats { replied: 64, io_calls: 4, ..Default::default() };
    /// assert_eq!(s.datagrams_per_call(), Some(16.0));
    /// ```
    pub fn datagrams_per_call(&self) -> Option<f64> {
        (self.io_calls > 0).then(|| self.handled() as f64 / self.io_calls as f64)
    }

    /// Adds another snapshot to this one.
    pub fn add(&mut self, other: &ServerStats) {
        self.replied += other.replied;
        self.recv_errors += other.recv_errors;
        self.send_errors += other.send_errors;
        self.enobufs += other.enobufs;
        self.io_calls += other.io_calls;
        self.completions += other.completions;
        self.cpu_ns += other.cpu_ns;
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
        c.replied(1);
        c.replied(1);
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
