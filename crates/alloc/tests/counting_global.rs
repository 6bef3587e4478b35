//! `Counting` installed as the global allocator of this test binary.

use std::alloc::System;
use std::sync::atomic::{AtomicBool, Ordering};

use arenapool_alloc::{AllocStats, Counting, global_stats, is_counting, measure, thread_stats};

#[global_allocator]
static ALLOC: Counting<System> = Counting::new(System);

#[test]
fn is_counting_once_installed() {
    drop(Box::new(1u8));
    assert!(is_counting());
}

#[test]
fn a_box_is_one_allocation_and_one_free() {
    let ((), s) = measure(|| drop(Box::new([0u64; 4])));
    assert_eq!(s.allocations, 1);
    assert_eq!(s.deallocations, 1);
    assert_eq!(s.bytes_allocated, 32);
    assert_eq!(s.bytes_deallocated, 32);
    assert_eq!(s.current_bytes, 0);
    assert_eq!(s.peak_bytes, 32);
}

#[test]
fn nothing_allocated_is_all_zero() {
    let (v, s) = measure(|| {
        let v: Vec<u32> = Vec::new();
        v.len() + [1, 2, 3].iter().sum::<usize>()
    });
    assert_eq!(v, 6);
    assert_eq!(s, AllocStats::default());
}

#[test]
fn vec_growth_is_counted_as_reallocations() {
    let (v, s) = measure(|| {
        let mut v: Vec<u8> = Vec::with_capacity(8);
        for i in 0..100u8 {
            v.push(i);
        }
        v
    });
    assert_eq!(s.allocations, 1);
    assert!(s.reallocations >= 1, "{s:?}");
    assert_eq!(s.deallocations, 0);
    assert_eq!(s.current_bytes, v.capacity() as i64);
    assert_eq!(s.peak_bytes, v.capacity() as u64);
    let ((), freed) = measure(|| drop(v));
    assert_eq!(freed.deallocations, 1);
    assert!(freed.current_bytes < 0);
}

#[test]
fn measure_ignores_a_thread_that_allocates_all_the_time() {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                std::hint::black_box(vec![0u8; 1024]);
            }
        });
        let iterations = if cfg!(miri) { 3 } else { 200 };
        for _ in 0..iterations {
            let (_, s) = measure(|| String::from("exactly one allocation"));
            assert_eq!(s.allocations, 1);
            assert_eq!(s.bytes_allocated, 22);
            assert_eq!(s.deallocations, 0);
        }
        stop.store(true, Ordering::Relaxed);
    });
}

#[test]
fn the_totals_include_other_threads() {
    let before = global_stats();
    let mine = thread_stats();
    std::thread::spawn(|| drop(vec![0u8; 4096])).join().unwrap();
    let d = global_stats().since(&before);
    assert!(d.allocations >= 1);
    assert!(d.bytes_allocated >= 4096);
    assert!(d.deallocations >= 1);
    // The spawned thread's work is not in this thread's counters (spawning
    // itself may allocate here, but not 4096 bytes' worth of buffers).
    let me = thread_stats().since(&mine);
    assert!(me.bytes_allocated < 4096, "{me:?}");
    let g = global_stats();
    assert!(g.peak_bytes >= 4096);
    assert!(g.allocations >= g.deallocations);
}
