//! Unit tests calling a local `Region` directly; `tests/region_global.rs`
//! installs one as the global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

/// A fallback that counts what reaches it.
#[derive(Debug, Default)]
struct Tally {
    allocs: AtomicUsize,
    frees: AtomicUsize,
    reallocs: AtomicUsize,
}

// SAFETY: forwards to `System` unchanged.
unsafe impl GlobalAlloc for Tally {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        self.allocs.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's guarantees, forwarded.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        self.frees.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's guarantees, forwarded.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        self.reallocs.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's guarantees, forwarded.
        unsafe { System.realloc(p, l, n) }
    }
}

#[test]
fn bumps_and_frees_only_the_last_block() {
    let r: Region<1024, Tally> = Region::new(Tally::default());
    assert_eq!(r.capacity(), 1024);
    // SAFETY: non-zero sizes; each block freed once with its layout.
    unsafe {
        let a = r.alloc(layout(100, 1));
        let b = r.alloc(layout(100, 1));
        assert!(r.contains(a) && r.contains(b));
        assert_eq!(b.addr() - a.addr(), 100);
        assert_eq!(r.used(), 200);
        r.dealloc(a, layout(100, 1)); // not the last: stays used
        assert_eq!(r.used(), 200);
        r.dealloc(b, layout(100, 1)); // the last: given back
        assert_eq!(r.used(), 100);
        let c = r.alloc(layout(50, 1));
        assert_eq!(c, b);
    }
    assert_eq!(r.fallback().allocs.load(Ordering::Relaxed), 0);
}

#[test]
fn alignment_up_to_4096_is_honoured() {
    let r: Region<{ 5 * 4096 }> = Region::new(System);
    // SAFETY: non-zero sizes; never used after the region is dropped.
    unsafe {
        r.alloc(layout(1, 1));
        for shift in 0..=12 {
            let p = r.alloc(layout(3, 1 << shift));
            assert_eq!(p.addr() % (1 << shift), 0);
            p.write_bytes(1, 3);
        }
        // A 4096-aligned page fits (with its padding); one the size of the
        // whole region does not, and comes from the fallback, still aligned.
        let q = r.alloc(layout(4096, 4096));
        assert_eq!(q.addr() % 4096, 0);
        assert!(r.contains(q));
        let big = layout(5 * 4096, 4096);
        let q2 = r.alloc(big);
        assert_eq!(q2.addr() % 4096, 0);
        assert!(!r.contains(q2));
        assert_eq!(r.fallback_allocations(), 1);
        r.dealloc(q2, big);
    }
}

#[test]
fn full_region_falls_back_and_routes_frees_and_reallocs_by_address() {
    let r: Region<256, Tally> = Region::new(Tally::default());
    let t = r.fallback();
    // SAFETY: non-zero sizes; every block freed once with its current layout.
    unsafe {
        let a = r.alloc(layout(200, 8));
        assert!(r.contains(a));
        let b = r.alloc(layout(100, 8));
        assert!(!b.is_null() && !r.contains(b));
        assert_eq!(t.allocs.load(Ordering::Relaxed), 1);
        b.write_bytes(9, 100);
        let b2 = r.realloc(b, layout(100, 8), 1000);
        assert_eq!(t.reallocs.load(Ordering::Relaxed), 1);
        assert_eq!(*b2.add(99), 9);
        r.dealloc(b2, layout(1000, 8));
        assert_eq!(t.frees.load(Ordering::Relaxed), 1);
        // A zeroed fallback block is zeroed.
        let z = r.alloc_zeroed(layout(300, 8));
        assert!(std::slice::from_raw_parts(z, 300).iter().all(|&x| x == 0));
        r.dealloc(z, layout(300, 8));
        r.dealloc(a, layout(200, 8));
    }
    assert_eq!(r.used(), 0);
}

#[test]
fn realloc_in_place_when_last_and_moves_otherwise() {
    let r: Region<1024, Tally> = Region::new(Tally::default());
    // SAFETY: non-zero sizes; each block freed once with its current layout.
    unsafe {
        let a = r.alloc(layout(16, 8));
        a.write_bytes(7, 16);
        let a2 = r.realloc(a, layout(16, 8), 64);
        assert_eq!(a2, a, "last block grows in place");
        assert_eq!(r.used(), 64);
        let a3 = r.realloc(a2, layout(64, 8), 32);
        assert_eq!((a3, r.used()), (a, 32), "and shrinks in place");
        let b = r.alloc(layout(8, 8));
        let a4 = r.realloc(a3, layout(32, 8), 100);
        assert_ne!(a4, a3, "not the last block any more: moved");
        assert!(r.contains(a4));
        assert!(std::slice::from_raw_parts(a4, 16).iter().all(|&x| x == 7));
        // Growing past the region moves the block to the fallback.
        let a5 = r.realloc(a4, layout(100, 8), 5000);
        assert!(!r.contains(a5));
        assert!(std::slice::from_raw_parts(a5, 16).iter().all(|&x| x == 7));
        r.dealloc(a5, layout(5000, 8));
        r.dealloc(b, layout(8, 8));
    }
}

#[test]
fn reused_bytes_are_zeroed_by_alloc_zeroed() {
    let r: Region<128> = Region::new(System);
    // SAFETY: non-zero sizes; each block freed once with its layout.
    unsafe {
        let a = r.alloc(layout(64, 1));
        a.write_bytes(0xFF, 64);
        r.dealloc(a, layout(64, 1));
        let z = r.alloc_zeroed(layout(64, 1));
        assert_eq!(z, a);
        assert!(std::slice::from_raw_parts(z, 64).iter().all(|&x| x == 0));
    }
}

#[test]
fn threads_get_disjoint_blocks() {
    let r: Region<{ 64 * 1024 }> = Region::new(System);
    let per_thread = if cfg!(miri) { 20 } else { 500 };
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let r = &r;
            s.spawn(move || {
                let mut blocks = Vec::new();
                for _ in 0..per_thread {
                    // SAFETY: non-zero size; never freed (the region goes
                    // away with the test).
                    let p = unsafe { r.alloc(layout(24, 8)) };
                    assert!(r.contains(p));
                    // SAFETY: `p` is a 24-byte block owned by this thread.
                    unsafe { p.write_bytes(t, 24) };
                    blocks.push(p);
                }
                // Had another thread got an overlapping block, it would have
                // overwritten some of ours.
                for p in blocks {
                    // SAFETY: each block is still owned by this thread.
                    let bytes = unsafe { std::slice::from_raw_parts(p, 24) };
                    assert!(bytes.iter().all(|&x| x == t));
                }
            });
        }
    });
    assert_eq!(r.used(), 4 * per_thread * 24);
}

#[test]
fn external_memory() {
    let mut memory = vec![0u8; 512];
    // SAFETY: `memory` outlives `r` and is used only through it.
    let r = unsafe { ExternalRegion::from_raw_parts(memory.as_mut_ptr(), 512, System) };
    assert_eq!(r.capacity(), 512);
    // SAFETY: non-zero size.
    let p = unsafe { r.alloc(layout(10, 1)) };
    assert!(r.contains(p));
    assert!(format!("{r:?}").contains("used: 10"));
    // SAFETY: null base: an empty region that always falls back.
    let empty = unsafe { ExternalRegion::from_raw_parts(std::ptr::null_mut(), 99, System) };
    assert_eq!(empty.capacity(), 0);
    // SAFETY: non-zero size; freed with the same layout.
    unsafe {
        let q = empty.alloc(layout(8, 8));
        assert!(!empty.contains(q));
        empty.dealloc(q, layout(8, 8));
    }
}
