//! One bump arena filled by many threads.
//!
//! bumpalo's `Bump` is `!Sync`, and users have asked for a shared one for
//! years. A single atomic bump pointer would make every allocation a
//! contended read-modify-write; instead, [`SyncBump`] is a shared *chunk
//! source* and each thread allocates through its own [`BumpHandle`]:
//!
//! * a handle bumps a pointer in a chunk only it uses, with the same
//!   non-atomic fast path as [`Bump`](crate::Bump);
//! * when its chunk is full it takes a new one from the `SyncBump` (a mutex,
//!   once per chunk, never held while the global allocator runs; chunks
//!   grow geometrically per handle);
//! * the chunks belong to the `SyncBump`, not the handle, so values live as
//!   long as the arena: a handle can be dropped (or its thread end) and
//!   what it allocated is still there, borrowed from the `SyncBump`.
//!
//! The unused tail of a handle's last chunk is not reused by other handles.
//! Values are never dropped (there is no shared drop list); allocate types
//! without destructors, or use `Bump::alloc_with_drop` per thread.

use std::alloc::Layout;
use std::cell::Cell;
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};

use allocator_api2::alloc::{AllocError, Allocator};

use super::{
    Cursor, FIRST_CHUNK, alloc_chunk, array_layout, chunk_size, copy_slice, dangling, fail,
    fill_slice, record_chunk, resize, write_value,
};
use crate::error::BumpError;
use crate::raw::{CHUNK_ALIGN, RawChunk};

/// A bump arena that several threads fill at once, each through its own
/// [`BumpHandle`].
///
/// ```
/// use arenapool_alloc::SyncBump;
///
/// let arena = SyncBump::new();
/// let words: Vec<&str> = std::thread::scope(|s| {
///     let workers: Vec<_> = (0..4)
///         .map(|i| {
///             let arena = &arena;
///             s.spawn(move || {
///                 let h = arena.handle();
///                 &*h.alloc_str(&format!("word {i}")) // outlives the handle
///             })
///         })
///         .collect();
///     workers.into_iter().map(|w| w.join().unwrap()).collect()
/// });
/// assert_eq!(words, ["word 0", "word 1", "word 2", "word 3"]);
/// ```
pub struct SyncBump {
    chunks: Mutex<Vec<RawChunk>>,
    /// The chunk kept by the last reset, handed to the next handle.
    spare: Mutex<Option<RawChunk>>,
    allocated: AtomicUsize,
    limit: Option<usize>,
}

impl Default for SyncBump {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SyncBump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncBump")
            .field("allocated_bytes", &self.allocated_bytes())
            .field("allocation_limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl SyncBump {
    /// An empty arena with no limit.
    pub const fn new() -> Self {
        Self {
            chunks: Mutex::new(Vec::new()),
            spare: Mutex::new(None),
            allocated: AtomicUsize::new(0),
            limit: None,
        }
    }

    /// An empty arena that holds at most `limit` bytes of chunks; past it,
    /// `try_*` allocations fail with [`BumpError::LimitExceeded`].
    ///
    /// ```
    /// use arenapool_alloc::{BumpError, SyncBump};
    ///
    /// let arena = SyncBump::with_allocation_limit(4096);
    /// let h = arena.handle();
    /// assert!(h.try_alloc([0u8; 4000]).is_ok());
    /// assert!(matches!(h.try_alloc([0u8; 200]), Err(BumpError::LimitExceeded { .. })));
    /// ```
    pub const fn with_allocation_limit(limit: usize) -> Self {
        let mut s = Self::new();
        s.limit = Some(limit);
        s
    }

    /// A handle to allocate through on the calling thread. Values it
    /// allocates borrow the arena, not the handle.
    pub fn handle(&self) -> BumpHandle<'_> {
        BumpHandle {
            arena: self,
            cursor: Cursor::empty(),
            next_chunk: Cell::new(FIRST_CHUNK),
        }
    }

    /// Total size of the chunks this arena holds, used or not (and of
    /// those being allocated right now: a chunk is counted before it is
    /// asked of the global allocator).
    pub fn allocated_bytes(&self) -> usize {
        self.allocated.load(Relaxed)
    }

