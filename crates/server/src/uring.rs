//! The io_uring worker ([`Mode::Uring`](crate::Mode::Uring), Linux).
//!
//! Each worker thread owns an [`arenapool::uring::Ring`], its socket (bound
//! with `SO_REUSEPORT` like the other modes), a provided buffer ring
//! stocked from the shared pool, and one multishot `recvmsg`. No tokio:
//! the thread sleeps in `io_uring_enter`.
//!
//! For each completion of the receive, the kernel has written its
//! `recvmsg` header, the source address and the datagram into one pool
//! buffer. The worker checks the datagram and turns it into the reply in
//! place with the same code as the tokio path ([`wire::make_reply`]), then
//! sends those bytes straight back to the source with `sendmsg` from the
//! same buffer: no copy. The buffer returns to the pool when the send
//! completes, and the provided ring takes another one from the pool for
//! each buffer the kernel used.
//!
//! The pool's buffers are [`RECVMSG_HEADROOM`] bytes longer than
//! `buffer_size`, so the payload has exactly `buffer_size` bytes of room
//! and the largest datagram accepted is the same as in the other modes.
//!
//! When the provided ring runs dry (every buffer out, or the pool empty)
//! the receive ends with `ENOBUFS`: the datagrams wait in the socket (or
//! the kernel drops them when the socket buffer is full), the worker
//! counts it ([`ServerStats::enobufs`](crate::ServerStats::enobufs)) and
//! re-arms the receive as soon as the ring has a buffer again.

use std::io;
use std::net::UdpSocket;
use std::pin::pin;
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use arenapool::Pool;
pub(crate) use arenapool::uring::RECVMSG_HEADROOM;
use arenapool::uring::{BufGroup, Completion, OpId, Ring, UringError};
use tokio::sync::Notify;

use crate::allocs::{AllocWindow, Sample};
use crate::config::ServerConfig;
use crate::stats::{Counters, DropReason};
use crate::wire;

/// How long the worker sleeps in the kernel before it looks at the stop
/// signal again.
const STOP_POLL: Duration = Duration::from_millis(20);

/// Buffer group id of each worker's provided ring (rings are per worker,
/// so they can share it).
const GROUP: u16 = 0;

/// Provided ring entries for one worker: half its share of the pool (the
/// other half backs the replies in flight), a power of two, at most
/// 32768.
fn ring_entries(config: &ServerConfig) -> u32 {
    let share = (config.capacity / config.workers.max(1) / 2).clamp(1, 32768);
    // The largest power of two not above `share`.
    1 << (usize::BITS - 1 - share.leading_zeros())
}

/// Why io_uring mode cannot run here, if it cannot: runs what a worker
/// does once, with a datagram from another thread arriving while this one
/// waits in the kernel.
pub(crate) fn unavailable() -> Option<String> {
    probe().err()
}

fn probe() -> Result<(), String> {
    /// Generous: only a machine where the other thread cannot run while
    /// this one waits in `io_uring_enter` (valgrind serialises threads and
    /// does not let go during that call) should ever take this long.
    const PATIENCE: Duration = Duration::from_secs(2);
    let pool = Pool::new(256, 2).map_err(|e| e.to_string())?;
    let mut ring = Ring::builder(pool)
        .entries(4)
        .fixed_buffers(false)
        .single_thread(true)
        .build()
        .map_err(|e| e.to_string())?;
    let group = ring.provide_buffers(GROUP, 2).map_err(|e| e.to_string())?;
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("probe socket: {e}"))?;
    let to = socket
        .local_addr()
        .map_err(|e| format!("probe socket: {e}"))?;
    ring.recvmsg_multi(&socket, group)
        .map_err(|e| e.to_string())?;
    ring.submit().map_err(|e| format!("io_uring_enter: {e}"))?;
    let sender = std::thread::spawn(move || {
        UdpSocket::bind("127.0.0.1:0").and_then(|s| s.send_to(b"probe", to))
    });
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut got = false;
    while !got {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        match ring.submit_and_wait_timeout(1, left) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("io_uring_enter: {e}")),
        }
        while let Some(c) = ring.next_completion() {
            got |= c.result.is_ok() && c.buf.is_some();
        }
    }
    let sent = sender.join();
    match sent {
        Ok(Ok(_)) if got => Ok(()),
        Ok(Ok(_)) => Err(format!(
            "a datagram from another thread did not reach a receive waiting in io_uring_enter within {PATIENCE:?} (under valgrind, a thread waiting in io_uring_enter holds up the others)"
        )),
        Ok(Err(e)) => Err(format!("probe send: {e}")),
        Err(_) => Err("the probe's sending thread panicked".into()),
    }
}

