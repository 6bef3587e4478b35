//! Raw allocation: the only module that calls the global allocator or maps
//! memory directly.
//!
//! An [`Arena`] is one zero-initialised, aligned block of
//! `slots x stride` bytes, from the heap (`alloc_zeroed`) or from an
//! anonymous `mmap` (4 KiB pages, transparent huge pages or `MAP_HUGETLB`;
//! see `backing.rs` for what each needs and how requests degrade). Every
//! pointer the pool hands out is derived from the pointer that
//! `alloc_zeroed` or `mmap` returned, so it carries the provenance of the
//! whole block; nothing is ever derived from a shared reference (the seed
//! article's `Arc<Vec<u8>>` cast, which Miri rejects).
//!
//! Because the block is zeroed when it is made (by `alloc_zeroed`, or by
//! the kernel, which fills anonymous mappings with zeros) and the pool only
//! ever writes initialised bytes into it, every byte of every slot is
//! initialised for the whole life of the arena. That is what lets a handle
//! expose its whole slot as `&mut [u8]` safely.
//!
//! Mapped arenas start on a page boundary (4 KiB or more), which satisfies
//! every alignment a pool allows ([`MAX_ALIGNMENT`](crate::MAX_ALIGNMENT)),
//! so `base` is the start of the mapping. They are `munlock`ed (when
//! locked) and `munmap`ped on drop.

use std::alloc::Layout;
use std::ptr::NonNull;

use crate::backing::{Backing, Fallback, Outcome, Pages, Request, Shortfall, Step};
use crate::error::BuildError;

mod pages;

/// The largest alignment for which the system allocator's `alloc_zeroed`
/// is `calloc`, which maps fresh zero pages lazily for large blocks. For
/// larger alignments std uses `aligned_alloc` plus `memset`, which touches
/// (and so commits) every page of the arena at build time.
const CALLOC_ALIGN: usize = 16;

/// Size and alignment of a transparent or `MAP_HUGETLB` huge page on the
/// platforms this crate maps on (x86-64, and aarch64 with 4 KiB base
/// pages). With another default huge page size, `MAP_HUGETLB` of a 2 MiB
/// multiple fails with `EINVAL` and the request degrades, reported.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const HUGE_PAGE: usize = 2 << 20;

/// Where an arena's block came from, and how to give it back.
enum Memory {
    /// `raw` came from `alloc_zeroed(layout)`; `base` is `raw` advanced by
    /// less than the alignment.
    Heap { raw: NonNull<u8>, layout: Layout },
    /// `base .. base + len` is one anonymous mapping made by `map::*`,
    /// `mlock`ed if `locked`.
    Mapped { len: usize, locked: bool },
}

/// One zero-initialised block, freed (or unmapped) on drop.
///
/// Invariants: `base .. base + len` lies inside the block described by
/// `mem`, which stays allocated or mapped until `Drop`; `base` is aligned
/// as asked; every byte of the block is initialised.
pub(crate) struct Arena {
    base: NonNull<u8>,
    len: usize,
    mem: Memory,
    outcome: Outcome,
}

/// Records shortfalls under [`Fallback::Degrade`], or turns the first one
/// into an error under [`Fallback::Fail`].
struct Shortfalls {
    fail: bool,
    list: [Option<Shortfall>; 3],
}

impl Shortfalls {
    fn note(&mut self, s: Shortfall) -> Result<(), BuildError> {
        if self.fail {
            return Err(BuildError::BackingUnavailable(s));
        }
        if let Some(free) = self.list.iter_mut().find(|x| x.is_none()) {
            *free = Some(s);
        }
        Ok(())
    }
}