    /// Frees every chunk but the largest and keeps that one for the next
    /// handle. Values are not dropped.
    ///
    /// ```
    /// use arenapool_alloc::SyncBump;
    ///
    /// let mut arena = SyncBump::new();
    /// arena.handle().alloc_slice_copy(&[1u8; 5000]);
    /// arena.handle().alloc(1u8);
    /// arena.reset();
    /// let kept = arena.allocated_bytes();
    /// assert!(kept >= 5000);
    /// arena.handle().alloc_slice_copy(&[2u8; 4000]); // reuses the kept chunk
    /// assert_eq!(arena.allocated_bytes(), kept);
    /// ```
    pub fn reset(&mut self) {
        let chunks = self.chunks.get_mut().unwrap_or_else(|e| e.into_inner());
        let spare = self.spare.get_mut().unwrap_or_else(|e| e.into_inner());
        chunks.extend(spare.take());
        let Some(largest) = (0..chunks.len()).max_by_key(|&i| chunks[i].size()) else {
            return;
        };
        let keep = chunks.swap_remove(largest);
        chunks.clear();
        self.allocated.store(keep.size(), Relaxed);
        *spare = Some(keep);
    }

    /// A chunk for a request of `need` bytes, preferably `preferred` bytes.
    /// Returns its start and size; the arena keeps it.
    ///
    /// No lock is held while the global allocator runs (user code: it may
    /// itself allocate from this arena, or wait for a thread that does):
    /// the spare chunk is taken under its lock, a new chunk is counted
    /// against the limit with a compare-and-swap and then allocated with no
    /// lock held, and [`record_chunk`] grows the chunk list outside its
    /// lock.
    fn chunk_for(&self, need: usize, preferred: usize) -> Result<(NonNull<u8>, usize), BumpError> {
        let spare = {
            let mut spare = lock(&self.spare);
            match spare.take() {
                Some(c) if c.size() >= need => Some(c),
                other => {
                    *spare = other;
                    None
                }
            }
        };
        let chunk = match spare {
            Some(c) => c,
            None => self.new_chunk(need, preferred)?,
        };
        let found = (chunk.ptr(), chunk.size());
        if let Err(chunk) = record_chunk(|| lock(&self.chunks), chunk) {
            drop(chunk);
            self.allocated.fetch_sub(found.1, Relaxed);
            return Err(BumpError::OutOfMemory { bytes: need });
        }
        Ok(found)
    }

    /// Allocates a new chunk for [`chunk_for`](Self::chunk_for), counted in
    /// `allocated` before it is allocated so concurrent (or re-entrant)
    /// requests cannot together pass the limit.
    fn new_chunk(&self, need: usize, preferred: usize) -> Result<RawChunk, BumpError> {
        let mut allocated = self.allocated.load(Relaxed);
        let (need, size) = loop {
            let (need, size) = chunk_size(need, preferred, allocated, self.limit)?;
            let total = allocated
                .checked_add(size)
                .ok_or(BumpError::OutOfMemory { bytes: size })?;
            match self
                .allocated
                .compare_exchange_weak(allocated, total, Relaxed, Relaxed)
            {
                Ok(_) => break (need, size),
                Err(now) => allocated = now,
            }
        };
        let chunk = alloc_chunk(need, size);
        let got = chunk.as_ref().map_or(0, RawChunk::size);
        self.allocated.fetch_sub(size - got, Relaxed);
        chunk
    }
}

/// Locks `m`. No user code, and nothing else that can panic, runs while one
/// of the arena's locks is held, so none is ever poisoned; were one to be,
/// its data would still be consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One thread's way into a [`SyncBump`]: allocation bumps a pointer in a
/// chunk only this handle uses.
///
/// `Send` (move it into a thread) but not `Sync`. Everything it returns
/// borrows the arena for `'a`, so it may outlive the handle.
///
/// `&BumpHandle` implements [`Allocator`], with the same in-place growth of
/// the most recent allocation as `&Bump`.
pub struct BumpHandle<'a> {
    arena: &'a SyncBump,
    cursor: Cursor,
    next_chunk: Cell<usize>,
}

// SAFETY: the handle's cursor points into a chunk owned by the arena (which
// is `Sync`); the handle has no thread affinity, and moving it needs
// ownership, so no other thread can be using its cursor.
unsafe impl Send for BumpHandle<'_> {}

impl fmt::Debug for BumpHandle<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BumpHandle")
            .field("remaining_in_chunk", &self.cursor.remaining())
            .finish_non_exhaustive()
    }
}

