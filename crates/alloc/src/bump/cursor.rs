//! The bump pointer shared by [`Bump`](crate::Bump) and
//! [`BumpHandle`](crate::BumpHandle), and the typed writes both build on.
//!
//! The cursor bumps *upwards*: an allocation starts at the current pointer
//! rounded up to its alignment. Bumping downwards (as bumpalo does) saves
//! an instruction on the fast path, but upwards lets the most recent
//! allocation grow in place: extending it is moving the pointer further,
//! which is what makes `Vec` pushes into the arena cheap.
//!
//! The pointer and the chunk end are kept multiples of [`MIN_ALIGN`] (8):
//! sizes are rounded up to it, so requests aligned to 8 or less (nearly
//! all) skip the alignment arithmetic, and the fast path is as short as a
//! downward bump. The cost is up to 7 bytes of padding after odd-sized
//! allocations.
//!
//! The pointer is kept as a `NonNull<u8>` derived from the chunk's
//! allocation, so every pointer handed out carries the chunk's provenance;
//! only comparisons use bare addresses.

use std::alloc::Layout;
use std::cell::Cell;
use std::ptr::NonNull;

use crate::error::BumpError;

/// Every allocation starts and ends on a multiple of this.
pub(crate) const MIN_ALIGN: usize = 8;

/// `size` rounded up to [`MIN_ALIGN`]. A `Layout` size is at most
/// `isize::MAX`, so this cannot overflow.
#[inline(always)]
const fn round(size: usize) -> usize {
    (size + (MIN_ALIGN - 1)) & !(MIN_ALIGN - 1)
}

/// A bump pointer into one chunk: `start <= ptr <= end` (as addresses),
/// all multiples of [`MIN_ALIGN`] once a chunk is set, with `ptr` derived
/// from the chunk's allocation.
#[derive(Debug)]
pub(crate) struct Cursor {
    ptr: Cell<NonNull<u8>>,
    start: Cell<usize>,
    end: Cell<usize>,
}

impl Cursor {
    /// A cursor with no chunk: every non-empty request misses.
    pub(crate) fn empty() -> Self {
        // An aligned address without provenance: zero-sized requests of
        // alignment up to `MIN_ALIGN` may be served from it.
        let ptr = NonNull::new(std::ptr::without_provenance_mut::<u8>(MIN_ALIGN))
            .unwrap_or(NonNull::dangling());
        let addr = ptr.as_ptr().addr();
        Self {
            ptr: Cell::new(ptr),
            start: Cell::new(addr),
            end: Cell::new(addr),
        }
    }

    /// Points the cursor at the start of a chunk of `size` bytes (its start
    /// aligned to [`MIN_ALIGN`]); a tail of less than `MIN_ALIGN` bytes is
    /// not used.
    ///
    /// The caller keeps the chunk allocated while the cursor (or anything it
    /// handed out) is used.
    pub(crate) fn set_chunk(&self, chunk: NonNull<u8>, size: usize) {
        let addr = chunk.as_ptr().addr();
        debug_assert_eq!(addr % MIN_ALIGN, 0);
        self.ptr.set(chunk);
        self.start.set(addr);
        self.end.set(addr + (size & !(MIN_ALIGN - 1)));
    }

    /// Bytes left in the current chunk (ignoring alignment).
    pub(crate) fn remaining(&self) -> usize {
        self.end.get() - self.ptr.get().as_ptr().addr()
    }

    /// Carves `layout` out of the current chunk, or returns `None` if it
    /// does not fit.
    #[inline(always)]
    pub(crate) fn try_bump(&self, layout: Layout) -> Option<NonNull<u8>> {
        let ptr = self.ptr.get();
        let addr = ptr.as_ptr().addr();
        let size = round(layout.size());
        // `ptr` is a multiple of `MIN_ALIGN`; only bigger alignments pad.
        // Both branches fold away when the layout is a constant.
        let pad = if layout.align() <= MIN_ALIGN {
            0
        } else {
            addr.wrapping_neg() & (layout.align() - 1)
        };
        // `Layout` keeps `size` within `isize::MAX - (align - 1)`, so
        // `pad + size` cannot overflow: one compare decides.
        if pad + size > self.end.get() - addr {
            return None;
        }
        // SAFETY: `pad + size <= end - addr`, so both offsets stay inside
        // (or one past the end of) the chunk `ptr` points into.
        let (start, next) = unsafe {
            let start = ptr.add(pad);
            (start, start.add(size))
        };
        self.ptr.set(next);
        Some(start)
    }

