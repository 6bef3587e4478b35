//! [`Pool`]: acquire, release, waiting and statistics (growth is in
//! `grow.rs`, trimming in `trim.rs`).
//!
//! # The hot path
//!
//! With per-thread caches on (the default), acquiring pops an index from the
//! calling thread's cache and releasing pushes one: thread-local memory
//! only, no atomic read-modify-write (see `cache.rs`); an owned buffer's
//! reference to the pool comes from the cache's credits (`shared.rs`).
//! Without caches, or
//! when a cache is empty or full, the shared free list does the work: one
//! CAS on its head per buffer, or one per batch when a cache refills or
//! flushes.
//!
//! # Waiting
//!
//! [`Pool::acquire_blocking`] and the async [`Pool::acquire`] share one FIFO
//! wait queue (`wait.rs`). A release checks the `gate` word (one load it
//! makes anyway) and, only when someone waits, hands its slot straight to
//! the longest waiter. `wait.rs` explains why no wake-up is lost and
//! `cache.rs` how releases into thread caches take part.

use std::ptr::{self, NonNull};
use std::time::Duration;

use crate::backing::BackingReport;
use crate::builder::PoolBuilder;
use crate::cache;
use crate::error::{BuildError, Exhausted};
use crate::handle::{OwnedBuf, PoolBuf};
use crate::shared::{CACHES_OFF, Shared, WAITER};
use crate::stats::Stats;
use crate::sync::Ordering::{Acquire, Relaxed};
use crate::sync::lock;
use crate::wait::Panic;

pub use crate::shared::Pool;

impl Pool {
    /// A builder with the default settings; see [`PoolBuilder`].
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// A pool of `capacity` buffers of `buffer_size` bytes, other settings
    /// at their defaults.
    ///
    /// # Errors
    ///
    /// As [`PoolBuilder::build`].
    pub fn new(buffer_size: usize, capacity: usize) -> Result<Self, BuildError> {
        Self::builder()
            .buffer_size(buffer_size)
            .capacity(capacity)
            .build()
    }

