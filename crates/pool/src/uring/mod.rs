//! io_uring on the pool's buffers: registered (fixed) buffers, provided
//! buffer rings, and operations that own their buffers until the kernel is
//! done with them (feature `io-uring`, Linux only).
//!
//! ```no_run
//! use std::sync::Arc;
//! use arenapool::Pool;
//! use arenapool::uring::Ring;
//!
//! let pool = Arc::new(Pool::new(4096, 64)?);
//! let mut ring = Ring::new(Arc::clone(&pool), 64)?; // registers the arena
//! let file = std::fs::File::open("/etc/hostname")?;
//!
//! let buf = pool.try_acquire_owned().unwrap();
//! let id = ring.read_fixed(&file, buf, 0).map_err(|r| r.error)?;
//! ring.submit_and_wait(1)?;
//! let done = ring.next_completion().expect("one completion");
//! assert_eq!(done.id, id);
//! let n = done.result?;
//! let buf = done.buf.expect("read_fixed gives its buffer back");
//! assert_eq!(buf.len(), n);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//!
//! One type, [`Ring`], owns everything the kernel may touch: the
//! `io_uring` instance, an `Arc<Pool>`, the registration of the pool's
//! arenas, the provided buffer rings, and a table of in-flight operations.
//! The submission queue is never exposed.
//!
//! * **Submitting moves the buffer into the table.** [`Ring::read_fixed`],
//!   [`Ring::write_fixed`] and [`Ring::send_to`] take an [`OwnedBuf`] by
//!   value and return an [`OpId`]; the buffer lives in the table entry
//!   (next to the entry's boxed `msghdr`, `iovec` and socket address, whose
//!   addresses the kernel also holds) until the operation's last
//!   completion, which hands it back in [`Completion::buf`]. No safe code
//!   can reach a buffer the kernel may write: the only handle is in the
//!   table.
//! * **Provided buffer rings** ([`Ring::provide_buffers`]) lend pool
//!   buffers to the kernel for receives that pick their own buffer
//!   (`recv`, multishot `recv` and `recvmsg`). Each ring entry is one pool
//!   buffer; the table keeps it while the kernel may pick it, and a
//!   completion's buffer id turns it back into an [`OwnedBuf`] whose length
//!   is what the kernel wrote. The used id is refilled from the pool at
//!   once, or later if the pool is empty ([`BufRingStats`]).
//! * **Registered buffers.** [`Ring::new`] registers every arena segment
//!   that exists then, once (one iovec per segment, split at slot
//!   boundaries into pieces of at most 1 GiB). Buffers from segments the
//!   pool grows later are refused with [`UringError::NotRegistered`]: use
//!   plain ops for them, or a pool that does not grow. There is no way to
//!   unregister while the ring lives; the registration goes away in
//!   [`Ring`]'s `Drop`.
//! * **Pointers.** The addresses given to the kernel come from the
//!   handle's raw slot pointer (derived from the arena allocation, never
//!   from a `&[u8]`), and a buffer the kernel may write is marked dirty in
//!   full first, so `zero_on_release` clears whatever the kernel wrote.
//! * **Steady state allocates nothing.** Table entries (and their boxed
//!   message storage) are made once and reused through a free list;
//!   completions, errors (`io::Error` from an errno) and socket addresses
//!   are plain values.
//!
//! # Why misuse cannot cause undefined behaviour
//!
//! The kernel may write a buffer, or read a `msghdr`, from submission until
//! the operation's final completion (the one without `IORING_CQE_F_MORE`),
//! and may write any buffer in a provided ring until the ring is
//! unregistered. Every such buffer is owned by the table, and the table is
//! owned by the `Ring`, so:
//!
//! * **Dropping an [`OwnedBuf`] the kernel uses** is impossible: the user
//!   no longer has it (`tests/ui-uring/buf_in_flight.rs` checks that the
//!   compiler refuses). Using it again needs the [`Completion`], which only
//!   exists after the kernel finished.
//! * **Dropping the `Ring`** with operations in flight cancels them all
//!   (`IORING_OP_ASYNC_CANCEL` with `IORING_ASYNC_CANCEL_ANY`, or one cancel
//!   per operation on kernels without it) and waits for every completion;
//!   only then are the provided rings unregistered and freed, the buffers
//!   returned to the pool and the fixed buffers unregistered (by closing
//!   the ring). If waiting fails (the kernel refuses `io_uring_enter`),
//!   everything the kernel might still touch is leaked instead of freed.
//! * **`mem::forget` of the `Ring`** leaks the table, its buffers and the
//!   `Arc<Pool>`: the memory the kernel may write stays allocated forever,
//!   which is safe (only a leak).
//! * **A panic while handling a completion** (in user code holding a
//!   [`Completion`]) drops the completion's buffer normally: the kernel was
//!   done with it. A panic elsewhere unwinds through `Ring::drop`, which
//!   waits as above.
//! * **A panic that starts inside the ring** (a waiter's waker, run when a
//!   buffer goes back to the pool or when a provided ring is restocked
//!   from it) finds the ring consistent: a completion updates the table
//!   before it restocks, a provided ring is in the table before it is
//!   first stocked, and `Ring::drop` gives no buffer back until every
//!   operation ended and every provided ring was unregistered
//!   (`uring/teardown.rs`). When the drop cannot confirm that the kernel is
//!   done (it refuses to wait, dropped a completion, or stays silent for
//!   ten seconds), it leaks and counts it in [`leaked_teardowns`].
//! * **Dropping the pool** (the user's `Arc<Pool>`) while operations are in
//!   flight frees nothing: the ring and every buffer hold their own `Arc`.
//! * **Closing a file descriptor** that an operation uses only makes the
//!   operation fail (`EBADF`), or act on whatever file later got that
//!   number: either way it reads or writes only the buffer it owns.
//! * **Operations from a fixed buffer** are checked to use a slot of this
//!   ring's pool that lies in a registered segment, so the kernel is never
//!   pointed outside the slot the table owns.
//! * **Moving a [`single_thread`](RingBuilder::single_thread) ring** to
//!   another thread (a `Ring` is `Send`) makes the kernel refuse its
//!   submissions and its waits; its drop then cannot confirm that the
//!   operations ended and leaks as above, never frees early.
//! * **Completions left unread** stay in the kernel (its completion queue
//!   does not drop entries since Linux 5.5); their buffers stay in the
//!   table until read or until the drop reaps them.

