//! A thread-safe bump `GlobalAlloc` over a fixed region, with a fallback.
//!
//! The seed article's `Bump` global allocator returned null from `alloc`.
//! [`Region`] is that idea working: an atomic offset bumps through a fixed
//! block of memory (inline in the `Region`, so a `static` puts it in
//! `.bss`, or a block the caller provides), honouring every alignment. It
//! suits short-lived tools and tests that allocate a bounded amount and
//! exit:
//!
//! * `alloc` is a compare-and-swap on the offset; it never takes a lock.
//! * `dealloc` gives memory back only for the most recent allocation (a
//!   compare-and-swap that rewinds the offset); anything else stays used
//!   until the process ends.
//! * When the region is full, allocations go to the wrapped fallback
//!   allocator instead of failing. Frees and reallocations are routed by
//!   address: a block inside the region is the region's, anything else
//!   belongs to the fallback.
//! * `realloc` of the most recent block grows or shrinks it in place.
//!
//! Memory is handed out from a pointer taken once from the region's
//! `UnsafeCell` (or from the caller), with the provenance of the whole
//! region; the offset uses acquire/release ordering so a block rewound by
//! one thread and handed out again to another is not raced on
//! (`region/offset.rs` has the protocol and its loom models).
//!
//! Miri cannot check a program that installs a `Region` as its global
//! allocator: both of its borrow models flag std's own thread start, which
//! frees a `Box` argument and allocates again while that argument is still
//! protected, when the region hands the freed bytes straight back. Miri
//! cannot see a user allocator's free, so it takes the new block for an
//! alias of the old `Box` (rust-lang/miri#5284). The region's own code runs
//! under Miri through its unit tests, which call it directly.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

mod offset;

/// A bump `GlobalAlloc` over `N` bytes stored inline, falling back to `F`
/// when they run out.
///
/// ```
/// use std::alloc::System;
/// use arenapool_alloc::Region;
///
/// #[global_allocator]
/// static ALLOC: Region<{ 1 << 20 }> = Region::new(System);
///
/// let v: Vec<u32> = (0..1000).collect();
/// assert!(ALLOC.used() >= 4000);
/// let big = vec![0u8; 2 << 20]; // bigger than the region: from System
/// assert!(ALLOC.fallback_allocations() >= 1);
/// # drop((v, big));
/// ```
///
/// A `Region` with inline memory must not move while blocks it handed out
/// are alive (as a `static` it never moves).
pub struct Region<const N: usize, F = System> {
    memory: UnsafeCell<[u8; N]>,
    /// Null for the inline memory, else the caller's block.
    external: *mut u8,
    external_len: usize,
    /// Offset of the first free byte.
    next: AtomicUsize,
    fallbacks: AtomicUsize,
    fallback: F,
}

/// A [`Region`] over memory the caller provides; see
/// [`Region::from_raw_parts`].
pub type ExternalRegion<F = System> = Region<0, F>;

// SAFETY: the shared state is the atomic offset and counters; the bytes of
// the region are only written through blocks handed out to one owner at a
// time (the offset's compare-and-swap makes blocks disjoint), and `F` is
// shared as `&F`, so it must be `Sync`.
unsafe impl<const N: usize, F: Sync> Sync for Region<N, F> {}
// SAFETY: as above; the region owns (or, for external memory, was given
// exclusive use of) its bytes, which have no thread affinity.
unsafe impl<const N: usize, F: Send> Send for Region<N, F> {}

impl<const N: usize, F: fmt::Debug> fmt::Debug for Region<N, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("capacity", &self.capacity())
            .field("used", &self.used())
            .field("fallback_allocations", &self.fallback_allocations())
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl<const N: usize, F> Region<N, F> {
    /// A region of `N` bytes stored inline, falling back to `fallback`.
    /// `const`, for a `#[global_allocator]` static; all its fields start
    /// zeroed, so a static `Region` takes no space in the binary (`.bss`).
    pub const fn new(fallback: F) -> Self {
        Self {
            memory: UnsafeCell::new([0; N]),
            external: std::ptr::null_mut(),
            external_len: 0,
            next: AtomicUsize::new(0),
            fallbacks: AtomicUsize::new(0),
            fallback,
        }
    }

    /// Size of the region in bytes.
    pub fn capacity(&self) -> usize {
        self.bounds().1
    }

    /// Bytes of the region handed out (including alignment padding), up
    /// to [`capacity`](Region::capacity).
    pub fn used(&self) -> usize {
        self.next.load(Relaxed)
    }

    /// How many allocations went to the fallback allocator.
    pub fn fallback_allocations(&self) -> usize {
        self.fallbacks.load(Relaxed)
    }

    /// The fallback allocator.
    pub fn fallback(&self) -> &F {
        &self.fallback
    }

    /// Whether `ptr` points into the region.
    pub fn contains(&self, ptr: *const u8) -> bool {
        let (base, len) = self.bounds();
        ptr.addr().wrapping_sub(base.addr()) < len
    }

    /// The region's start and length.
    #[inline]
    fn bounds(&self) -> (*mut u8, usize) {
        if self.external.is_null() {
            // `UnsafeCell::get` is the sanctioned way to a writable pointer
            // behind `&self`; it covers all `N` bytes.
            (self.memory.get().cast::<u8>(), N)
        } else {
            (self.external, self.external_len)
        }
    }

    /// Carves `layout` out of the region, or returns `None` when it does
    /// not fit.
    #[inline]
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        let (base, len) = self.bounds();
        let off = offset::bump(&self.next, base.addr(), len, layout)?;
        // SAFETY: `offset::bump` returns an offset whose block of
        // `layout.size()` bytes ends within `len`, so the pointer is inside
        // the region, and its CAS made the block ours alone.
        Some(unsafe { base.add(off) })
    }

    /// Rewinds the offset from `off + old` to `off + new` if the block at
    /// `off` is the most recent one and `off + new` fits. Returns whether
    /// it did.
    #[inline]
    fn resize_last(&self, off: usize, old: usize, new: usize) -> bool {
        offset::resize_last(&self.next, self.bounds().1, off, old, new)
    }
}