/// Submits and waits up to `timeout` for a completion. A signal, and
/// completions the kernel holds back until the queue is reaped (`EBUSY`)
/// or it has memory (`EAGAIN`), are not errors: the caller reaps and
/// comes back.
///
/// # Errors
///
/// Any other `io_uring_enter` error: the ring cannot go on.
pub(crate) fn wait(ring: &mut Ring, timeout: Duration) -> io::Result<()> {
    match ring.submit_and_wait_timeout(1, timeout) {
        Err(e)
            if !matches!(
                e.kind(),
                io::ErrorKind::Interrupted
                    | io::ErrorKind::ResourceBusy
                    | io::ErrorKind::WouldBlock
            ) =>
        {
            Err(e)
        }
        _ => Ok(()),
    }
}

/// Keeps the kernel's error kind (`PermissionDenied` when io_uring is
/// refused, say) and says that io_uring was what failed.
pub(crate) fn to_io(e: UringError) -> io::Error {
    let kind = match &e {
        UringError::Setup(e) | UringError::Register(e) => e.kind(),
        UringError::RegisterBufRing { source, .. } => source.kind(),
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

/// One worker: serves `socket` until `stop` is notified.
pub(crate) fn run(
    socket: UdpSocket,
    config: ServerConfig,
    pool: Pool,
    stop: &Notify,
    counters: &Counters,
    ready: mpsc::Sender<io::Result<()>>,
) -> AllocWindow {
    let entries = ring_entries(&config);
    let setup = (|| {
        // io_uring waits for readiness itself; a non-blocking socket would
        // only add failed attempts. This socket is this worker's alone.
        socket.set_nonblocking(false).map_err(UringError::Setup)?;
        // This thread drives the ring alone, start to end.
        let mut ring = Ring::builder(pool)
            .entries(entries.saturating_mul(2))
            .fixed_buffers(false)
            .single_thread(true)
            .build()?;
        let group = ring.provide_buffers(GROUP, entries)?;
        let recv = ring.recvmsg_multi(&socket, group)?;
        Ok::<_, UringError>((ring, group, recv))
    })();
    let (ring, group, recv) = match setup {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(to_io(e)));
            return AllocWindow::default();
        }
    };
    let _ = ready.send(Ok(()));
    drop(ready);
    let mut worker = Worker {
        ring,
        socket: &socket,
        group,
        recv: Some(recv),
        buffer_size: config.buffer_size,
        counters,
        handled: 0,
    };
    let window = worker.serve(stop, config.warmup);
    // Cancels the receive and any reply in flight, waits for them, and
    // gives every buffer back to the pool; then the socket closes.
    drop(worker);
    window
}

struct Worker<'a> {
    ring: Ring,
    socket: &'a UdpSocket,
    group: BufGroup,
    /// The multishot receive, while it is armed.
    recv: Option<OpId>,
    buffer_size: usize,
    counters: &'a Counters,
    /// Datagrams replied to or dropped.
    handled: u64,
}

