//! Unit tests of `Bump` and `SyncBump`; the random-program model test is
//! in `tests/bump_model.rs`.

use std::alloc::Layout;
use std::sync::Arc;

use allocator_api2::vec::Vec as AVec;

use super::*;
use crate::{BumpHandle, SyncBump};

#[test]
fn values_do_not_overlap_and_keep_their_contents() {
    let bump = Bump::new();
    let n = if cfg!(miri) { 200 } else { 5000 };
    let refs: Vec<&mut u64> = (0..n).map(|i| bump.alloc(i as u64 * 3)).collect();
    for (i, r) in refs.iter().enumerate() {
        assert_eq!(**r, i as u64 * 3);
    }
    assert!(bump.chunk_count() > 1);
}

#[test]
fn chunks_grow_geometrically() {
    let bump = Bump::new();
    for _ in 0..if cfg!(miri) { 300 } else { 3000 } {
        bump.alloc([0u8; 16]);
    }
    let sizes: Vec<usize> = bump.chunks.borrow().iter().map(RawChunk::size).collect();
    assert_eq!(sizes[0], FIRST_CHUNK);
    for w in sizes.windows(2) {
        assert_eq!(w[1], w[0] * 2, "{sizes:?}");
    }
    assert_eq!(bump.allocated_bytes(), sizes.iter().sum::<usize>());
}

#[test]
fn alignment_up_to_4096_is_honoured() {
    let bump = Bump::new();
    for shift in 0..=12 {
        let align = 1usize << shift;
        for size in [1, 3, align, 5000] {
            let l = Layout::from_size_align(size, align).unwrap();
            let p = bump.try_alloc_layout(l).unwrap();
            assert_eq!(p.as_ptr().addr() % align, 0, "size {size} align {align}");
            // SAFETY: the block is `size` writable bytes.
            unsafe { p.as_ptr().write_bytes(0xAB, size) };
        }
    }
    let sb = SyncBump::new();
    let h = sb.handle();
    let l = Layout::from_size_align(64, 4096).unwrap();
    assert_eq!(h.alloc_layout(l).as_ptr().addr() % 4096, 0);
}

#[test]
fn zero_sized_allocations_take_no_space() {
    let bump = Bump::new();
    let a = bump.alloc(());
    let b = bump.alloc_slice_copy::<u64>(&[]);
    let l = Layout::from_size_align(0, 512).unwrap();
    let p = bump.alloc_layout(l);
    assert_eq!(p.as_ptr().addr() % 512, 0);
    assert_eq!(*a, ());
    assert!(b.is_empty());
    assert_eq!(bump.allocated_bytes(), 0);
}

#[test]
fn typed_helpers() {
    let bump = Bump::with_capacity(256);
    assert_eq!(bump.allocated_bytes(), 256);
    let s = bump.alloc_str("héllo");
    s.make_ascii_uppercase();
    assert_eq!(s, "HéLLO");
    let v = bump.alloc_slice_copy(&[1u16, 2, 3]);
    v[0] = 9;
    assert_eq!(v, &[9, 2, 3]);
    let f = bump.alloc_slice_fill_with(5, |i| i as u8 * 2);
    assert_eq!(f, &[0, 2, 4, 6, 8]);
    assert_eq!(bump.chunk_count(), 1);
}

#[test]
fn limit_errors_and_nothing_changes() {
    let bump = Bump::new();
    bump.set_allocation_limit(Some(1024));
    assert_eq!(bump.allocation_limit(), Some(1024));
    let big = Layout::from_size_align(2000, 8).unwrap();
    assert!(matches!(
        bump.try_alloc_layout(big),
        Err(BumpError::LimitExceeded {
            limit: 1024,
            allocated: 0,
            ..
        })
    ));
    assert_eq!(bump.allocated_bytes(), 0);
    // The first chunk is clamped to the limit.
    bump.alloc([0u8; 100]);
    assert_eq!(bump.allocated_bytes(), 1024);
    assert!(bump.try_alloc_slice_copy(&[0u8; 1000]).is_err());
    assert!(bump.try_alloc_str(&"x".repeat(1000)).is_err());
    assert!(bump.try_alloc_slice_fill_with(1000, |_| 0u8).is_err());
    assert!(bump.try_alloc_with_drop(String::from("a")).is_ok());
    bump.set_allocation_limit(None);
    assert!(bump.try_alloc_slice_copy(&[0u8; 1000]).is_ok());
}

