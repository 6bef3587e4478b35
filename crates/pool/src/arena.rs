//! Raw allocation: the only module that calls the global allocator directly.
//!
//! An [`Arena`] is one zero-initialised, aligned block of
//! `slots x stride` bytes. Every pointer the pool hands out is derived from
//! the pointer that `alloc_zeroed` returned, so it carries the provenance of
//! the whole allocation; nothing is ever derived from a shared reference
//! (the seed article's `Arc<Vec<u8>>` cast, which Miri rejects).
//!
//! Because the block is zeroed when it is made and the pool only ever writes
//! initialised bytes into it, every byte of every slot is initialised for the
//! whole life of the arena. That is what lets a handle expose its whole slot
//! as `&mut [u8]` safely.

use std::alloc::Layout;
use std::ptr::NonNull;

use crate::error::BuildError;

/// One zero-initialised allocation, freed on drop.
///
/// Invariant: `ptr` came from `alloc_zeroed(layout)`, `layout.size() > 0`,
/// and the block stays allocated until `Drop`.
pub(crate) struct Arena {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Arena {
    /// Allocates `slots * stride` zeroed bytes aligned to `align`.
    ///
    /// Fails with a typed error (never a panic or an abort) when the size
    /// overflows `isize` or the allocator returns null.
    #[allow(clippy::disallowed_methods)] // this module owns raw allocation
    pub(crate) fn zeroed(slots: u32, stride: usize, align: usize) -> Result<Self, BuildError> {
        let bytes = stride
            .checked_mul(slots as usize)
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or(BuildError::TooLarge)?;
        let layout = Layout::from_size_align(bytes, align).map_err(|_| BuildError::TooLarge)?;
        debug_assert!(layout.size() > 0, "the builder rejects zero sizes");
        // SAFETY: `layout` has a non-zero size: `slots >= 1` and
        // `stride >= 1` are checked by the builder and the grow path.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or(BuildError::Alloc { bytes })?;
        Ok(Self { ptr, layout })
    }

    /// The first byte of the block. Pointers into slots are derived from it
    /// with `add`, which keeps the allocation's provenance.
    #[inline]
    pub(crate) fn base(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Size of the block in bytes.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn len(&self) -> usize {
        self.layout.size()
    }
}

impl Drop for Arena {
    #[allow(clippy::disallowed_methods)] // this module owns raw allocation
    fn drop(&mut self) {
        // SAFETY: `ptr` was returned by `alloc_zeroed(self.layout)` and is
        // freed exactly once, here (type invariant).
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

// SAFETY: `Arena` owns its block like a `Box<[u8]>` does; it has no
// thread-affine state. Access to the bytes is coordinated by the pool.
unsafe impl Send for Arena {}
// SAFETY: `&Arena` only exposes the base pointer and the size; writes
// through that pointer are governed by slot ownership in the pool.
unsafe impl Sync for Arena {}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("bytes", &self.layout.size())
            .field("align", &self.layout.align())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn zeroed_and_aligned() {
        let a = Arena::zeroed(3, 128, 64).unwrap();
        assert_eq!(a.len(), 384);
        assert_eq!(a.base().as_ptr() as usize % 64, 0);
        // SAFETY: the block is 384 initialised bytes owned by `a`.
        let bytes = unsafe { std::slice::from_raw_parts(a.base().as_ptr(), a.len()) };
        assert!(bytes.iter().all(|&b| b == 0));
    }

    #[test]
    fn overflow_is_an_error() {
        assert_eq!(
            Arena::zeroed(u32::MAX - 1, usize::MAX / 2, 64).unwrap_err(),
            BuildError::TooLarge
        );
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "Miri aborts on huge allocations instead of returning null"
    )]
    fn allocation_failure_is_an_error() {
        // 2^46 bytes (64 TiB) fits isize but no machine here can back it.
        let err = Arena::zeroed(1 << 30, 1 << 16, 64).unwrap_err();
        assert!(matches!(err, BuildError::Alloc { bytes } if bytes == 1 << 46));
    }
}
