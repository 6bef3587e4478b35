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

/// The largest alignment for which the system allocator's `alloc_zeroed`
/// is `calloc`, which maps fresh zero pages lazily for large blocks. For
/// larger alignments std uses `aligned_alloc` plus `memset`, which touches
/// (and so commits) every page of the arena at build time.
const CALLOC_ALIGN: usize = 16;

/// One zero-initialised allocation, freed on drop.
///
/// Invariants: `raw` came from `alloc_zeroed(layout)` and stays allocated
/// until `Drop`; `base` is `raw` advanced by less than `align` bytes to the
/// first `align`-aligned address, and `base .. base + len` lies inside the
/// allocation.
pub(crate) struct Arena {
    raw: NonNull<u8>,
    base: NonNull<u8>,
    layout: Layout,
    len: usize,
}

impl Arena {
    /// Allocates `slots * stride` zeroed bytes aligned to `align`.
    ///
    /// Alignments above 16 are served by over-allocating `align - 1` bytes
    /// at alignment 16 and rounding the start up, so the block still comes
    /// from `calloc` and its pages are committed only when first written.
    ///
    /// Fails with a typed error (never a panic or an abort) when the size
    /// overflows `isize` or the allocator returns null.
    #[allow(clippy::disallowed_methods)] // this module owns raw allocation
    pub(crate) fn zeroed(slots: u32, stride: usize, align: usize) -> Result<Self, BuildError> {
        let len = stride
            .checked_mul(slots as usize)
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or(BuildError::TooLarge)?;
        let (size, alloc_align) = if align <= CALLOC_ALIGN {
            (len, align)
        } else {
            (
                len.checked_add(align - 1).ok_or(BuildError::TooLarge)?,
                CALLOC_ALIGN,
            )
        };
        let layout =
            Layout::from_size_align(size, alloc_align).map_err(|_| BuildError::TooLarge)?;
        debug_assert!(layout.size() > 0, "the builder rejects zero sizes");
        // SAFETY: `layout` has a non-zero size: `slots >= 1` and
        // `stride >= 1` are checked by the builder and the grow path.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let raw = NonNull::new(raw).ok_or(BuildError::Alloc { bytes: len })?;
        let offset = (align - raw.as_ptr().addr() % align) % align;
        // SAFETY: `offset < align`, and when `offset > 0` the allocation has
        // `align - 1` spare bytes, so `raw + offset .. + len` is inside it.
        let base = unsafe { raw.add(offset) };
        Ok(Self {
            raw,
            base,
            layout,
            len,
        })
    }

    /// The first byte of the block, aligned as asked. Pointers into slots
    /// are derived from it with `add`, which keeps the allocation's
    /// provenance.
    #[inline]
    pub(crate) fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// Size of the block in bytes.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Arena {
    #[allow(clippy::disallowed_methods)] // this module owns raw allocation
    fn drop(&mut self) {
        // SAFETY: `raw` was returned by `alloc_zeroed(self.layout)` and is
        // freed exactly once, here (type invariant).
        unsafe { std::alloc::dealloc(self.raw.as_ptr(), self.layout) };
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
            .field("bytes", &self.len)
            .field("allocated", &self.layout.size())
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
    fn large_alignments_are_honoured() {
        for align in [32, 64, 256, 4096] {
            let a = Arena::zeroed(5, align, align).unwrap();
            assert_eq!(a.base().as_ptr().addr() % align, 0, "align {align}");
            assert_eq!(a.len(), 5 * align);
            // SAFETY: the block is `len` initialised bytes owned by `a`.
            let bytes = unsafe { std::slice::from_raw_parts_mut(a.base().as_ptr(), a.len()) };
            assert!(bytes.iter().all(|&b| b == 0));
            bytes.fill(0xAA); // the whole block is writable
        }
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
        let err = Arena::zeroed(1 << 30, 1 << 16, 16).unwrap_err();
        assert!(matches!(err, BuildError::Alloc { bytes } if bytes == 1 << 46));
    }
}
