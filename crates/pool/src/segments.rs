//! The segment table: which arena a slot index lives in.
//!
//! A pool starts with one arena, segment 0, of `c` slots (the initial
//! capacity). Growing adds segments that double the capacity each time, up
//! to the `grow_to` limit (the last one is cut to fit):
//!
//! ```text
//! segment  0      1        2          3            k >= 1
//! slots    [0,c)  [c,2c)   [2c,4c)    [4c,8c)      [c*2^(k-1), c*2^k)
//! ```
//!
//! so an index finds its segment with one division and a leading-zeros
//! count, and at most 33 segments cover any `u32` index. Segment 0 is a
//! plain field, so the common case (a pool that never grew) costs one
//! compare. Slots never move: a grown pool keeps every handle valid.
//!
//! Grown segments are published once, with a `Release` store of their
//! pointer, *before* any of their indices enter the free list. A thread that
//! learned an index through the free list (an `Acquire` load of its head)
//! therefore sees the segment; only a stale walk can meet an unpublished
//! one, and [`Links::try_link`] reports it.
//!
//! # Retiring a segment (trim)
//!
//! A trim (`trim.rs`) may give the *arena* of the highest grown segment back
//! once it owns every slot of it, and a later growth makes a new arena for
//! the same slots. The [`Segment`] itself, with its link words, stays
//! published until the pool drops: a stale free-list walk may still read a
//! retired slot's link word, which must stay a valid atomic (`freelist.rs`).
//! The arena sits in an `UnsafeCell` that only two kinds of code touch:
//!
//! * the owners of its slots (`slot_ptr`), who exist only while it is live;
//! * the holder of the growth lock, which retires and remakes it only while
//!   it owns every one of its slots (so no slot owner exists), and which is
//!   also the only one to list arenas (`arenas`, bounded by the live count
//!   it holds).
//!
//! Ownership of a slot passes through the free list (`Release` push,
//! `Acquire` pop), so a remade arena is visible to whoever pops its slots.

use std::cell::UnsafeCell;
use std::ptr::{self, NonNull};

use crate::arena::Arena;
use crate::backing::{Outcome, Request};
use crate::error::BuildError;
use crate::freelist::{Chain, Links, NIL, pack};
use crate::sync::Ordering::{Acquire, Relaxed, Release};
use crate::sync::{AtomicBool, AtomicPtr, AtomicU64};

/// Grown segments: `k = 1..=32` is enough for any `u32` index (see above).
const MAX_GROWN: usize = 32;

/// One arena and the link words of its slots.
pub(crate) struct Segment {
    /// `None` while the segment is retired (module docs).
    arena: UnsafeCell<Option<Arena>>,
    /// One link word per slot; see `freelist`.
    links: Box<[AtomicU64]>,
    /// Index of this segment's first slot.
    start: u32,
}

impl Segment {
    /// A zeroed segment of `len` slots starting at index `start`, its slots
    /// linked in order `start -> start + 1 -> ...`.
    fn new(
        start: u32,
        len: u32,
        stride: usize,
        align: usize,
        request: Request,
    ) -> Result<Self, BuildError> {
        let arena = Arena::new(len, stride, align, request)?;
        let links = (0..len).map(|_| AtomicU64::new(0)).collect();
        let seg = Self {
            arena: UnsafeCell::new(Some(arena)),
            links,
            start,
        };
        seg.relink();
        Ok(seg)
    }

    /// Links the slots in order, `start -> start + 1 -> ...`. The caller
    /// owns every slot (or no one else can see the segment yet).
    fn relink(&self) {
        let len = self.links.len() as u32;
        for (i, link) in (0..len).zip(self.links.iter()) {
            let next = if i + 1 < len { self.start + i + 1 } else { NIL };
            link.store(pack(0, next), Relaxed);
        }
    }

    /// The arena of a live segment.
    ///
    /// # Safety
    ///
    /// The caller owns a slot of this segment, or holds the growth lock
    /// and knows the segment is live (module docs): then no one retires
    /// or remakes the arena while the reference lives.
    #[inline]
    unsafe fn arena(&self) -> &Arena {
        // SAFETY: per the caller's contract, nothing writes the cell while
        // this shared reference lives.
        match unsafe { &*self.arena.get() } {
            Some(arena) => arena,
            None => retired(self.start),
        }
    }

    /// Slots in this segment.
    fn len(&self) -> u32 {
        self.links.len() as u32
    }

    /// All slots of this segment as one chain.
    fn chain(&self) -> Chain {
        let len = self.links.len() as u32;
        Chain {
            first: self.start,
            last: self.start + len - 1,
            len,
        }
    }
}

