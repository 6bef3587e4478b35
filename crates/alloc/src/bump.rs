//! A chunked bump arena.
//!
//! [`Bump`] hands out memory by moving a pointer through the current chunk
//! (see `cursor.rs`); when the chunk is full it allocates a new one, twice
//! the size of the previous one (or as big as the request needs). Nothing is
//! freed one by one: [`Bump::reset`] rewinds the whole arena at once, keeping
//! its largest chunk, and dropping the arena frees every chunk.
//!
//! # Destructors
//!
//! Values placed with [`Bump::alloc`] and friends are **not dropped** on
//! reset or drop: their memory is reclaimed, their destructors never run.
//! For a `String`, a `Vec` or a file that would leak. [`Bump::alloc_with_drop`]
//! records the value in a drop list (a header placed next to it in the
//! arena) and runs its destructor on reset or drop, newest first. It
//! requires `T: 'static`: a value that borrowed other arena values could
//! otherwise read them in its destructor after they were dropped (an arena
//! cannot order drops safely for borrowed data, because the borrow checker
//! does not see which value points to which).
//!
//! # `Allocator`
//!
//! `&Bump` implements [`allocator_api2::alloc::Allocator`], so
//! `allocator_api2::vec::Vec::new_in(&bump)` and hashbrown maps live in the
//! arena. Freeing or shrinking the most recent allocation gives the bytes
//! back, and growing it extends it in place when the chunk has room, so a
//! `Vec` that is pushed to while nothing else is allocated never copies.
//!
//! # Threads
//!
//! `Bump` is `Send` but not `Sync`: its bump pointer is a `Cell`. To let
//! several threads fill one arena, use [`SyncBump`](crate::SyncBump).

mod chunks;
mod cursor;
mod drop_list;
pub(crate) mod sync;

use std::alloc::{Layout, handle_alloc_error};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator};

pub(crate) use chunks::{alloc_chunk, chunk_size, record_chunk};
pub(crate) use cursor::{Cursor, array_layout, copy_slice, dangling, fill_slice, write_value};
use drop_list::DropList;

use crate::error::BumpError;
use crate::raw::{CHUNK_ALIGN, RawChunk};

/// Size of the first chunk when none was asked for.
pub(crate) const FIRST_CHUNK: usize = 1024;

/// A chunked bump arena: fast allocation, everything freed at once.
///
/// ```
/// use arenapool_alloc::Bump;
///
/// let bump = Bump::new();
/// let n = bump.alloc(42u64);
/// *n += 1;
/// let s = bump.alloc_str("hello");
/// let squares = bump.alloc_slice_fill_with(4, |i| i * i);
/// assert_eq!((*n, &*s, &*squares), (43, "hello", &[0, 1, 4, 9][..]));
/// assert!(bump.allocated_bytes() >= 8 + 5 + 32);
/// ```
pub struct Bump {
    cursor: Cursor,
    /// Every chunk, the current one last.
    chunks: RefCell<Vec<RawChunk>>,
    allocated: Cell<usize>,
    limit: Cell<Option<usize>>,
    next_chunk: Cell<usize>,
    drops: DropList,
}

// SAFETY: the arena owns its chunks; nothing in it is tied to a thread. The
// only values it ever touches again are those on the drop list, which
// `alloc_with_drop` requires to be `Send`. Moving the arena needs `&mut`
// access, so no reference into it is alive on the old thread.
unsafe impl Send for Bump {}

impl Default for Bump {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Bump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bump")
            .field("chunks", &self.chunks.borrow().len())
            .field("allocated_bytes", &self.allocated.get())
            .field("allocation_limit", &self.limit.get())
            .finish_non_exhaustive()
    }
}

impl Bump {
    /// An empty arena. The first allocation allocates a 1 KiB chunk (or
    /// more, if it needs more).
    pub fn new() -> Self {
        Self {
            cursor: Cursor::empty(),
            chunks: RefCell::new(Vec::new()),
            allocated: Cell::new(0),
            limit: Cell::new(None),
            next_chunk: Cell::new(FIRST_CHUNK),
            drops: DropList::new(),
        }
    }

