//! A counting global allocator with per-thread counters.
//!
//! [`Counting`] wraps any [`GlobalAlloc`] (the system allocator, mimalloc,
//! ...) and forwards all four methods to it unchanged, counting on the way.
//! Every event is counted once, in the calling thread's *slot*: a set of
//! counters in a static table that only that thread writes (relaxed loads
//! and stores). The thread finds its slot through a `const`-initialised
//! thread-local without a destructor, so counting never allocates, never
//! recurses into the allocator, and still works while the thread is being
//! torn down. [`thread_stats`] and [`measure`] read the calling thread's
//! slot; [`global_stats`] sums all of them.
//!
//! The per-thread counters are why this exists next to `stats_alloc`: a test
//! that asserts an allocation budget with process-wide counters fails at
//! random when the test harness (or any other thread) allocates at the same
//! time. [`measure`] counts only the calling thread, only while its closure
//! runs.
//!
//! # Cost
//!
//! An event is a thread-local access and relaxed loads and stores (no
//! locked instructions) to the thread's own slot: two counters, the
//! thread's peak, and a compare that decides when to sample the process
//! peak. The first version used shared atomics for the totals: three
//! locked read-modify-writes per event cost about 25 ns per
//! allocate-and-free pair on the development VM; the second kept the
//! thread's counters twice (thread-local cells and the slot), about 55
//! instructions of bookkeeping per pair; one set brings that to the figure
//! in the crate README. `counting/totals.rs` explains the slots, what
//! happens past 256 threads, and why the process peak is sampled.
//!
//! # What is counted
//!
//! * `alloc` and `alloc_zeroed`: one allocation of `layout.size()` bytes.
//! * `dealloc`: one deallocation of `layout.size()` bytes.
//! * `realloc` that succeeds: one reallocation; the old size is counted as
//!   deallocated bytes and the new size as allocated bytes, so
//!   `current_bytes` stays `bytes_allocated - bytes_deallocated`. A failed
//!   call (null) counts nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

mod totals;

/// A [`GlobalAlloc`] that forwards to `A` and counts what passes through.
///
/// Counters are process-wide statics found through a `const`-initialised
/// thread-local: there is one set per process, whichever `Counting` value is installed.
/// Read them with [`thread_stats`], [`global_stats`] and [`measure`].
///
/// ```
/// use std::alloc::System;
/// use arenapool_alloc::Counting;
///
/// #[global_allocator]
/// static ALLOC: Counting<System> = Counting::new(System);
///
/// let (v, stats) = arenapool_alloc::measure(|| vec![0u8; 100]);
/// assert_eq!(v.len(), 100);
/// assert_eq!(stats.allocations, 1);
/// assert_eq!(stats.bytes_allocated, 100);
/// assert!(arenapool_alloc::is_counting());
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Counting<A = System> {
    inner: A,
}

impl<A> Counting<A> {
    /// Wraps `inner`. `const`, so it can initialise a `#[global_allocator]`
    /// static.
    pub const fn new(inner: A) -> Self {
        Self { inner }
    }

    /// The wrapped allocator.
    pub const fn inner(&self) -> &A {
        &self.inner
    }
}

// SAFETY: every method forwards to `self.inner` with the caller's arguments
// unchanged and returns its result unchanged, so `Counting<A>` upholds
// exactly the contract `A` upholds. Counting only touches atomics and
// a destructor-free thread-local, which never allocate or unwind.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantee (non-zero size).
        let ptr = unsafe { self.inner.alloc(layout) };
        if !ptr.is_null() {
            on_alloc(layout.size());
        }
        ptr
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantee (non-zero size).
        let ptr = unsafe { self.inner.alloc_zeroed(layout) };
        if !ptr.is_null() {
            on_alloc(layout.size());
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantee that `ptr` came
        // from this allocator (hence from `inner`) with `layout`.
        unsafe { self.inner.dealloc(ptr, layout) };
        on_dealloc(layout.size());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees about `ptr`,
        // `layout` and `new_size`.
        let new = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            on_realloc(layout.size(), new_size);
        }
        new
    }
}

/// Allocation counters: for one thread, for the process, or the difference
/// between two snapshots.
///
/// Byte counts are the sizes requested in each [`Layout`], not what the
/// underlying allocator rounded them up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Successful `alloc` and `alloc_zeroed` calls.
    pub allocations: u64,
    /// `dealloc` calls.
    pub deallocations: u64,
    /// Successful `realloc` calls (not counted as allocations or
    /// deallocations).
    pub reallocations: u64,
    /// Bytes handed out: allocation sizes plus the new size of every
    /// reallocation.
    pub bytes_allocated: u64,
    /// Bytes given back: deallocation sizes plus the old size of every
    /// reallocation.
    pub bytes_deallocated: u64,
    /// `bytes_allocated - bytes_deallocated`. Signed because one thread can
    /// free memory another thread allocated, which drives that thread's
    /// level below zero.
    pub current_bytes: i64,
    /// The highest `current_bytes` reached (never below 0). For
    /// [`thread_stats`], since the thread started (exact); for
    /// [`global_stats`], since the process started (sampled, see there); for [`measure`], how far the level rose above where it
    /// stood when the closure started; for [`AllocStats::since`], how much
    /// the high-water mark rose between the two snapshots.
    pub peak_bytes: u64,
}