/// A slot owner's segment was retired: a broken invariant, kept out of
/// line so that the hot path stays small.
#[cold]
#[inline(never)]
fn retired(start: u32) -> ! {
    unreachable!("the segment at slot {start} is retired")
}

/// An owned slot in a segment not published: a broken invariant.
#[cold]
#[inline(never)]
fn unpublished(idx: u32) -> ! {
    unreachable!("owned slot {idx} lies in an unpublished segment")
}

/// Segment 0 plus the grown segments.
pub(crate) struct Segments {
    first: Segment,
    /// Segment 0's arena's base, which never changes (segment 0 is never
    /// retired): the common case of `slot_ptr` in one load.
    first_base: NonNull<u8>,
    /// Slots in segment 0 (`c` above). Never 0.
    first_len: u32,
    /// `buffer_size` rounded up to the alignment.
    stride: usize,
    align: usize,
    /// How every segment's arena is made.
    request: Request,
    /// `grown[k - 1]` is segment `k`: null until published, then fixed
    /// until drop (a retired segment keeps its entry; module docs).
    grown: [AtomicPtr<Segment>; MAX_GROWN],
    /// The kernel may hold the arenas' pages (io_uring fixed buffers): a
    /// trim must not give any of them back. Set once, never cleared.
    pinned: AtomicBool,
}

impl Segments {
    /// The table with segment 0 of `len` slots allocated as `request` asks.
    pub(crate) fn new(
        len: u32,
        stride: usize,
        align: usize,
        request: Request,
    ) -> Result<Self, BuildError> {
        let first = Segment::new(0, len, stride, align, request)?;
        // SAFETY: nobody else sees the segment yet.
        let first_base = unsafe { first.arena() }.base();
        Ok(Self {
            first,
            first_base,
            first_len: len,
            stride,
            align,
            request,
            grown: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            pinned: AtomicBool::new(false),
        })
    }

    /// All slots of segment 0, linked, for the initial push.
    pub(crate) fn first_chain(&self) -> Chain {
        self.first.chain()
    }

    /// The number of the segment that holds `idx`, and where it starts.
    #[inline]
    fn segment_of(&self, idx: u32) -> (usize, u32) {
        if idx < self.first_len {
            return (0, 0);
        }
        let q = idx / self.first_len; // >= 1
        let k = (u32::BITS - q.leading_zeros()) as usize; // 1..=32
        (k, self.first_len << (k - 1))
    }

    /// Segment `k`, if it is published.
    #[inline]
    fn get(&self, k: usize) -> Option<&Segment> {
        if k == 0 {
            return Some(&self.first);
        }
        let p = self.grown[k - 1].load(Acquire);
        // SAFETY: a non-null entry was made by `Box::into_raw` in `grow`,
        // is never changed again, and is freed only in `Drop` (`&mut self`),
        // so it is valid for as long as `&self` is.
        unsafe { p.as_ref() }
    }

    /// The arenas of the first `live` segments, segment 0 first. Each is
    /// one contiguous block (`Arena::base`, `Arena::len`).
    ///
    /// # Safety
    ///
    /// The caller holds the growth lock, and `live` is the number of live
    /// segments it holds.
    pub(crate) unsafe fn arenas(&self, live: usize) -> impl Iterator<Item = &Arena> {
        (0..live).map_while(|k| self.get(k)).map(|s| {
            // SAFETY: segment `k < live` is live and the caller holds the
            // growth lock, so no one retires it meanwhile.
            unsafe { s.arena() }
        })
    }

    /// How each of the first `live` segments' arenas was backed.
    ///
    /// # Safety
    ///
    /// As [`arenas`](Self::arenas).
    pub(crate) unsafe fn outcomes(&self, live: usize) -> impl Iterator<Item = &Outcome> {
        // SAFETY: the caller's contract is `arenas`'.
        unsafe { self.arenas(live) }.map(Arena::outcome)
    }

    /// Bytes of the first `live` segments' arenas, and how many of them
    /// are in memory now (`Arena::resident`).
    ///
    /// # Safety
    ///
    /// As [`arenas`](Self::arenas).
    pub(crate) unsafe fn footprint(&self, live: usize) -> (usize, usize) {
        // SAFETY: the caller's contract is `arenas`'.
        unsafe { self.arenas(live) }.fold((0, 0), |(reserved, resident), a| {
            (reserved + a.len(), resident + a.resident(0, a.len()))
        })
    }