    /// Whether the block `ptr .. ptr + size` is the most recent allocation
    /// of the current chunk.
    #[inline]
    fn is_last(&self, ptr: NonNull<u8>, size: usize) -> bool {
        let addr = ptr.as_ptr().addr();
        addr >= self.start.get() && addr.wrapping_add(round(size)) == self.ptr.get().as_ptr().addr()
    }

    /// Gives back the most recent allocation, if `ptr .. ptr + size` is it.
    #[inline]
    pub(crate) fn release(&self, ptr: NonNull<u8>, size: usize) {
        self.resize_last(ptr, size, 0);
    }

    /// Resizes the block `ptr .. ptr + old` in place to `new` bytes if it is
    /// the most recent allocation and the chunk has room. Returns whether
    /// it did.
    #[inline]
    pub(crate) fn resize_last(&self, ptr: NonNull<u8>, old: usize, new: usize) -> bool {
        if !self.is_last(ptr, old) {
            return false;
        }
        let cur = self.ptr.get();
        let (old, new) = (round(old), round(new));
        let next = if new >= old {
            let grow = new - old;
            if grow > self.end.get() - cur.as_ptr().addr() {
                return false;
            }
            // SAFETY: `cur + grow <= end`, inside the current chunk.
            unsafe { cur.add(grow) }
        } else {
            // SAFETY: the block is the last one and starts at or after
            // `start`, so `cur - (old - new) >= ptr >= start`, inside the
            // current chunk.
            unsafe { cur.sub(old - new) }
        };
        self.ptr.set(next);
        true
    }
}

/// The layout of `[T; len]`, or a typed error if it overflows.
#[inline]
pub(crate) fn array_layout<T>(len: usize) -> Result<Layout, BumpError> {
    Layout::array::<T>(len).map_err(|_| BumpError::SizeOverflow)
}

/// Moves `value` into `ptr` and returns it as a mutable reference.
///
/// # Safety
///
/// `ptr` must be valid for writes of a `T`, aligned for `T`, and the memory
/// must stay allocated and otherwise unused for `'a`.
#[inline(always)]
pub(crate) unsafe fn write_value<'a, T>(ptr: NonNull<u8>, value: T) -> &'a mut T {
    let ptr = ptr.cast::<T>();
    // SAFETY: valid and aligned for a `T` (caller); after the write it holds
    // an initialised `T` nobody else refers to for `'a`.
    unsafe {
        ptr.write(value);
        &mut *ptr.as_ptr()
    }
}

/// Copies `src` to `ptr` and returns the copy.
///
/// # Safety
///
/// `ptr` must be valid for writes of `src.len()` `T`s, aligned for `T`, and
/// the memory must stay allocated and otherwise unused for `'a`.
#[inline]
pub(crate) unsafe fn copy_slice<'a, T: Copy>(ptr: NonNull<u8>, src: &[T]) -> &'a mut [T] {
    let ptr = ptr.cast::<T>();
    // SAFETY: the destination is fresh arena memory (caller), so it does not
    // overlap `src`; after the copy all `src.len()` elements are initialised.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), ptr.as_ptr(), src.len());
        std::slice::from_raw_parts_mut(ptr.as_ptr(), src.len())
    }
}

/// Fills `len` `T`s at `ptr` with `f(0), f(1), ...` and returns them.
///
/// If `f` panics, the elements written so far are leaked (never dropped),
/// which is safe.
///
/// # Safety
///
/// As for [`copy_slice`], for `len` elements.
#[inline]
pub(crate) unsafe fn fill_slice<'a, T>(
    ptr: NonNull<u8>,
    len: usize,
    mut f: impl FnMut(usize) -> T,
) -> &'a mut [T] {
    let ptr = ptr.cast::<T>();
    for i in 0..len {
        // SAFETY: `i < len`, inside the block the caller vouches for.
        unsafe { ptr.add(i).write(f(i)) };
    }
    // SAFETY: all `len` elements were initialised above.
    unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), len) }
}

/// An aligned, non-null pointer for a zero-sized allocation.
#[inline]
pub(crate) fn dangling(layout: Layout) -> NonNull<u8> {
    // `align` is a non-zero power of two, so this never falls back.
    NonNull::new(std::ptr::without_provenance_mut(layout.align())).unwrap_or(NonNull::dangling())
}
