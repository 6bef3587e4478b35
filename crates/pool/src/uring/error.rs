//! The io_uring module's errors (kept apart from `crate::error`).

use std::io;

use crate::handle::OwnedBuf;

/// Why a [`Ring`](super::Ring) could not be built or an operation could not
/// be submitted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UringError {
    /// `io_uring_setup` failed: `ENOSYS` (no io_uring), `EPERM` (disabled
    /// by `kernel.io_uring_disabled` or a seccomp filter), `ENOMEM`...
    #[error("cannot set up an io_uring: {0}")]
    Setup(#[source] io::Error),
    /// Registering the pool's arenas as fixed buffers failed (`ENOMEM`
    /// when the pages cannot be pinned, `EINVAL` on old kernels...).
    #[error("cannot register the pool's buffers with the ring: {0}")]
    Register(#[source] io::Error),
    /// Registering a provided buffer ring failed.
    #[error("cannot register provided buffer ring {group}: {source}")]
    RegisterBufRing {
        /// The buffer group id.
        group: u16,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// The ring was built without fixed buffers, or the buffer's slot lies
    /// in a segment the pool grew after the ring registered its arenas.
    #[error("slot {index} is not in a buffer registered with this ring")]
    NotRegistered {
        /// The slot index of the buffer.
        index: u32,
    },
    /// The buffer belongs to another pool than the ring's.
    #[error("the buffer belongs to another pool than the ring's")]
    WrongPool,
    /// The submission queue is full even after submitting it: too many
    /// operations were started since the kernel last took them.
    #[error("the submission queue is full")]
    QueueFull,
    /// A provided buffer ring needs a power of two `1..=32768` entries.
    #[error("{entries} is not a power of two between 1 and 32768")]
    BadEntries {
        /// What was asked for.
        entries: u32,
    },
    /// This ring already has a provided buffer ring with this group id.
    #[error("buffer group {group} already exists on this ring")]
    GroupExists {
        /// The buffer group id.
        group: u16,
    },
    /// No provided buffer ring with this group id on this ring.
    #[error("no buffer group {group} on this ring")]
    UnknownGroup {
        /// The buffer group id.
        group: u16,
    },
    /// The byte range does not lie in the buffer's filled part.
    #[error("range {start}..{end} is outside the buffer's {len} filled bytes")]
    BadRange {
        /// Start of the range.
        start: usize,
        /// End of the range.
        end: usize,
        /// The buffer's length.
        len: usize,
    },
    /// A size does not fit the kernel's interface.
    #[error("a size does not fit the kernel's interface")]
    TooLarge,
    /// Memory for a provided buffer ring could not be allocated.
    #[error("could not allocate {bytes} bytes for a provided buffer ring")]
    Alloc {
        /// Size of the allocation that failed.
        bytes: usize,
    },
}

/// An operation that was not submitted, with the buffer it was given: the
/// buffer is never lost.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Rejected {
    /// Why.
    #[source]
    pub error: UringError,
    /// The buffer, unchanged.
    pub buf: OwnedBuf,
}
