//! Provided buffer rings: the kernel picks a pool buffer per receive.
//!
//! The ring is an array of `entries` 16-byte descriptors `{addr, len, bid,
//! resv}` in page-aligned memory we allocate and register; the `resv` field
//! of descriptor 0 doubles as the ring's tail. We write descriptors at
//! `tail & mask` and publish them with a `Release` store of the tail; the
//! kernel reads the tail with acquire semantics, consumes descriptors from
//! its private head and names the one it used in the completion's flags
//! (`IORING_CQE_F_BUFFER`, the buffer id `bid`).
//!
//! Buffer id `bid` is index `bid` of [`BufRing::bufs`]: the table owns the
//! [`OwnedBuf`] whose slot the descriptor points at. A bid is in exactly one
//! of three states: in the ring (the kernel may write the buffer; the table
//! keeps it), with the user (handed out by [`BufRing::take`]), or empty
//! (waiting for the pool to have a buffer, listed in `empty`). So at most
//! `entries` descriptors are ever published and not yet consumed, and the
//! ring never overflows.

use std::alloc::Layout;
use std::mem::{align_of, size_of};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU16, Ordering};

use crate::handle::OwnedBuf;
use crate::pool::Pool;

use super::{BufGroup, Ring, UringError};

/// One descriptor, laid out as the kernel's `struct io_uring_buf` (and
/// `io_uring::types::BufRingEntry`). Written through raw pointers only,
/// never through a reference: `resv` of descriptor 0 is the tail, which
/// the kernel reads while we fill other fields.
#[repr(C)]
struct Desc {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

const _: () = assert!(size_of::<Desc>() == size_of::<io_uring::types::BufRingEntry>());
const _: () = assert!(size_of::<Desc>() == 16);

/// The system's page size. (Through libc, not rustix's auxv parser, which
/// faults under valgrind.) If `sysconf` fails, 4096: a wrong guess only
/// makes registering the ring fail with an error.
fn page_size() -> usize {
    // SAFETY: `sysconf` only reads a system setting; any name is allowed.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page)
        .ok()
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096)
}

/// The ring's memory: zeroed, page-aligned, a whole number of pages.
///
/// Invariant: `ptr` came from `alloc_zeroed(layout)` and stays allocated
/// until `Drop`; `layout.size() >= entries * 16`.
struct RingMem {
    ptr: NonNull<Desc>,
    layout: Layout,
}

impl RingMem {
    #[allow(
        clippy::disallowed_methods,
        reason = "the kernel needs page-aligned ring memory; this type owns it and frees it in Drop"
    )]
    fn new(entries: u16) -> Result<Self, UringError> {
        let page = page_size();
        let bytes = usize::from(entries) * size_of::<Desc>();
        let size = bytes.div_ceil(page).max(1) * page;
        let layout = Layout::from_size_align(size, page.max(align_of::<Desc>()))
            .map_err(|_| UringError::TooLarge)?;
        // SAFETY: `layout` has a non-zero size (at least one page).
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw.cast::<Desc>()).ok_or(UringError::Alloc { bytes: size })?;
        Ok(Self { ptr, layout })
    }
}

impl Drop for RingMem {
    #[allow(
        clippy::disallowed_methods,
        reason = "frees the ring memory allocated in RingMem::new"
    )]
    fn drop(&mut self) {
        // SAFETY: allocated by `alloc_zeroed(self.layout)` in `new`, freed
        // once, here. The owner drops a `RingMem` only once the kernel no
        // longer knows the ring (never registered, or unregistered).
        unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast(), self.layout) }
    }
}

/// Counters of one provided buffer ring; see [`Ring::buf_ring_stats`](super::Ring::buf_ring_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BufRingStats {
    /// Buffer ids in the ring (a power of two).
    pub entries: usize,
    /// Buffers in the ring now, for the kernel to pick.
    pub stocked: usize,
    /// Completions that came back `ENOBUFS`: the ring was empty when a
    /// receive needed a buffer. The operation ended; re-submit it.
    pub enobufs: u64,
    /// Refills that found the pool empty before the ring was full (each
    /// attempt counts: a ring that stays short while the pool is empty
    /// counts once per submit). The missing ids are refilled on a later
    /// submit, completion or [`Ring::restock`](super::Ring::restock). Each
    /// miss also counts as a failed acquire in the pool's
    /// [`Stats`](crate::Stats).
    pub restock_misses: u64,
    /// Buffers the kernel filled and the ring handed out.
    pub delivered: u64,
}

/// A registered provided buffer ring and the pool buffers it lends the
/// kernel. Owned by the [`Ring`](super::Ring), which unregisters it (and
/// only then frees it) when no operation that may select from it is in
/// flight.
pub(super) struct BufRing {
    mem: RingMem,
    pub(super) group: u16,
    mask: u16,
    /// Our tail: descriptors written so far (wrapping).
    tail: u16,
    /// `bufs[bid]`: the buffer behind descriptor `bid` while it is in the
    /// ring; `None` while the user has it or while it waits for the pool.
    bufs: Box<[Option<OwnedBuf>]>,
    /// Bids waiting for a buffer from the pool.
    empty: Vec<u16>,
    /// Whether the kernel knows this ring (set once registration worked).
    pub(super) registered: bool,
    stats: BufRingStats,
}

