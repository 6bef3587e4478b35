use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use crate::{Backing, Pool};

fn growable(cache: usize) -> Pool {
    Pool::builder()
        .buffer_size(256)
        .capacity(8)
        .grow_to(64)
        .cache_size(cache)
        .build()
        .unwrap()
}

/// A held buffer keeps its segment (and its bytes); once it is back, the
/// trim frees every grown segment and the capacity is the configured one.
#[test]
fn trim_frees_only_segments_whose_buffers_are_all_free() {
    let pool = growable(0);
    let mut held: Vec<_> = (0..64).map(|_| pool.try_acquire().unwrap()).collect();
    assert_eq!(pool.stats().segments, 4);
    let top = held.iter().position(|b| b.index() == 63).unwrap();
    let mut kept = held.swap_remove(top);
    kept.as_full_mut().fill(0x5A);
    drop(held);

    let t = pool.trim();
    assert_eq!(t.segments_freed, 0, "slot 63 is held, so segment 3 stays");
    assert_eq!(pool.stats().capacity, 64);
    assert!(
        kept.as_full().iter().all(|&b| b == 0x5A),
        "a trim never touches a held buffer"
    );

    drop(kept);
    let t = pool.trim();
    assert_eq!(t.segments_freed, 3);
    assert_eq!(t.bytes_unreserved, 56 * 256);
    let s = pool.stats();
    assert_eq!((s.capacity, s.segments, s.in_use), (8, 1, 0));
    assert_eq!((s.growths, s.trims), (3, 2));
    assert_eq!(s.reserved_bytes, 8 * 256);
    // Nothing more to give back.
    assert_eq!(pool.trim().segments_freed, 0);
}

/// A trimmed pool grows again into new arenas for the same slots, which
/// read as zeros, and hands out every slot exactly once.
#[test]
fn a_trimmed_pool_grows_again_with_fresh_zeroed_arenas() {
    let pool = growable(0);
    for round in 0..3u8 {
        let mut held: Vec<_> = (0..64).map(|_| pool.try_acquire().unwrap()).collect();
        assert!(pool.try_acquire().is_none());
        let mut seen: Vec<u32> = held.iter().map(|b| b.index()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..64).collect::<Vec<_>>());
        for b in &mut held {
            if b.index() >= 8 {
                assert!(
                    b.as_full().iter().all(|&x| x == 0),
                    "round {round}: slot {}",
                    b.index()
                );
            }
            b.as_full_mut().fill(round + 1);
        }
        drop(held);
        assert_eq!(pool.trim().segments_freed, 3);
    }
    assert_eq!(pool.stats().growths, 9);
}

/// The configured capacity is never trimmed away, and a pool that cannot
/// grow keeps all of its buffers.
#[test]
fn trim_never_goes_below_the_configured_capacity() {
    let pool = Pool::new(64, 16).unwrap();
    drop(pool.try_acquire().unwrap());
    let t = pool.trim();
    assert_eq!(t.segments_freed, 0);
    let held: Vec<_> = (0..16).map(|_| pool.try_acquire().unwrap()).collect();
    assert_eq!(held.len(), 16);
}

/// Buffers parked in thread caches come back to the shared list.
#[test]
fn trim_takes_cached_buffers_back() {
    let pool = growable(8);
    std::thread::scope(|s| {
        s.spawn(|| {
            let held: Vec<_> = (0..6).map(|_| pool.try_acquire().unwrap()).collect();
            drop(held);
            assert!(pool.stats().cached > 0);
            // The thread stays alive (with its cache) while the trim runs.
            let t = pool.trim();
            assert!(t.buffers_flushed > 0, "{t:?}");
            assert_eq!(pool.stats().cached, 0);
        });
    });
}

/// With `trim_after`, a pool that went idle trims itself on a release;
/// with a long idle time it does not.
#[test]
fn trim_after_trims_only_once_idle_long_enough() {
    for (idle, trimmed) in [(Duration::ZERO, true), (Duration::from_secs(3600), false)] {
        let pool = Pool::builder()
            .buffer_size(64)
            .capacity(4)
            .grow_to(32)
            .cache_size(0)
            .trim_after(idle)
            .build()
            .unwrap();
        drop(
            (0..32)
                .map(|_| pool.try_acquire().unwrap())
                .collect::<Vec<_>>(),
        );
        let s = pool.stats();
        assert_eq!(s.capacity == 4, trimmed, "{idle:?}: {s}");
        assert_eq!(s.trims > 0, trimmed, "{idle:?}: {s}");
    }
}