impl AllocStats {
    /// What happened between `earlier` and `self` (two snapshots of the
    /// same counters, `earlier` taken first).
    ///
    /// Every counter is the difference of the two. `peak_bytes` is how much
    /// the high-water mark rose, which is 0 when the interval never went
    /// above the earlier peak; to know the peak of a piece of code itself,
    /// use [`measure`].
    ///
    /// ```
    /// use arenapool_alloc::AllocStats;
    ///
    /// let a = AllocStats { allocations: 3, bytes_allocated: 64, current_bytes: 64, peak_bytes: 64, ..Default::default() };
    /// let b = AllocStats { allocations: 5, bytes_allocated: 96, current_bytes: 96, peak_bytes: 96, ..Default::default() };
    /// let d = b.since(&a);
    /// assert_eq!((d.allocations, d.bytes_allocated, d.current_bytes, d.peak_bytes), (2, 32, 32, 32));
    /// ```
    #[must_use]
    pub fn since(&self, earlier: &AllocStats) -> AllocStats {
        AllocStats {
            allocations: self.allocations.wrapping_sub(earlier.allocations),
            deallocations: self.deallocations.wrapping_sub(earlier.deallocations),
            reallocations: self.reallocations.wrapping_sub(earlier.reallocations),
            bytes_allocated: self.bytes_allocated.wrapping_sub(earlier.bytes_allocated),
            bytes_deallocated: self
                .bytes_deallocated
                .wrapping_sub(earlier.bytes_deallocated),
            current_bytes: self.current_bytes.wrapping_sub(earlier.current_bytes),
            peak_bytes: self.peak_bytes.saturating_sub(earlier.peak_bytes),
        }
    }
}

/// The thread-local part: which slot of the table holds this thread's
/// counters. No destructor, so the thread-local needs no exit hook, never
/// allocates, and stays usable until the thread is gone.
struct Local {
    /// This thread's slot in the table; `None` until the first event, and
    /// for threads that found the table full.
    slot: Cell<Option<&'static totals::Slot>>,
    /// Whether this thread has asked for a slot.
    claimed: Cell<bool>,
    /// The counters of a thread that found the table full.
    own: totals::Slot,
}

impl Local {
    const fn new() -> Self {
        Self {
            slot: Cell::new(None),
            claimed: Cell::new(false),
            own: totals::Slot::new(),
        }
    }

    /// The slot that holds this thread's counters (all zero before the
    /// first event).
    #[inline]
    fn counters(&self) -> &totals::Slot {
        match self.slot.get() {
            Some(slot) => slot,
            None => &self.own,
        }
    }
}

thread_local! {
    static LOCAL: Local = const { Local::new() };
}

/// An event, for the paths off the fast one.
#[derive(Clone, Copy)]
enum Event {
    Alloc(u64),
    Dealloc(u64),
    Realloc(u64, u64),
}

impl Event {
    fn count(self, slot: &totals::Slot) {
        match self {
            Event::Alloc(size) => slot.alloc(size),
            Event::Dealloc(size) => slot.dealloc(size),
            Event::Realloc(old, new) => slot.realloc(old, new),
        }
    }

    /// Adds the event to the shared overflow slot.
    fn count_shared(self) {
        totals::overflow().add_shared(match self {
            Event::Alloc(size) => [1, 0, 0, size, 0],
            Event::Dealloc(size) => [0, 1, 0, 0, size],
            Event::Realloc(old, new) => [0, 0, 1, new, old],
        });
    }
}

/// Counts an event of a thread without a slot: claims one on its first
/// event; if the table is full, counts in the thread-local slot and in the
/// shared overflow slot.
#[cold]
#[inline(never)]
fn count_slow(local: &Local, event: Event) {
    if !local.claimed.get() {
        local.claimed.set(true);
        if let Some(slot) = totals::claim() {
            local.slot.set(Some(slot));
            event.count(slot);
            return;
        }
    }
    event.count(&local.own);
    event.count_shared();
}

/// Counts an event during thread teardown (unreachable with a
/// destructor-free thread-local, but should that change the event still
/// lands in the totals).
#[cold]
#[inline(never)]
fn count_teardown(event: Event) {
    event.count_shared();
}

#[inline]
fn on_alloc(size: usize) {
    let size = size as u64;
    let counted = LOCAL.try_with(|l| match l.slot.get() {
        Some(slot) => slot.alloc(size),
        None => count_slow(l, Event::Alloc(size)),
    });
    if counted.is_err() {
        count_teardown(Event::Alloc(size));
    }
}