    /// An arena whose first chunk holds `bytes` bytes (allocated now).
    ///
    /// Aborts through [`handle_alloc_error`] if the chunk cannot be
    /// allocated; see [`Bump::try_with_capacity`].
    pub fn with_capacity(bytes: usize) -> Self {
        match Self::try_with_capacity(bytes) {
            Ok(b) => b,
            Err(e) => fail(Layout::from_size_align(bytes, 1).ok(), e),
        }
    }

    /// An arena whose first chunk holds `bytes` bytes, or an error if that
    /// chunk cannot be allocated.
    ///
    /// ```
    /// use arenapool_alloc::{Bump, BumpError};
    ///
    /// let bump = Bump::try_with_capacity(4096)?;
    /// assert_eq!(bump.allocated_bytes(), 4096);
    /// assert!(matches!(Bump::try_with_capacity(usize::MAX), Err(BumpError::SizeOverflow)));
    /// # Ok::<(), BumpError>(())
    /// ```
    pub fn try_with_capacity(bytes: usize) -> Result<Self, BumpError> {
        let bump = Self::new();
        if bytes > 0 {
            bump.new_chunk(bytes, bytes)?;
        }
        Ok(bump)
    }

    /// Caps the bytes of chunks this arena may hold ([`allocated_bytes`]);
    /// `None` removes the cap. Allocations that would need a chunk past the
    /// cap fail with [`BumpError::LimitExceeded`] (the `try_*` methods) or
    /// abort (the others). Chunks already held are kept even if the new
    /// limit is lower.
    ///
    /// ```
    /// use arenapool_alloc::{Bump, BumpError};
    ///
    /// let bump = Bump::new();
    /// bump.set_allocation_limit(Some(2048));
    /// assert!(bump.try_alloc([0u8; 1000]).is_ok());
    /// let err = bump.try_alloc_slice_copy(&[0u8; 4096]).unwrap_err();
    /// assert!(matches!(err, BumpError::LimitExceeded { limit: 2048, .. }));
    /// assert!(bump.allocated_bytes() <= 2048);
    /// ```
    ///
    /// [`allocated_bytes`]: Bump::allocated_bytes
    pub fn set_allocation_limit(&self, limit: Option<usize>) {
        self.limit.set(limit);
    }

    /// The cap set by [`Bump::set_allocation_limit`].
    pub fn allocation_limit(&self) -> Option<usize> {
        self.limit.get()
    }

    /// Total size of the chunks this arena holds, used or not (and of the
    /// one being allocated, read from inside the global allocator: a chunk
    /// is counted before it is asked for).
    pub fn allocated_bytes(&self) -> usize {
        self.allocated.get()
    }

    /// How many chunks this arena holds.
    pub fn chunk_count(&self) -> usize {
        self.chunks.borrow().len()
    }

    /// Runs the destructors of the values on the drop list (newest first),
    /// frees every chunk but the largest, and rewinds the arena to the start
    /// of that chunk.
    ///
    /// Values placed with [`Bump::alloc`] and friends are not dropped.
    ///
    /// If a destructor panics, the other values on the drop list are still
    /// dropped (each once) and the panic then leaves `reset` with the chunks
    /// not yet freed or rewound: the arena is as it was, less its drop
    /// list, and the next `reset` completes. (A second destructor panicking
    /// during that unwind aborts the process, as for a `Vec`.)
    ///
    /// ```
    /// use arenapool_alloc::Bump;
    ///
    /// let mut bump = Bump::new();
    /// for i in 0..1000u64 {
    ///     bump.alloc(i);
    /// }
    /// assert!(bump.chunk_count() > 1);
    /// bump.reset();
    /// assert_eq!(bump.chunk_count(), 1);
    /// let kept = bump.allocated_bytes();
    /// for i in 0..100u64 {
    ///     bump.alloc(i); // fits in the kept chunk: no new chunk
    /// }
    /// assert_eq!(bump.allocated_bytes(), kept);
    /// ```
    pub fn reset(&mut self) {
        // SAFETY: `&mut self`: no reference into the arena is alive.
        unsafe { self.drops.run() };
        let chunks = self.chunks.get_mut();
        let Some(largest) = (0..chunks.len()).max_by_key(|&i| chunks[i].size()) else {
            return;
        };
        let keep = chunks.swap_remove(largest);
        chunks.clear();
        self.cursor.set_chunk(keep.ptr(), keep.size());
        self.allocated.set(keep.size());
        chunks.push(keep);
    }

