//! What the kernel gives back: [`Completion`]s, the ids that name
//! operations and buffer groups, and the parsing of a multishot `recvmsg`
//! buffer (the kernel's header, the source address, the payload).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ops::Range;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use io_uring::{cqueue, types};

use crate::handle::OwnedBuf;

use super::{CANCEL_TAG, Kind, Ring};

/// Names an operation in flight; comes back in [`Completion::id`].
///
/// Ids are unique among the operations in flight on one ring, and a
/// reused table entry gets a new id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpId(pub(super) u64);

impl OpId {
    /// The operation's entry in the ring's table: unique among the
    /// operations in flight, reused once the operation ended, and below
    /// the number of entries the table ever had (it starts with as many as
    /// the submission queue and grows only when more operations are in
    /// flight at once). Key a side table of your own with it (a `Vec`
    /// indexed by it) to find what a completion belongs to without a map.
    ///
    /// ```no_run
    /// # let pool = arenapool::Pool::new(2048, 16)?;
    /// # let mut ring = arenapool::uring::Ring::without_fixed_buffers(pool.clone(), 32)?;
    /// # let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let group = ring.provide_buffers(1, 8)?;
    /// let mut owner = vec![None; 64];
    /// let id = ring.recv_multi(&socket, group)?;
    /// owner[id.index()] = Some("the socket's receive");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn index(self) -> usize {
        (self.0 & u64::from(u32::MAX)) as usize
    }
}

/// A provided buffer ring of one [`Ring`]: what
/// [`Ring::provide_buffers`] returns, to name it in receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BufGroup(pub(super) u16);

impl BufGroup {
    /// The buffer group id the kernel knows it by.
    pub fn id(self) -> u16 {
        self.0
    }
}

/// Where a multishot `recvmsg` put the datagram inside its buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecvMsgInfo {
    /// The sender, if it was an IPv4 or IPv6 address.
    pub source: Option<SocketAddr>,
    /// The payload's bytes inside [`Completion::buf`] (after the kernel's
    /// header and the address).
    pub payload: Range<usize>,
    /// The datagram was longer than the buffer; the tail was cut.
    pub truncated: bool,
}

/// One finished (or, for multishot ops, progressing) operation.
#[derive(Debug)]
#[non_exhaustive]
pub struct Completion {
    /// The operation, as its submit returned it.
    pub id: OpId,
    /// Bytes read or written, or the operation's error (an errno, such as
    /// `ECANCELED`, `ENOBUFS` or `EBADF`).
    pub result: io::Result<usize>,
    /// The buffer: given back by the last completion of a
    /// [`read_fixed`](Ring::read_fixed), [`write_fixed`](Ring::write_fixed)
    /// or [`send_to`](Ring::send_to), and the buffer the kernel picked and
    /// filled for receives with a provided buffer ring. Its length is what
    /// the kernel wrote (reads and receives) or unchanged (writes, sends).
    pub buf: Option<OwnedBuf>,
    /// More completions will come for this operation (multishot); when
    /// `false` the operation is over and, if it was a receive that should
    /// go on, has to be submitted again.
    pub more: bool,
    /// For [`recvmsg_multi`](Ring::recvmsg_multi) with data: the source
    /// and where the payload is.
    pub msg: Option<RecvMsgInfo>,
    /// For [`accept_multi`](Ring::accept_multi): the accepted socket,
    /// owned (dropping it closes it); `result` then holds its number.
    pub accepted: Option<OwnedFd>,
}

impl Completion {
    /// Whether the operation ended because its provided buffer ring was
    /// empty (`ENOBUFS`): re-submit it once buffers are back (see
    /// [`Ring::restock`]).
    ///
    /// See [`Ring::recv_multi`]'s example.
    pub fn ran_dry(&self) -> bool {
        matches!(&self.result, Err(e) if e.raw_os_error() == Some(libc::ENOBUFS))
    }
}

