//! The live allocations of one epoch (the operations between resets),
//! and the check after every operation.

use std::ptr::NonNull;

use allocator_api2::vec::Vec as AVec;
use arenapool_alloc::Bump;

use super::Tracked;

/// A live allocation and the bytes it must hold.
pub(super) struct Block {
    pub(super) ptr: NonNull<u8>,
    pub(super) align: usize,
    pub(super) want: Vec<u8>,
    /// Made through `Allocator` (may be grown, shrunk, freed).
    pub(super) raw: bool,
}

/// A vector in the arena and the elements it must hold.
pub(super) enum ArenaVec<'b> {
    U8(AVec<u8, &'b Bump>, Vec<u8>),
    U64(AVec<u64, &'b Bump>, Vec<u64>),
}

pub(super) struct Epoch<'b> {
    pub(super) bump: &'b Bump,
    pub(super) blocks: Vec<Block>,
    pub(super) vecs: Vec<ArenaVec<'b>>,
    /// Tracked values placed this epoch, oldest first.
    pub(super) tracked: Vec<(NonNull<Tracked>, u64)>,
    /// One of them panics when dropped.
    pub(super) panics: bool,
    /// `allocated_bytes` may not pass this (the limit, or what was held
    /// when the limit was set, whichever is larger).
    pub(super) ceiling: Option<usize>,
    /// `allocated_bytes` never shrinks within an epoch.
    pub(super) last_allocated: usize,
    /// Scratch space of `check`: the live spans, kept between checks.
    pub(super) spans: Vec<(usize, usize, &'static str)>,
}

impl<'b> Epoch<'b> {
    pub(super) fn push(&mut self, ptr: NonNull<u8>, align: usize, want: Vec<u8>, raw: bool) {
        assert_eq!(
            ptr.as_ptr() as usize % align,
            0,
            "block of {} bytes not aligned to {align}",
            want.len()
        );
        self.blocks.push(Block {
            ptr,
            align,
            want,
            raw,
        });
    }

    /// Allocates through the non-`try` method when it cannot abort (no
    /// limit), else through `try`.
    pub(super) fn use_try(&self, try_: bool) -> bool {
        try_ || self.bump.allocation_limit().is_some()
    }

    pub(super) fn check(&mut self) {
        let bump = self.bump;
        let allocated = bump.allocated_bytes();
        assert!(allocated >= self.last_allocated, "allocated_bytes shrank");
        self.last_allocated = allocated;
        if let Some(ceiling) = self.ceiling {
            assert!(
                allocated <= ceiling,
                "{allocated} bytes held, limit {ceiling}"
            );
        }
        // Every block holds its bytes.
        let mut spans = std::mem::take(&mut self.spans);
        spans.clear();
        for (i, b) in self.blocks.iter().enumerate() {
            // SAFETY: the block is live (allocated this epoch, not freed)
            // and `want.len()` bytes long.
            let got = unsafe { std::slice::from_raw_parts(b.ptr.as_ptr(), b.want.len()) };
            assert!(
                got == &b.want[..],
                "block {i} ({} bytes) was overwritten",
                b.want.len()
            );
            assert_eq!(b.ptr.as_ptr() as usize % b.align, 0);
            if !b.want.is_empty() {
                spans.push((b.ptr.as_ptr() as usize, b.want.len(), "block"));
            }
        }
        for v in &self.vecs {
            match v {
                ArenaVec::U8(v, want) => {
                    assert_eq!(&v[..], &want[..], "arena Vec<u8> lost its elements");
                    if v.capacity() > 0 {
                        spans.push((v.as_ptr() as usize, v.capacity(), "Vec<u8>"));
                    }
                }
                ArenaVec::U64(v, want) => {
                    assert_eq!(&v[..], &want[..], "arena Vec<u64> lost its elements");
                    assert_eq!(v.as_ptr() as usize % 8, 0, "Vec<u64> misaligned");
                    if v.capacity() > 0 {
                        spans.push((v.as_ptr() as usize, v.capacity() * 8, "Vec<u64>"));
                    }
                }
            }
        }
        for &(p, id) in &self.tracked {
            // SAFETY: placed this epoch; dropped only by `reset`.
            let t = unsafe { p.as_ref() };
            assert_eq!(t.id, id, "a value with a destructor was overwritten");
            spans.push((p.as_ptr() as usize, size_of::<Tracked>(), "tracked"));
        }
        // No two live allocations overlap.
        spans.sort_unstable();
        for w in spans.windows(2) {
            let ((a, alen, ak), (b, _, bk)) = (w[0], w[1]);
            assert!(
                a + alen <= b,
                "{ak} at {a:#x}+{alen} overlaps {bk} at {b:#x}"
            );
        }
        self.spans = spans;
    }
}