impl Arena {
    /// An arena of `slots * stride` zeroed bytes aligned to `align`, backed
    /// as `req` asks, or as well as the system allows under
    /// [`Fallback::Degrade`] (see `backing.rs`).
    ///
    /// # Errors
    ///
    /// [`BuildError::TooLarge`] or [`BuildError::Alloc`] as for
    /// [`zeroed`](Self::zeroed); [`BuildError::BackingUnavailable`] under
    /// [`Fallback::Fail`] when any step of the request fails (nothing is
    /// left mapped then).
    pub(crate) fn new(
        slots: u32,
        stride: usize,
        align: usize,
        req: Request,
    ) -> Result<Self, BuildError> {
        let len = Self::size(slots, stride)?;
        if req.backing == Backing::Heap {
            return Self::zeroed(slots, stride, align);
        }
        debug_assert!(align <= 4096, "the builder caps alignment at one page");
        let mut short = Shortfalls {
            fail: req.fallback == Fallback::Fail,
            list: [None; 3],
        };
        let first = match req.backing {
            Backing::HugeTlb => map::huge_tlb(len).map(|m| (m, Pages::Huge)),
            Backing::TransparentHugePages => map::thp(len).map(|m| (m, Pages::HugeAdvised)),
            _ => map::small(len).map(|m| (m, Pages::Small)),
        };
        let mapped = match first {
            Ok(m) => Some(m),
            Err(s) => {
                short.note(s)?;
                if req.backing == Backing::HugeTlb {
                    // Degrade: 4 KiB pages, else the heap below.
                    match map::small(len) {
                        Ok(m) => Some((m, Pages::Small)),
                        Err(s) => {
                            short.note(s)?;
                            None
                        }
                    }
                } else {
                    None
                }
            }
        };
        let Some(((base, map_len), mut pages)) = mapped else {
            let mut arena = Self::zeroed(slots, stride, align)?;
            if req.lock {
                // Never under `Fail`: the first shortfall returned already.
                short.note(Shortfall::new(Step::Mlock, None))?;
            }
            arena.outcome.shortfalls = short.list;
            return Ok(arena);
        };
        // From here on, dropping `arena` unmaps the block.
        let mut arena = Self {
            base,
            len,
            mem: Memory::Mapped {
                len: map_len,
                locked: false,
            },
            outcome: Outcome {
                pages,
                locked: false,
                shortfalls: [None; 3],
            },
        };
        if pages == Pages::HugeAdvised {
            let advised = if map::thp_never() {
                Err(Shortfall::new(Step::ThpDisabled, None))
            } else {
                // SAFETY: `base .. base + map_len` is the mapping just made
                // and owned by `arena`; advice does not change its contents.
                unsafe { map::advise_huge(base, map_len) }
            };
            if let Err(s) = advised {
                short.note(s)?;
                pages = Pages::Small;
            }
        }
        if req.lock {
            // SAFETY: as above: the range is `arena`'s own mapping.
            match unsafe { map::lock(base, map_len) } {
                Ok(()) => {
                    arena.mem = Memory::Mapped {
                        len: map_len,
                        locked: true,
                    };
                    arena.outcome.locked = true;
                }
                Err(s) => short.note(s)?,
            }
        }
        arena.outcome.pages = pages;
        arena.outcome.shortfalls = short.list;
        Ok(arena)
    }

    /// `slots * stride`, checked to fit `isize`.
    fn size(slots: u32, stride: usize) -> Result<usize, BuildError> {
        stride
            .checked_mul(slots as usize)
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or(BuildError::TooLarge)
    }

    /// Allocates `slots * stride` zeroed bytes aligned to `align` from the
    /// global allocator.
    ///
    /// Alignments above 16 are served by over-allocating `align - 1` bytes
    /// at alignment 16 and rounding the start up, so the block still comes
    /// from `calloc` and its pages are committed only when first written.
    ///
    /// Fails with a typed error (never a panic or an abort) when the size
    /// overflows `isize` or the allocator returns null.
    #[allow(clippy::disallowed_methods)] // this module owns raw allocation
    pub(crate) fn zeroed(slots: u32, stride: usize, align: usize) -> Result<Self, BuildError> {
        let len = Self::size(slots, stride)?;
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
            base,
            len,
            mem: Memory::Heap { raw, layout },
            outcome: Outcome {
                pages: Pages::Heap,
                locked: false,
                shortfalls: [None; 3],
            },
        })
    }

    /// The first byte of the block, aligned as asked. Pointers into slots
    /// are derived from it with `add`, which keeps the block's provenance.
    #[inline]
    pub(crate) fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// Size of the block in bytes (`slots * stride`): `base .. base + len`
    /// is the memory slots live in, e.g. for registering it with the kernel.
    #[allow(dead_code)] // used by tests and by I/O registration
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// What backing this arena got, and why it fell short if it did.
    pub(crate) fn outcome(&self) -> &Outcome {
        &self.outcome
    }
}