/// Where a multishot `recvmsg` put the datagram in `buf`.
pub(super) fn parse_recvmsg(buf: &OwnedBuf, hdr: &libc::msghdr) -> Option<RecvMsgInfo> {
    let out = types::RecvMsgOut::parse(buf, hdr).ok()?;
    let payload = out.payload_data();
    let start = payload.as_ptr().addr() - buf.as_ptr().addr();
    Some(RecvMsgInfo {
        source: parse_sockaddr(out.name_data()),
        payload: start..start + payload.len(),
        truncated: out.is_payload_truncated(),
    })
}

/// A `sockaddr_in` or `sockaddr_in6` in its raw bytes (native-endian
/// family, network-order port and address).
fn parse_sockaddr(name: &[u8]) -> Option<SocketAddr> {
    let family = i32::from(u16::from_ne_bytes(name.get(0..2)?.try_into().ok()?));
    let port = u16::from_be_bytes(name.get(2..4)?.try_into().ok()?);
    match family {
        libc::AF_INET => {
            let ip: [u8; 4] = name.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        libc::AF_INET6 => {
            let flow = u32::from_be_bytes(name.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = name.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(name.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flow,
                scope,
            )))
        }
        _ => None,
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    #[test]
    fn sockaddrs_parse_from_raw_bytes() {
        let v4: SocketAddr = "192.0.2.7:4242".parse().unwrap();
        let raw = socket2::SockAddr::from(v4);
        // SAFETY: `as_ptr` points at `len` initialised bytes of `raw`.
        let bytes =
            unsafe { std::slice::from_raw_parts(raw.as_ptr().cast::<u8>(), raw.len() as usize) };
        assert_eq!(parse_sockaddr(bytes), Some(v4));
        let v6: SocketAddr = "[2001:db8::1]:9".parse().unwrap();
        let raw = socket2::SockAddr::from(v6);
        // SAFETY: as above.
        let bytes =
            unsafe { std::slice::from_raw_parts(raw.as_ptr().cast::<u8>(), raw.len() as usize) };
        assert_eq!(parse_sockaddr(bytes), Some(v6));
        assert_eq!(parse_sockaddr(&[0; 3]), None);
        assert_eq!(parse_sockaddr(&[0; 28]), None, "AF_UNSPEC");
    }
}

impl Ring {
    /// Passes the queued operations to the kernel; returns how many.
    ///
    /// # Errors
    ///
    /// `io_uring_enter`'s error.
    ///
    /// See [`Ring`]'s example.
    pub fn submit(&mut self) -> io::Result<usize> {
        self.restock_if_needed();
        self.ring.submit()
    }

    /// Submits and waits until at least `want` completions are ready.
    ///
    /// # Errors
    ///
    /// `io_uring_enter`'s error (`EINTR` when a signal interrupts it).
    ///
    /// See [`Ring`]'s example.
    pub fn submit_and_wait(&mut self, want: usize) -> io::Result<usize> {
        self.restock_if_needed();
        self.ring.submit_and_wait(want)
    }

    /// Submits and waits until at least `want` completions are ready or
    /// `timeout` passes (a timeout is not an error).
    ///
    /// # Errors
    ///
    /// `io_uring_enter`'s error, other than the timeout.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # let pool = arenapool::Pool::new(2048, 16)?;
    /// # let mut ring = arenapool::uring::Ring::without_fixed_buffers(pool.clone(), 32)?;
    /// ring.submit_and_wait_timeout(1, Duration::from_millis(50))?; // nothing in flight
    /// assert!(ring.next_completion().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit_and_wait_timeout(&mut self, want: usize, timeout: Duration) -> io::Result<usize> {
        self.restock_if_needed();
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(want, &args) {
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => Ok(0),
            other => other,
        }
    }

    /// The next completion, if one is ready (call
    /// [`submit_and_wait`](Self::submit_and_wait) to wait for one).
    ///
    /// See [`Ring`]'s example.
    pub fn next_completion(&mut self) -> Option<Completion> {
        loop {
            let cqe = self.ring.completion().next()?;
            if let Some(c) = self.complete(&cqe) {
                self.stats.completions += 1;
                return Some(c);
            }
        }
    }

    /// The live entry that `user_data` names.
    pub(super) fn op_of(&self, user_data: u64) -> Option<usize> {
        let idx = (user_data & u64::from(u32::MAX)) as usize;
        let generation = (user_data >> 32) as u32;
        self.ops
            .get(idx)
            .filter(|op| op.live && op.generation == generation)
            .map(|_| idx)
    }

    /// Turns a completion queue entry into a [`Completion`]; `None` for our
    /// own cancels and strays.
    pub(super) fn complete(&mut self, cqe: &cqueue::Entry) -> Option<Completion> {
        let user_data = cqe.user_data();
        let res = cqe.result();
        let flags = cqe.flags();
        if user_data == CANCEL_TAG {
            if self.draining && res == -libc::EINVAL && !self.cancel_any_failed {
                // No `IORING_ASYNC_CANCEL_ANY` (before 5.19): cancel one
                // by one.
                self.cancel_any_failed = true;
                self.cancel_again = true;
            }
            return None;
        }
        let Some(idx) = self.op_of(user_data) else {
            self.stats.strays += 1;
            return None;
        };
        let more = cqueue::more(flags);
        let result = if res < 0 {
            Err(io::Error::from_raw_os_error(-res))
        } else {
            Ok(res as usize)
        };
        let kind = self.ops[idx].kind;
        let mut msg = None;
        let mut accepted = None;
        let buf = match kind {
            Kind::Accept => {
                if res >= 0 {
                    // SAFETY: a successful accept's result is a descriptor
                    // the kernel just opened for this completion; nothing
                    // else in the process knows it, so it is ours to own
                    // and close.
                    accepted = Some(unsafe { OwnedFd::from_raw_fd(res) });
                }
                None
            }
            Kind::ReadFixed | Kind::Write if more => None,
            Kind::ReadFixed => self.ops[idx].buf.take().map(|mut b| {
                let n = usize::try_from(res).unwrap_or(0);
                let _ = b.set_len((b.len() + n).min(b.capacity()));
                b
            }),
            Kind::Write => self.ops[idx].buf.take(),
            Kind::Select(g) | Kind::SelectMsg(g) => {
                if res == -libc::ENOBUFS {
                    self.groups[g].note_enobufs();
                }
                // Restocked below, once the table is consistent: taking
                // buffers from the pool may run a waiter's waker.
                let picked = cqueue::buffer_select(flags).and_then(|bid| {
                    let n = usize::try_from(res).unwrap_or(0);
                    self.groups[g].take(bid, n)
                });
                if picked.is_none() && cqueue::buffer_select(flags).is_some() {
                    self.stats.strays += 1;
                }
                if let (Kind::SelectMsg(_), Some(b), true) = (kind, &picked, res >= 0) {
                    msg = self.ops[idx]
                        .msg
                        .as_ref()
                        .and_then(|m| parse_recvmsg(b, &m.hdr));
                }
                picked
            }
        };
        if !more {
            let op = &mut self.ops[idx];
            op.live = false;
            op.generation = op.generation.wrapping_add(1);
            self.free.push(idx as u32);
            self.stats.in_flight -= 1;
        }
        let done = Completion {
            id: OpId(user_data),
            result,
            buf,
            more,
            msg,
            accepted,
        };
        // Last, with the table complete: refilling the ring takes buffers
        // from the pool, which may run user code (a waiter's waker) that
        // panics. The completion (and its buffer, which the kernel is done
        // with) is then dropped, and nothing is left half-done.
        if let (Kind::Select(g) | Kind::SelectMsg(g), false) = (kind, self.draining) {
            self.groups[g].stock(&self.pool);
        }
        Some(done)
    }
}