    /// Takes a free buffer, growing the pool if it is empty and allowed to
    /// grow. Returns `None` (and counts a failed acquire) if neither works.
    /// Never blocks.
    ///
    /// With thread caches on, an empty pool first takes back the buffers
    /// parked in other threads' caches, so `None` means that every buffer
    /// is really held by a user.
    ///
    /// ```
    /// let pool = arenapool::Pool::new(64, 1)?;
    /// let buf = pool.try_acquire().unwrap();
    /// assert!(pool.try_acquire().is_none());
    /// drop(buf);
    /// assert!(pool.try_acquire().is_some());
    /// # Ok::<(), arenapool::BuildError>(())
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_acquire(&self) -> Option<PoolBuf<'_>> {
        let s = self.shared();
        match s.take::<false>() {
            Some(idx) => Some(PoolBuf::new(self, idx)),
            None => s.count_failure(),
        }
    }

    /// Like [`try_acquire`](Self::try_acquire), but the buffer is `'static`:
    /// it keeps the pool's memory alive by itself, so it can move into
    /// threads and tasks and outlive every `Pool` handle. In steady state
    /// this costs what `try_acquire` costs: the thread's cache hands out
    /// the buffer's reference to the pool from a batch it holds.
    ///
    /// ```
    /// let pool = arenapool::Pool::new(64, 1)?;
    /// let buf = pool.try_acquire_owned().unwrap();
    /// std::thread::spawn(move || drop(buf)).join().unwrap();
    /// assert_eq!(pool.stats().in_use, 0);
    /// # Ok::<(), arenapool::BuildError>(())
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_acquire_owned(&self) -> Option<OwnedBuf> {
        let s = self.shared();
        match s.take::<true>() {
            Some(idx) => Some(OwnedBuf::new(self, idx)),
            None => s.count_failure(),
        }
    }

    /// Takes a free buffer, **blocking the thread** up to `timeout` for one
    /// to be released if the pool is empty (and cannot grow). The thread
    /// sleeps while it waits; it does not spin. `Duration::MAX` waits
    /// without limit. In async code, use [`acquire`](Self::acquire)
    /// instead: this would block an executor's worker.
    ///
    /// # Errors
    ///
    /// [`Exhausted`] if no buffer became free in time.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = arenapool::Pool::new(64, 1)?;
    /// let held = pool.try_acquire().unwrap();
    /// let err = pool.acquire_blocking(Duration::from_millis(5)).unwrap_err();
    /// assert!(err.waited >= Duration::from_millis(5));
    /// std::thread::scope(|s| {
    ///     s.spawn(move || drop(held));
    ///     assert!(pool.acquire_blocking(Duration::from_secs(10)).is_ok());
    /// });
    /// # Ok::<(), arenapool::BuildError>(())
    /// ```
    #[track_caller]
    pub fn acquire_blocking(&self, timeout: Duration) -> Result<PoolBuf<'_>, Exhausted> {
        let idx = self.shared().take_blocking::<false>(timeout)?;
        Ok(PoolBuf::new(self, idx))
    }

    /// Like [`acquire_blocking`](Self::acquire_blocking), returning an
    /// [`OwnedBuf`].
    ///
    /// # Errors
    ///
    /// [`Exhausted`] if no buffer became free in time.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = arenapool::Pool::new(64, 1)?;
    /// let buf = pool.acquire_owned_blocking(Duration::from_millis(5))?;
    /// drop(pool); // the buffer keeps the memory
    /// assert_eq!(buf.capacity(), 64);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn acquire_owned_blocking(&self, timeout: Duration) -> Result<OwnedBuf, Exhausted> {
        let idx = self.shared().take_blocking::<true>(timeout)?;
        Ok(OwnedBuf::new(self, idx))
    }

    /// Bytes in each buffer, as configured: with size classes, the
    /// smallest class's ([`buffer_sizes`](Self::buffer_sizes) lists all).
    #[inline]
    pub fn buffer_size(&self) -> usize {
        self.shared().config.buffer_size
    }

    /// Alignment of each buffer in bytes.
    pub fn alignment(&self) -> usize {
        self.shared().config.alignment
    }

    /// Most slot indices each thread keeps in its cache (0: no caches).
    pub fn cache_size(&self) -> usize {
        self.shared().config.cache_size as usize
    }

    /// What the pool asked for its arenas and what it got, across all
    /// segments; see [`BackingReport`] and
    /// [`PoolBuilder::backing`](crate::PoolBuilder::backing).
    ///
    /// ```
    /// use arenapool::{Backing, Pages, Pool};
    ///
    /// let pool = Pool::builder().capacity(8).grow_to(32).backing(Backing::Mmap).build()?;
    /// let held: Vec<_> = (0..9).map(|_| pool.try_acquire().unwrap()).collect(); // grows once
    /// let report = pool.backing();
    /// assert_eq!(report.segments, 2);
    /// # #[cfg(target_os = "linux")]
    /// assert_eq!(report.obtained, Pages::Small);
    /// println!("{report}");
    /// # Ok::<(), arenapool::BuildError>(())
    /// ```
    pub fn backing(&self) -> BackingReport {
        let segments = &self.shared().segments;
        let request = segments.request();
        // Hold the growth lock so that no segment is half-published while
        // the report is made.
        let live = lock(&self.shared().slow.grow);
        // SAFETY: the growth lock is held and `live` is its count.
        let outcomes = unsafe { segments.outcomes(*live) };
        BackingReport::new(request.backing, request.lock, outcomes)
    }

    /// A snapshot of the pool's counters; see [`Stats`]. With size classes,
    /// their sum ([`class_stats`](Self::class_stats) gives each).
    pub fn stats(&self) -> Stats {
        self.family_stats()
    }

    /// The tracked buffers held right now, in every size class: where
    /// each was acquired, how long ago, its size. Empty unless the pool
    /// was built with [`track_leaks`](crate::PoolBuilder::track_leaks),
    /// and then it lists one buffer in `every` of those held (the sampled
    /// ones). Buffers released or acquired while it runs may be listed or
    /// not; a buffer lost to `mem::forget` is listed for as long as the
    /// pool lives.
    ///
    /// ```
    /// let pool = arenapool::Pool::builder().capacity(8).track_leaks(1).build()?;
    /// std::mem::forget(pool.try_acquire_owned().unwrap());
    /// let lost = pool.outstanding();
    /// assert_eq!(lost.len(), 1);
    /// assert!(lost[0].location.file().ends_with(".rs"));
    /// println!("{}", lost[0]); // "a 4096-byte buffer (slot 0) acquired at FILE:LINE:COLUMN AGE ago"
    /// # Ok::<(), arenapool::BuildError>(())
    /// ```
    pub fn outstanding(&self) -> Vec<crate::Outstanding> {
        let mut out = Vec::new();
        for k in 0..=self.shared().classes.pools.len() {
            let class = self.class(k);
            let s = class.shared();
            if let Some(leaks) = &s.leaks {
                leaks.outstanding(s.capacity.load(Acquire), s.config.buffer_size, &mut out);
            }
        }
        out
    }

    /// At the last handle's drop: one report of the tracked buffers still
    /// out, in every class (`leaks.rs`), unless made already.
    pub(crate) fn report_leaks(&self) {
        let Some(leaks) = &self.shared().leaks else {
            return;
        };
        if leaks.reported.swap(true, Relaxed) {
            return;
        }
        for k in 1..=self.shared().classes.pools.len() {
            if let Some(l) = &self.class(k).shared().leaks {
                l.reported.store(true, Relaxed);
            }
        }
        crate::leaks::report_at_close(&self.outstanding());
    }

    /// This pool's own counters, without its larger size classes.
    pub(crate) fn own_stats(&self) -> Stats {
        let s = self.shared();
        // The growth lock first, so that no trim holds free slots while
        // they are counted (they would count as in use).
        let live = lock(&s.slow.grow);
        let (cached, threads, tally) = s.cache_totals();
        let capacity = s.capacity.load(Acquire) as usize;
        let free = s.free.len(&s.segments) as usize;
        let in_use = capacity.saturating_sub(free + cached);
        // SAFETY: the growth lock is held and `live` is its count.
        let (reserved, resident) = unsafe { s.segments.footprint(*live) };
        let segments = *live;
        drop(live);
        let [acquires, refills, flushes] = tally;
        Stats {
            capacity,
            max_capacity: s.config.limit as usize,
            in_use,
            cached,
            high_water: s.frontier.load(Relaxed) as usize,
            held_high_water: s.slow.held_high.fetch_max(in_use, Relaxed).max(in_use),
            failed_acquires: s.slow.failed.load(Relaxed),
            waits: s.slow.waits.load(Relaxed),
            waiting: s.gate.load(Relaxed) / WAITER,
            wait_total: Duration::from_nanos(s.slow.wait_ns.load(Relaxed)),
            wait_max: Duration::from_nanos(s.slow.max_wait_ns.load(Relaxed)),
            acquires,
            // Every buffer acquired is held now or was released.
            releases: acquires.saturating_sub(in_use as u64),
            growths: s.slow.growths.load(Relaxed),
            trims: s.slow.trims.load(Relaxed) / 2,
            reserved_bytes: reserved,
            resident_bytes: resident,
            steals: s.slow.steals.load(Relaxed),
            refills,
            flushes,
            segments,
            threads,
            caches_off: s.gate.load(Relaxed) & CACHES_OFF != 0,
        }
    }

    /// The segment table, for registering the arenas with io_uring.
    #[cfg(all(feature = "io-uring", target_os = "linux"))]
    pub(crate) fn segments(&self) -> &crate::segments::Segments {
        &self.shared().segments
    }

    /// The live segments' memory, for io_uring to register: from now on
    /// the kernel may hold those pages, so no trim gives any back
    /// (`Segments::pin`).
    #[cfg(all(feature = "io-uring", target_os = "linux"))]
    pub(crate) fn pin_regions(&self) -> Vec<(u32, NonNull<u8>, usize)> {
        let live = lock(&self.shared().slow.grow);
        // SAFETY: the growth lock is held and `live` is its count.
        unsafe { self.shared().segments.pin(*live) }
    }
}

