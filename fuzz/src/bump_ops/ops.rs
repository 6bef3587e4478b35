//! The operations of a program, and what each one must do.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use allocator_api2::alloc::Allocator;
use allocator_api2::vec::Vec as AVec;
use arbitrary::Arbitrary;

use super::epoch::{ArenaVec, Block, Epoch};
use super::{Elem, MAX_SIZE, Tracked, align_from, expect_ok, limit_of};
use crate::pattern;

#[derive(Arbitrary, Debug)]
pub(super) enum Op {
    /// `alloc_layout` / `try_alloc_layout` of `size % 4097` bytes aligned
    /// to `1 << (align % 13)`, filled with a pattern.
    Layout {
        size: u16,
        align: u8,
        seed: u8,
        try_: bool,
    },
    /// `alloc` / `try_alloc` of a typed value.
    Value {
        kind: u8,
        seed: u64,
        try_: bool,
    },
    SliceCopyU8 {
        len: u16,
        seed: u8,
        try_: bool,
    },
    SliceCopyU64 {
        len: u8,
        seed: u64,
        try_: bool,
    },
    Str {
        len: u8,
        seed: u8,
        try_: bool,
    },
    /// `alloc_slice_fill_with` of `len % 1025` `u32`s; with `panics_at`,
    /// the filler panics at that index (if there is one): the panic
    /// reaches the caller, the values made are leaked, the arena goes on.
    FillWith {
        len: u16,
        seed: u32,
        try_: bool,
        panics_at: Option<u16>,
    },
    /// `alloc_with_drop` of a value with a destructor (or a `u64`); a
    /// value that `panics` panics when it is dropped (if it is the first
    /// one to, in that drop pass).
    WithDrop {
        id: u64,
        plain: bool,
        try_: bool,
        panics: bool,
    },
    /// Overwrites a live block with a new pattern.
    Rewrite {
        block: u8,
        seed: u8,
    },
    /// Allocation limit in units of 64 bytes.
    SetLimit(Option<u16>),
    Reset,
    VecNew {
        elem: Elem,
        capacity: u8,
    },
    VecExtend {
        vec: u8,
        n: u16,
        seed: u8,
    },
    VecTruncate {
        vec: u8,
        len: u16,
    },
    VecShrink(u8),
    VecReserve {
        vec: u8,
        n: u16,
    },
    VecDrop(u8),
    /// `Allocator::allocate` of a raw block.
    RawAlloc {
        size: u16,
        align: u8,
        seed: u8,
    },
    /// `Allocator::grow` of a raw block to `old + extra` bytes.
    RawGrow {
        block: u8,
        extra: u16,
        align: u8,
        seed: u8,
    },
    /// `Allocator::shrink` of a raw block to `old - less` bytes.
    RawShrink {
        block: u8,
        less: u16,
        align: u8,
    },
    RawFree(u8),
}