mod buf_ring;
mod builder;
mod completion;
mod error;
mod teardown;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::Duration;

use io_uring::{IoUring, cqueue, opcode, squeue, types};

use crate::handle::OwnedBuf;
use crate::pool::Pool;

use buf_ring::BufRing;
pub use buf_ring::BufRingStats;
pub use builder::RingBuilder;
use completion::parse_recvmsg;
pub use completion::{BufGroup, Completion, OpId, RecvMsgInfo};
pub use error::{Rejected, UringError};
pub use teardown::leaked_teardowns;

/// Largest registered buffer the kernel accepts.
const MAX_FIXED_BYTES: usize = 1 << 30;
/// Most registered buffers (`IORING_MAX_REG_BUFFERS`).
const MAX_FIXED_BUFFERS: usize = 1 << 14;
/// `user_data` of our own cancel requests; never a table entry's (entry
/// indices stay below `u32::MAX`).
const CANCEL_TAG: u64 = u64::MAX;
/// Bytes kept for the source address in a multishot `recvmsg` buffer:
/// enough for IPv4 and IPv6.
const NAME_LEN: u32 = std::mem::size_of::<libc::sockaddr_in6>() as u32;

/// Bytes at the start of each [`Ring::recvmsg_multi`] buffer before the
/// payload: the kernel's `io_uring_recvmsg_out` header (16 bytes) and room
/// for an IPv4 or IPv6 source address (28). A pool whose buffers are
/// `RECVMSG_HEADROOM + n` bytes receives datagrams of up to `n` bytes
/// without cutting them.
///
/// ```
/// assert_eq!(arenapool::uring::RECVMSG_HEADROOM, 44);
/// ```
pub const RECVMSG_HEADROOM: usize = 16 + NAME_LEN as usize;

/// Counters of a [`Ring`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RingStats {
    /// Operations submitted and not finished.
    pub in_flight: usize,
    /// Operations started.
    pub started: u64,
    /// Completions delivered.
    pub completions: u64,
    /// Completions that named no operation in flight or an unknown buffer
    /// (should stay 0; counted, never trusted).
    pub strays: u64,
}

/// What an operation does; how to turn its completion into a
/// [`Completion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Reads into the buffer it owns.
    ReadFixed,
    /// Writes from (sends) the buffer it owns.
    Write,
    /// Receives into a buffer picked from group `.0` (index in `groups`).
    Select(usize),
    /// Multishot `recvmsg` with buffers from group `.0`.
    SelectMsg(usize),
}

/// Storage the kernel may read through pointers until an operation ends.
/// Boxed once per table entry, so its address is stable while the table
/// grows.
struct Msg {
    hdr: libc::msghdr,
    iov: libc::iovec,
    addr: socket2::SockAddr,
}

