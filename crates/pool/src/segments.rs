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
//! pointer, *before* any of their indices enter the free list, and are freed
//! only when the pool drops. A thread that learned an index through the free
//! list (an `Acquire` load of its head) therefore sees the segment; only a
//! stale walk can meet an unpublished one, and [`Links::try_link`] reports
//! it.

use std::ptr::{self, NonNull};

use crate::arena::Arena;
use crate::backing::{Outcome, Request};
use crate::error::BuildError;
use crate::freelist::{Chain, Links, NIL, pack};
use crate::sync::Ordering::{Acquire, Release};
use crate::sync::{AtomicPtr, AtomicU64};

/// Grown segments: `k = 1..=32` is enough for any `u32` index (see above).
const MAX_GROWN: usize = 32;

/// One arena and the link words of its slots.
pub(crate) struct Segment {
    arena: Arena,
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
        let links = (0..len)
            .map(|i| {
                let next = if i + 1 < len { start + i + 1 } else { NIL };
                AtomicU64::new(pack(0, next))
            })
            .collect();
        Ok(Self {
            arena,
            links,
            start,
        })
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

/// Segment 0 plus the grown segments.
pub(crate) struct Segments {
    first: Segment,
    /// Slots in segment 0 (`c` above). Never 0.
    first_len: u32,
    /// `buffer_size` rounded up to the alignment.
    stride: usize,
    align: usize,
    /// How every segment's arena is made.
    request: Request,
    /// `grown[k - 1]` is segment `k`: null until published, then fixed
    /// until drop.
    grown: [AtomicPtr<Segment>; MAX_GROWN],
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
        Ok(Self {
            first,
            first_len: len,
            stride,
            align,
            request,
            grown: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
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

    /// The arenas of all published segments, segment 0 first. Each is one
    /// contiguous block (`Arena::base`, `Arena::len`).
    pub(crate) fn arenas(&self) -> impl Iterator<Item = &Arena> {
        (0..=MAX_GROWN).map_while(|k| self.get(k)).map(|s| &s.arena)
    }

    /// How each published segment's arena was backed.
    pub(crate) fn outcomes(&self) -> impl Iterator<Item = &Outcome> {
        self.arenas().map(Arena::outcome)
    }

    /// The request every segment is made with.
    pub(crate) fn request(&self) -> Request {
        self.request
    }

    /// Pointer to the first byte of slot `idx`, derived from its arena's
    /// allocation. `idx` must be owned by the caller (so it is published).
    #[inline]
    pub(crate) fn slot_ptr(&self, idx: u32) -> NonNull<u8> {
        let (seg, offset) = if idx < self.first_len {
            (&self.first, idx)
        } else {
            let (k, start) = self.segment_of(idx);
            match self.get(k) {
                Some(seg) => (seg, idx - start),
                None => unreachable!("owned slot {idx} lies in an unpublished segment"),
            }
        };
        debug_assert!((offset as usize) < seg.links.len());
        // SAFETY: `offset < len` of this segment, so `offset * stride` is
        // within its arena (whose size is `len * stride`, checked not to
        // overflow when it was allocated); the result is non-null.
        unsafe {
            NonNull::new_unchecked(seg.arena.base().as_ptr().add(offset as usize * self.stride))
        }
    }

    /// Allocates and publishes segment `k` (which must be the next one) of
    /// `len` slots starting at `start`, and returns its slots as a chain.
    /// The caller serialises growth and then pushes the chain (or part of
    /// it) onto the free list.
    pub(crate) fn grow(&self, k: usize, start: u32, len: u32) -> Result<Chain, BuildError> {
        debug_assert!((1..=MAX_GROWN).contains(&k));
        debug_assert_eq!(self.segment_of(start), (k, start));
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

    /// Every published segment as `(first slot index, base, bytes)`, with
    /// `bytes = slots * stride`: the memory io_uring registers (`uring/`).
    /// A segment published later is not included, so a caller that keeps
    /// the list must treat slots beyond it as unknown.
    #[cfg(all(feature = "io-uring", target_os = "linux"))]
    pub(crate) fn published_regions(&self) -> impl Iterator<Item = (u32, NonNull<u8>, usize)> + '_ {
        (0..=MAX_GROWN)
            .filter_map(|k| self.get(k))
            .map(|seg| (seg.start, seg.arena.base(), seg.links.len() * self.stride))
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

// SAFETY: the table owns its segments (arenas and link arrays) like a
// `Vec<Box<Segment>>`; the raw pointers in `grown` are owning pointers.
unsafe impl Send for Segments {}
// SAFETY: shared access only reads published segment pointers (atomics)
// and link words (atomics); bytes in the arenas are accessed through slot
// ownership, which the pool guarantees.
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