    /// Segment `k`'s first slot and its number of slots, if published.
    pub(crate) fn span(&self, k: usize) -> Option<(u32, u32)> {
        self.get(k).map(|s| (s.start, s.len()))
    }

    /// Whether the kernel may hold the arenas' pages (see `pin`).
    pub(crate) fn pinned(&self) -> bool {
        self.pinned.load(Acquire)
    }

    /// The request every segment is made with.
    pub(crate) fn request(&self) -> Request {
        self.request
    }

    /// Pointer to the first byte of slot `idx`, derived from its arena's
    /// allocation. `idx` must be owned by the caller (so it is published).
    #[inline]
    pub(crate) fn slot_ptr(&self, idx: u32) -> NonNull<u8> {
        let (base, offset) = if idx < self.first_len {
            (self.first_base, idx)
        } else {
            let (k, start) = self.segment_of(idx);
            let Some(seg) = self.get(k) else {
                unpublished(idx)
            };
            debug_assert!(((idx - start) as usize) < seg.links.len());
            // SAFETY: the caller owns slot `idx` of this segment.
            (unsafe { seg.arena() }.base(), idx - start)
        };
        // SAFETY: `offset < len` of its segment, so `offset * stride` is
        // within its arena (whose size is `len * stride`, checked not to
        // overflow when it was allocated); the result is non-null.
        unsafe { NonNull::new_unchecked(base.as_ptr().add(offset as usize * self.stride)) }
    }

    /// Allocates and publishes segment `k` (which must be the next one) of
    /// `len` slots starting at `start`, and returns its slots as a chain.
    /// The caller holds the growth lock and then pushes the chain (or part
    /// of it) onto the free list. A retired segment `k` gets a new arena
    /// (its `start` and `len` are the same every time: the layout above).
    pub(crate) fn grow(&self, k: usize, start: u32, len: u32) -> Result<Chain, BuildError> {
        debug_assert!((1..=MAX_GROWN).contains(&k));
        debug_assert_eq!(self.segment_of(start), (k, start));
        if let Some(seg) = self.get(k) {
            debug_assert_eq!((seg.start, seg.len()), (start, len));
            let arena = Arena::new(len, self.stride, self.align, self.request)?;
            // SAFETY: segment `k` is published, so it was retired (the
            // caller grows only past the live ones, under the growth lock):
            // no slot of it is owned, and no one else touches the cell.
            unsafe { *seg.arena.get() = Some(arena) };
            seg.relink();
            return Ok(seg.chain());
        }
        let seg = Box::new(Segment::new(
            start,
            len,
            self.stride,
            self.align,
            self.request,
        )?);
        let chain = seg.chain();
        let old = self.grown[k - 1].swap(Box::into_raw(seg), Release);
        debug_assert!(old.is_null(), "segment {k} published twice");
        Ok(chain)
    }

    /// Gives segment `k`'s arena back; it keeps its link words (module
    /// docs). Returns the arena's bytes and how many of them were resident.
    ///
    /// # Safety
    ///
    /// The caller holds the growth lock, segment `k >= 1` is the highest
    /// live one, and the caller owns every one of its slots and no pointer
    /// into them is left.
    pub(crate) unsafe fn retire(&self, k: usize) -> (usize, usize) {
        debug_assert!(k >= 1);
        let Some(seg) = self.get(k) else {
            unreachable!("segment {k} is live, so published")
        };
        // SAFETY: the caller owns every slot, so no `slot_ptr` reference
        // to the arena exists, and it holds the growth lock, so no one
        // else lists or remakes arenas.
        let arena = unsafe { (*seg.arena.get()).take() };
        arena.map_or((0, 0), |a| (a.len(), a.resident(0, a.len())))
    }

    /// Hands the pages that lie wholly inside slots `first ..= last` (all
    /// in one segment) back to the kernel, if the arena is a mapping that
    /// can do that. Returns the bytes that were resident in those pages.
    ///
    /// # Safety
    ///
    /// The caller owns every slot in `first ..= last` and no pointer into
    /// them is left, and the arenas are not pinned.
    pub(crate) unsafe fn discard(&self, first: u32, last: u32) -> usize {
        let (k, start) = self.segment_of(first);
        debug_assert_eq!(self.segment_of(last).0, k);
        let Some(seg) = self.get(k) else {
            unpublished(first)
        };
        // SAFETY: the caller owns slots of this segment.
        let arena = unsafe { seg.arena() };
        let from = (first - start) as usize * self.stride;
        let to = (last - start + 1) as usize * self.stride;
        // SAFETY: the caller owns every slot in the range and holds no
        // pointer into it; not pinned, so the kernel holds none either.
        unsafe { arena.discard(from, to) }
    }

