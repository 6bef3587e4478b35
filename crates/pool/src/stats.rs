//! A snapshot of a pool's counters.

/// What [`Pool::stats`](crate::Pool::stats) reports.
///
/// Buffer counts are exact whenever no acquire or release is in flight, and
/// a consistent recent value otherwise. None of them costs a shared counter
/// on the acquire/release hot path: `in_use` comes from the free list's own
/// depth, `high_water` from the highest slot ever handed out (the list is
/// LIFO and starts in index order, so that is the most buffers ever out at
/// once), and the event counters are written only on slow paths.
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
    /// Most buffers ever held at the same time.
    pub high_water: usize,
    /// Acquires that returned without a buffer (`try_acquire` on an
    /// exhausted pool, timeouts).
    pub failed_acquires: u64,
    /// Acquires that found the pool empty and had to wait.
    pub waits: u64,
    /// Arena segments allocated: 1, plus one per growth step.
    pub segments: usize,
}
