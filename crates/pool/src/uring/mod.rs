//! io_uring on the pool's buffers: registered (fixed) buffers, provided
//! buffer rings, and operations that own their buffers until the kernel is
//! done with them (feature `io-uring`, Linux only).
//!
//! ```no_run
//! use arenapool::Pool;
//! use arenapool::uring::Ring;
//!
//! let pool = Pool::new(4096, 64)?;
//! let mut ring = Ring::new(pool.clone(), 64)?; // registers the arena
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
//! `io_uring` instance, an `Pool`, the registration of the pool's
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
//! * **TCP.** [`Ring::accept_multi`] accepts connections (each completion
//!   owns the new socket, [`Completion::accepted`]), [`Ring::recv_multi`]
//!   with a provided ring lets thousands of connections share a few
//!   buffers (an idle connection holds none), and [`Ring::send`] sends
//!   from a buffer the table owns until the send ends.
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
//! * **Steady state allocates nothing.** Table entries (and, in a ring
//!   that sends or receives with `sendmsg`/`recvmsg`, their boxed message
//!   storage) are made once and reused through a free list;
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
//!   `Pool`: the memory the kernel may write stays allocated forever,
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
//! * **Dropping the pool** (the user's `Pool`) while operations are in
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
mod ops;
mod teardown;

use std::net::{Ipv4Addr, SocketAddr};

use io_uring::IoUring;

use crate::handle::OwnedBuf;
use crate::pool::Pool;

use buf_ring::BufRing;
pub use buf_ring::BufRingStats;
pub use builder::RingBuilder;
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
    /// Multishot `accept`: each completion's result is a new descriptor.
    Accept,
}

/// Storage the kernel may read through pointers until an operation ends.
/// Boxed at most once per table entry, so its address is stable while the
/// table grows.
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
    /// Every entry has one once the ring served an operation that needs
    /// one (`sendmsg`, `recvmsg`: [`Ring::msgs`]); the entries of a ring
    /// that only accepts, receives and sends stay small.
    msg: Option<Box<Msg>>,
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
/// use arenapool::{Pool, uring::Ring};
///
/// let pool = Pool::new(2048, 256)?;
/// let mut ring = Ring::without_fixed_buffers(pool.clone(), 256)?;
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
    pool: Pool,
    /// Registered buffers: `fixed[i]` is buffer index `i`.
    fixed: Vec<Fixed>,
    ops: Vec<Op>,
    /// Free entries of `ops`.
    free: Vec<u32>,
    groups: Vec<BufRing>,
    /// Every table entry has its `Msg` (made for all of them, at once,
    /// the first time one is needed: so a ring in steady state allocates
    /// none).
    msgs: bool,
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
// a thread. `IoUring`, `OwnedBuf` and `Pool` are `Send`.
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
    /// let pool = arenapool::Pool::new(4096, 16)?;
    /// let ring = arenapool::uring::Ring::new(pool, 32)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(pool: Pool, entries: u32) -> Result<Self, UringError> {
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
    /// let pool = arenapool::Pool::new(1500, 1024)?;
    /// let ring = arenapool::uring::Ring::without_fixed_buffers(pool, 256)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn without_fixed_buffers(pool: Pool, entries: u32) -> Result<Self, UringError> {
        Self::builder(pool)
            .entries(entries)
            .fixed_buffers(false)
            .build()
    }

    /// A builder, for the settings [`new`](Self::new) does not take.
    ///
    /// ```no_run
    /// let pool = arenapool::Pool::new(2048, 1024)?;
    /// let ring = arenapool::uring::Ring::builder(pool)
    ///     .entries(512)
    ///     .fixed_buffers(false)
    ///     .single_thread(true)
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(pool: Pool) -> RingBuilder {
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
            msgs: false,
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
        for (first, base, bytes) in self.pool.pin_regions() {
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
        // segment, and the segments stay allocated (and their pages in
        // place: `pin_regions` turned trimming off) until the pool drops;
        // `self` holds an `Pool` until after the registration goes
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
    pub fn pool(&self) -> &Pool {
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
    /// let pool = arenapool::Pool::new(4096, 16)?;
    /// let ring = arenapool::uring::Ring::new(pool.clone(), 32)?;
    /// let buf = pool.try_acquire_owned().unwrap();
    /// assert_eq!(ring.buf_index(&buf), Some(0), "one segment, one index");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn buf_index(&self, buf: &OwnedBuf) -> Option<u16> {
        if !Pool::ptr_eq(buf.pool(), &self.pool) {
            return None;
        }
        let idx = buf.index();
        self.fixed
            .iter()
            .position(|f| (f.first..f.first + f.slots).contains(&idx))
            .and_then(|i| u16::try_from(i).ok())
    }
}