impl Drop for Arena {
    #[allow(clippy::disallowed_methods)] // this module owns raw allocation
    fn drop(&mut self) {
        match self.mem {
            // SAFETY: `raw` was returned by `alloc_zeroed(layout)` and is
            // freed exactly once, here (type invariant).
            Memory::Heap { raw, layout } => unsafe { std::alloc::dealloc(raw.as_ptr(), layout) },
            // SAFETY: `base .. base + len` is the mapping made for this
            // arena (type invariant), unmapped exactly once, here; no
            // references into it outlive the pool, which owns the arena.
            Memory::Mapped { len, locked } => unsafe { map::unmap(self.base, len, locked) },
        }
    }
}

// SAFETY: `Arena` owns its block like a `Box<[u8]>` does; it has no
// thread-affine state (a mapping belongs to the process). Access to the
// bytes is coordinated by the pool.
unsafe impl Send for Arena {}
// SAFETY: `&Arena` only exposes the base pointer, the size and the
// outcome; writes through that pointer are governed by slot ownership in
// the pool.
unsafe impl Sync for Arena {}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (source, size) = match self.mem {
            Memory::Heap { layout, .. } => ("heap", layout.size()),
            Memory::Mapped { len, .. } => ("mmap", len),
        };
        f.debug_struct("Arena")
            .field("bytes", &self.len)
            .field(source, &size)
            .field("outcome", &self.outcome)
            .finish()
    }
}

/// The system calls, on Linux through `rustix`.
#[cfg(target_os = "linux")]
mod map {
    use std::ffi::c_void;
    use std::ptr::{self, NonNull};

    use rustix::mm::{self, Advice, MapFlags, ProtFlags};

    use super::HUGE_PAGE;
    use crate::backing::{Shortfall, Step};

    fn short(step: Step) -> impl FnOnce(rustix::io::Errno) -> Shortfall {
        move |e| Shortfall::new(step, Some(e.raw_os_error()))
    }

    /// An anonymous private read-write mapping of `len` bytes with `extra`
    /// flags. The kernel fills it with zeros.
    fn anon(len: usize, extra: MapFlags, step: Step) -> Result<NonNull<u8>, Shortfall> {
        // SAFETY: a fresh anonymous mapping at an address of the kernel's
        // choosing (null hint, no MAP_FIXED) cannot alias any existing
        // memory.
        let p = unsafe {
            mm::mmap_anonymous(
                ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | extra,
            )
        }
        .map_err(short(step))?;
        NonNull::new(p.cast::<u8>()).ok_or(Shortfall::new(step, None))
    }

    /// `len` bytes of 4 KiB pages: the mapping and its length.
    pub(super) fn small(len: usize) -> Result<(NonNull<u8>, usize), Shortfall> {
        anon(len, MapFlags::empty(), Step::Mmap).map(|p| (p, len))
    }

    /// `len` rounded up to 2 MiB of `MAP_HUGETLB` pages, reserved now (no
    /// `MAP_NORESERVE`, so a fault never finds the pool empty later).
    pub(super) fn huge_tlb(len: usize) -> Result<(NonNull<u8>, usize), Shortfall> {
        let step = Step::MmapHugeTlb;
        let len = len
            .checked_next_multiple_of(HUGE_PAGE)
            .ok_or(Shortfall::new(step, None))?;
        anon(len, MapFlags::HUGETLB, step).map(|p| (p, len))
    }