    /// Allocates `layout`, or returns an error (nothing allocated).
    ///
    /// Alignments up to 4096 (and beyond) are honoured. A zero-sized layout
    /// gets an aligned dangling pointer and takes no space.
    #[inline(always)]
    pub fn try_alloc_layout(&self, layout: Layout) -> Result<NonNull<u8>, BumpError> {
        match self.cursor.try_bump(layout) {
            Some(p) => Ok(p),
            None => self.alloc_layout_slow(layout),
        }
    }

    /// Allocates `layout`. Aborts through [`handle_alloc_error`] if it
    /// cannot (out of memory or past the limit); see
    /// [`Bump::try_alloc_layout`].
    #[inline(always)]
    pub fn alloc_layout(&self, layout: Layout) -> NonNull<u8> {
        match self.try_alloc_layout(layout) {
            Ok(p) => p,
            Err(e) => fail(Some(layout), e),
        }
    }

    /// Moves `value` into the arena. Its destructor will not run (see
    /// [`Bump::alloc_with_drop`]). Aborts if the arena cannot grow; see
    /// [`Bump::try_alloc`].
    #[inline(always)]
    #[allow(clippy::mut_from_ref)] // every call returns fresh memory
    pub fn alloc<T>(&self, value: T) -> &mut T {
        let p = self.alloc_layout(Layout::new::<T>());
        // SAFETY: fresh, aligned memory for a `T`, kept until reset/drop,
        // which need `&mut self`.
        unsafe { write_value(p, value) }
    }

    /// Moves `value` into the arena, or returns an error (dropping `value`).
    ///
    /// ```
    /// use arenapool_alloc::{Bump, BumpError};
    ///
    /// let bump = Bump::new();
    /// bump.set_allocation_limit(Some(0));
    /// assert!(matches!(bump.try_alloc(1u32), Err(BumpError::LimitExceeded { .. })));
    /// ```
    #[inline]
    #[allow(clippy::mut_from_ref)] // every call returns fresh memory
    pub fn try_alloc<T>(&self, value: T) -> Result<&mut T, BumpError> {
        let p = self.try_alloc_layout(Layout::new::<T>())?;
        // SAFETY: as in `alloc`.
        Ok(unsafe { write_value(p, value) })
    }

    /// Copies `src` into the arena. Aborts if the arena cannot grow.
    #[inline]
    #[allow(clippy::mut_from_ref)] // every call returns fresh memory
    pub fn alloc_slice_copy<T: Copy>(&self, src: &[T]) -> &mut [T] {
        match self.try_alloc_slice_copy(src) {
            Ok(s) => s,
            Err(e) => fail(Layout::for_value(src).into(), e),
        }
    }

    /// Copies `src` into the arena, or returns an error.
    #[inline]
    #[allow(clippy::mut_from_ref)] // every call returns fresh memory
    pub fn try_alloc_slice_copy<T: Copy>(&self, src: &[T]) -> Result<&mut [T], BumpError> {
        let p = self.try_alloc_layout(Layout::for_value(src))?;
        // SAFETY: fresh, aligned memory for `src.len()` `T`s.
        Ok(unsafe { copy_slice(p, src) })
    }

    /// Copies `s` into the arena. Aborts if the arena cannot grow.
    #[inline]
    #[allow(clippy::mut_from_ref)] // every call returns fresh memory
    pub fn alloc_str(&self, s: &str) -> &mut str {
        match self.try_alloc_str(s) {
            Ok(s) => s,
            Err(e) => fail(Layout::for_value(s).into(), e),
        }
    }

    /// Copies `s` into the arena, or returns an error.
    #[inline]
    #[allow(clippy::mut_from_ref)] // every call returns fresh memory
    pub fn try_alloc_str(&self, s: &str) -> Result<&mut str, BumpError> {
        let bytes = self.try_alloc_slice_copy(s.as_bytes())?;
        // SAFETY: a byte-for-byte copy of a `str` is valid UTF-8.
        Ok(unsafe { std::str::from_utf8_unchecked_mut(bytes) })
    }

