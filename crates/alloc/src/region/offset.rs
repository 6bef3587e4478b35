//! The region's offset protocol, written once for any atomic word so that
//! loom checks the very code [`Region`](super::Region) runs.
//!
//! `Region::new` is a `const fn` (a `#[global_allocator]` static needs
//! one), and loom's atomics cannot be built in a constant. So the region
//! keeps a `std` [`AtomicUsize`](std::sync::atomic::AtomicUsize), the two
//! operations below take any [`Word`], and the loom models at the end of
//! this file run them on loom's atomic.
//!
//! # Protocol
//!
//! `next` is the offset of the first free byte.
//!
//! * [`bump`] claims `[cur + pad, cur + pad + size)` with a CAS from `cur`
//!   to its end, so concurrent claims get disjoint blocks: each byte is
//!   claimed by the one CAS that moved `next` past it.
//! * [`resize_last`] moves `next` from `off + old` to `off + new`, which
//!   succeeds only while the block at `off` is still the last one. With
//!   `new = 0` that frees it; the bytes go back to the next claimer.
//!
//! Both CASes are `AcqRel`: a thread that frees a block (a `Release` on
//! `next`, after its last write to the block) and a thread that claims the
//! same bytes next (an `Acquire` on `next`, before its first write) are
//! ordered, so the reuse is not a data race. The failure orderings need no
//! `Acquire` for `bump` (it retries with the value it read and claims
//! nothing from it) but do for `resize_last`, whose failure tells its
//! caller nothing was moved.

use std::alloc::Layout;

/// The atomic operations the protocol needs, with its orderings built in.
pub(super) trait Word {
    /// A relaxed load: where a claim starts looking.
    fn current(&self) -> usize;
    /// `compare_exchange_weak(cur, new, AcqRel, Relaxed)`.
    fn claim(&self, cur: usize, new: usize) -> Result<usize, usize>;
    /// `compare_exchange(cur, new, AcqRel, Acquire)`.
    fn rewind(&self, cur: usize, new: usize) -> Result<usize, usize>;
}

macro_rules! impl_word {
    ($atomic:ty) => {
        impl Word for $atomic {
            #[inline]
            fn current(&self) -> usize {
                self.load(std::sync::atomic::Ordering::Relaxed)
            }
            #[inline]
            fn claim(&self, cur: usize, new: usize) -> Result<usize, usize> {
                use std::sync::atomic::Ordering::{AcqRel, Relaxed};
                self.compare_exchange_weak(cur, new, AcqRel, Relaxed)
            }
            #[inline]
            fn rewind(&self, cur: usize, new: usize) -> Result<usize, usize> {
                use std::sync::atomic::Ordering::{AcqRel, Acquire};
                self.compare_exchange(cur, new, AcqRel, Acquire)
            }
        }
    };
}

impl_word!(std::sync::atomic::AtomicUsize);
#[cfg(loom)]
impl_word!(loom::sync::atomic::AtomicUsize);

/// Claims a block for `layout` in a region of `len` bytes starting at
/// address `base`: returns its offset, or `None` when it does not fit.
#[inline]
pub(super) fn bump(next: &impl Word, base: usize, len: usize, layout: Layout) -> Option<usize> {
    let mut cur = next.current();
    loop {
        let pad = base.wrapping_add(cur).wrapping_neg() & (layout.align() - 1);
        let start = cur.checked_add(pad)?;
        let end = start.checked_add(layout.size())?;
        if end > len {
            return None;
        }
        match next.claim(cur, end) {
            Ok(_) => return Some(start),
            Err(now) => cur = now,
        }
    }
}

/// Moves the end of the block at `off` from `off + old` to `off + new` if
/// it is the last block and `off + new <= len`. Returns whether it did.
#[inline]
pub(super) fn resize_last(
    next: &impl Word,
    len: usize,
    off: usize,
    old: usize,
    new: usize,
) -> bool {
    let Some(new_end) = off.checked_add(new).filter(|&e| e <= len) else {
        return false;
    };
    next.rewind(off + old, new_end).is_ok()
}

