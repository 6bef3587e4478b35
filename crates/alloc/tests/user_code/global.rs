//! The global allocator calling back in: into a `Bump` or a `SyncBump`
//! while it is taking a chunk, and into a `Region` from its fallback.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use arenapool_alloc::{Bump, ExternalRegion, SyncBump};

use super::with_hook;

thread_local! {
    /// The arena the hooks below use; one per test thread.
    static LOCAL_BUMP: Bump = Bump::new();
    static SEEN_CHUNKS: Cell<usize> = const { Cell::new(0) };
}

#[test]
fn the_global_allocator_may_read_the_arena_while_it_takes_a_chunk() {
    fn count_chunks() -> bool {
        SEEN_CHUNKS.with(|s| s.set(LOCAL_BUMP.with(Bump::chunk_count)));
        true
    }
    LOCAL_BUMP.with(|bump| {
        let (chunks, runs) = with_hook(count_chunks, || {
            for i in 0..20u64 {
                bump.alloc_slice_fill_with(100, |j| i + j as u64);
            }
            bump.chunk_count()
        });
        assert!(chunks > 1);
        assert!(runs >= 2, "the hook ran at each chunk ({runs} runs)");
        assert!(SEEN_CHUNKS.with(Cell::get) >= 1);
    });
}

#[test]
fn the_global_allocator_allocating_from_the_arena_cannot_pass_its_limit() {
    fn grab() -> bool {
        LOCAL_BUMP.with(|b| {
            // Refused (past the limit) or served: either is fine, the
            // total is what is checked.
            let _ = b.try_alloc([5u8; 5000]);
        });
        false
    }
    LOCAL_BUMP.with(|bump| {
        bump.set_allocation_limit(Some(8192));
        let (outer, runs) = with_hook(grab, || bump.try_alloc([1u8; 6000]).map(|v| v[5999]));
        assert_eq!(runs, 1);
        assert_eq!(outer, Ok(1));
        assert!(
            bump.allocated_bytes() <= 8192,
            "{} bytes of chunks past the 8192-byte limit",
            bump.allocated_bytes()
        );
    });
}

static SHARED: SyncBump = SyncBump::with_allocation_limit(16 * 1024);

#[test]
fn the_global_allocator_may_allocate_from_a_sync_bump_while_it_takes_a_chunk() {
    fn grab() -> bool {
        let h = SHARED.handle();
        let v = h.alloc_slice_copy(&[7u8; 3000]);
        assert!(v.iter().all(|&b| b == 7));
        false
    }
    let h = SHARED.handle();
    let (outer, runs) = with_hook(grab, || &*h.alloc_slice_copy(&[1u8; 5000]));
    assert_eq!(runs, 1);
    assert!(outer.iter().all(|&b| b == 1));
    let total = SHARED.allocated_bytes();
    assert!(
        (8000..=16 * 1024).contains(&total),
        "{total} bytes of chunks"
    );
    // Past the limit, the handle gets an error, not a chunk.
    assert!(h.try_alloc_slice_copy(&[0u8; 9000]).is_err());
    assert!(SHARED.allocated_bytes() <= 16 * 1024);
}

#[test]
fn a_fallback_that_allocates_from_its_own_region() {
    /// A fallback that first allocates a block from the region it backs
    /// (once per call, not from inside itself), then forwards to `System`.
    struct Reenter;
    thread_local! {
        static INSIDE: Cell<bool> = const { Cell::new(false) };
    }
    static mut MEMORY: [u64; 64] = [0; 64];
    // SAFETY: `MEMORY` is used only through `REGION`, which lives as long.
    static REGION: ExternalRegion<Reenter> =
        unsafe { ExternalRegion::from_raw_parts((&raw mut MEMORY).cast(), 512, Reenter) };
    // SAFETY: forwards to `System`; the region block it takes is its own
    // business (given back right away).
    unsafe impl GlobalAlloc for Reenter {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if !INSIDE.with(|i| i.replace(true)) {
                let l = Layout::new::<u64>();
                // SAFETY: non-zero size; freed with the same layout.
                unsafe {
                    let p = REGION.alloc(l);
                    if !p.is_null() {
                        p.cast::<u64>().write(7);
                        REGION.dealloc(p, l);
                    }
                }
                INSIDE.with(|i| i.set(false));
            }
            // SAFETY: forwarded.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded.
            unsafe { System.dealloc(ptr, layout) }
        }
    }
    let small = Layout::from_size_align(400, 8).unwrap();
    let big = Layout::from_size_align(1000, 8).unwrap();
    // SAFETY: non-zero sizes; each block freed once with its layout (or
    // the layout `realloc` gave it).
    unsafe {
        let a = REGION.alloc(small);
        assert!(REGION.contains(a));
        a.write_bytes(1, 400);
        // Does not fit: the fallback runs (and takes the region's last
        // bytes for a moment) while the block moves out.
        let b = REGION.realloc(a, small, 1000);
        assert!(!b.is_null() && !REGION.contains(b));
        assert!(std::slice::from_raw_parts(b, 400).iter().all(|&x| x == 1));
        assert!(REGION.fallback_allocations() >= 1);
        REGION.dealloc(b, big);
        let c = REGION.alloc(small);
        assert!(!c.is_null());
        REGION.dealloc(c, small);
    }
}