impl BufRing {
    /// Allocates the ring memory and the table for `entries` bids (a power
    /// of two, `1..=32768`); nothing is stocked or registered yet.
    pub(super) fn new(group: u16, entries: u16) -> Result<Self, UringError> {
        if entries == 0 || !entries.is_power_of_two() || entries > 32768 {
            return Err(UringError::BadEntries {
                entries: u32::from(entries),
            });
        }
        let mem = RingMem::new(entries)?;
        Ok(Self {
            mem,
            group,
            mask: entries - 1,
            tail: 0,
            bufs: (0..entries).map(|_| None).collect(),
            empty: (0..entries).rev().collect(),
            registered: false,
            stats: BufRingStats {
                entries: usize::from(entries),
                ..BufRingStats::default()
            },
        })
    }

    /// The ring's address, for `register_buf_ring_with_flags`.
    pub(super) fn addr(&self) -> u64 {
        self.mem.ptr.as_ptr().addr() as u64
    }

    /// Number of bids.
    pub(super) fn entries(&self) -> u16 {
        self.mask.wrapping_add(1)
    }

    /// Fills every empty bid it can from `pool` and publishes them.
    /// Counts one restock miss if the pool ran out before the ring was
    /// full.
    ///
    /// Acquiring may run user code (a waiter's waker, when the acquire
    /// takes back buffers from thread caches or grows the pool). If that
    /// panics, the ring stays consistent: every bid is either published
    /// with its buffer in the table or still waits in `empty`.
    pub(super) fn stock(&mut self, pool: &Pool) {
        if self.empty.is_empty() {
            return;
        }
        while let Some(&bid) = self.empty.last() {
            let Some(buf) = pool.try_acquire_owned() else {
                self.stats.restock_misses += 1;
                break;
            };
            self.empty.pop();
            self.put(bid, buf);
            // One release store per buffer, so that nothing written stays
            // unpublished if the next acquire unwinds.
            self.publish();
        }
    }

    /// Writes descriptor `bid -> buf` at our tail (not yet visible to the
    /// kernel: see [`publish`](Self::publish)) and keeps `buf` in the table.
    fn put(&mut self, bid: u16, mut buf: OwnedBuf) {
        buf.clear();
        let addr = buf.slot_mut_ptr().as_ptr().addr() as u64;
        let len = u32::try_from(buf.capacity()).unwrap_or(u32::MAX);
        let at = usize::from(self.tail & self.mask);
        // SAFETY: `at < entries`, so the descriptor lies in the ring memory
        // (`RingMem` invariant). The kernel does not read descriptors at or
        // past the published tail, so it does not read this one now; we
        // write its `addr`, `len` and `bid` fields through raw pointers and
        // leave `resv` (the tail, for descriptor 0) alone.
        unsafe {
            let d = self.mem.ptr.as_ptr().add(at);
            ptr::addr_of_mut!((*d).addr).write(addr);
            ptr::addr_of_mut!((*d).len).write(len);
            ptr::addr_of_mut!((*d).bid).write(bid);
        }
        self.bufs[usize::from(bid)] = Some(buf);
        self.tail = self.tail.wrapping_add(1);
        self.stats.stocked += 1;
    }

    /// Makes the descriptors written so far visible to the kernel.
    fn publish(&mut self) {
        // SAFETY: descriptor 0's `resv` field is the ring's tail, a `u16`
        // (2-aligned: the memory is page-aligned) inside the ring memory,
        // valid for as long as `self`. The kernel only reads it, with
        // acquire semantics, and we write it only here, atomically.
        let tail = unsafe { AtomicU16::from_ptr(ptr::addr_of_mut!((*self.mem.ptr.as_ptr()).resv)) };
        // Release: the descriptors written before are visible to a reader
        // that sees the new tail.
        tail.store(self.tail, Ordering::Release);
    }

    /// The buffer the kernel filled for `bid`, with `len` bytes. The bid
    /// waits for a new buffer ([`stock`](Self::stock), which the caller
    /// runs once its own state is consistent). `None` if the bid is
    /// unknown or not in the ring (a kernel bug; the caller counts it,
    /// nothing panics).
    pub(super) fn take(&mut self, bid: u16, len: usize) -> Option<OwnedBuf> {
        let mut buf = self.bufs.get_mut(usize::from(bid))?.take()?;
        self.stats.stocked -= 1;
        self.stats.delivered += 1;
        // The kernel wrote at most the descriptor's `len`, the capacity.
        let _ = buf.set_len(len.min(buf.capacity()));
        self.empty.push(bid);
        Some(buf)
    }

    /// Counts an `ENOBUFS` completion.
    pub(super) fn note_enobufs(&mut self) {
        self.stats.enobufs += 1;
    }

    /// Whether some bid waits for a buffer.
    pub(super) fn needs_stock(&self) -> bool {
        !self.empty.is_empty()
    }

    pub(super) fn stats(&self) -> BufRingStats {
        self.stats
    }

    /// Leaks the ring memory and every buffer in the table: for when the
    /// kernel may still know the ring (unregistering failed).
    pub(super) fn leak(self) {
        let BufRing { mem, bufs, .. } = self;
        std::mem::forget(mem);
        std::mem::forget(bufs);
    }
}

impl Ring {
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
    /// let pool = arenapool::Pool::new(2048, 64)?;
    /// let mut ring = arenapool::uring::Ring::without_fixed_buffers(pool.clone(), 32)?;
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
    /// let pool = arenapool::Pool::new(2048, 4)?;
    /// let mut ring = arenapool::uring::Ring::without_fixed_buffers(pool.clone(), 8)?;
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

    pub(super) fn restock_if_needed(&mut self) {
        if !self.draining && self.groups.iter().any(BufRing::needs_stock) {
            self.restock();
        }
    }

    pub(super) fn group_index(&self, group: BufGroup) -> Result<usize, UringError> {
        self.groups
            .iter()
            .position(|g| g.group == group.0)
            .ok_or(UringError::UnknownGroup { group: group.0 })
    }
}