impl Shared {
    /// Leak tracking (`leaks.rs`): slot `idx` was just acquired at `at`.
    /// Out of line, so that the acquire path with tracking off is one
    /// compare of a configuration word it reads anyway.
    #[cold]
    #[inline(never)]
    pub(crate) fn track(&self, idx: u32, at: &'static std::panic::Location<'static>) {
        if let Some(leaks) = &self.leaks {
            leaks.acquired(idx, at);
        }
    }

    /// Buffers parked in thread caches, the threads that have one, and
    /// the tallies (acquires, refills, flushes) of every thread,
    /// live or exited, read under the cache-list lock so that an exiting
    /// thread's counts are in exactly one of the two places.
    fn cache_totals(&self) -> (usize, usize, [u64; 3]) {
        let caches = lock(&self.caches);
        let mut tally = [0; 3];
        self.slow.retired.add_to(&mut tally);
        for c in caches.iter() {
            c.tally.add_to(&mut tally);
        }
        (
            caches.iter().map(|c| c.len()).sum::<usize>(),
            caches.len(),
            tally,
        )
    }

    /// Notes how many buffers users hold right now, for
    /// [`Stats::held_high_water`]: called when the pool runs out (a
    /// growth, a failed acquire), where the peak is reached. Not from the
    /// wait queue's path: the loom model of two waiters and two releases
    /// (`wait/loom_tests.rs`) failed when the waiter took the cache-list
    /// lock there.
    ///
    /// A sample taken while a trim holds the free slots would count them
    /// as held, so it is dropped: the trim count is odd then, or has moved
    /// by the end (see `Shared::take_slow` for why a sample that saw the
    /// emptied list sees that). No lock: the wait queue's path calls this.
    #[cold]
    pub(crate) fn note_held(&self) {
        let trims = self.slow.trims.load(Acquire);
        if trims.is_multiple_of(2) {
            let in_use = self.held_now();
            if self.slow.trims.load(Acquire) == trims {
                self.slow.held_high.fetch_max(in_use, Relaxed);
            }
        }
    }

