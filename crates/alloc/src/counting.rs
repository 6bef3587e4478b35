//! A counting global allocator with per-thread counters.
//!
//! [`Counting`] wraps any [`GlobalAlloc`] (the system allocator, mimalloc,
//! ...) and forwards all four methods to it unchanged, counting on the way.
//! Every event is counted twice:
//!
//! * in the calling thread's counters: plain [`Cell`]s in a
//!   `const`-initialised thread-local without a destructor, so reading or
//!   bumping them never allocates, never recurses into the allocator, and
//!   still works while the thread is being torn down;
//! * in the process totals: relaxed atomics in one cache-padded static.
//!
//! The per-thread counters are why this exists next to `stats_alloc`: a test
//! that asserts an allocation budget with process-wide counters fails at
//! random when the test harness (or any other thread) allocates at the same
//! time. [`measure`] counts only the calling thread, only while its closure
//! runs.
//!
//! # Cost, and why the totals are shared atomics
//!
//! The thread-local side is a handful of non-atomic adds. The process side
//! is three relaxed read-modify-writes per event (count, bytes, current
//! level) plus a relaxed load of the peak, all on one cache line. Keeping
//! the totals per thread and summing them on demand would avoid the shared
//! line, but a sum needs every thread's counters to outlive the thread,
//! which needs a thread-exit hook, and std forbids a global allocator from
//! using thread-locals with destructors. Uncontended, the shared atomics
//! cost about a nanosecond per allocate-and-free pair (see the crate
//! README's benchmark); under heavy multi-threaded allocation the shared
//! line is contended, and the per-thread counters are the ones to use.
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
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

use crossbeam_utils::CachePadded;

/// A [`GlobalAlloc`] that forwards to `A` and counts what passes through.
///
/// Counters are process-wide statics plus `const`-initialised thread-locals:
/// there is one set per process, whichever `Counting` value is installed.
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
// destructor-free thread-local cells, which never allocate or unwind.
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
    /// [`thread_stats`] and [`global_stats`], since the thread or process
    /// started; for [`measure`], how far the level rose above where it
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

/// One thread's counters. No destructor, so the thread-local needs no exit
/// hook and stays usable until the thread is gone.
struct Local {
    allocations: Cell<u64>,
    deallocations: Cell<u64>,
    reallocations: Cell<u64>,
    bytes_allocated: Cell<u64>,
    bytes_deallocated: Cell<u64>,
    current: Cell<i64>,
    peak: Cell<i64>,
}

impl Local {
    const fn new() -> Self {
        Self {
            allocations: Cell::new(0),
            deallocations: Cell::new(0),
            reallocations: Cell::new(0),
            bytes_allocated: Cell::new(0),
            bytes_deallocated: Cell::new(0),
            current: Cell::new(0),
            peak: Cell::new(0),
        }
    }

    #[inline]
    fn grow(&self, bytes: i64) {
        let now = self.current.get().wrapping_add(bytes);
        self.current.set(now);
        if now > self.peak.get() {
            self.peak.set(now);
        }
    }

    fn snapshot(&self) -> AllocStats {
        AllocStats {
            allocations: self.allocations.get(),
            deallocations: self.deallocations.get(),
            reallocations: self.reallocations.get(),
            bytes_allocated: self.bytes_allocated.get(),
            bytes_deallocated: self.bytes_deallocated.get(),
            current_bytes: self.current.get(),
            peak_bytes: self.peak.get().max(0) as u64,
        }
    }
}

thread_local! {
    static LOCAL: Local = const { Local::new() };
}

/// The process totals. One cache line of counters that always change
/// together, padded so no other static shares it.
struct Totals {
    allocations: AtomicU64,
    deallocations: AtomicU64,
    reallocations: AtomicU64,
    bytes_allocated: AtomicU64,
    bytes_deallocated: AtomicU64,
    current: AtomicI64,
    peak: AtomicI64,
    seen: AtomicBool,
}