#[allow(clippy::mut_from_ref)] // every call returns fresh memory
impl<'a> BumpHandle<'a> {
    /// The arena this handle fills.
    pub fn arena(&self) -> &'a SyncBump {
        self.arena
    }

    /// Allocates `layout` or returns an error; see [`Bump::try_alloc_layout`](crate::Bump::try_alloc_layout).
    #[inline]
    pub fn try_alloc_layout(&self, layout: Layout) -> Result<NonNull<u8>, BumpError> {
        match self.cursor.try_bump(layout) {
            Some(p) => Ok(p),
            None => self.alloc_layout_slow(layout),
        }
    }

    /// Allocates `layout`; aborts through
    /// [`handle_alloc_error`](std::alloc::handle_alloc_error) if it cannot.
    #[inline]
    pub fn alloc_layout(&self, layout: Layout) -> NonNull<u8> {
        match self.try_alloc_layout(layout) {
            Ok(p) => p,
            Err(e) => fail(Some(layout), e),
        }
    }

    /// Moves `value` into the arena (never dropped). Aborts if the arena
    /// cannot grow.
    #[inline]
    pub fn alloc<T>(&self, value: T) -> &'a mut T {
        let p = self.alloc_layout(Layout::new::<T>());
        // SAFETY: fresh, aligned memory for a `T` in a chunk the arena keeps
        // for `'a` (freeing needs `&mut SyncBump`).
        unsafe { write_value(p, value) }
    }

    /// Moves `value` into the arena, or returns an error.
    #[inline]
    pub fn try_alloc<T>(&self, value: T) -> Result<&'a mut T, BumpError> {
        let p = self.try_alloc_layout(Layout::new::<T>())?;
        // SAFETY: as in `alloc`.
        Ok(unsafe { write_value(p, value) })
    }

    /// Copies `src` into the arena. Aborts if the arena cannot grow.
    #[inline]
    pub fn alloc_slice_copy<T: Copy>(&self, src: &[T]) -> &'a mut [T] {
        match self.try_alloc_slice_copy(src) {
            Ok(s) => s,
            Err(e) => fail(Layout::for_value(src).into(), e),
        }
    }

    /// Copies `src` into the arena, or returns an error.
    #[inline]
    pub fn try_alloc_slice_copy<T: Copy>(&self, src: &[T]) -> Result<&'a mut [T], BumpError> {
        let p = self.try_alloc_layout(Layout::for_value(src))?;
        // SAFETY: fresh, aligned memory for `src.len()` `T`s, kept for `'a`.
        Ok(unsafe { copy_slice(p, src) })
    }

    /// Copies `s` into the arena. Aborts if the arena cannot grow.
    #[inline]
    pub fn alloc_str(&self, s: &str) -> &'a mut str {
        match self.try_alloc_str(s) {
            Ok(s) => s,
            Err(e) => fail(Layout::for_value(s).into(), e),
        }
    }

    /// Copies `s` into the arena, or returns an error.
    #[inline]
    pub fn try_alloc_str(&self, s: &str) -> Result<&'a mut str, BumpError> {
        let bytes = self.try_alloc_slice_copy(s.as_bytes())?;
        // SAFETY: a byte-for-byte copy of a `str` is valid UTF-8.
        Ok(unsafe { std::str::from_utf8_unchecked_mut(bytes) })
    }

    /// Allocates `len` values `f(0), f(1), ...`, or returns an error (and
    /// never calls `f`).
    #[inline]
    pub fn try_alloc_slice_fill_with<T>(
        &self,
        len: usize,
        f: impl FnMut(usize) -> T,
    ) -> Result<&'a mut [T], BumpError> {
        let p = self.try_alloc_layout(array_layout::<T>(len)?)?;
        // SAFETY: fresh, aligned memory for `len` `T`s, kept for `'a`.
        Ok(unsafe { fill_slice(p, len, f) })
    }

    /// Allocates `len` values `f(0), f(1), ...`. Aborts if the arena cannot
    /// grow, panics if the size overflows.
    #[inline]
    pub fn alloc_slice_fill_with<T>(&self, len: usize, f: impl FnMut(usize) -> T) -> &'a mut [T] {
        match self.try_alloc_slice_fill_with(len, f) {
            Ok(s) => s,
            Err(e) => fail(array_layout::<T>(len).ok(), e),
        }
    }

    #[cold]
    #[inline(never)]
    fn alloc_layout_slow(&self, layout: Layout) -> Result<NonNull<u8>, BumpError> {
        if layout.size() == 0 {
            return Ok(dangling(layout));
        }
        let need = layout
            .size()
            .checked_add(layout.align().saturating_sub(CHUNK_ALIGN))
            .ok_or(BumpError::SizeOverflow)?;
        let (chunk, size) = self.arena.chunk_for(need, self.next_chunk.get())?;
        self.cursor.set_chunk(chunk, size);
        self.next_chunk.set(size.saturating_mul(2));
        self.cursor
            .try_bump(layout)
            .ok_or(BumpError::OutOfMemory { bytes: need })
    }
}

// SAFETY: as for `&Bump`: blocks are valid for their layout and stay
// allocated until the `SyncBump` is reset or dropped, which needs
// `&mut SyncBump` while this allocator borrows it; only the most recent
// block of the handle's own chunk is ever resized or given back in place.
unsafe impl Allocator for &BumpHandle<'_> {
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