/// With thread caches, the check runs when a cache flushes on a borrowed
/// release: the pool trims itself on the way down. (Released newest
/// first, so that the top segments empty first; released oldest first,
/// the top segment is held until the last few releases, which stay in
/// the cache.)
#[test]
fn trim_after_trims_on_a_cache_flush() {
    let pool = Pool::builder()
        .buffer_size(64)
        .capacity(4)
        .grow_to(64)
        .cache_size(8)
        .trim_after(Duration::ZERO)
        .build()
        .unwrap();
    let held: Vec<_> = (0..64).map(|_| pool.try_acquire().unwrap()).collect();
    for b in held.into_iter().rev() {
        drop(b);
    }
    let s = pool.stats();
    assert!(s.trims > 0, "{s}");
    assert!(s.capacity < 64, "{s}");
}

/// Threads acquire, write, check and release while another trims over
/// and over: no buffer is handed out twice, bytes of held buffers are
/// never changed, and an acquire never fails while buffers are free.
#[test]
fn trim_races_acquire_release_growth_and_steals() {
    // Growing from 4 to 64, and fixed at 32 (where an acquire that meets
    // the list emptied by a trim has no growth to fall back on).
    for (capacity, grow_to, cache) in [(4, 64, 0), (4, 64, 4), (32, 32, 0), (32, 32, 4)] {
        let pool = Pool::builder()
            .buffer_size(64)
            .capacity(capacity)
            .grow_to(grow_to)
            .cache_size(cache)
            .build()
            .unwrap();
        let stop = AtomicBool::new(false);
        let rounds = if cfg!(miri) { 20 } else { 2000 };
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..3u8)
                .map(|t| {
                    let pool = &pool;
                    s.spawn(move || {
                        for i in 0..rounds {
                            // 3 threads x 8 buffers < 32: never exhausted.
                            let mut held: Vec<_> = (0..1 + i % 8)
                                .map(|_| pool.try_acquire().expect("a free buffer"))
                                .collect();
                            for b in &mut held {
                                b.as_full_mut().fill(t);
                            }
                            std::thread::yield_now();
                            for b in &held {
                                assert!(
                                    b.as_full().iter().all(|&x| x == t),
                                    "a held buffer changed"
                                );
                            }
                        }
                    })
                })
                .collect();
            let trimmer = s.spawn(|| {
                let mut trims = 0u64;
                while !stop.load(Relaxed) {
                    pool.trim();
                    trims += 1;
                    std::thread::yield_now();
                }
                trims
            });
            // Trim until every worker is done.
            for w in workers {
                w.join().unwrap();
            }
            stop.store(true, Relaxed);
            assert!(trimmer.join().unwrap() > 0);
        });
        pool.trim();
        let s = pool.stats();
        assert_eq!(s.in_use, 0, "{s}");
        assert_eq!(s.capacity, capacity, "{s}");
        assert_eq!(s.failed_acquires, 0, "{s}");
    }
}

/// Mapped arenas hand the pages of free buffers back, which then read
/// as zeros; `resident_bytes` follows.
#[test]
#[cfg_attr(miri, ignore = "Miri cannot run mmap, madvise or mincore")]
fn trim_hands_free_pages_of_mapped_arenas_back() {
    let pool = Pool::builder()
        .buffer_size(4096)
        .capacity(64)
        .alignment(4096)
        .backing(Backing::Mmap)
        .cache_size(0)
        .build()
        .unwrap();
    if pool.backing().obtained == crate::Pages::Heap {
        return; // no mmap on this system
    }
    let mut held: Vec<_> = (0..32).map(|_| pool.try_acquire().unwrap()).collect();
    for b in &mut held {
        b.as_full_mut().fill(9);
    }
    let kept = held.split_off(16);
    drop(held);
    let before = pool.stats().resident_bytes;
    assert_eq!(before, 32 * 4096);
    let t = pool.trim();
    assert_eq!(t.bytes_released, 16 * 4096, "{t:?}");
    assert_eq!(pool.stats().resident_bytes, 16 * 4096);
    assert!(kept.iter().all(|b| b.as_full().iter().all(|&x| x == 9)));
    let again: Vec<_> = (0..16).map(|_| pool.try_acquire().unwrap()).collect();
    assert!(again.iter().all(|b| b.as_full().iter().all(|&x| x == 0)));
}