impl Epoch<'_> {
    pub(super) fn op(&mut self, op: &Op, log: &Arc<Mutex<Vec<u64>>>) {
        let bump = self.bump;
        let before = bump.allocated_bytes();
        match *op {
            Op::Layout {
                size,
                align,
                seed,
                try_,
            } => {
                let size = usize::from(size) % (MAX_SIZE + 1);
                let align = align_from(align);
                let layout = Layout::from_size_align(size, align).unwrap();
                let p = if self.use_try(try_) {
                    expect_ok(bump, bump.try_alloc_layout(layout), before)
                } else {
                    Some(bump.alloc_layout(layout))
                };
                if let Some(p) = p {
                    let want = pattern(seed, size);
                    // SAFETY: fresh block of `size` bytes.
                    unsafe { std::ptr::copy_nonoverlapping(want.as_ptr(), p.as_ptr(), size) };
                    self.push(p, align, want.to_vec(), false);
                }
            }
            Op::Value { kind, seed, try_ } => {
                let t = self.use_try(try_);
                macro_rules! value {
                    ($v:expr) => {{
                        let v = $v;
                        let align = std::mem::align_of_val(&v);
                        // SAFETY: `v` is plain old data; its bytes are its value.
                        let want = unsafe {
                            std::slice::from_raw_parts(
                                (&v as *const _ as *const u8),
                                std::mem::size_of_val(&v),
                            )
                        }
                        .to_vec();
                        let r = if t {
                            expect_ok(bump, bump.try_alloc(v), before)
                        } else {
                            Some(bump.alloc(v))
                        };
                        if let Some(r) = r {
                            let p = NonNull::from(r).cast::<u8>();
                            self.push(p, align, want.to_vec(), false);
                        }
                    }};
                }
                #[derive(Clone, Copy)]
                #[repr(C, align(64))]
                struct Line([u8; 64]);
                #[derive(Clone, Copy)]
                #[repr(C, align(4096))]
                struct Page([u8; 4096]);
                let b = seed.to_le_bytes();
                match kind % 8 {
                    0 => value!(b[0]),
                    1 => value!(seed as u16),
                    2 => value!(seed as u32),
                    3 => value!(seed),
                    4 => value!(u128::from(seed) << 64 | u128::from(!seed)),
                    5 => value!([b[0], b[1], b[2]]),
                    6 => value!(Line([b[1]; 64])),
                    _ => value!(Page([b[2]; 4096])),
                }
            }
            Op::SliceCopyU8 { len, seed, try_ } => {
                let src = pattern(seed, usize::from(len) % (MAX_SIZE + 1));
                let r = if self.use_try(try_) {
                    expect_ok(bump, bump.try_alloc_slice_copy(src), before)
                } else {
                    Some(bump.alloc_slice_copy(src))
                };
                if let Some(r) = r {
                    assert_eq!(&r[..], src);
                    let p = NonNull::from(r).cast::<u8>();
                    self.push(p, 1, src.to_vec(), false);
                }
            }
            Op::SliceCopyU64 { len, seed, try_ } => {
                let src: Vec<u64> = (0..u64::from(len % 65))
                    .map(|i| seed.wrapping_mul(i + 1))
                    .collect();
                let r = if self.use_try(try_) {
                    expect_ok(bump, bump.try_alloc_slice_copy(&src), before)
                } else {
                    Some(bump.alloc_slice_copy(&src))
                };
                if let Some(r) = r {
                    assert_eq!(&r[..], &src[..]);
                    let want: Vec<u8> = src.iter().flat_map(|v| v.to_ne_bytes()).collect();
                    let p = NonNull::from(r).cast::<u8>();
                    self.push(p, 8, want, false);
                }
            }
            Op::Str { len, seed, try_ } => {
                let s: String = (0..len)
                    .map(|i| char::from(b'a' + (seed.wrapping_add(i) % 26)))
                    .collect();
                let r = if self.use_try(try_) {
                    expect_ok(bump, bump.try_alloc_str(&s), before)
                } else {
                    Some(bump.alloc_str(&s))
                };
                if let Some(r) = r {
                    assert_eq!(&*r, &s[..]);
                    let p = NonNull::from(r).cast::<u8>();
                    self.push(p, 1, s.into_bytes(), false);
                }
            }
            Op::FillWith {
                len,
                seed,
                try_,
                panics_at,
            } => {
                let len = usize::from(len) % 1025;
                let f = |i: usize| seed.wrapping_mul(i as u32 + 7);
                let t = self.use_try(try_);
                let panics = panics_at.map(usize::from).filter(|&at| at < len);
                let r = match panics {
                    None if t => expect_ok(bump, bump.try_alloc_slice_fill_with(len, f), before),
                    None => Some(bump.alloc_slice_fill_with(len, f)),
                    Some(at) => {
                        let g = |i: usize| {
                            if i == at {
                                crate::user_panic();
                            }
                            f(i)
                        };
                        let r = crate::expect_panic(|| {
                            if t {
                                bump.try_alloc_slice_fill_with(len, g).map(|_| ())
                            } else {
                                bump.alloc_slice_fill_with(len, g);
                                Ok(())
                            }
                        });
                        match r {
                            // Only a failed `try_` (that never calls the
                            // filler) returns.
                            Some(r) => {
                                assert!(r.is_err(), "a filler's panic did not reach the caller");
                                expect_ok(bump, r, before);
                            }
                            // What was made is leaked; the arena goes on
                            // (`check` sees every live block intact).
                            None => {
                                assert!(
                                    bump.allocated_bytes() >= before,
                                    "a panicking filler freed bytes"
                                );
                            }
                        }
                        None
                    }
                };
                if let Some(r) = r {
                    let want: Vec<u8> = (0..len).flat_map(|i| f(i).to_ne_bytes()).collect();
                    let p = NonNull::from(r).cast::<u8>();
                    self.push(p, 4, want, false);
                }
            }
            Op::WithDrop {
                id,
                plain,
                try_,
                panics,
            } => {
                let t = self.use_try(try_);
                if plain {
                    let r = if t {
                        expect_ok(bump, bump.try_alloc_with_drop(id), before)
                    } else {
                        Some(bump.alloc_with_drop(id))
                    };
                    if let Some(r) = r {
                        let p = NonNull::from(r).cast::<u8>();
                        self.push(p, 8, id.to_ne_bytes().to_vec(), false);
                    }
                } else {
                    let v = Tracked {
                        id,
                        log: Arc::clone(log),
                        panics,
                    };
                    let dropped_before = log.lock().unwrap().len();
                    let r = if t {
                        // A failed `try_` drops the value inside the arena:
                        // if it panics, the panic reaches the caller and
                        // nothing was allocated.
                        match crate::expect_panic(|| bump.try_alloc_with_drop(v)) {
                            Some(r) => expect_ok(bump, r, before),
                            None => {
                                assert!(panics, "a destructor that does not panic panicked");
                                assert!(
                                    bump.allocation_limit().is_some(),
                                    "try_alloc_with_drop dropped its value without a limit"
                                );
                                assert_eq!(
                                    bump.allocated_bytes(),
                                    before,
                                    "a failed try_* allocated"
                                );
                                None
                            }
                        }
                    } else {
                        Some(bump.alloc_with_drop(v))
                    };
                    match r {
                        Some(r) => {
                            let p = NonNull::from(r);
                            assert_eq!(p.as_ptr() as usize % align_of::<Tracked>(), 0);
                            self.tracked.push((p, id));
                            self.panics |= panics;
                            assert_eq!(log.lock().unwrap().len(), dropped_before);
                        }
                        None => {
                            // The value came back in the error and was dropped.
                            let l = log.lock().unwrap();
                            assert_eq!(l.len(), dropped_before + 1);
                            assert_eq!(l.last(), Some(&id));
                            drop(l);
                            log.lock().unwrap().pop();
                        }
                    }
                }
            }
            Op::Rewrite { block, seed } => {
                if !self.blocks.is_empty() {
                    let i = usize::from(block) % self.blocks.len();
                    let b = &mut self.blocks[i];
                    let n = b.want.len();
                    b.want.copy_from_slice(pattern(seed, n));
                    // SAFETY: live block of `want.len()` bytes.
                    unsafe {
                        std::ptr::copy_nonoverlapping(b.want.as_ptr(), b.ptr.as_ptr(), b.want.len())
                    };
                }
            }
            Op::SetLimit(units) => {
                let limit = limit_of(units);
                bump.set_allocation_limit(limit);
                assert_eq!(bump.allocation_limit(), limit);
                self.ceiling = limit.map(|l| l.max(before));
            }
            Op::Reset => unreachable!("handled by the epoch loop"),
            Op::VecNew { elem, capacity } => {
                let cap = usize::from(capacity % 65);
                match elem {
                    Elem::U8 => {
                        let mut v = AVec::new_in(bump);
                        if v.try_reserve(cap).is_ok() {
                            assert!(v.capacity() >= cap);
                        } else {
                            assert!(bump.allocation_limit().is_some());
                        }
                        self.vecs.push(ArenaVec::U8(v, Vec::new()));
                    }
                    Elem::U64 => {
                        let mut v = AVec::new_in(bump);
                        if v.try_reserve(cap).is_ok() {
                            assert!(v.capacity() >= cap);
                        } else {
                            assert!(bump.allocation_limit().is_some());
                        }
                        self.vecs.push(ArenaVec::U64(v, Vec::new()));
                    }
                }
            }
            Op::VecExtend { vec, n, seed } => {
                let n = usize::from(n) % 1025;
                let no_limit = bump.allocation_limit().is_none();
                if let Some(v) = pick(&mut self.vecs, vec) {
                    // Reserve first: a failed reservation is an error, a
                    // failed implicit growth would abort.
                    match v {
                        ArenaVec::U8(v, want) => {
                            if v.try_reserve(n).is_ok() {
                                let data = pattern(seed, n);
                                let cap = v.capacity();
                                v.extend_from_slice(data);
                                assert_eq!(v.capacity(), cap, "grew past its reservation");
                                want.extend_from_slice(data);
                            } else {
                                assert!(!no_limit, "try_reserve failed without a limit");
                            }
                        }
                        ArenaVec::U64(v, want) => {
                            if v.try_reserve(n).is_ok() {
                                for i in 0..n as u64 {
                                    let x = u64::from(seed) << 56 | i;
                                    v.push(x);
                                    want.push(x);
                                }
                            } else {
                                assert!(!no_limit, "try_reserve failed without a limit");
                            }
                        }
                    }
                }
            }
            Op::VecTruncate { vec, len } => {
                if let Some(v) = pick(&mut self.vecs, vec) {
                    match v {
                        ArenaVec::U8(v, want) => {
                            v.truncate(len.into());
                            want.truncate(len.into());
                        }
                        ArenaVec::U64(v, want) => {
                            v.truncate(len.into());
                            want.truncate(len.into());
                        }
                    }
                }
            }
            Op::VecShrink(vec) => {
                if let Some(v) = pick(&mut self.vecs, vec) {
                    match v {
                        ArenaVec::U8(v, _) => v.shrink_to_fit(),
                        ArenaVec::U64(v, _) => v.shrink_to_fit(),
                    }
                }
            }
            Op::VecReserve { vec, n } => {
                let no_limit = bump.allocation_limit().is_none();
                if let Some(v) = pick(&mut self.vecs, vec) {
                    let ok = match v {
                        ArenaVec::U8(v, _) => v.try_reserve_exact(n.into()).is_ok(),
                        ArenaVec::U64(v, _) => v.try_reserve_exact(n.into()).is_ok(),
                    };
                    assert!(ok || !no_limit, "try_reserve failed without a limit");
                }
            }
            Op::VecDrop(vec) => {
                if !self.vecs.is_empty() {
                    let i = usize::from(vec) % self.vecs.len();
                    self.vecs.swap_remove(i);
                }
            }
            Op::RawAlloc { size, align, seed } => {
                let size = usize::from(size) % (MAX_SIZE + 1);
                let align = align_from(align);
                let layout = Layout::from_size_align(size, align).unwrap();
                match bump.allocate(layout) {
                    Ok(p) => {
                        assert_eq!(p.len(), size);
                        let p = p.cast::<u8>();
                        let want = pattern(seed, size);
                        // SAFETY: fresh block of `size` bytes.
                        unsafe { std::ptr::copy_nonoverlapping(want.as_ptr(), p.as_ptr(), size) };
                        self.push(p, align, want.to_vec(), true);
                    }
                    Err(_) => {
                        assert!(
                            bump.allocation_limit().is_some(),
                            "allocate failed without a limit"
                        );
                        assert_eq!(bump.allocated_bytes(), before);
                    }
                }
            }
            Op::RawGrow {
                block,
                extra,
                align,
                seed,
            } => {
                if let Some(i) = pick_raw(&self.blocks, block) {
                    let b = &self.blocks[i];
                    let old = Layout::from_size_align(b.want.len(), b.align).unwrap();
                    let new_size = (b.want.len() + usize::from(extra)).min(MAX_SIZE * 2);
                    let new = Layout::from_size_align(new_size, align_from(align)).unwrap();
                    // SAFETY: `b` is a live block of layout `old` from this
                    // allocator; `new.size() >= old.size()`.
                    match unsafe { bump.grow(b.ptr, old, new) } {
                        Ok(p) => {
                            assert!(p.len() >= new_size);
                            let p = p.cast::<u8>();
                            let mut b = self.blocks.swap_remove(i);
                            // SAFETY: the grown block holds the old bytes,
                            // then `new_size - old` bytes to fill.
                            let got =
                                unsafe { std::slice::from_raw_parts(p.as_ptr(), b.want.len()) };
                            assert!(got == &b.want[..], "grow lost the block's bytes");
                            let tail = pattern(seed, new_size - b.want.len());
                            // SAFETY: the grown block has `new_size` bytes;
                            // `tail` fills the part past the old length.
                            unsafe {
                                std::ptr::copy_nonoverlapping(
                                    tail.as_ptr(),
                                    p.as_ptr().add(b.want.len()),
                                    tail.len(),
                                )
                            };
                            b.want.extend_from_slice(tail);
                            self.push(p, new.align(), b.want, true);
                        }
                        Err(_) => {
                            assert!(
                                bump.allocation_limit().is_some(),
                                "grow failed without a limit"
                            );
                            assert_eq!(bump.allocated_bytes(), before);
                        }
                    }
                }
            }
            Op::RawShrink { block, less, align } => {
                if let Some(i) = pick_raw(&self.blocks, block) {
                    let b = &self.blocks[i];
                    let old = Layout::from_size_align(b.want.len(), b.align).unwrap();
                    let new_size = b.want.len().saturating_sub(usize::from(less));
                    let new = Layout::from_size_align(new_size, align_from(align)).unwrap();
                    // SAFETY: as for grow; `new.size() <= old.size()`.
                    match unsafe { bump.shrink(b.ptr, old, new) } {
                        Ok(p) => {
                            assert!(p.len() >= new_size);
                            let p = p.cast::<u8>();
                            let mut b = self.blocks.swap_remove(i);
                            b.want.truncate(new_size);
                            // SAFETY: the shrunk block holds `new_size` bytes.
                            let got = unsafe { std::slice::from_raw_parts(p.as_ptr(), new_size) };
                            assert!(got == &b.want[..], "shrink lost the block's bytes");
                            self.push(p, new.align(), b.want, true);
                        }
                        Err(_) => {
                            // Only a move to a larger alignment may need a
                            // new block, and so fail under a limit.
                            assert!(
                                bump.allocation_limit().is_some(),
                                "shrink failed without a limit"
                            );
                            assert!(new.align() > b.align, "shrink to the same alignment failed");
                        }
                    }
                }
            }
            Op::RawFree(block) => {
                if let Some(i) = pick_raw(&self.blocks, block) {
                    let b = self.blocks.swap_remove(i);
                    let layout = Layout::from_size_align(b.want.len(), b.align).unwrap();
                    // SAFETY: a live block of this layout from this allocator,
                    // not used again.
                    unsafe { bump.deallocate(b.ptr, layout) };
                }
            }
        }
    }
}

fn pick<T>(v: &mut [T], n: u8) -> Option<&mut T> {
    if v.is_empty() {
        None
    } else {
        let i = usize::from(n) % v.len();
        Some(&mut v[i])
    }
}

fn pick_raw(blocks: &[Block], n: u8) -> Option<usize> {
    let raw: Vec<usize> = (0..blocks.len()).filter(|&i| blocks[i].raw).collect();
    if raw.is_empty() {
        None
    } else {
        Some(raw[usize::from(n) % raw.len()])
    }
}