#[inline]
fn on_dealloc(size: usize) {
    let size = size as u64;
    let counted = LOCAL.try_with(|l| match l.slot.get() {
        Some(slot) => slot.dealloc(size),
        None => count_slow(l, Event::Dealloc(size)),
    });
    if counted.is_err() {
        count_teardown(Event::Dealloc(size));
    }
}

#[inline]
fn on_realloc(old: usize, new: usize) {
    let (old, new) = (old as u64, new as u64);
    let counted = LOCAL.try_with(|l| match l.slot.get() {
        Some(slot) => slot.realloc(old, new),
        None => count_slow(l, Event::Realloc(old, new)),
    });
    if counted.is_err() {
        count_teardown(Event::Realloc(old, new));
    }
}

/// The calling thread's counters since it started.
///
/// All zero if no [`Counting`] allocator is installed (see
/// [`is_counting`]).
///
/// ```
/// let before = arenapool_alloc::thread_stats();
/// let after = arenapool_alloc::thread_stats();
/// assert_eq!(after.since(&before).allocations, 0);
/// ```
pub fn thread_stats() -> AllocStats {
    LOCAL
        .try_with(|l| l.counters().snapshot())
        .unwrap_or_default()
}

/// The process totals: every thread, including threads that have exited.
///
/// Summed over per-thread slots when called (see the module docs of
/// `counting/totals.rs` in the source), with relaxed loads: while other
/// threads allocate, a snapshot can mix counts from slightly different
/// moments. `current_bytes` is `bytes_allocated - bytes_deallocated` of the
/// snapshot. `peak_bytes` is sampled: it can be below the true process
/// peak by up to 16 KiB per thread that was allocating around the peak
/// (the per-thread peaks of [`thread_stats`] and [`measure`] are exact).
///
/// ```
/// let g = arenapool_alloc::global_stats();
/// assert!(g.bytes_allocated >= g.bytes_deallocated || !arenapool_alloc::is_counting());
/// ```
pub fn global_stats() -> AllocStats {
    totals::sum()
}

/// Runs `f` and returns its value with what the calling thread allocated
/// while it ran.
///
/// Allocations by other threads (including threads `f` spawns) are not
/// counted, so a budget asserted with `measure` does not fail because the
/// test harness allocated at the same time. `peak_bytes` is how far the
/// thread's level rose above where it stood when `f` started. Calls nest.
/// If `f` panics, the panic goes on with the thread's high-water mark put
/// back (as [`thread_stats`] and an enclosing `measure` expect), not left
/// lowered to where `f` started.
///
/// Without a [`Counting`] allocator installed every counter is 0; check
/// [`is_counting`] to tell that from "allocated nothing".
///
/// ```
/// let (sum, stats) = arenapool_alloc::measure(|| (1..=10).sum::<u32>());
/// assert_eq!(sum, 55);
/// assert_eq!(stats.allocations, 0);
/// ```
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, AllocStats) {
    // Lower the thread's high-water mark to the current level, so the peak
    // seen at the end is the peak reached during `f`; restore the higher
    // of the two afterwards so `thread_stats` keeps its meaning. `f` is user
    // code and may panic: the restore is a guard, so the unwind does it too.
    let saved_peak = LOCAL.try_with(|l| {
        let counters = l.counters();
        let peak = counters.peak();
        counters.set_peak(counters.snapshot().current_bytes);
        peak
    });
    let restore = RestorePeak(saved_peak.ok());
    let before = thread_stats();
    let value = f();
    let after = thread_stats();
    let peak_during = LOCAL.try_with(|l| l.counters().peak()).unwrap_or(0);
    drop(restore);
    let mut stats = after.since(&before);
    stats.peak_bytes = peak_during.saturating_sub(before.current_bytes).max(0) as u64;
    (value, stats)
}

/// Puts back the thread's high-water mark that [`measure`] lowered (the
/// higher of the saved one and the one reached since) when dropped: after
/// `f` returns, or while a panic in `f` unwinds.
struct RestorePeak(Option<i64>);

impl Drop for RestorePeak {
    fn drop(&mut self) {
        // The thread may have claimed its slot during `f`: `counters` is the
        // slot that holds its counters now (a fresh slot started at level 0,
        // which is where an unclaimed thread stood).
        if let Some(saved) = self.0 {
            let _ = LOCAL.try_with(|l| {
                let counters = l.counters();
                counters.set_peak(counters.peak().max(saved));
            });
        }
    }
}

/// Whether a [`Counting`] allocator is installed and has counted an
/// allocation, so "0 allocations" can be told from "not counting".
///
/// ```
/// // This doctest installs no `Counting` allocator.
/// assert!(!arenapool_alloc::is_counting());
/// assert_eq!(arenapool_alloc::measure(|| vec![1, 2, 3]).1.allocations, 0);
/// ```
pub fn is_counting() -> bool {
    totals::seen()
}

#[cfg(all(test, not(loom)))]
mod tests;