    /// Allocates `len` values `f(0), f(1), ...`. Aborts if the arena cannot
    /// grow; panics if `len` elements overflow `isize::MAX` bytes. If `f`
    /// panics, the values made so far are leaked.
    #[inline]
    #[allow(clippy::mut_from_ref)] // every call returns fresh memory
    pub fn alloc_slice_fill_with<T>(&self, len: usize, f: impl FnMut(usize) -> T) -> &mut [T] {
        let layout = match array_layout::<T>(len) {
            Ok(l) => l,
            Err(e) => fail(None, e),
        };
        let p = self.alloc_layout(layout);
        // SAFETY: fresh, aligned memory for `len` `T`s.
        unsafe { fill_slice(p, len, f) }
    }

    /// Allocates `len` values `f(0), f(1), ...`, or returns an error (and
    /// never calls `f`).
    ///
    /// ```
    /// use arenapool_alloc::{Bump, BumpError};
    ///
    /// let bump = Bump::new();
    /// let e = bump.try_alloc_slice_fill_with(usize::MAX, |i| i).unwrap_err();
    /// assert_eq!(e, BumpError::SizeOverflow);
    /// ```
    #[inline]
    #[allow(clippy::mut_from_ref)] // every call returns fresh memory
    pub fn try_alloc_slice_fill_with<T>(
        &self,
        len: usize,
        f: impl FnMut(usize) -> T,
    ) -> Result<&mut [T], BumpError> {
        let p = self.try_alloc_layout(array_layout::<T>(len)?)?;
        // SAFETY: fresh, aligned memory for `len` `T`s.
        Ok(unsafe { fill_slice(p, len, f) })
    }

    /// Moves `value` into the arena and records it in the drop list: its
    /// destructor runs on [`Bump::reset`] or when the arena is dropped,
    /// newest value first. Aborts if the arena cannot grow.
    ///
    /// `T: 'static` because a value borrowing other arena values could see
    /// them already dropped in its destructor; `T: Send` because the arena
    /// may be dropped on another thread.
    ///
    /// ```
    /// use std::rc::Rc;
    /// use arenapool_alloc::Bump;
    ///
    /// let mut bump = Bump::new();
    /// let s = bump.alloc_with_drop(String::from("owned"));
    /// s.push_str(" text");
    /// let shared = std::sync::Arc::new(());
    /// bump.alloc_with_drop(shared.clone());
    /// assert_eq!(std::sync::Arc::strong_count(&shared), 2);
    /// bump.reset(); // drops the String and the Arc clone
    /// assert_eq!(std::sync::Arc::strong_count(&shared), 1);
    /// ```
    #[allow(clippy::mut_from_ref)] // every call returns fresh memory
    pub fn alloc_with_drop<T: Send + 'static>(&self, value: T) -> &mut T {
        match self.try_alloc_with_drop(value) {
            Ok(v) => v,
            Err(e) => fail(Some(DropList::layout::<T>()), e),
        }
    }

    /// Like [`Bump::alloc_with_drop`], but returns an error (dropping
    /// `value`) if the arena cannot grow.
    #[allow(clippy::mut_from_ref)] // every call returns fresh memory
    pub fn try_alloc_with_drop<T: Send + 'static>(&self, value: T) -> Result<&mut T, BumpError> {
        if !std::mem::needs_drop::<T>() {
            return self.try_alloc(value);
        }
        let p = self.try_alloc_layout(DropList::layout::<T>())?;
        // SAFETY: fresh, aligned memory of `DropList::layout::<T>()`, kept
        // until the list runs (reset or drop, both with `&mut self`).
        Ok(unsafe { self.drops.push(p, value) })
    }

    #[cold]
    #[inline(never)]
    fn alloc_layout_slow(&self, layout: Layout) -> Result<NonNull<u8>, BumpError> {
        if layout.size() == 0 {
            return Ok(dangling(layout));
        }
        // Chunks are 16-aligned; a larger alignment may need padding.
        let need = layout
            .size()
            .checked_add(layout.align().saturating_sub(CHUNK_ALIGN))
            .ok_or(BumpError::SizeOverflow)?;
        self.new_chunk(need, self.next_chunk.get())?;
        self.cursor
            .try_bump(layout)
            .ok_or(BumpError::OutOfMemory { bytes: need })
    }

    /// Allocates a chunk of at least `need` bytes (`preferred` bytes if
    /// that is larger and fits the limit) and makes it current.
    ///
    /// The chunk is counted in `allocated` before the global allocator is
    /// asked for it, and the chunk list is not borrowed while the global
    /// allocator runs (see [`record_chunk`]): an allocator that reads or
    /// allocates from this arena from there finds it consistent, and the
    /// limit holds.
    fn new_chunk(&self, need: usize, preferred: usize) -> Result<(), BumpError> {
        let (need, size) = chunk_size(need, preferred, self.allocated.get(), self.limit.get())?;
        let reserved = self
            .allocated
            .get()
            .checked_add(size)
            .ok_or(BumpError::OutOfMemory { bytes: size })?;
        self.allocated.set(reserved);
        let chunk = alloc_chunk(need, size);
        // A re-entrant call in between may have moved `allocated`: take back
        // only what this call reserved and did not get.
        let got = chunk.as_ref().map_or(0, RawChunk::size);
        self.allocated.set(self.allocated.get() - (size - got));
        let chunk = chunk?;
        let ptr = chunk.ptr();
        if let Err(chunk) = record_chunk(|| self.chunks.borrow_mut(), chunk) {
            self.allocated.set(self.allocated.get() - got);
            drop(chunk);
            return Err(BumpError::OutOfMemory { bytes: got });
        }
        self.cursor.set_chunk(ptr, got);
        self.next_chunk.set(got.saturating_mul(2));
        Ok(())
    }
}

