//! The process totals behind [`global_stats`](crate::global_stats).
//!
//! A single shared atomic per counter would cost a locked read-modify-write
//! per counter per event: measured at about 25 ns per allocate-and-free pair
//! on the development VM, ten times the budget. Instead each thread claims
//! a *slot* in a static table on its first allocation and is the only
//! writer of that slot, so its updates are relaxed loads and stores (plain
//! `mov`s on x86), on a cache line no other thread writes. Totals are the
//! sum over the slots, taken when asked for.
//!
//! Slots are never given back: a global allocator may not use a
//! thread-local with a destructor, so there is no thread-exit hook. That is
//! also what keeps the counts of exited threads in the totals. Once all
//! [`SLOTS`] are claimed, later threads share one overflow slot with
//! atomic read-modify-writes (correct, just slower).
//!
//! The process peak cannot be kept exactly without a shared write per
//! event. Each thread counts its net bytes since it last looked, and every
//! time that passes [`PEAK_STEP`] it sums the slots and raises the peak.
//! Between two looks the level moves by less than `PEAK_STEP` per thread, so
//! the recorded peak is at most that much below the true one (and
//! `global_stats` also takes the current level into account).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};

use crossbeam_utils::CachePadded;

use super::AllocStats;

/// Slots for as many threads; later threads share the overflow slot.
pub(super) const SLOTS: usize = 256;
/// Net bytes a thread allocates between two looks at the process peak.
pub(super) const PEAK_STEP: i64 = 16 * 1024;

/// One thread's share of the process totals.
pub(super) struct Slot {
    allocations: AtomicU64,
    deallocations: AtomicU64,
    reallocations: AtomicU64,
    bytes_allocated: AtomicU64,
    bytes_deallocated: AtomicU64,
}

impl Slot {
    const fn new() -> Self {
        Self {
            allocations: AtomicU64::new(0),
            deallocations: AtomicU64::new(0),
            reallocations: AtomicU64::new(0),
            bytes_allocated: AtomicU64::new(0),
            bytes_deallocated: AtomicU64::new(0),
        }
    }

    /// Counts an allocation of `size` bytes.
    #[inline]
    pub(super) fn alloc(&self, size: u64, shared: bool) {
        add(&self.allocations, 1, shared);
        add(&self.bytes_allocated, size, shared);
    }

    /// Counts a deallocation of `size` bytes.
    #[inline]
    pub(super) fn dealloc(&self, size: u64, shared: bool) {
        add(&self.deallocations, 1, shared);
        add(&self.bytes_deallocated, size, shared);
    }

    /// Counts a reallocation from `old` to `new` bytes.
    #[inline]
    pub(super) fn realloc(&self, old: u64, new: u64, shared: bool) {
        add(&self.reallocations, 1, shared);
        add(&self.bytes_allocated, new, shared);
        add(&self.bytes_deallocated, old, shared);
    }
}

/// Adds `v` to a counter: a load and a store when this thread is the
/// slot's only writer (`shared == false`), else an atomic add.
#[inline(always)]
fn add(counter: &AtomicU64, v: u64, shared: bool) {
    if shared {
        counter.fetch_add(v, Relaxed);
    } else {
        counter.store(counter.load(Relaxed).wrapping_add(v), Relaxed);
    }
}

/// `SLOTS` owned slots, then the shared overflow slot.
static TABLE: [CachePadded<Slot>; SLOTS + 1] = [const { CachePadded::new(Slot::new()) }; SLOTS + 1];
/// How many slots have been handed out (may pass `SLOTS`).
static CLAIMED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);
static SEEN: AtomicBool = AtomicBool::new(false);

/// Claims a slot for a new thread: its index, or `SLOTS` (the shared
/// overflow slot) when all are taken.
#[cold]
pub(super) fn claim() -> usize {
    SEEN.store(true, Relaxed);
    CLAIMED.fetch_add(1, Relaxed).min(SLOTS)
}

/// The slot at `index` (`index <= SLOTS`), and whether it is shared.
#[inline(always)]
pub(super) fn slot(index: usize) -> (&'static Slot, bool) {
    (&TABLE[index.min(SLOTS)], index >= SLOTS)
}

/// Whether any thread has counted anything.
pub(super) fn seen() -> bool {
    SEEN.load(Relaxed)
}

/// Sums the slots and raises the recorded peak to the current level.
#[cold]
#[inline(never)]
pub(super) fn look_at_peak() {
    let now = sum().current_bytes;
    PEAK.fetch_max(now, Relaxed);
}

/// The process totals, summed over the slots.
pub(super) fn sum() -> AllocStats {
    let used = CLAIMED.load(Relaxed).min(SLOTS);
    let mut s = AllocStats::default();
    for slot in TABLE[..used].iter().chain(std::iter::once(&TABLE[SLOTS])) {
        s.allocations = s.allocations.wrapping_add(slot.allocations.load(Relaxed));
        s.deallocations = s
            .deallocations
            .wrapping_add(slot.deallocations.load(Relaxed));
        s.reallocations = s
            .reallocations
            .wrapping_add(slot.reallocations.load(Relaxed));
        s.bytes_allocated = s
            .bytes_allocated
            .wrapping_add(slot.bytes_allocated.load(Relaxed));
        s.bytes_deallocated = s
            .bytes_deallocated
            .wrapping_add(slot.bytes_deallocated.load(Relaxed));
    }
    s.current_bytes = s.bytes_allocated.wrapping_sub(s.bytes_deallocated) as i64;
    s.peak_bytes = PEAK.load(Relaxed).max(s.current_bytes).max(0) as u64;
    s
}