#[test]
fn impossible_sizes_are_typed_errors() {
    let bump = Bump::new();
    let l = Layout::from_size_align(isize::MAX as usize, 1).unwrap();
    assert_eq!(bump.try_alloc_layout(l), Err(BumpError::SizeOverflow));
    if !cfg!(miri) {
        // Miri reports huge allocations as an error instead of returning null.
        for size in [isize::MAX as usize - 4095, 1 << 50] {
            let l = Layout::from_size_align(size, 4096).unwrap();
            assert!(matches!(
                bump.try_alloc_layout(l),
                Err(BumpError::OutOfMemory { .. })
            ));
        }
    }
    assert_eq!(
        Bump::try_with_capacity(usize::MAX).unwrap_err(),
        BumpError::SizeOverflow
    );
    assert!(
        bump.try_alloc_slice_fill_with::<u64>(usize::MAX / 4, |_| unreachable!())
            .is_err()
    );
}

#[test]
fn reset_keeps_the_largest_chunk_and_reuses_it() {
    let mut bump = Bump::new();
    bump.alloc_slice_copy(&[1u8; 10_000]);
    bump.alloc(1u8);
    let largest = bump
        .chunks
        .borrow()
        .iter()
        .map(RawChunk::size)
        .max()
        .unwrap();
    bump.reset();
    assert_eq!(bump.chunk_count(), 1);
    assert_eq!(bump.allocated_bytes(), largest);
    let p = bump.alloc_slice_copy(&[2u8; 10_000]);
    assert!(p.iter().all(|&b| b == 2));
    assert_eq!(bump.chunk_count(), 1);
    // Resetting an arena that never allocated is a no-op.
    let mut empty = Bump::new();
    empty.reset();
    assert_eq!(empty.chunk_count(), 0);
}

