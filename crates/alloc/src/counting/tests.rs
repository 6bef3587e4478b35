//! Unit tests of `Counting`. They call a `Counting` value directly (none
//! is installed in the unit-test binary), so the counters move only by
//! what each test does on its own thread.

use super::*;

static C: Counting<System> = Counting::new(System);

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

#[test]
fn alloc_and_dealloc_are_counted_on_this_thread() {
    let before = thread_stats();
    let l = layout(48, 8);
    // SAFETY: non-zero size; freed below with the same layout.
    let p = unsafe { C.alloc(l) };
    assert!(!p.is_null());
    let mid = thread_stats().since(&before);
    assert_eq!(mid.allocations, 1);
    assert_eq!(mid.bytes_allocated, 48);
    assert_eq!(mid.current_bytes, 48);
    // SAFETY: `p` came from `C.alloc(l)`.
    unsafe { C.dealloc(p, l) };
    let d = thread_stats().since(&before);
    assert_eq!(d.deallocations, 1);
    assert_eq!(d.bytes_deallocated, 48);
    assert_eq!(d.current_bytes, 0);
    assert!(is_counting());
}

#[test]
fn alloc_zeroed_is_zeroed_and_counted() {
    let l = layout(64, 16);
    let ((), s) = measure(|| {
        // SAFETY: non-zero size; freed below with the same layout.
        let p = unsafe { C.alloc_zeroed(l) };
        assert!(!p.is_null());
        assert_eq!(p.addr() % 16, 0);
        // SAFETY: `p` points to 64 initialised (zero) bytes.
        let bytes = unsafe { std::slice::from_raw_parts(p, 64) };
        assert!(bytes.iter().all(|&b| b == 0));
        // SAFETY: `p` came from `C.alloc_zeroed(l)`.
        unsafe { C.dealloc(p, l) };
    });
    assert_eq!((s.allocations, s.deallocations), (1, 1));
    assert_eq!(s.peak_bytes, 64);
    assert_eq!(s.current_bytes, 0);
}

#[test]
fn realloc_keeps_contents_and_counts_both_sizes() {
    let l = layout(8, 8);
    let ((), s) = measure(|| {
        // SAFETY: non-zero size.
        let p = unsafe { C.alloc(l) };
        assert!(!p.is_null());
        // SAFETY: `p` is valid for 8 bytes.
        unsafe { p.write_bytes(7, 8) };
        // SAFETY: `p` came from `C` with `l`; 100 is non-zero.
        let q = unsafe { C.realloc(p, l, 100) };
        assert!(!q.is_null());
        // SAFETY: `q` is valid for 100 bytes, the first 8 copied from `p`.
        assert_eq!(unsafe { std::slice::from_raw_parts(q, 8) }, &[7; 8]);
        // SAFETY: `q` came from `C` with size 100, align 8.
        unsafe { C.dealloc(q, layout(100, 8)) };
    });
    assert_eq!(s.allocations, 1);
    assert_eq!(s.reallocations, 1);
    assert_eq!(s.deallocations, 1);
    assert_eq!(s.bytes_allocated, 108);
    assert_eq!(s.bytes_deallocated, 108);
    assert_eq!(s.current_bytes, 0);
    assert_eq!(s.peak_bytes, 100);
}

#[test]
fn measure_peak_is_relative_and_nested_measures_restore_the_peak() {
    let l = layout(1000, 8);
    // SAFETY: non-zero size; freed at the end.
    let outer_block = unsafe { C.alloc(l) };
    let before = thread_stats();
    let ((), outer) = measure(|| {
        let ((), inner) = measure(|| {
            // SAFETY: non-zero size; freed right away.
            let p = unsafe { C.alloc(layout(10, 1)) };
            // SAFETY: `p` came from `C` with this layout.
            unsafe { C.dealloc(p, layout(10, 1)) };
        });
        assert_eq!(inner.peak_bytes, 10);
        // SAFETY: non-zero size; freed right away.
        let p = unsafe { C.alloc(layout(30, 1)) };
        // SAFETY: `p` came from `C` with this layout.
        unsafe { C.dealloc(p, layout(30, 1)) };
    });
    assert_eq!(outer.peak_bytes, 30);
    assert_eq!(outer.allocations, 2);
    // The thread's own high-water mark survives the measures.
    assert!(thread_stats().peak_bytes >= before.peak_bytes);
    // SAFETY: `outer_block` came from `C.alloc(l)`.
    unsafe { C.dealloc(outer_block, l) };
}

#[test]
fn other_threads_are_not_counted_by_measure_but_are_in_the_totals() {
    let l = layout(256, 8);
    let g0 = global_stats();
    let ((), s) = measure(|| {
        std::thread::scope(|scope| {
            scope.spawn(|| {
                // SAFETY: non-zero size; freed right away.
                let p = unsafe { C.alloc(l) };
                // SAFETY: `p` came from `C.alloc(l)`.
                unsafe { C.dealloc(p, l) };
            });
        });
    });
    // Spawning may allocate through the (uncounted) system allocator,
    // but nothing went through `C` on this thread.
    assert_eq!(s, AllocStats::default());
    let g = global_stats().since(&g0);
    assert!(g.allocations >= 1 && g.bytes_allocated >= 256);
}

struct SendPtr(*mut u8);
// SAFETY: the block behind the pointer is plain bytes owned by whoever
// holds the `SendPtr`; moving it to another thread is like moving a `Box`.
unsafe impl Send for SendPtr {}

#[test]
fn freeing_another_threads_block_drives_the_level_negative() {
    let l = layout(32, 8);
    // SAFETY: non-zero size.
    let p = SendPtr(unsafe { C.alloc(l) });
    let ((), s) = measure(|| {
        std::thread::spawn(move || {
            let ((), s) = measure(|| {
                let p = p;
                // SAFETY: `p.0` came from `C.alloc(l)` and is freed once.
                unsafe { C.dealloc(p.0, l) };
            });
            assert_eq!(s.current_bytes, -32);
            assert_eq!(s.peak_bytes, 0);
        })
        .join()
        .unwrap();
    });
    assert_eq!(s.deallocations, 0);
}

#[test]
fn failed_allocations_count_nothing() {
    struct Refuse;
    // SAFETY: `alloc` and `realloc` return null, which is always allowed;
    // `dealloc` is never reached with a pointer since none is handed out.
    unsafe impl GlobalAlloc for Refuse {
        unsafe fn alloc(&self, _: Layout) -> *mut u8 {
            std::ptr::null_mut()
        }
        unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
    }
    let c = Counting::new(Refuse);
    let ((), s) = measure(|| {
        // SAFETY: non-zero size.
        assert!(unsafe { c.alloc(layout(8, 8)) }.is_null());
        // SAFETY: non-zero size.
        assert!(unsafe { c.alloc_zeroed(layout(8, 8)) }.is_null());
    });
    assert_eq!(s, AllocStats::default());
}
