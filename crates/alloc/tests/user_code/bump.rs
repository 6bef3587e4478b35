//! `Bump`: destructors of drop-list values on reset and drop, and the
//! filler closure of `alloc_slice_fill_with` (also `BumpHandle`'s).

use std::sync::atomic::{AtomicUsize, Ordering};

use arenapool_alloc::{Bump, Slab, SyncBump};

use super::{Log, panics, probe};

#[test]
fn reset_drops_every_other_value_when_a_destructor_panics() {
    let log = Log::new(5);
    let mut bump = Bump::new();
    for id in 0..5 {
        bump.alloc_with_drop(probe(&log, id, id == 2));
    }
    assert!(panics(|| bump.reset()));
    assert_eq!(log.counts(), [1; 5], "each value dropped exactly once");
    // The arena still works, and a later reset or drop runs nothing twice.
    let later = Log::new(1);
    bump.alloc_with_drop(probe(&later, 0, false));
    bump.reset();
    assert_eq!(bump.chunk_count(), 1);
    drop(bump);
    assert_eq!(log.counts(), [1; 5]);
    assert_eq!(later.counts(), [1]);
}

#[test]
fn dropping_the_arena_drops_every_other_value_when_a_destructor_panics() {
    let log = Log::new(4);
    let bump = Bump::new();
    for id in 0..4 {
        bump.alloc_with_drop(probe(&log, id, id == 1));
    }
    assert!(panics(move || drop(bump)));
    assert_eq!(log.counts(), [1; 4], "each value dropped exactly once");
}

#[test]
fn a_panic_in_a_nested_arena_still_drops_both_arenas_values() {
    let log = Log::new(6);
    let mut outer = Bump::new();
    outer.alloc_with_drop(probe(&log, 0, false));
    let inner = Bump::new();
    inner.alloc_with_drop(probe(&log, 1, false));
    inner.alloc_with_drop(probe(&log, 2, true));
    inner.alloc_with_drop(probe(&log, 3, false));
    outer.alloc_with_drop(inner);
    outer.alloc_with_drop(probe(&log, 4, false));
    let mut slab = Slab::new();
    slab.insert(probe(&log, 5, false));
    outer.alloc_with_drop(slab);
    assert!(panics(|| outer.reset()));
    assert_eq!(log.counts(), [1; 6]);
    drop(outer);
    assert_eq!(log.counts(), [1; 6]);
}

// ---------------------------------------------------------------------------
// Bump and BumpHandle: the filler closure.

#[test]
fn a_panicking_filler_leaks_what_it_made_and_the_arena_goes_on() {
    /// Counts its drops in a static: leaked on purpose, it must own no
    /// heap memory (Miri reports leaks).
    struct Made;
    static MADE_DROPS: AtomicUsize = AtomicUsize::new(0);
    impl Drop for Made {
        fn drop(&mut self) {
            MADE_DROPS.fetch_add(1, Ordering::Relaxed);
        }
    }
    let mut bump = Bump::new();
    let filled = panics(|| {
        bump.alloc_slice_fill_with(4, |i| {
            assert!(i < 2, "filler panics at {i}");
            Made
        });
    });
    assert!(filled);
    // The two values made are leaked, as documented: never dropped.
    assert_eq!(MADE_DROPS.load(Ordering::Relaxed), 0);
    assert_eq!(bump.alloc_slice_fill_with(3, |i| i as u64), [0, 1, 2]);
    bump.reset();
    drop(bump);
    assert_eq!(MADE_DROPS.load(Ordering::Relaxed), 0);
}

#[test]
fn a_filler_may_allocate_from_the_same_arena() {
    let bump = Bump::with_capacity(256);
    let n = 40;
    let mut inner: Vec<&[usize]> = Vec::new();
    let outer = bump.alloc_slice_fill_with(n, |i| {
        // Allocations made while the outer slice is being filled come
        // after it (and from new chunks once the first is full).
        let s = &*bump.alloc_slice_fill_with(3, |j| i * 10 + j);
        inner.push(s);
        i
    });
    let outer_range = outer.as_ptr_range();
    for (i, s) in inner.iter().enumerate() {
        assert_eq!(**s, [i * 10, i * 10 + 1, i * 10 + 2]);
        let r = s.as_ptr_range();
        assert!(r.end <= outer_range.start || r.start >= outer_range.end);
    }
    assert!(outer.iter().copied().eq(0..n));
    assert!(bump.chunk_count() > 1);

    let arena = SyncBump::new();
    let h = arena.handle();
    let mut inner: Vec<&[u8]> = Vec::new();
    let outer = h.alloc_slice_fill_with(300, |i| {
        inner.push(h.alloc_slice_copy(&[i as u8; 5]));
        i as u16
    });
    assert!(outer.iter().copied().eq(0..300));
    for (i, s) in inner.iter().enumerate() {
        assert_eq!(**s, [i as u8; 5]);
    }
    let handle_filled = panics(|| {
        h.alloc_slice_fill_with(3, |i| {
            assert!(i < 1);
            i
        });
    });
    assert!(handle_filled);
    assert_eq!(h.alloc(9u64), &9);
}