impl Worker<'_> {
    fn serve(&mut self, stop: &Notify, warmup: u64) -> AllocWindow {
        let mut stop = pin!(stop.notified());
        let mut cx = Context::from_waker(Waker::noop());
        let mut window: Option<(Sample, u64)> = (warmup == 0).then(|| (Sample::now(), 0));
        loop {
            // `notify_one` either wakes this registered waiter or leaves a
            // permit that the next poll takes: a stop is never missed.
            if let Poll::Ready(()) = stop.as_mut().poll(&mut cx) {
                break;
            }
            if self.recv.is_none() {
                self.rearm();
            }
            self.counters.io_call();
            if wait(&mut self.ring, STOP_POLL).is_err() {
                self.counters.recv_error();
                break;
            }
            let mut reaped = 0;
            while let Some(c) = self.ring.next_completion() {
                reaped += 1;
                if Some(c.id) == self.recv {
                    self.received(c);
                } else {
                    self.sent(c);
                }
            }
            self.counters.completions(reaped);
            // Between completions no buffer is held by this code: every
            // datagram after this point takes its buffer in the window.
            if window.is_none() && self.handled >= warmup {
                window = Some((Sample::now(), self.handled));
            }
        }
        // Count what already finished (a reply the client may have seen
        // before the stop); `Ring`'s drop cancels and reaps the rest.
        while let Some(c) = self.ring.next_completion() {
            if Some(c.id) == self.recv {
                self.received(c);
            } else {
                self.sent(c);
            }
        }
        let end = Sample::now();
        match window {
            Some((start, at)) => AllocWindow::between(start, end, self.handled - at),
            None => AllocWindow::default(),
        }
    }

    /// Arms the multishot receive again once the provided ring has a
    /// buffer (the ring refills from the pool on submit).
    fn rearm(&mut self) {
        self.ring.restock();
        let stocked = self
            .ring
            .buf_ring_stats(self.group)
            .is_some_and(|s| s.stocked > 0);
        if stocked {
            match self.ring.recvmsg_multi(self.socket, self.group) {
                Ok(id) => self.recv = Some(id),
                // The submission queue is full: try again next round.
                Err(_) => self.recv = None,
            }
        }
    }

    /// A completion of the multishot receive: a datagram, or its end.
    fn received(&mut self, c: Completion) {
        if !c.more {
            self.recv = None;
        }
        if c.ran_dry() {
            self.counters.enobufs();
            return;
        }
        let (Ok(_), Some(mut buf), Some(msg)) = (c.result, c.buf, c.msg) else {
            // An error other than ENOBUFS (ECANCELED only at shutdown), or
            // a datagram the kernel could not describe.
            self.counters.recv_error();
            return;
        };
        let Some(peer) = msg.source else {
            self.counters.recv_error();
            return;
        };
        self.handled += 1;
        let start = msg.payload.start;
        let received = msg.payload.len();
        if msg.truncated {
            self.counters.dropped(DropReason::Oversized);
            return;
        }
        // The payload's room: `buffer_size` bytes, as in the other modes
        // (the pool's buffers are `RECVMSG_HEADROOM` longer).
        let room_end = (start + self.buffer_size).min(buf.capacity());
        let Some(room) = buf.as_full_mut().get_mut(start..room_end) else {
            self.counters.recv_error();
            return;
        };
        let len = match wire::make_reply(room, received) {
            Ok(len) => len,
            Err(e) => {
                self.counters
                    .dropped(DropReason::from_wire(e).unwrap_or(DropReason::BadHeader));
                return;
            }
        };
        // The reply is `buf[start..start + len]`, inside what the kernel
        // filled; send it from the same buffer.
        if let Err(rejected) = self
            .ring
            .send_to(self.socket, buf, start..start + len, peer)
        {
            drop(rejected);
            self.counters.send_error(1);
        }
    }

    /// A reply's send finished; its buffer goes back to the pool here.
    fn sent(&mut self, c: Completion) {
        match c.result {
            Ok(_) => self.counters.replied(1),
            Err(_) => self.counters.send_error(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_entries_are_half_a_workers_share_as_a_power_of_two() {
        let c = |capacity, workers| ServerConfig {
            capacity,
            workers,
            ..ServerConfig::default()
        };
        assert_eq!(ring_entries(&c(1024, 2)), 256);
        assert_eq!(ring_entries(&c(1000, 2)), 128);
        assert_eq!(ring_entries(&c(1, 4)), 1);
        assert_eq!(ring_entries(&c(1 << 30, 1)), 32768);
    }

    /// A refused io_uring (a seccomp filter, `io_uring_disabled`) reaches
    /// the user as an error that names io_uring, with the kernel's kind.
    #[test]
    fn a_refused_ring_says_io_uring() {
        let refused = io::Error::from_raw_os_error(1); // EPERM
        let e = to_io(UringError::Setup(refused));
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("io_uring"), "{e}");
        let e = to_io(UringError::QueueFull);
        assert!(e.to_string().contains("submission queue"), "{e}");
    }
}