/// The non-`try` methods' failure path: abort like the standard
/// collections on allocation failure, panic on a size overflow.
#[cold]
pub(crate) fn fail(layout: Option<Layout>, error: BumpError) -> ! {
    match (layout, error) {
        (Some(layout), BumpError::OutOfMemory { .. } | BumpError::LimitExceeded { .. }) => {
            handle_alloc_error(layout)
        }
        (_, e) => panic!("bump allocation failed: {e}"),
    }
}

impl Drop for Bump {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no reference into the arena is alive, and the
        // chunks are freed only after this (fields drop after `drop`).
        unsafe { self.drops.run() };
    }
}

// SAFETY: blocks come from `try_alloc_layout`, so they are valid for their
// layout and stay allocated until the `Bump` is reset or dropped, which
// needs `&mut Bump` and so cannot happen while a `&Bump` (this allocator)
// is alive. `deallocate`, `grow` and `shrink` only move the bump pointer for
// the most recent block of the current chunk, whose bytes nothing else
// uses; every other block is left alone (or copied out of, for a move).
unsafe impl Allocator for &Bump {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let p = self.try_alloc_layout(layout).map_err(|_| AllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, layout.size()))
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        self.cursor.release(ptr, layout.size());
    }

    #[inline]
    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { resize(&self.cursor, self, ptr, old, new) }
    }

    #[inline]
    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { resize(&self.cursor, self, ptr, old, new) }
    }
}

/// `grow` and `shrink` for an arena allocator: in place when `ptr` is the
/// most recent block of `cursor`'s chunk and already aligned for `new`,
/// otherwise a fresh block from `alloc` and a copy.
///
/// # Safety
///
/// `ptr` must be a block of layout `old` allocated by `alloc`, whose cursor
/// is `cursor`, and not used again by the caller if this succeeds.
#[inline]
pub(crate) unsafe fn resize<A: Allocator>(
    cursor: &Cursor,
    alloc: &A,
    ptr: NonNull<u8>,
    old: Layout,
    new: Layout,
) -> Result<NonNull<[u8]>, AllocError> {
    if ptr.as_ptr().addr() & (new.align() - 1) == 0 {
        if new.size() <= old.size() {
            // Shrinking in place is always possible; give the tail back if
            // this is the last block.
            cursor.resize_last(ptr, old.size(), new.size());
            return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
        }
        if cursor.resize_last(ptr, old.size(), new.size()) {
            return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
        }
    }
    let fresh = alloc.allocate(new)?;
    // SAFETY: `ptr` is valid for `old.size()` bytes (caller) and the fresh
    // block for `new.size()`; they are distinct blocks, so they do not
    // overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            ptr.as_ptr(),
            fresh.cast::<u8>().as_ptr(),
            old.size().min(new.size()),
        );
    }
    Ok(fresh)
}

#[cfg(all(test, not(loom)))]
mod tests;
