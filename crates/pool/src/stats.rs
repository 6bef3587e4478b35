//! A snapshot of a pool's counters.

/// What [`Pool::stats`](crate::Pool::stats) reports. For a pool with size
/// classes, the sum over its classes ([`Pool::class_stats`](crate::Pool::class_stats)
/// gives each).
///
/// Buffer counts are exact whenever no acquire or release is in flight, and
/// a consistent recent value otherwise. None of them costs a shared counter
/// on the acquire/release hot path: `in_use` is the capacity less the free
/// list's length (kept in its link words) and the thread caches' lengths,
/// `high_water` comes from the highest slot ever taken off the free list,
/// and the event counters are written only on slow paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Buffers the pool has now (grows with `grow_to`).
    pub capacity: usize,
    /// Most buffers the pool may ever have: the `grow_to` limit, or
    /// `capacity` when the pool cannot grow.
    pub max_capacity: usize,
    /// Buffers held by users right now.
    pub in_use: usize,
    /// Free buffers parked in per-thread caches right now.
    pub cached: usize,
    /// Most buffers ever out of the shared free list at once: held by
    /// users or parked in thread caches. The list is LIFO and starts in
    /// index order, so this is the highest slot index ever taken, plus one.
    /// With `cache_size(0)` it is exactly the most buffers ever held at
    /// once; with caches it can exceed that by what the caches held.
    pub high_water: usize,
    /// Acquires that returned without a buffer (`try_acquire` on an
    /// exhausted pool, timeouts).
    pub failed_acquires: u64,
    /// Acquires that found the pool empty (or others waiting) and queued.
    pub waits: u64,
    /// Callers in the wait queue right now (blocking and async) that have
    /// not been handed a buffer yet. A waiter that was handed one stops
    /// counting at once, even before it runs to collect it (and so does a
    /// future that was leaked while it waited).
    pub waiting: usize,
    /// Arena segments allocated: 1, plus one per growth step.
    pub segments: usize,
    /// Threads that have a cache for this pool now (live threads that used
    /// it since it was built).
    pub threads: usize,
    /// The thread caches are off for good: the barrier that lets a thread
    /// take back what idle threads' caches hold failed (Linux's
    /// `membarrier`, refused by a seccomp filter installed after the pool
    /// was built, for example). The pool keeps working without caches;
    /// what a thread had cached goes back the next time that thread uses
    /// the pool, or when it exits.
    pub caches_off: bool,
}

impl Stats {
    /// The counters of two pools (two size classes) added up: buffer
    /// counts and event counts are sums, `threads` is the larger of the
    /// two (a thread that uses both counts once at least), and `caches_off`
    /// holds if it holds for either.
    pub(crate) fn plus(&self, o: &Stats) -> Stats {
        Stats {
            capacity: self.capacity + o.capacity,
            max_capacity: self.max_capacity + o.max_capacity,
            in_use: self.in_use + o.in_use,
            cached: self.cached + o.cached,
            high_water: self.high_water + o.high_water,
            failed_acquires: self.failed_acquires + o.failed_acquires,
            waits: self.waits + o.waits,
            waiting: self.waiting + o.waiting,
            segments: self.segments + o.segments,
            threads: self.threads.max(o.threads),
            caches_off: self.caches_off || o.caches_off,
        }
    }
}