    /// `len` rounded up to 2 MiB, starting on a 2 MiB boundary so that the
    /// kernel can back all of it with huge pages: map 2 MiB more, then
    /// unmap the unaligned head and the tail.
    pub(super) fn thp(len: usize) -> Result<(NonNull<u8>, usize), Shortfall> {
        let none = Shortfall::new(Step::Mmap, None);
        let len = len.checked_next_multiple_of(HUGE_PAGE).ok_or(none)?;
        let total = len.checked_add(HUGE_PAGE).ok_or(none)?;
        let raw = anon(total, MapFlags::empty(), Step::Mmap)?;
        let head = raw.as_ptr().addr().next_multiple_of(HUGE_PAGE) - raw.as_ptr().addr();
        // SAFETY: `head < HUGE_PAGE`, so `raw + head .. + len` lies inside
        // the `total = len + HUGE_PAGE` bytes just mapped.
        let base = unsafe { raw.add(head) };
        let tail = HUGE_PAGE - head;
        // SAFETY: the head `raw .. raw + head` and the tail
        // `base + len .. + tail` are page-aligned (mmap returns page-aligned
        // addresses, `head` and `len` are multiples of 4 KiB) pieces of our
        // own fresh mapping that nothing refers to. Should an unmap fail,
        // the piece stays mapped, unused: a leak of address space, not a
        // fault.
        unsafe {
            if head > 0 {
                let _ = mm::munmap(raw.as_ptr().cast::<c_void>(), head);
            }
            if tail > 0 {
                let _ = mm::munmap(base.as_ptr().add(len).cast::<c_void>(), tail);
            }
        }
        Ok((base, len))
    }

    /// Whether transparent huge pages are off system-wide (`[never]`). An
    /// unreadable file says nothing; `madvise` then reports for itself.
    pub(super) fn thp_never() -> bool {
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .is_ok_and(|s| s.contains("[never]"))
    }

    /// `madvise(MADV_HUGEPAGE)`.
    ///
    /// # Safety
    ///
    /// `base .. base + len` is an anonymous mapping owned by the caller.
    pub(super) unsafe fn advise_huge(base: NonNull<u8>, len: usize) -> Result<(), Shortfall> {
        // SAFETY: the caller owns the mapping; MADV_HUGEPAGE changes how it
        // is backed, never its contents.
        unsafe { mm::madvise(base.as_ptr().cast::<c_void>(), len, Advice::LinuxHugepage) }
            .map_err(short(Step::MadviseHugePage))
    }

    /// `mlock`: faults every page in and keeps it in RAM.
    ///
    /// # Safety
    ///
    /// `base .. base + len` is a mapping owned by the caller.
    pub(super) unsafe fn lock(base: NonNull<u8>, len: usize) -> Result<(), Shortfall> {
        // SAFETY: the caller owns the mapping; locking does not change its
        // contents.
        unsafe { mm::mlock(base.as_ptr().cast::<c_void>(), len) }.map_err(short(Step::Mlock))
    }

    /// `munlock` (if `locked`) and `munmap`. Errors are ignored: there is
    /// nothing to do about them in a destructor, and `munmap` of a whole
    /// mapping we made does not fail.
    ///
    /// # Safety
    ///
    /// `base .. base + len` is a mapping made by this module and owned by
    /// the caller, which never touches it again.
    pub(super) unsafe fn unmap(base: NonNull<u8>, len: usize, locked: bool) {
        let p = base.as_ptr().cast::<c_void>();
        // SAFETY: the caller's mapping, not used after this (`munmap` also
        // unlocks; the explicit `munlock` just says so).
        unsafe {
            if locked {
                let _ = mm::munlock(p, len);
            }
            let _ = mm::munmap(p, len);
        }
    }
}