static TOTALS: CachePadded<Totals> = CachePadded::new(Totals {
    allocations: AtomicU64::new(0),
    deallocations: AtomicU64::new(0),
    reallocations: AtomicU64::new(0),
    bytes_allocated: AtomicU64::new(0),
    bytes_deallocated: AtomicU64::new(0),
    current: AtomicI64::new(0),
    peak: AtomicI64::new(0),
    seen: AtomicBool::new(false),
});

/// Sizes come from a `Layout`, so they are at most `isize::MAX`.
#[inline]
fn signed(size: usize) -> i64 {
    size as i64
}

#[inline]
fn global_grow(delta: i64) {
    let now = TOTALS.current.fetch_add(delta, Relaxed).wrapping_add(delta);
    if delta > 0 && now > TOTALS.peak.load(Relaxed) {
        TOTALS.peak.fetch_max(now, Relaxed);
    }
}

#[inline]
fn on_alloc(size: usize) {
    if !TOTALS.seen.load(Relaxed) {
        TOTALS.seen.store(true, Relaxed);
    }
    TOTALS.allocations.fetch_add(1, Relaxed);
    TOTALS.bytes_allocated.fetch_add(size as u64, Relaxed);
    global_grow(signed(size));
    // A destructor-free const thread-local is always accessible; should that
    // ever change, the event is still in the process totals.
    let _ = LOCAL.try_with(|l| {
        l.allocations.set(l.allocations.get().wrapping_add(1));
        l.bytes_allocated
            .set(l.bytes_allocated.get().wrapping_add(size as u64));
        l.grow(signed(size));
    });
}

#[inline]
fn on_dealloc(size: usize) {
    TOTALS.deallocations.fetch_add(1, Relaxed);
    TOTALS.bytes_deallocated.fetch_add(size as u64, Relaxed);
    global_grow(-signed(size));
    let _ = LOCAL.try_with(|l| {
        l.deallocations.set(l.deallocations.get().wrapping_add(1));
        l.bytes_deallocated
            .set(l.bytes_deallocated.get().wrapping_add(size as u64));
        l.grow(-signed(size));
    });
}

#[inline]
fn on_realloc(old: usize, new: usize) {
    if !TOTALS.seen.load(Relaxed) {
        TOTALS.seen.store(true, Relaxed);
    }
    TOTALS.reallocations.fetch_add(1, Relaxed);
    TOTALS.bytes_allocated.fetch_add(new as u64, Relaxed);
    TOTALS.bytes_deallocated.fetch_add(old as u64, Relaxed);
    let delta = signed(new) - signed(old);
    global_grow(delta);
    let _ = LOCAL.try_with(|l| {
        l.reallocations.set(l.reallocations.get().wrapping_add(1));
        l.bytes_allocated
            .set(l.bytes_allocated.get().wrapping_add(new as u64));
        l.bytes_deallocated
            .set(l.bytes_deallocated.get().wrapping_add(old as u64));
        l.grow(delta);
    });
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
    LOCAL.try_with(Local::snapshot).unwrap_or_default()
}

/// The process totals: every thread, including threads that have exited.
///
/// The counters are read one by one with relaxed loads, so while other
/// threads allocate, a snapshot can mix counts from slightly different
/// moments (for example `current_bytes` can disagree with
/// `bytes_allocated - bytes_deallocated` by an allocation in flight).
///
/// ```
/// let g = arenapool_alloc::global_stats();
/// assert!(g.bytes_allocated >= g.bytes_deallocated || !arenapool_alloc::is_counting());
/// ```
pub fn global_stats() -> AllocStats {
    AllocStats {
        allocations: TOTALS.allocations.load(Relaxed),
        deallocations: TOTALS.deallocations.load(Relaxed),
        reallocations: TOTALS.reallocations.load(Relaxed),
        bytes_allocated: TOTALS.bytes_allocated.load(Relaxed),
        bytes_deallocated: TOTALS.bytes_deallocated.load(Relaxed),
        current_bytes: TOTALS.current.load(Relaxed),
        peak_bytes: TOTALS.peak.load(Relaxed).max(0) as u64,
    }
}