    /// [`note_held`](Self::note_held) for a caller that holds the growth
    /// lock, so that no trim runs.
    pub(crate) fn note_held_locked(&self) {
        let in_use = self.held_now();
        self.slow.held_high.fetch_max(in_use, Relaxed);
    }

    /// Buffers held by users right now: the capacity less the free and
    /// the cached ones.
    fn held_now(&self) -> usize {
        let (cached, _, _) = self.cache_totals();
        let capacity = self.capacity.load(Acquire) as usize;
        let free = self.free.len(&self.segments) as usize;
        capacity.saturating_sub(free + cached)
    }

    /// Takes a slot: from this thread's cache, else the free list, else the
    /// other threads' caches, else a new segment. Counts nothing on failure.
    /// With `OWNED`, also takes the owned buffer's reference to the pool
    /// (a credit of the cache, else one from `refs`): the caller holds a
    /// handle or an owned buffer, so the pool is alive.
    #[inline]
    pub(crate) fn take<const OWNED: bool>(&self) -> Option<u32> {
        self.check_alive();
        if self.config.cache_size > 0 {
            if let Some(idx) = cache::take::<OWNED>(self) {
                return Some(idx);
            }
            self.disown_if_off();
        }
        let idx = self.take_uncached()?;
        cache::count_uncached(self);
        if OWNED {
            self.add_ref(1);
        }
        Some(idx)
    }

    /// With the caches off for good, this thread's cache goes back to the
    /// shared list (`cache::disown`).
    #[inline]
    fn disown_if_off(&self) {
        if self.gate.load(Relaxed) & CACHES_OFF != 0 {
            cache::disown(self);
        }
    }

    /// Pointer to slot `idx`, derived from its arena's allocation.
    #[inline]
    pub(crate) fn slot_ptr(&self, idx: u32) -> NonNull<u8> {
        self.segments.slot_ptr(idx)
    }