impl<F> Region<0, F> {
    /// A region over `len` bytes at `base`, falling back to `fallback`.
    ///
    /// # Safety
    ///
    /// `base` must be valid for reads and writes of `len` bytes for as long
    /// as the region or any block it handed out is used, and nothing else
    /// may access those bytes in that time.
    ///
    /// ```
    /// use std::alloc::{GlobalAlloc, Layout, System};
    /// use arenapool_alloc::ExternalRegion;
    ///
    /// let mut memory = vec![0u8; 4096];
    /// // SAFETY: `memory` outlives `region` and is used only through it.
    /// let region = unsafe { ExternalRegion::from_raw_parts(memory.as_mut_ptr(), 4096, System) };
    /// let l = Layout::from_size_align(100, 64).unwrap();
    /// // SAFETY: non-zero size; freed with the same layout.
    /// unsafe {
    ///     let p = region.alloc(l);
    ///     assert!(region.contains(p) && p.addr() % 64 == 0);
    ///     region.dealloc(p, l);
    /// }
    /// ```
    pub const unsafe fn from_raw_parts(base: *mut u8, len: usize, fallback: F) -> Self {
        Self {
            memory: UnsafeCell::new([]),
            external: base,
            external_len: if base.is_null() { 0 } else { len },
            next: AtomicUsize::new(0),
            fallbacks: AtomicUsize::new(0),
            fallback,
        }
    }
}

// SAFETY: region blocks are disjoint (the offset's CAS hands each byte to
// one block), inside the region, aligned as asked, and handed out again only
// after the block covering them was freed (rewound). Every other request is
// forwarded to `F` unchanged, and a pointer is routed back to `F` only if it
// lies outside the region, which blocks from `F` always do (the region's
// bytes are not `F`'s).
unsafe impl<const N: usize, F: GlobalAlloc> GlobalAlloc for Region<N, F> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(p) => p,
            None => {
                self.fallbacks.fetch_add(1, Relaxed);
                // SAFETY: the caller's guarantee (non-zero size) forwarded.
                unsafe { self.fallback.alloc(layout) }
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(p) => {
                // SAFETY: `p` is a fresh block of `layout.size()` bytes; it
                // may hold bytes of a freed block, so zero it.
                unsafe { p.write_bytes(0, layout.size()) };
                p
            }
            None => {
                self.fallbacks.fetch_add(1, Relaxed);
                // SAFETY: the caller's guarantee (non-zero size) forwarded.
                unsafe { self.fallback.alloc_zeroed(layout) }
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.contains(ptr) {
            let off = ptr.addr() - self.bounds().0.addr();
            self.resize_last(off, layout.size(), 0);
        } else {
            // SAFETY: outside the region, so the block came from the
            // fallback with this layout (caller).
            unsafe { self.fallback.dealloc(ptr, layout) }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.contains(ptr) {
            // SAFETY: outside the region, so the block came from the
            // fallback; the caller's guarantees are forwarded.
            return unsafe { self.fallback.realloc(ptr, layout, new_size) };
        }
        let off = ptr.addr() - self.bounds().0.addr();
        if self.resize_last(off, layout.size(), new_size) || new_size <= layout.size() {
            // Resized in place, or a shrink of an older block: it keeps its
            // bytes, the tail is simply unused.
            return ptr;
        }
        // SAFETY: `new_size` with the old alignment is a valid layout (the
        // caller's guarantee for `realloc`).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_size` is non-zero (caller).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the copied length and are
            // distinct blocks, so they do not overlap; then the old block is
            // freed with its own layout.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