/// Elsewhere nothing is mapped: every request degrades to the heap (or
/// fails under [`Fallback::Fail`]), so `unmap` is never reached.
#[cfg(not(target_os = "linux"))]
mod map {
    use std::ptr::NonNull;

    use crate::backing::{Shortfall, Step};

    const NO: Shortfall = Shortfall {
        step: Step::Unsupported,
        errno: None,
    };

    pub(super) fn small(_: usize) -> Result<(NonNull<u8>, usize), Shortfall> {
        Err(NO)
    }
    pub(super) fn huge_tlb(_: usize) -> Result<(NonNull<u8>, usize), Shortfall> {
        Err(NO)
    }
    pub(super) fn thp(_: usize) -> Result<(NonNull<u8>, usize), Shortfall> {
        Err(NO)
    }
    pub(super) fn thp_never() -> bool {
        true
    }
    /// # Safety
    ///
    /// Never called: nothing is mapped on this platform.
    pub(super) unsafe fn advise_huge(_: NonNull<u8>, _: usize) -> Result<(), Shortfall> {
        Err(NO)
    }
    /// # Safety
    ///
    /// Never called: nothing is mapped on this platform.
    pub(super) unsafe fn lock(_: NonNull<u8>, _: usize) -> Result<(), Shortfall> {
        Err(NO)
    }
    /// # Safety
    ///
    /// Never called: nothing is mapped on this platform.
    pub(super) unsafe fn unmap(_: NonNull<u8>, _: usize, _: bool) {}
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
    #[cfg_attr(miri, ignore = "Miri cannot run mmap, madvise or mlock")]
    fn mapped_arenas_are_zeroed_aligned_and_writable() {
        use crate::backing::{Backing, Fallback, Request};
        for backing in [
            Backing::Mmap,
            Backing::TransparentHugePages,
            Backing::HugeTlb,
        ] {
            for (slots, stride) in [(1, 1), (3, 4096), (100, 192)] {
                let req = Request {
                    backing,
                    lock: false,
                    fallback: Fallback::Degrade,
                };
                let a = Arena::new(slots, stride, 64, req).unwrap();
                assert_eq!(a.len(), slots as usize * stride);
                assert_eq!(a.base().as_ptr().addr() % 64, 0);
                let o = a.outcome();
                if cfg!(target_os = "linux") {
                    assert_ne!(o.pages, Pages::Heap, "{backing:?}: {o:?}");
                    // Mapped arenas start on a page.
                    assert_eq!(a.base().as_ptr().addr() % 4096, 0);
                }
                if backing == Backing::TransparentHugePages && o.pages != Pages::Heap {
                    assert_eq!(a.base().as_ptr().addr() % HUGE_PAGE, 0);
                }
                if o.pages == Pages::Huge {
                    assert_eq!(a.base().as_ptr().addr() % HUGE_PAGE, 0);
                }
                // SAFETY: the block is `len` initialised bytes owned by `a`.
                let bytes = unsafe { std::slice::from_raw_parts_mut(a.base().as_ptr(), a.len()) };
                assert!(bytes.iter().all(|&b| b == 0), "{backing:?} not zeroed");
                bytes.fill(0x5A);
                assert!(bytes.iter().all(|&b| b == 0x5A));
            }
        }
    }

    #[test]
    fn heap_requests_use_the_allocator() {
        let a = Arena::new(4, 64, 64, crate::backing::Request::default()).unwrap();
        assert_eq!(a.outcome().pages, Pages::Heap);
        assert!(!a.outcome().locked);
        assert_eq!(a.outcome().shortfalls, [None; 3]);
        assert_eq!(a.len(), 256);
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
        // 2^62 bytes (4 EiB) fits isize but lies beyond any address space
        // (47 bits, or 56 with 5-level paging): no allocator can map it,
        // whatever `vm.overcommit_memory` says.
        let err = Arena::zeroed(1 << 30, 1 << 32, 16).unwrap_err();
        assert!(matches!(err, BuildError::Alloc { bytes } if bytes == 1 << 62));
    }
}