    /// Marks the arenas as held by the kernel (io_uring fixed buffers):
    /// from now on a trim leaves every arena and page where it is. Returns
    /// the first `live` segments as `(first slot index, base, bytes)`, with
    /// `bytes = slots * stride`: the memory io_uring registers (`uring/`).
    /// A segment grown later is not included, so a caller that keeps the
    /// list must treat slots beyond it as unknown.
    ///
    /// # Safety
    ///
    /// As [`arenas`](Self::arenas).
    #[cfg(all(feature = "io-uring", target_os = "linux"))]
    pub(crate) unsafe fn pin(&self, live: usize) -> Vec<(u32, NonNull<u8>, usize)> {
        self.pinned.store(true, Release);
        (0..live)
            .filter_map(|k| self.get(k))
            .map(|seg| {
                // SAFETY: live, under the growth lock (caller's contract).
                let base = unsafe { seg.arena() }.base();
                (seg.start, base, seg.links.len() * self.stride)
            })
            .collect()
    }

    /// Distance in bytes between consecutive slots of a segment.
    #[cfg(all(feature = "io-uring", target_os = "linux"))]
    pub(crate) fn stride(&self) -> usize {
        self.stride
    }
}

impl Links for Segments {
    #[inline]
    fn try_link(&self, idx: u32) -> Option<&AtomicU64> {
        if idx < self.first_len {
            // SAFETY: segment 0 has `first_len` link words.
            return Some(unsafe { self.first.links.get_unchecked(idx as usize) });
        }
        let (k, start) = self.segment_of(idx);
        self.get(k)?.links.get((idx - start) as usize)
    }
}

impl Drop for Segments {
    fn drop(&mut self) {
        for entry in &mut self.grown {
            let p = entry.swap(ptr::null_mut(), Acquire);
            if !p.is_null() {
                // SAFETY: made by `Box::into_raw` in `grow`, published once,
                // and this is the only place that frees it.
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}

// A trim or growth that panics halfway leaves the cell either `Some` or
// `None`, never torn, and every reader checks which (`Segment::arena`);
// the cell is not a place where a caught panic can expose a broken
// invariant, so it does not take `RefUnwindSafe` away from `Pool`.
impl std::panic::RefUnwindSafe for Segment {}

// SAFETY: the table owns its segments (arenas and link arrays) like a
// `Vec<Box<Segment>>`; the raw pointers in `grown` are owning pointers.
unsafe impl Send for Segments {}
// SAFETY: shared access only reads published segment pointers (atomics)
// and link words (atomics); bytes in the arenas are accessed through slot
// ownership, which the pool guarantees, and the arena cells are written
// only as the module docs say (under the growth lock, owning every slot).
unsafe impl Sync for Segments {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn segment_lookup_matches_the_doubling_layout() {
        for c in [1u32, 3, 7, 64, 1000] {
            let s = Segments::new(c, 64, 64, Request::default()).unwrap();
            let span = if cfg!(miri) { 4 } else { 64 };
            for idx in (0..span * c).chain([u32::MAX - 2]) {
                let (k, start) = s.segment_of(idx);
                let (lo, hi) = if k == 0 {
                    (0u64, c as u64)
                } else {
                    ((c as u64) << (k - 1), (c as u64) << k)
                };
                assert!((lo..hi).contains(&(idx as u64)), "c={c} idx={idx} k={k}");
                assert_eq!(start as u64, lo);
            }
        }
    }

    #[test]
    fn grown_slots_point_into_their_own_arena() {
        let s = Segments::new(2, 128, 64, Request::default()).unwrap();
        assert!(s.try_link(2).is_none());
        let chain = s.grow(1, 2, 2).unwrap();
        assert_eq!(
            chain,
            Chain {
                first: 2,
                last: 3,
                len: 2
            }
        );
        let chain = s.grow(2, 4, 3).unwrap();
        assert_eq!(
            chain,
            Chain {
                first: 4,
                last: 6,
                len: 3
            }
        );
        assert!(s.try_link(6).is_some());
        assert!(s.try_link(7).is_none());
        let p0 = s.slot_ptr(0).as_ptr() as usize;
        assert_eq!(s.slot_ptr(1).as_ptr() as usize, p0 + 128);
        let p4 = s.slot_ptr(4).as_ptr() as usize;
        assert_eq!(s.slot_ptr(6).as_ptr() as usize, p4 + 256);
        for i in 0..7 {
            assert_eq!(s.slot_ptr(i).as_ptr() as usize % 64, 0);
        }
    }
}