    /// Returns slot `idx` to the pool and wakes a waiter if any. With
    /// `OWNED`, the slot comes with a reference to the pool (an owned
    /// buffer's), and `owed` is cleared if a thread cache took that
    /// reference as a credit, before any waker runs, so that whatever happens next, a
    /// waker's panic included, the caller knows whether it must still give
    /// the reference back with [`Shared::unref`].
    ///
    /// # Safety
    ///
    /// The caller owns slot `idx` (it came from this pool's `take` and was
    /// not returned since), `ptr` is `self.slot_ptr(idx)`,
    /// `dirty <= buffer_size`, and the caller does not touch the slot
    /// afterwards.
    #[inline]
    pub(crate) unsafe fn release<const OWNED: bool>(
        &self,
        idx: u32,
        ptr: NonNull<u8>,
        dirty: usize,
        owed: &mut bool,
    ) {
        self.check_alive();
        debug_assert_eq!(ptr, self.slot_ptr(idx));
        debug_assert!(dirty <= self.config.buffer_size);
        // One test for both things a release may have to do first.
        if self.release_work {
            if self.config.zero_on_release && dirty > 0 {
                // SAFETY: the caller owns the slot, and `dirty` bytes from
                // `ptr` lie inside it; `ptr` derives from the arena
                // allocation.
                unsafe { ptr::write_bytes(ptr.as_ptr(), 0, dirty) };
            }
            if let Some(leaks) = &self.leaks {
                leaks.released(idx);
            }
        }
        self.put::<OWNED>(idx, owed);
    }

    /// The shared-list part of [`take`](Self::take).
    ///
    /// Out of line: with caches on it is the fallback, and keeping it out
    /// of the inlined fast path keeps that path small.
    #[inline(never)]
    pub(crate) fn take_uncached(&self) -> Option<u32> {
        self.take_shared().or_else(|| self.take_slow())
    }

    /// Gives slot `idx` back: to this thread's cache if it has room, else to
    /// the free list.
    /// `owed` as for [`release`](Self::release): cleared as soon as a
    /// thread cache took the reference, before any waker runs.
    #[inline]
    fn put<const OWNED: bool>(&self, idx: u32, owed: &mut bool) {
        if self.config.cache_size > 0
            && let Some(flushed) = cache::put::<OWNED>(self, idx)
        {
            if OWNED {
                *owed = false;
            }
            if flushed > 0 {
                self.after_flush(flushed, !OWNED);
            }
            return;
        }
        self.put_shared(idx);
    }

    /// A full cache flushed a batch: serve waiters now that the cache
    /// operation is over, and, if `may_trim`, see whether the pool is idle
    /// (`trim_after`). Out of line, as everything `put` does off the
    /// cached path, to keep that path small.
    ///
    /// Not for an owned buffer's release (`may_trim` false): its reference
    /// to the pool went to the cache as a credit, which a closing pool may
    /// take back at once, so nothing here may rely on the segments being
    /// there. A borrowed buffer's pool handle outlives the call, and the
    /// uncached path (`put_shared`) keeps an owned buffer's reference until
    /// after it.
    #[inline(never)]
    fn after_flush(&self, flushed: usize, may_trim: bool) {
        self.serve_pushed(flushed);
        if may_trim && self.config.trim_after_ns != 0 {
            self.maybe_trim();
        }
    }

    /// [`put`](Self::put) without a cache: to the free list (or a waiter),
    /// then the cache's hand-back if the caches are off, and the
    /// `trim_after` check.
    #[inline(never)]
    fn put_shared(&self, idx: u32) {
        self.put_uncached(idx);
        if self.config.cache_size > 0 {
            self.disown_if_off();
        }
        if self.config.trim_after_ns != 0 {
            self.maybe_trim();
        }
    }

    /// Pushes one slot onto the free list, or hands it straight to the
    /// longest waiter if any wait (`wait.rs`).
    /// Out of line for the same reason as [`take_uncached`](Self::take_uncached).
    #[inline(never)]
    pub(crate) fn put_uncached(&self, idx: u32) {
        if self.gate.load(Relaxed) >= WAITER {
            return self.hand_over(idx);
        }
        self.free.push(&self.segments, idx);
        self.serve_pushed(1);
    }

    /// A release while someone waits: to the oldest waiter, or (if none is
    /// left) to the free list, serving anyone who arrived meanwhile.
    #[cold]
    fn hand_over(&self, idx: u32) {
        let mut panic = Panic::default();
        if let Err(idx) = self.offer(idx, &mut panic) {
            self.free.push(&self.segments, idx);
            self.serve(1, &mut panic);
        }
        panic.resume();
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.shared().config;
        f.debug_struct("Pool")
            .field("buffer_size", &c.buffer_size)
            .field("alignment", &c.alignment)
            .field("cache_size", &c.cache_size)
            .field("zero_on_release", &c.zero_on_release)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