impl Msg {
    fn new() -> Box<Self> {
        Box::new(Msg {
            // SAFETY: `msghdr` and `iovec` are plain C structs of integers
            // and raw pointers, for which all-zero is a valid value.
            hdr: unsafe { std::mem::zeroed() },
            // SAFETY: as above.
            iov: unsafe { std::mem::zeroed() },
            addr: socket2::SockAddr::from(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))),
        })
    }
}

/// One table entry.
struct Op {
    /// Bumped when the entry is freed, so a stale id never matches.
    generation: u32,
    /// In flight: submitted and its final completion not seen.
    live: bool,
    kind: Kind,
    /// The buffer the kernel reads or writes (fixed ops and sends).
    buf: Option<OwnedBuf>,
    msg: Box<Msg>,
}

/// A fixed-buffer index and the slots it covers.
#[derive(Debug, Clone, Copy)]
struct Fixed {
    first: u32,
    slots: u32,
}

/// An io_uring instance bound to a [`Pool`]; see the [module docs](self)
/// for the design and why it is sound.
///
/// ```no_run
/// use std::net::UdpSocket;
/// use std::sync::Arc;
/// use arenapool::{Pool, uring::Ring};
///
/// let pool = Arc::new(Pool::new(2048, 256)?);
/// let mut ring = Ring::without_fixed_buffers(Arc::clone(&pool), 256)?;
/// let group = ring.provide_buffers(7, 128)?;
/// let socket = UdpSocket::bind("127.0.0.1:0")?;
/// ring.recvmsg_multi(&socket, group)?;
/// ring.submit_and_wait(1)?;
/// while let Some(c) = ring.next_completion() {
///     if let (Ok(_), Some(buf), Some(msg)) = (&c.result, c.buf, c.msg) {
///         let payload = &buf[msg.payload.clone()];
///         println!("{} bytes from {:?}", payload.len(), msg.source);
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Ring {
    ring: IoUring,
    pool: Arc<Pool>,
    /// Registered buffers: `fixed[i]` is buffer index `i`.
    fixed: Vec<Fixed>,
    ops: Vec<Op>,
    /// Free entries of `ops`.
    free: Vec<u32>,
    groups: Vec<BufRing>,
    stats: RingStats,
    /// Set in `Drop`: no restocking, cancels are ours.
    draining: bool,
    /// The kernel refused `IORING_ASYNC_CANCEL_ANY`.
    cancel_any_failed: bool,
    /// `Drop` still has to queue cancels.
    cancel_again: bool,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("fixed_buffers", &self.fixed.len())
            .field("groups", &self.groups.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

// SAFETY: the raw pointers a `Ring` holds (in each entry's `Msg`, and the
// provided rings' memory) point into allocations the `Ring` itself owns,
// or into pool slots owned by buffers in its table; none of them is tied to
// a thread. `IoUring`, `OwnedBuf` and `Arc<Pool>` are `Send`.
unsafe impl Send for Ring {}

impl Ring {
    /// A ring of `entries` submission entries for `pool`, with every arena
    /// segment the pool has now registered as fixed buffers.
    ///
    /// # Errors
    ///
    /// [`UringError::Setup`] if the kernel has no usable io_uring,
    /// [`UringError::Register`] if the buffers cannot be registered.
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// let pool = Arc::new(arenapool::Pool::new(4096, 16)?);
    /// let ring = arenapool::uring::Ring::new(pool, 32)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(pool: Arc<Pool>, entries: u32) -> Result<Self, UringError> {
        Self::builder(pool).entries(entries).build()
    }

    /// A ring without fixed buffers: for provided buffer rings and sends
    /// only ([`read_fixed`](Self::read_fixed) and
    /// [`write_fixed`](Self::write_fixed) then fail with
    /// [`UringError::NotRegistered`]). Pins no memory.
    ///
    /// # Errors
    ///
    /// [`UringError::Setup`] if the kernel has no usable io_uring.
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// let pool = Arc::new(arenapool::Pool::new(1500, 1024)?);
    /// let ring = arenapool::uring::Ring::without_fixed_buffers(pool, 256)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn without_fixed_buffers(pool: Arc<Pool>, entries: u32) -> Result<Self, UringError> {
        Self::builder(pool)
            .entries(entries)
            .fixed_buffers(false)
            .build()
    }

    /// A builder, for the settings [`new`](Self::new) does not take.
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// let pool = Arc::new(arenapool::Pool::new(2048, 1024)?);
    /// let ring = arenapool::uring::Ring::builder(pool)
    ///     .entries(512)
    ///     .fixed_buffers(false)
    ///     .single_thread(true)
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(pool: Arc<Pool>) -> RingBuilder {
        RingBuilder {
            pool,
            entries: 256,
            fixed: true,
            single_thread: false,
        }
    }

    fn from_builder(b: RingBuilder) -> Result<Self, UringError> {
        let plain = || IoUring::new(b.entries);
        let ring = if b.single_thread {
            let tuned = IoUring::builder()
                .setup_single_issuer()
                .setup_defer_taskrun()
                .build(b.entries);
            match tuned {
                // Before 6.1 the kernel does not know these flags.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => plain(),
                other => other,
            }
        } else {
            plain()
        };
        let ring = ring.map_err(UringError::Setup)?;
        let pool = b.pool;
        let sq = ring.params().sq_entries() as usize;
        let mut me = Ring {
            ring,
            pool,
            fixed: Vec::new(),
            ops: Vec::with_capacity(sq),
            free: Vec::with_capacity(sq),
            groups: Vec::new(),
            stats: RingStats::default(),
            draining: false,
            cancel_any_failed: false,
            cancel_again: false,
        };
        me.grow_table(sq);
        if b.fixed {
            me.register()?;
        }
        Ok(me)
    }

    /// Registers the pool's published segments, split at 1 GiB.
    fn register(&mut self) -> Result<(), UringError> {
        let stride = self.pool_stride();
        let per_iovec = (MAX_FIXED_BYTES / stride).min(u32::MAX as usize) as u32;
        if per_iovec == 0 {
            return Err(UringError::TooLarge);
        }
        let mut iovecs = Vec::new();
        let mut fixed = Vec::new();
        for (first, base, bytes) in self.pool.segments().published_regions() {
            let slots = (bytes / stride) as u32;
            let mut done = 0u32;
            while done < slots {
                let n = per_iovec.min(slots - done);
                // `done * stride` is inside the segment (`done < slots`).
                let ptr = base.as_ptr().wrapping_add(done as usize * stride);
                iovecs.push(libc::iovec {
                    iov_base: ptr.cast(),
                    iov_len: n as usize * stride,
                });
                fixed.push(Fixed {
                    first: first + done,
                    slots: n,
                });
                done += n;
            }
        }
        if iovecs.len() > MAX_FIXED_BUFFERS {
            return Err(UringError::TooLarge);
        }
        // SAFETY: each iovec is a whole number of slots inside one arena
        // segment, and the segments stay allocated until the pool drops;
        // `self` holds an `Arc<Pool>` until after the registration goes
        // (the ring closes in `Drop` before that `Arc` is released, and a
        // forgotten ring leaks the `Arc`).
        unsafe { self.ring.submitter().register_buffers(&iovecs) }.map_err(UringError::Register)?;
        self.fixed = fixed;
        Ok(())
    }

    /// Distance between slots in the arenas.
    fn pool_stride(&self) -> usize {
        self.pool.segments().stride()
    }

    /// The pool the ring lends buffers from.
    ///
    /// See [`Ring`]'s example.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// Counters; see [`RingStats`].
    ///
    /// See [`Ring`]'s example.
    pub fn stats(&self) -> RingStats {
        self.stats
    }

    /// The fixed-buffer index a buffer of this ring's pool would be read
    /// into or written from, if it is registered.
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// let pool = Arc::new(arenapool::Pool::new(4096, 16)?);
    /// let ring = arenapool::uring::Ring::new(Arc::clone(&pool), 32)?;
    /// let buf = pool.try_acquire_owned().unwrap();
    /// assert_eq!(ring.buf_index(&buf), Some(0), "one segment, one index");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn buf_index(&self, buf: &OwnedBuf) -> Option<u16> {
        if !Arc::ptr_eq(buf.pool(), &self.pool) {
            return None;
        }
        let idx = buf.index();
        self.fixed
            .iter()
            .position(|f| (f.first..f.first + f.slots).contains(&idx))
            .and_then(|i| u16::try_from(i).ok())
    }

    /// Reads from `fd` at `offset` into `buf`'s spare capacity (after its
    /// `len()` bytes) with `IORING_OP_READ_FIXED`. The completion gives the
    /// buffer back with its length grown by the bytes read.
    ///
    /// The descriptor is only named at submission: if it is closed before
    /// the kernel gets to it the operation fails (`EBADF`), and nothing
    /// else happens to memory.
    ///
    /// # Errors
    ///
    /// [`Rejected`], with the buffer, if it is not from this ring's pool
    /// or not registered, or the submission queue is full.
    pub fn read_fixed(
        &mut self,
        fd: &impl AsFd,
        mut buf: OwnedBuf,
        offset: u64,
    ) -> Result<OpId, Rejected> {
        let index = match self.fixed_index(&buf) {
            Ok(i) => i,
            Err(error) => return Err(Rejected { error, buf }),
        };
        let fd = types::Fd(fd.as_fd().as_raw_fd());
        let start = buf.len();
        let Ok(len) = u32::try_from(buf.capacity() - start) else {
            return Err(Rejected {
                error: UringError::TooLarge,
                buf,
            });
        };
        // Marks the whole slot dirty: the kernel may write any of it.
        let ptr = buf.slot_mut_ptr().as_ptr().wrapping_add(start);
        let entry = opcode::ReadFixed::new(fd, ptr, len, index)
            .offset(offset)
            .build();
        self.start_with(Kind::ReadFixed, buf, entry)
    }

    /// Writes `buf`'s filled part to `fd` at `offset` with
    /// `IORING_OP_WRITE_FIXED`; the completion gives the buffer back
    /// unchanged.
    ///
    /// # Errors
    ///
    /// As [`read_fixed`](Self::read_fixed).
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # let pool = Arc::new(arenapool::Pool::new(4096, 16)?);
    /// # let mut ring = arenapool::uring::Ring::new(Arc::clone(&pool), 32)?;
    /// let file = std::fs::File::create("/tmp/out")?;
    /// let mut buf = pool.try_acquire_owned().unwrap();
    /// buf.extend_from_slice(b"hello")?;
    /// ring.write_fixed(&file, buf, 0).map_err(|r| r.error)?;
    /// ring.submit_and_wait(1)?;
    /// let done = ring.next_completion().unwrap();
    /// assert_eq!(done.result?, 5);
    /// assert_eq!(&done.buf.unwrap()[..], b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_fixed(
        &mut self,
        fd: &impl AsFd,
        buf: OwnedBuf,
        offset: u64,
    ) -> Result<OpId, Rejected> {
        let index = match self.fixed_index(&buf) {
            Ok(i) => i,
            Err(error) => return Err(Rejected { error, buf }),
        };
        let fd = types::Fd(fd.as_fd().as_raw_fd());
        let Ok(len) = u32::try_from(buf.len()) else {
            return Err(Rejected {
                error: UringError::TooLarge,
                buf,
            });
        };
        let ptr = buf.slot_ptr().as_ptr().cast_const();
        let entry = opcode::WriteFixed::new(fd, ptr, len, index)
            .offset(offset)
            .build();
        self.start_with(Kind::Write, buf, entry)
    }

    /// Sends `buf[range]` (a part of its filled bytes) to `peer` with
    /// `IORING_OP_SENDMSG` on a datagram socket (on a connected socket the
    /// address is ignored or refused, as `sendto(2)` does). The buffer
    /// needs no registration and may come from any pool. The completion
    /// gives it back unchanged.
    ///
    /// # Errors
    ///
    /// [`Rejected`], with the buffer, if the range is not inside its filled
    /// part or the submission queue is full.
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # let pool = Arc::new(arenapool::Pool::new(2048, 16)?);
    /// # let mut ring = arenapool::uring::Ring::without_fixed_buffers(Arc::clone(&pool), 32)?;
    /// let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let mut buf = pool.try_acquire_owned().unwrap();
    /// buf.extend_from_slice(b"[header]payload")?;
    /// let peer = "127.0.0.1:9000".parse()?;
    /// ring.send_to(&socket, buf, 8..15, peer).map_err(|r| r.error)?; // sends "payload"
    /// ring.submit_and_wait(1)?;
    /// let done = ring.next_completion().unwrap();
    /// assert_eq!(done.result?, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_to(
        &mut self,
        fd: &impl AsFd,
        buf: OwnedBuf,
        range: Range<usize>,
        peer: SocketAddr,
    ) -> Result<OpId, Rejected> {
        if range.start > range.end || range.end > buf.len() {
            let error = UringError::BadRange {
                start: range.start,
                end: range.end,
                len: buf.len(),
            };
            return Err(Rejected { error, buf });
        }
        let fd = types::Fd(fd.as_fd().as_raw_fd());
        let ptr = buf.slot_ptr().as_ptr().wrapping_add(range.start);
        let len = range.end - range.start;
        let (idx, msg) = match self.reserve() {
            Ok(e) => e,
            Err(error) => return Err(Rejected { error, buf }),
        };
        msg.addr = socket2::SockAddr::from(peer);
        msg.iov = libc::iovec {
            iov_base: ptr.cast(),
            iov_len: len,
        };
        msg.hdr.msg_name = msg.addr.as_ptr().cast_mut().cast();
        msg.hdr.msg_namelen = msg.addr.len();
        msg.hdr.msg_iov = &raw mut msg.iov;
        msg.hdr.msg_iovlen = 1;
        msg.hdr.msg_control = std::ptr::null_mut();
        msg.hdr.msg_controllen = 0;
        msg.hdr.msg_flags = 0;
        let entry = opcode::SendMsg::new(fd, &raw const msg.hdr).build();
        self.commit_with(idx, Kind::Write, buf, entry)
    }

    /// Receives once from `fd` into a buffer the kernel picks from
    /// `group` (`IORING_OP_RECV` with buffer select). The completion
    /// carries that buffer, its length set to the bytes received.
    ///
    /// # Errors
    ///
    /// [`UringError::UnknownGroup`] or [`UringError::QueueFull`].
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # let pool = Arc::new(arenapool::Pool::new(2048, 16)?);
    /// # let mut ring = arenapool::uring::Ring::without_fixed_buffers(Arc::clone(&pool), 32)?;
    /// let group = ring.provide_buffers(1, 8)?;
    /// let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// ring.recv(&socket, group)?;
    /// ring.submit_and_wait(1)?;
    /// let done = ring.next_completion().unwrap();
    /// let buf = done.buf.unwrap(); // `done.result?` bytes long
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv(&mut self, fd: &impl AsFd, group: BufGroup) -> Result<OpId, UringError> {
        let g = self.group_index(group)?;
        let fd = types::Fd(fd.as_fd().as_raw_fd());
        let len = u32::try_from(self.pool.buffer_size()).unwrap_or(u32::MAX);
        let entry = opcode::Recv::new(fd, std::ptr::null_mut(), len)
            .buf_group(group.0)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT);
        self.start(Kind::Select(g), entry)
    }

    /// Multishot receive (`IORING_OP_RECV` with `IORING_RECV_MULTISHOT`):
    /// one submission, one completion per datagram or chunk, each with a
    /// buffer from `group`, until a completion says
    /// [`more`](Completion::more)` == false` (for example `ENOBUFS` when
    /// the group ran dry: re-submit once buffers are back).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # let pool = Arc::new(arenapool::Pool::new(2048, 16)?);
    /// # let mut ring = arenapool::uring::Ring::without_fixed_buffers(Arc::clone(&pool), 32)?;
    /// # let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let group = ring.provide_buffers(1, 8)?;
    /// ring.recv_multi(&socket, group)?;
    /// loop {
    ///     ring.submit_and_wait(1)?;
    ///     while let Some(c) = ring.next_completion() {
    ///         if let Some(buf) = c.buf {
    ///             println!("{} bytes", buf.len());
    ///         }
    ///         if !c.more {
    ///             ring.recv_multi(&socket, group)?; // re-arm
    ///         }
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_multi(&mut self, fd: &impl AsFd, group: BufGroup) -> Result<OpId, UringError> {
        let g = self.group_index(group)?;
        let fd = types::Fd(fd.as_fd().as_raw_fd());
        let entry = opcode::RecvMulti::new(fd, group.0).build();
        self.start(Kind::Select(g), entry)
    }

    /// Multishot `recvmsg` for datagram sockets: like
    /// [`recv_multi`](Self::recv_multi), and each completion also gives the
    /// source address and where the payload lies in the buffer
    /// ([`Completion::msg`]). The buffer's length is everything the kernel
    /// wrote (its header, the address, the payload).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// See [`Ring`]'s example.
    pub fn recvmsg_multi(&mut self, fd: &impl AsFd, group: BufGroup) -> Result<OpId, UringError> {
        let g = self.group_index(group)?;
        let fd = types::Fd(fd.as_fd().as_raw_fd());
        let (idx, msg) = self.reserve()?;
        msg.hdr.msg_name = std::ptr::null_mut();
        msg.hdr.msg_namelen = NAME_LEN;
        msg.hdr.msg_iov = std::ptr::null_mut();
        msg.hdr.msg_iovlen = 0;
        msg.hdr.msg_control = std::ptr::null_mut();
        msg.hdr.msg_controllen = 0;
        msg.hdr.msg_flags = 0;
        let entry = opcode::RecvMsgMulti::new(fd, &raw const msg.hdr, group.0).build();
        self.commit(idx, Kind::SelectMsg(g), entry)
    }

    /// Asks the kernel to cancel operation `id` (asynchronously: its
    /// completion, with `ECANCELED` or its result if it finished first,
    /// still comes through [`next_completion`](Self::next_completion)).
    /// Does nothing if `id` is not in flight.
    ///
    /// # Errors
    ///
    /// [`UringError::QueueFull`].
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # let pool = Arc::new(arenapool::Pool::new(2048, 16)?);
    /// # let mut ring = arenapool::uring::Ring::without_fixed_buffers(Arc::clone(&pool), 32)?;
    /// # let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let group = ring.provide_buffers(1, 8)?;
    /// let id = ring.recv_multi(&socket, group)?;
    /// ring.cancel(id)?;
    /// ring.submit_and_wait(1)?;
    /// let done = ring.next_completion().unwrap();
    /// assert!(!done.more);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cancel(&mut self, id: OpId) -> Result<(), UringError> {
        if self.op_of(id.0).is_none() {
            return Ok(());
        }
        let entry = opcode::AsyncCancel::new(id.0).build().user_data(CANCEL_TAG);
        self.push(&entry)
    }

    /// A provided buffer ring of `entries` pool buffers (a power of two up
    /// to 32768) under buffer group id `group`, for
    /// [`recv`](Self::recv), [`recv_multi`](Self::recv_multi) and
    /// [`recvmsg_multi`](Self::recvmsg_multi). Stocked from the pool now
    /// (as far as it has buffers; see [`BufRingStats::restock_misses`]).
    /// It lives as long as the ring.
    ///
    /// # Errors
    ///
    /// [`UringError::BadEntries`], [`UringError::GroupExists`],
    /// [`UringError::Alloc`], or [`UringError::RegisterBufRing`] (kernels
    /// before 5.19 have no buffer rings).
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// let pool = Arc::new(arenapool::Pool::new(2048, 64)?);
    /// let mut ring = arenapool::uring::Ring::without_fixed_buffers(Arc::clone(&pool), 32)?;
    /// let group = ring.provide_buffers(0, 32)?;
    /// assert_eq!(ring.buf_ring_stats(group).unwrap().stocked, 32);
    /// assert_eq!(pool.stats().in_use, 32, "lent to the kernel");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn provide_buffers(&mut self, group: u16, entries: u32) -> Result<BufGroup, UringError> {
        if self.groups.iter().any(|g| g.group == group) {
            return Err(UringError::GroupExists { group });
        }
        let n = u16::try_from(entries)
            .ok()
            .filter(|&n| n > 0 && n.is_power_of_two() && n <= 32768)
            .ok_or(UringError::BadEntries { entries })?;
        let mut ring = BufRing::new(group, n)?;
        // SAFETY: `ring.addr()` is page-aligned memory for `entries`
        // descriptors, owned by `ring`; it is freed only after
        // `unregister_buf_ring` succeeded (`Drop`), or leaked.
        let registered = unsafe {
            self.ring.submitter().register_buf_ring_with_flags(
                ring.addr(),
                ring.entries(),
                group,
                0,
            )
        };
        registered.map_err(|source| UringError::RegisterBufRing { group, source })?;
        ring.registered = true;
        // In the table before it is stocked: stocking may run user code
        // that panics, and from here on only `Drop` may free the ring
        // (after unregistering it).
        self.groups.push(ring);
        if let Some(ring) = self.groups.last_mut() {
            ring.stock(&self.pool);
        }
        Ok(BufGroup(group))
    }

    /// Counters of a provided buffer ring; `None` if `group` is not this
    /// ring's.
    ///
    /// See [`provide_buffers`](Self::provide_buffers).
    pub fn buf_ring_stats(&self, group: BufGroup) -> Option<BufRingStats> {
        self.groups
            .iter()
            .find(|g| g.group == group.0)
            .map(BufRing::stats)
    }

    /// Refills provided buffer rings from the pool (also done on every
    /// submit and completion); returns whether every ring is full.
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// let pool = Arc::new(arenapool::Pool::new(2048, 4)?);
    /// let mut ring = arenapool::uring::Ring::without_fixed_buffers(Arc::clone(&pool), 8)?;
    /// let held = pool.try_acquire_owned().unwrap();
    /// let group = ring.provide_buffers(1, 4)?; // only 3 buffers free
    /// assert_eq!(ring.buf_ring_stats(group).unwrap().stocked, 3);
    /// drop(held);
    /// assert!(ring.restock());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn restock(&mut self) -> bool {
        let mut full = true;
        for g in &mut self.groups {
            g.stock(&self.pool);
            full &= !g.needs_stock();
        }
        full
    }

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
    /// # use std::sync::Arc;
    /// # let pool = Arc::new(arenapool::Pool::new(2048, 16)?);
    /// # let mut ring = arenapool::uring::Ring::without_fixed_buffers(Arc::clone(&pool), 32)?;
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

    fn restock_if_needed(&mut self) {
        if !self.draining && self.groups.iter().any(BufRing::needs_stock) {
            self.restock();
        }
    }

    fn group_index(&self, group: BufGroup) -> Result<usize, UringError> {
        self.groups
            .iter()
            .position(|g| g.group == group.0)
            .ok_or(UringError::UnknownGroup { group: group.0 })
    }

    fn fixed_index(&self, buf: &OwnedBuf) -> Result<u16, UringError> {
        if !Arc::ptr_eq(buf.pool(), &self.pool) {
            return Err(UringError::WrongPool);
        }
        self.buf_index(buf)
            .ok_or(UringError::NotRegistered { index: buf.index() })
    }

    /// Adds `n` free entries to the table (each with its boxed `Msg`).
    fn grow_table(&mut self, n: usize) {
        for _ in 0..n {
            let Ok(idx) = u32::try_from(self.ops.len()) else {
                return;
            };
            self.ops.push(Op {
                generation: 0,
                live: false,
                kind: Kind::Write,
                buf: None,
                msg: Msg::new(),
            });
            self.free.push(idx);
        }
        // Lowest index first: keeps the hot entries few.
        self.free.sort_unstable_by(|a, b| b.cmp(a));
    }

    /// Makes room in the submission queue and takes a free table entry,
    /// whose `Msg` the caller may fill before [`commit`](Self::commit).
    fn reserve(&mut self) -> Result<(u32, &mut Msg), UringError> {
        if self.ring.submission().is_full() {
            // A failed submit leaves the queue full; reported below.
            let _ = self.ring.submit();
            if self.ring.submission().is_full() {
                return Err(UringError::QueueFull);
            }
        }
        if self.free.is_empty() {
            self.grow_table(self.ops.len().max(16));
        }
        let idx = self.free.pop().ok_or(UringError::QueueFull)?;
        Ok((idx, &mut *self.ops[idx as usize].msg))
    }

    /// Reserves an entry and queues an operation without a buffer.
    fn start(&mut self, kind: Kind, entry: squeue::Entry) -> Result<OpId, UringError> {
        let (idx, _) = self.reserve()?;
        self.commit(idx, kind, entry)
    }

    /// Reserves an entry and queues an operation on `buf`.
    fn start_with(
        &mut self,
        kind: Kind,
        buf: OwnedBuf,
        entry: squeue::Entry,
    ) -> Result<OpId, Rejected> {
        match self.reserve() {
            Ok((idx, _)) => self.commit_with(idx, kind, buf, entry),
            Err(error) => Err(Rejected { error, buf }),
        }
    }

    /// [`commit`](Self::commit), then moves `buf` into the entry. The
    /// kernel cannot see the queued entry before the next submit, which
    /// only our methods make, so the buffer is in the table first.
    fn commit_with(
        &mut self,
        idx: u32,
        kind: Kind,
        buf: OwnedBuf,
        entry: squeue::Entry,
    ) -> Result<OpId, Rejected> {
        match self.commit(idx, kind, entry) {
            Ok(id) => {
                self.ops[idx as usize].buf = Some(buf);
                Ok(id)
            }
            Err(error) => Err(Rejected { error, buf }),
        }
    }

    /// Queues `entry` under entry `idx`'s id and marks it live; on failure
    /// frees the entry again.
    fn commit(&mut self, idx: u32, kind: Kind, entry: squeue::Entry) -> Result<OpId, UringError> {
        let id = (u64::from(self.ops[idx as usize].generation) << 32) | u64::from(idx);
        if let Err(e) = self.push(&entry.user_data(id)) {
            self.free.push(idx);
            return Err(e);
        }
        let op = &mut self.ops[idx as usize];
        op.kind = kind;
        op.buf = None;
        op.live = true;
        self.stats.in_flight += 1;
        self.stats.started += 1;
        Ok(OpId(id))
    }

    /// Queues one entry (room was made by `reserve`, or is made here).
    fn push(&mut self, entry: &squeue::Entry) -> Result<(), UringError> {
        if self.ring.submission().is_full() {
            let _ = self.ring.submit();
        }
        // SAFETY: every pointer in `entry` stays valid until the
        // operation's final completion: buffers are owned by table entries
        // (`Op::buf`) or provided rings, `msghdr`s and what they point to
        // are in the entry's boxed `Msg`, and neither is released before
        // that completion is seen, or before `Drop` waited for it (module
        // docs). Cancel entries carry no pointer.
        unsafe { self.ring.submission().push(entry) }.map_err(|_| UringError::QueueFull)
    }

    /// The live entry that `user_data` names.
    fn op_of(&self, user_data: u64) -> Option<usize> {
        let idx = (user_data & u64::from(u32::MAX)) as usize;
        let generation = (user_data >> 32) as u32;
        self.ops
            .get(idx)
            .filter(|op| op.live && op.generation == generation)
            .map(|_| idx)
    }

    /// Turns a completion queue entry into a [`Completion`]; `None` for our
    /// own cancels and strays.
    fn complete(&mut self, cqe: &cqueue::Entry) -> Option<Completion> {
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
        let buf = match kind {
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
                    msg = parse_recvmsg(b, &self.ops[idx].msg.hdr);
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
