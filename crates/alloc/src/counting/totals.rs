//! The counters: one [`Slot`] per thread, in a static table, which is the
//! only place a thread's counts are kept.
//!
//! A single shared atomic per counter would cost a locked read-modify-write
//! per counter per event: measured at about 25 ns per allocate-and-free pair
//! on the development VM, ten times the budget. Instead each thread claims
//! a slot in a static table on its first allocation and is the only writer
//! of that slot, so its updates are relaxed loads and stores (plain `mov`s
//! on x86), on a cache line no other thread writes. The same slot serves
//! [`thread_stats`](crate::thread_stats) and [`measure`](crate::measure)
//! (the calling thread reads its own slot) and
//! [`global_stats`](crate::global_stats) (the sum over the slots, taken
//! when asked for). An earlier version kept the thread's counters a second
//! time in thread-local cells; one set is half the stores.
//!
//! Per allocation the slot takes two counter updates (count and bytes), a
//! load of the bytes freed (the thread's level is `bytes_allocated -
//! bytes_deallocated`, not stored), and two compares: against the thread's
//! peak and against the level at which the process peak is next looked at.
//! A deallocation is two counter updates and lowers that level (see
//! below).
//!
//! Slots are never given back: a global allocator may not use a
//! thread-local with a destructor, so there is no thread-exit hook. That is
//! also what keeps the counts of exited threads in the totals. Once all
//! [`SLOTS`] are claimed, later threads keep their counts in a slot inside
//! their thread-local (exact per thread, as before) and add to one shared
//! overflow slot with atomic read-modify-writes (correct, just slower).
//!
//! The process peak cannot be kept exactly without a shared write per
//! event. Each thread looks at it (sums the slots and raises the recorded
//! peak) when its level has risen [`PEAK_STEP`] bytes above where it stood
//! at its last look, or above its lowest level since then plus
//! `PEAK_STEP`, whichever is lower. Between two looks a thread's level
//! rises by less than `PEAK_STEP`, so the recorded peak is at most that
//! much per thread below the true one (and `global_stats` also takes the
//! current level into account).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};

use crossbeam_utils::CachePadded;

use super::AllocStats;

/// Slots for as many threads; later threads share the overflow slot.
pub(super) const SLOTS: usize = 256;
/// How far a thread's level rises between two looks at the process peak.
pub(super) const PEAK_STEP: i64 = 16 * 1024;

/// One thread's counters.
///
/// Written only by its thread (relaxed load, then store) unless it is the
/// shared overflow slot, which only [`Slot::add_shared`] touches. Other
/// threads only read the five counters, to sum them.
pub(super) struct Slot {
    allocations: AtomicU64,
    deallocations: AtomicU64,
    reallocations: AtomicU64,
    bytes_allocated: AtomicU64,
    bytes_deallocated: AtomicU64,
    /// The thread's highest level, exact.
    peak: AtomicI64,
    /// The level at which the thread next looks at the process peak.
    look_at: AtomicI64,
}

/// Adds `v` to a counter only this thread writes: a load and a store.
#[inline(always)]
fn bump(counter: &AtomicU64, v: u64) -> u64 {
    let n = counter.load(Relaxed).wrapping_add(v);
    counter.store(n, Relaxed);
    n
}

impl Slot {
    pub(super) const fn new() -> Self {
        Self {
            allocations: AtomicU64::new(0),
            deallocations: AtomicU64::new(0),
            reallocations: AtomicU64::new(0),
            bytes_allocated: AtomicU64::new(0),
            bytes_deallocated: AtomicU64::new(0),
            peak: AtomicI64::new(0),
            look_at: AtomicI64::new(PEAK_STEP),
        }
    }

    /// The level reached after bytes were added: raises the peak, and looks
    /// at the process peak when due.
    #[inline(always)]
    fn rose(&self, allocated: u64) {
        let now = allocated.wrapping_sub(self.bytes_deallocated.load(Relaxed)) as i64;
        if now > self.peak.load(Relaxed) {
            self.peak.store(now, Relaxed);
        }
        if now >= self.look_at.load(Relaxed) {
            self.look(now);
        }
    }

