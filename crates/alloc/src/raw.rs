//! Raw allocation: the only module that calls the global allocator
//! directly.
//!
//! A [`RawChunk`] is one block of bytes from `std::alloc::alloc`, freed on
//! drop. Every pointer the bump arenas hand out is derived from the pointer
//! `alloc` returned, so it carries the provenance of the whole chunk.

use std::alloc::Layout;
use std::ptr::NonNull;

/// Alignment of every chunk. Requests with a larger alignment are padded
/// inside the chunk.
pub(crate) const CHUNK_ALIGN: usize = 16;

/// One uninitialised block of `layout.size()` bytes, aligned to
/// [`CHUNK_ALIGN`], owned until drop.
///
/// Invariant: `ptr` came from `std::alloc::alloc(layout)` and has not been
/// freed.
#[derive(Debug)]
pub(crate) struct RawChunk {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: a `RawChunk` owns its block like a `Box<[MaybeUninit<u8>]>`; it
// has no thread affinity and no shared state.
unsafe impl Send for RawChunk {}

impl RawChunk {
    /// Allocates `size` bytes (`size > 0`), or returns `None` when the size
    /// is above `isize::MAX` or the allocator returns null.
    #[allow(clippy::disallowed_methods)] // this module owns raw allocation
    pub(crate) fn try_new(size: usize) -> Option<Self> {
        debug_assert!(size > 0);
        let layout = Layout::from_size_align(size.max(1), CHUNK_ALIGN).ok()?;
        // SAFETY: `layout` has a non-zero size.
        let ptr = NonNull::new(unsafe { std::alloc::alloc(layout) })?;
        Some(Self { ptr, layout })
    }

    /// The start of the block, with the provenance of the whole block.
    pub(crate) fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// The size of the block in bytes.
    pub(crate) fn size(&self) -> usize {
        self.layout.size()
    }
}

impl Drop for RawChunk {
    #[allow(clippy::disallowed_methods)] // this module owns raw allocation
    fn drop(&mut self) {
        // SAFETY: by the invariant `ptr` came from `alloc(layout)` and is
        // freed only here, once.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}
