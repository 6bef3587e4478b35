//! Typed errors: a limit, an exhausted allocator or an impossible size is a
//! value the caller can match on, never a panic or an abort.

/// Why a `try_*` allocation in a [`Bump`](crate::Bump) or
/// [`SyncBump`](crate::SyncBump) failed. Nothing was allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BumpError {
    /// A new chunk big enough for the request would take the arena past
    /// its allocation limit.
    #[error(
        "{requested} more bytes would pass the allocation limit of {limit} bytes ({allocated} already allocated)"
    )]
    LimitExceeded {
        /// Bytes the request needed (its size plus worst-case alignment
        /// padding).
        requested: usize,
        /// The limit set on the arena.
        limit: usize,
        /// Bytes of chunks the arena held when the request came.
        allocated: usize,
    },
    /// The global allocator returned null for a new chunk.
    #[error("the global allocator could not provide a chunk of {bytes} bytes")]
    OutOfMemory {
        /// Size of the chunk that could not be allocated.
        bytes: usize,
    },
    /// The requested size (for example a slice length times the element
    /// size) overflows, or is above `isize::MAX` bytes.
    #[error("the requested size overflows or is above isize::MAX bytes")]
    SizeOverflow,
}

/// Why [`Slab::try_insert`](crate::Slab::try_insert) failed. The value was
/// not inserted and is handed back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SlabError<T> {
    /// Every index a [`Key`](crate::Key) can name (`u32::MAX` of them) is
    /// in use or retired.
    #[error("the slab is full: every u32 index is in use or retired")]
    Full(T),
    /// The global allocator could not grow the slab's storage.
    #[error("the global allocator could not grow the slab")]
    OutOfMemory(T),
}

impl<T> SlabError<T> {
    /// The value that was not inserted.
    pub fn into_inner(self) -> T {
        match self {
            SlabError::Full(v) | SlabError::OutOfMemory(v) => v,
        }
    }
}