    /// The level fell: lower the level of the next look to `PEAK_STEP`
    /// above it, if that is lower.
    #[inline(always)]
    fn fell(&self, deallocated: u64) {
        let now = self.bytes_allocated.load(Relaxed).wrapping_sub(deallocated) as i64;
        let look_at = now.wrapping_add(PEAK_STEP);
        if look_at < self.look_at.load(Relaxed) {
            self.look_at.store(look_at, Relaxed);
        }
    }

    #[cold]
    #[inline(never)]
    fn look(&self, now: i64) {
        self.look_at.store(now.wrapping_add(PEAK_STEP), Relaxed);
        let level = sum().current_bytes;
        PEAK.fetch_max(level, Relaxed);
    }

    /// Counts an allocation of `size` bytes (owner thread only).
    #[inline(always)]
    pub(super) fn alloc(&self, size: u64) {
        bump(&self.allocations, 1);
        self.rose(bump(&self.bytes_allocated, size));
    }

    /// Counts a deallocation of `size` bytes (owner thread only).
    #[inline(always)]
    pub(super) fn dealloc(&self, size: u64) {
        bump(&self.deallocations, 1);
        self.fell(bump(&self.bytes_deallocated, size));
    }

    /// Counts a reallocation from `old` to `new` bytes (owner thread only).
    #[inline(always)]
    pub(super) fn realloc(&self, old: u64, new: u64) {
        bump(&self.reallocations, 1);
        if new >= old {
            bump(&self.bytes_deallocated, old);
            self.rose(bump(&self.bytes_allocated, new));
        } else {
            bump(&self.bytes_allocated, new);
            self.fell(bump(&self.bytes_deallocated, old));
        }
    }

    /// Adds an event to the shared overflow slot: `(allocations,
    /// deallocations, reallocations, bytes allocated, bytes deallocated)`.
    #[cold]
    pub(super) fn add_shared(&self, counts: [u64; 5]) {
        let [a, d, r, ba, bd] = counts;
        self.allocations.fetch_add(a, Relaxed);
        self.deallocations.fetch_add(d, Relaxed);
        self.reallocations.fetch_add(r, Relaxed);
        self.bytes_allocated.fetch_add(ba, Relaxed);
        self.bytes_deallocated.fetch_add(bd, Relaxed);
    }

    /// The thread's counters (for the thread that owns the slot).
    pub(super) fn snapshot(&self) -> AllocStats {
        let bytes_allocated = self.bytes_allocated.load(Relaxed);
        let bytes_deallocated = self.bytes_deallocated.load(Relaxed);
        AllocStats {
            allocations: self.allocations.load(Relaxed),
            deallocations: self.deallocations.load(Relaxed),
            reallocations: self.reallocations.load(Relaxed),
            bytes_allocated,
            bytes_deallocated,
            current_bytes: bytes_allocated.wrapping_sub(bytes_deallocated) as i64,
            peak_bytes: self.peak.load(Relaxed).max(0) as u64,
        }
    }

    /// The thread's peak (owner thread only).
    pub(super) fn peak(&self) -> i64 {
        self.peak.load(Relaxed)
    }

    /// Sets the thread's peak (owner thread only; see
    /// [`measure`](crate::measure)).
    pub(super) fn set_peak(&self, peak: i64) {
        self.peak.store(peak, Relaxed);
    }
}

/// `SLOTS` owned slots, then the shared overflow slot.
static TABLE: [CachePadded<Slot>; SLOTS + 1] = [const { CachePadded::new(Slot::new()) }; SLOTS + 1];
/// How many slots have been handed out (may pass `SLOTS`).
static CLAIMED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);
static SEEN: AtomicBool = AtomicBool::new(false);

/// Claims a slot for a new thread, or `None` when all are taken (the
/// thread then uses [`overflow`]).
#[cold]
pub(super) fn claim() -> Option<&'static Slot> {
    SEEN.store(true, Relaxed);
    let index = CLAIMED.fetch_add(1, Relaxed);
    TABLE[..SLOTS].get(index).map(|s| &**s)
}

/// The shared slot of the threads that found no slot of their own (and of
/// events during thread teardown).
pub(super) fn overflow() -> &'static Slot {
    &TABLE[SLOTS]
}

/// Whether any thread has counted anything.
pub(super) fn seen() -> bool {
    SEEN.load(Relaxed)
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