thread_local! {
    static DROPPED: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Logs its number when dropped; owns no heap memory, so leaking one (as
/// plain `alloc` does) is not a leak Miri reports.
struct Logged(u32);
impl Drop for Logged {
    fn drop(&mut self) {
        DROPPED.with_borrow_mut(|d| d.push(self.0));
    }
}

#[test]
fn plain_alloc_does_not_drop_but_alloc_with_drop_does_newest_first() {
    let dropped = || DROPPED.with_borrow(|d| d.clone());
    let mut bump = Bump::new();
    bump.alloc(Logged(0));
    for i in 1..=3 {
        bump.alloc_with_drop(Logged(i));
    }
    assert!(dropped().is_empty());
    bump.reset();
    assert_eq!(dropped(), [3, 2, 1]);
    bump.alloc_with_drop(Logged(4));
    bump.alloc(Logged(5));
    drop(bump);
    assert_eq!(dropped(), [3, 2, 1, 4], "0 and 5 were never dropped");
    // Heap-owning values on the drop list are freed (Miri checks for leaks).
    let bump = Bump::new();
    let shared = Arc::new(5);
    for _ in 0..3 {
        bump.alloc_with_drop(vec![Arc::clone(&shared)]);
    }
    assert_eq!(Arc::strong_count(&shared), 4);
    drop(bump);
    assert_eq!(Arc::strong_count(&shared), 1);
}

#[test]
fn vec_in_bump_grows_in_place() {
    let bump = Bump::new();
    let mut v: AVec<u32, &Bump> = AVec::new_in(&bump);
    v.push(0);
    let first = v.as_ptr();
    for i in 1..200 {
        v.push(i);
    }
    // Only this Vec allocates, so every growth extends the last block (until
    // a chunk boundary).
    assert_eq!(v.as_ptr(), first);
    assert_eq!(v.iter().sum::<u32>(), (0..200u32).sum::<u32>());
    // Shrinking and freeing the last block gives the bytes back.
    v.truncate(10);
    v.shrink_to_fit();
    drop(v);
    let a = bump.alloc(1u32) as *mut u32;
    assert_eq!(a.cast_const(), first);
}

#[test]
fn grow_copies_when_not_last_or_misaligned() {
    let bump = Bump::new();
    let mut a: AVec<u8, &Bump> = AVec::new_in(&bump);
    a.extend_from_slice(b"abc");
    let mut b: AVec<u8, &Bump> = AVec::new_in(&bump);
    b.extend_from_slice(b"xyz");
    let before = a.as_ptr();
    a.extend_from_slice(&[b'd'; 100]);
    assert_ne!(a.as_ptr(), before, "a is not the last block, so it moved");
    assert_eq!(&a[..4], b"abcd");
    assert_eq!(&b[..], b"xyz");
    // Growth to a larger alignment moves to an aligned block.
    let bump2 = &bump;
    let l1 = Layout::from_size_align(8, 1).unwrap();
    let p = bump2
        .allocate(Layout::from_size_align(1, 1).unwrap())
        .unwrap();
    let p = p.cast::<u8>();
    let l8 = Layout::from_size_align(8, 1).unwrap();
    // SAFETY: `p` is the block just allocated with layout (1, 1).
    let q = unsafe { bump2.grow(p, Layout::from_size_align(1, 1).unwrap(), l8) }.unwrap();
    assert_eq!(q.cast::<u8>(), p);
    let l64 = Layout::from_size_align(16, 64).unwrap();
    // SAFETY: `q` is a block of layout `l1` from `bump2`.
    let r = unsafe { bump2.grow(q.cast(), l1, l64) }.unwrap();
    assert_eq!(r.cast::<u8>().as_ptr().addr() % 64, 0);
}

#[test]
fn hashbrown_map_in_bump() {
    let bump = Bump::new();
    let mut m = hashbrown::HashMap::new_in(&bump);
    let n = if cfg!(miri) { 50 } else { 1000 };
    for i in 0..n {
        m.insert(i, i * 2);
    }
    assert_eq!(m.len(), n);
    assert_eq!(m[&7], 14);
}

#[test]
fn sync_bump_threads_fill_one_arena() {
    let arena = SyncBump::new();
    let per_thread = if cfg!(miri) { 50 } else { 2000 };
    let all: Vec<Vec<&u64>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4u64)
            .map(|t| {
                let arena = &arena;
                s.spawn(move || {
                    let h = arena.handle();
                    (0..per_thread)
                        .map(|i| &*h.alloc(t * 1_000_000 + i))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (t, vals) in all.iter().enumerate() {
        for (i, v) in vals.iter().enumerate() {
            assert_eq!(**v, t as u64 * 1_000_000 + i as u64);
        }
    }
    assert!(arena.allocated_bytes() >= 4 * per_thread as usize * 8);
}

#[test]
fn sync_bump_handle_helpers_and_allocator() {
    let arena = SyncBump::default();
    let h = arena.handle();
    assert_eq!(h.alloc_str("abc"), "abc");
    assert_eq!(h.alloc_slice_copy(&[1, 2]), &[1, 2]);
    assert_eq!(h.alloc_slice_fill_with(3, |i| i), &[0, 1, 2]);
    assert!(
        h.try_alloc_slice_fill_with::<u64>(usize::MAX, |i| i as u64)
            .is_err()
    );
    let mut v: AVec<u64, &BumpHandle<'_>> = AVec::new_in(&h);
    v.push(1);
    let first = v.as_ptr();
    v.extend(2..100);
    assert_eq!(v.as_ptr(), first);
    let moved = std::thread::scope(|s| {
        let h2 = arena.handle();
        s.spawn(move || *h2.alloc(5u8)).join().unwrap()
    });
    assert_eq!(moved, 5);
    assert!(std::ptr::eq(h.arena(), &arena));
    assert!(format!("{arena:?} {h:?}").contains("SyncBump"));
}

#[test]
fn sync_bump_limit_is_shared() {
    let arena = SyncBump::with_allocation_limit(3000);
    let (a, b) = (arena.handle(), arena.handle());
    assert!(a.try_alloc([0u8; 1500]).is_ok());
    assert!(b.try_alloc([0u8; 1000]).is_ok());
    assert!(matches!(
        b.try_alloc([0u8; 1000]),
        Err(BumpError::LimitExceeded { limit: 3000, .. })
    ));
    assert!(arena.allocated_bytes() <= 3000);
}

#[test]
fn debug_output() {
    let bump = Bump::default();
    bump.alloc(1u8);
    let s = format!("{bump:?}");
    assert!(s.contains("chunks: 1"), "{s}");
}
