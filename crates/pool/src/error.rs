//! Typed errors: a bad configuration or a failed allocation is a value the
//! caller can match on, never a panic or an abort.

use std::time::Duration;

use crate::backing::Shortfall;

/// Why [`PoolBuilder::build`](crate::PoolBuilder::build) refused a
/// configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `buffer_size` was 0.
    #[error("buffer size must be at least 1 byte")]
    ZeroSize,
    /// `capacity` was 0.
    #[error("capacity must be at least 1 buffer")]
    ZeroCapacity,
    /// `capacity` (or the `grow_to` limit) was above [`MAX_CAPACITY`](crate::MAX_CAPACITY).
    #[error("capacity {requested} is above the maximum of {max} buffers")]
    CapacityTooLarge {
        /// What was asked for.
        requested: u64,
        /// The largest capacity a pool supports (`u32::MAX - 1`).
        max: u64,
    },
    /// The `grow_to` limit was below the initial capacity.
    #[error("grow_to limit {limit} is below the initial capacity {capacity}")]
    GrowLimitBelowCapacity {
        /// The initial capacity.
        capacity: u32,
        /// The growth limit.
        limit: u32,
    },
    /// `alignment` was not a power of two, or above [`MAX_ALIGNMENT`](crate::MAX_ALIGNMENT).
    #[error("alignment {0} is not a power of two between 1 and 4096")]
    BadAlignment(usize),
    /// `cache_size` was above [`MAX_CACHE_SIZE`](crate::MAX_CACHE_SIZE).
    #[error("cache size {0} is above the maximum of 4096 buffers")]
    CacheTooLarge(usize),
    /// The arena (`buffer size` rounded up to the alignment, times the
    /// capacity) would be larger than `isize::MAX` bytes.
    #[error("the arena would be larger than isize::MAX bytes")]
    TooLarge,
    /// `lock_memory(true)` with [`Backing::Heap`](crate::Backing::Heap):
    /// heap pages are shared with other allocations, which `munlock` would
    /// unlock too, so only mapped arenas can be locked.
    #[error(
        "lock_memory needs a mapped backing (Mmap, TransparentHugePages or HugeTlb), not the heap"
    )]
    LockHeap,
    /// Under [`Fallback::Fail`](crate::Fallback::Fail), the system could not
    /// provide the requested backing or lock; the step and errno say why.
    #[error("the requested arena backing is not available: {0}")]
    BackingUnavailable(Shortfall),
    /// Two size classes (`PoolBuilder::class`) had the same buffer size.
    #[error("two size classes have the same buffer size, {0} bytes")]
    DuplicateClass(usize),
    /// Size classes were given together with `buffer_size`, `capacity` or
    /// `grow_to`, which set up a pool of one size.
    #[error("size classes replace buffer_size, capacity and grow_to: set one or the other")]
    ClassesAndSize,
    /// The global allocator could not provide the arena.
    #[error("could not allocate an arena of {bytes} bytes")]
    Alloc {
        /// Size of the allocation that failed.
        bytes: usize,
    },
}

/// No buffer became free within the time allowed.
///
/// Returned by [`Pool::acquire_blocking`](crate::Pool::acquire_blocking) and
/// its owned variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("buffer pool exhausted: no buffer became free within {waited:?}")]
pub struct Exhausted {
    /// How long the caller waited.
    pub waited: Duration,
}

/// A write or length that does not fit in a buffer. Nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{requested} bytes do not fit in a buffer of {capacity}")]
pub struct CapacityError {
    /// The length the operation needed.
    pub requested: usize,
    /// The buffer's capacity.
    pub capacity: usize,
}

/// A buffer size that no size class of the pool holds: `requested` is
/// above the largest class's buffer size.
///
/// Returned by [`Pool::try_acquire_with_capacity`](crate::Pool::try_acquire_with_capacity)
/// and the other `*_with_capacity` acquires, at once: they never wait for
/// a buffer that cannot come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no buffer of {requested} bytes: the largest size class holds {largest}")]
pub struct TooLarge {
    /// The size asked for.
    pub requested: usize,
    /// The buffer size of the pool's largest class.
    pub largest: usize,
}

/// Why a blocking acquire of a given size returned without a buffer.
///
/// Returned by [`Pool::acquire_blocking_with_capacity`](crate::Pool::acquire_blocking_with_capacity)
/// and its owned variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcquireError {
    /// No class holds buffers that large; nothing waited.
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    /// No buffer became free in time.
    #[error(transparent)]
    Exhausted(#[from] Exhausted),
}
