//! `Region` installed as the global allocator of this test binary: the
//! harness, the tests and their threads all allocate from a 256 KiB region
//! (16 KiB under Miri, which is slow to initialise big blocks) and fall back
//! to `System` once it is full.

use std::alloc::System;
use std::collections::HashMap;

use arenapool_alloc::Region;

#[global_allocator]
static ALLOC: Region<{ if cfg!(miri) { 16 * 1024 } else { 256 * 1024 } }> = Region::new(System);

#[test]
fn ordinary_collections_work() {
    let n = if cfg!(miri) { 100 } else { 1000 };
    let v: Vec<u64> = (0..n).collect();
    let m: HashMap<u64, String> = v.iter().map(|&i| (i, i.to_string())).collect();
    assert_eq!(m[&(n - 1)], (n - 1).to_string());
    assert_eq!(v.iter().sum::<u64>(), (n - 1) * n / 2);
    // The harness and this test allocated from the region first.
    assert!(ALLOC.used() > 0);
    assert!(ALLOC.used() <= ALLOC.capacity());
}

#[test]
fn big_allocations_fall_back_and_free_to_the_fallback() {
    let before = ALLOC.fallback_allocations();
    let len = ALLOC.capacity() + 1;
    let mut big = vec![1u8; len];
    assert!(!ALLOC.contains(big.as_ptr()));
    assert!(ALLOC.fallback_allocations() > before);
    big.extend_from_slice(&[2; 1024]); // realloc routed to System
    assert_eq!((big[0], big[len]), (1, 2));
    drop(big); // dealloc routed to System
}

#[test]
fn threads_allocate_concurrently() {
    let per_thread = if cfg!(miri) { 20 } else { 2000 };
    let handles: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let v: Vec<Box<u64>> = (0..per_thread).map(|i| Box::new(t * 100_000 + i)).collect();
                v.iter()
                    .enumerate()
                    .all(|(i, b)| **b == t * 100_000 + i as u64)
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap());
    }
}