/// Runs `f` and returns its value with what the calling thread allocated
/// while it ran.
///
/// Allocations by other threads (including threads `f` spawns) are not
/// counted, so a budget asserted with `measure` does not fail because the
/// test harness allocated at the same time. `peak_bytes` is how far the
/// thread's level rose above where it stood when `f` started. Calls nest.
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
    // of the two afterwards so `thread_stats` keeps its meaning.
    let saved_peak = LOCAL.try_with(|l| {
        let peak = l.peak.get();
        l.peak.set(l.current.get());
        peak
    });
    let before = thread_stats();
    let value = f();
    let after = thread_stats();
    let peak_during = LOCAL
        .try_with(|l| {
            let during = l.peak.get();
            if let Ok(saved) = saved_peak {
                l.peak.set(during.max(saved));
            }
            during
        })
        .unwrap_or(0);
    let mut stats = after.since(&before);
    stats.peak_bytes = peak_during.saturating_sub(before.current_bytes).max(0) as u64;
    (value, stats)
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
    TOTALS.seen.load(Relaxed)
}

#[cfg(test)]
mod tests {
    //! These tests call a `Counting` value directly (none is installed in
    //! the unit-test binary), so the counters move only by what each test
    //! does on its own thread.

    use super::*;

    static C: Counting<System> = Counting::new(System);

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn alloc_and_dealloc_are_counted_on_this_thread() {
        let before = thread_stats();
        let l = layout(48, 8);
        // SAFETY: non-zero size; freed below with the same layout.
        let p = unsafe { C.alloc(l) };
        assert!(!p.is_null());
        let mid = thread_stats().since(&before);
        assert_eq!(mid.allocations, 1);
        assert_eq!(mid.bytes_allocated, 48);
        assert_eq!(mid.current_bytes, 48);
        // SAFETY: `p` came from `C.alloc(l)`.
        unsafe { C.dealloc(p, l) };
        let d = thread_stats().since(&before);
        assert_eq!(d.deallocations, 1);
        assert_eq!(d.bytes_deallocated, 48);
        assert_eq!(d.current_bytes, 0);
        assert!(is_counting());
    }

    #[test]
    fn alloc_zeroed_is_zeroed_and_counted() {
        let l = layout(64, 16);
        let ((), s) = measure(|| {
            // SAFETY: non-zero size; freed below with the same layout.
            let p = unsafe { C.alloc_zeroed(l) };
            assert!(!p.is_null());
            assert_eq!(p.addr() % 16, 0);
            // SAFETY: `p` points to 64 initialised (zero) bytes.
            let bytes = unsafe { std::slice::from_raw_parts(p, 64) };
            assert!(bytes.iter().all(|&b| b == 0));
            // SAFETY: `p` came from `C.alloc_zeroed(l)`.
            unsafe { C.dealloc(p, l) };
        });
        assert_eq!((s.allocations, s.deallocations), (1, 1));
        assert_eq!(s.peak_bytes, 64);
        assert_eq!(s.current_bytes, 0);
    }

    #[test]
    fn realloc_keeps_contents_and_counts_both_sizes() {
        let l = layout(8, 8);
        let ((), s) = measure(|| {
            // SAFETY: non-zero size.
            let p = unsafe { C.alloc(l) };
            assert!(!p.is_null());
            // SAFETY: `p` is valid for 8 bytes.
            unsafe { p.write_bytes(7, 8) };
            // SAFETY: `p` came from `C` with `l`; 100 is non-zero.
            let q = unsafe { C.realloc(p, l, 100) };
            assert!(!q.is_null());
            // SAFETY: `q` is valid for 100 bytes, the first 8 copied from `p`.
            assert_eq!(unsafe { std::slice::from_raw_parts(q, 8) }, &[7; 8]);
            // SAFETY: `q` came from `C` with size 100, align 8.
            unsafe { C.dealloc(q, layout(100, 8)) };
        });
        assert_eq!(s.allocations, 1);
        assert_eq!(s.reallocations, 1);
        assert_eq!(s.deallocations, 1);
        assert_eq!(s.bytes_allocated, 108);
        assert_eq!(s.bytes_deallocated, 108);
        assert_eq!(s.current_bytes, 0);
        assert_eq!(s.peak_bytes, 100);
    }