#[cfg(all(test, loom))]
mod loom_tests {
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicUsize;
    use loom::thread;

    use super::*;

    /// A region of `N` bytes, each its own loom cell, so loom reports two
    /// unordered accesses to one byte (an overlap, or a reuse without
    /// happens-before) as a data race.
    struct Bytes<const N: usize> {
        next: AtomicUsize,
        bytes: [UnsafeCell<u8>; N],
    }

    impl<const N: usize> Bytes<N> {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                next: AtomicUsize::new(0),
                bytes: std::array::from_fn(|_| UnsafeCell::new(0)),
            })
        }

        fn alloc(&self, size: usize, align: usize) -> Option<usize> {
            let layout = Layout::from_size_align(size, align).unwrap();
            // Offsets stand in for addresses: base 0 is aligned to anything.
            bump(&self.next, 0, N, layout)
        }

        fn write(&self, off: usize, size: usize, v: u8) {
            for b in &self.bytes[off..off + size] {
                b.with_mut(|p| {
                    // SAFETY: loom's cell pointer is valid; whether this
                    // access is exclusive is exactly what loom checks.
                    unsafe { *p = v }
                });
            }
        }

        fn check(&self, off: usize, size: usize, v: u8) {
            for b in &self.bytes[off..off + size] {
                // SAFETY: as in `write`.
                let got = b.with(|p| unsafe { *p });
                assert_eq!(got, v, "a block's byte changed under its owner");
            }
        }
    }

    /// Two threads claim blocks at once: they are disjoint, inside the
    /// region, and the offset ends at their total.
    #[test]
    fn concurrent_claims_are_disjoint() {
        loom::model(|| {
            let r = Bytes::<8>::new();
            let r2 = r.clone();
            let t = thread::spawn(move || {
                let off = r2.alloc(3, 1).expect("fits");
                r2.write(off, 3, 1);
                r2.check(off, 3, 1);
                off
            });
            let mine = r.alloc(4, 4).expect("fits");
            assert_eq!(mine % 4, 0);
            r.write(mine, 4, 2);
            r.check(mine, 4, 2);
            let theirs = t.join().unwrap();
            assert!(theirs + 3 <= mine || mine + 4 <= theirs, "blocks overlap");
            assert!(r.next.current() <= 8);
        });
    }

    /// A thread frees its block (the last one) while another claims: the
    /// second may get the same bytes, and loom checks the free's writes
    /// happen before the new owner's.
    #[test]
    fn freed_last_block_is_reused_without_a_race() {
        loom::model(|| {
            let r = Bytes::<4>::new();
            let off = r.alloc(4, 1).expect("empty region");
            r.write(off, 4, 7);
            let r2 = r.clone();
            let t = thread::spawn(move || {
                // Fails while the block is held; succeeds after the free.
                if let Some(o) = r2.alloc(4, 1) {
                    r2.write(o, 4, 9);
                    r2.check(o, 4, 9);
                }
            });
            r.check(off, 4, 7);
            r.write(off, 4, 8);
            assert!(resize_last(&r.next, 4, off, 4, 0), "it is the last block");
            t.join().unwrap();
        });
    }

    /// Resizing succeeds only for the last block, even while another
    /// thread claims behind it.
    #[test]
    fn only_the_last_block_resizes() {
        loom::model(|| {
            let r = Bytes::<8>::new();
            let a = r.alloc(2, 1).unwrap();
            let r2 = r.clone();
            let t = thread::spawn(move || r2.alloc(2, 1));
            let grew = resize_last(&r.next, 8, a, 2, 4);
            let b = t.join().unwrap().expect("fits either way");
            if grew {
                assert_eq!(b, a + 4, "the claim came after the growth");
                r.write(a, 4, 1);
            } else {
                assert_eq!(b, a + 2, "the claim came first and the growth failed");
                r.write(a, 2, 1);
            }
            r.write(b, 2, 2);
        });
    }
}