    #[test]
    fn measure_peak_is_relative_and_nested_measures_restore_the_peak() {
        let l = layout(1000, 8);
        // SAFETY: non-zero size; freed at the end.
        let outer_block = unsafe { C.alloc(l) };
        let before = thread_stats();
        let ((), outer) = measure(|| {
            let ((), inner) = measure(|| {
                // SAFETY: non-zero size; freed right away.
                let p = unsafe { C.alloc(layout(10, 1)) };
                // SAFETY: `p` came from `C` with this layout.
                unsafe { C.dealloc(p, layout(10, 1)) };
            });
            assert_eq!(inner.peak_bytes, 10);
            // SAFETY: non-zero size; freed right away.
            let p = unsafe { C.alloc(layout(30, 1)) };
            // SAFETY: `p` came from `C` with this layout.
            unsafe { C.dealloc(p, layout(30, 1)) };
        });
        assert_eq!(outer.peak_bytes, 30);
        assert_eq!(outer.allocations, 2);
        // The thread's own high-water mark survives the measures.
        assert!(thread_stats().peak_bytes >= before.peak_bytes);
        // SAFETY: `outer_block` came from `C.alloc(l)`.
        unsafe { C.dealloc(outer_block, l) };
    }

    #[test]
    fn other_threads_are_not_counted_by_measure_but_are_in_the_totals() {
        let l = layout(256, 8);
        let g0 = global_stats();
        let ((), s) = measure(|| {
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    // SAFETY: non-zero size; freed right away.
                    let p = unsafe { C.alloc(l) };
                    // SAFETY: `p` came from `C.alloc(l)`.
                    unsafe { C.dealloc(p, l) };
                });
            });
        });
        // Spawning may allocate through the (uncounted) system allocator,
        // but nothing went through `C` on this thread.
        assert_eq!(s, AllocStats::default());
        let g = global_stats().since(&g0);
        assert!(g.allocations >= 1 && g.bytes_allocated >= 256);
    }

    struct SendPtr(*mut u8);
    // SAFETY: the block behind the pointer is plain bytes owned by whoever
    // holds the `SendPtr`; moving it to another thread is like moving a `Box`.
    unsafe impl Send for SendPtr {}

    #[test]
    fn freeing_another_threads_block_drives_the_level_negative() {
        let l = layout(32, 8);
        // SAFETY: non-zero size.
        let p = SendPtr(unsafe { C.alloc(l) });
        let ((), s) = measure(|| {
            std::thread::spawn(move || {
                let ((), s) = measure(|| {
                    let p = p;
                    // SAFETY: `p.0` came from `C.alloc(l)` and is freed once.
                    unsafe { C.dealloc(p.0, l) };
                });
                assert_eq!(s.current_bytes, -32);
                assert_eq!(s.peak_bytes, 0);
            })
            .join()
            .unwrap();
        });
        assert_eq!(s.deallocations, 0);
    }

    #[test]
    fn failed_allocations_count_nothing() {
        struct Refuse;
        // SAFETY: `alloc` and `realloc` return null, which is always allowed;
        // `dealloc` is never reached with a pointer since none is handed out.
        unsafe impl GlobalAlloc for Refuse {
            unsafe fn alloc(&self, _: Layout) -> *mut u8 {
                std::ptr::null_mut()
            }
            unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
        }
        let c = Counting::new(Refuse);
        let ((), s) = measure(|| {
            // SAFETY: non-zero size.
            assert!(unsafe { c.alloc(layout(8, 8)) }.is_null());
            // SAFETY: non-zero size.
            assert!(unsafe { c.alloc_zeroed(layout(8, 8)) }.is_null());
        });
        assert_eq!(s, AllocStats::default());
    }
}
