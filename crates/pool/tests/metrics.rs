//! The cumulative counters of `Stats`: every acquire and release counted
//! once, on any thread and through any path (thread cache, shared list,
//! wait queue, size classes), and kept when a thread exits; wait times;
//! the high water of buffers held by users; `Display` and `serde`.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use arenapool::Pool;

fn round_trips(pool: &Pool, n: u64) {
    for _ in 0..n {
        let mut b = pool.try_acquire().expect("a buffer");
        b.as_full_mut()[0] = 1;
    }
}

#[test]
fn every_acquire_and_release_is_counted_on_live_and_exited_threads() {
    for cache in [0, 4, 128] {
        let pool = Pool::builder()
            .buffer_size(64)
            .capacity(16)
            .cache_size(cache)
            .build()
            .unwrap();
        let hold = Arc::new(Barrier::new(4));
        let done = Arc::new(Barrier::new(4));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (pool, hold, done) = (pool.clone(), hold.clone(), done.clone());
                thread::spawn(move || {
                    round_trips(&pool, 1000);
                    hold.wait();
                    done.wait();
                })
            })
            .collect();
        round_trips(&pool, 500);
        // The three threads are alive: their tallies are read in place.
        hold.wait();
        let s = pool.stats();
        assert_eq!(
            (s.acquires, s.releases),
            (3500, 3500),
            "cache {cache}: {s:?}"
        );
        done.wait();
        for t in threads {
            t.join().unwrap();
        }
        // They exited: their counts moved to the pool, none lost or doubled.
        let s = pool.stats();
        assert_eq!(
            (s.acquires, s.releases),
            (3500, 3500),
            "cache {cache}: {s:?}"
        );
        assert_eq!(s.in_use, 0);
    }
}

#[test]
fn owned_blocking_async_and_sized_acquires_count_too() {
    let pool = Pool::builder().class(64, 2).class(4096, 2).build().unwrap();
    let owned = pool.try_acquire_owned().unwrap();
    let blocking = pool.acquire_blocking(Duration::from_secs(1)).unwrap();
    let large = pool.try_acquire_with_capacity(1000).unwrap();
    let frozen = pool.try_acquire_owned().map(|b| b.freeze());
    assert!(frozen.is_none(), "the small class has two buffers");
    let s = pool.stats();
    assert_eq!(
        (s.acquires, s.releases, s.failed_acquires),
        (3, 0, 1),
        "{s:?}"
    );
    let classes = pool.class_stats();
    assert_eq!(classes[0].stats.acquires, 2);
    assert_eq!(classes[1].stats.acquires, 1);
    drop((owned, blocking, large));
    let views = pool.try_acquire_owned().unwrap().freeze();
    let copy = views.clone();
    drop(views);
    assert_eq!(pool.stats().releases, 3, "a view still holds the buffer");
    drop(copy);
    let s = pool.stats();
    assert_eq!((s.acquires, s.releases), (4, 4), "{s:?}");
    #[cfg(feature = "async")]
    {
        futures::executor::block_on(async {
            let b = pool.acquire().await;
            drop(b);
        });
        assert_eq!(pool.stats().acquires, 5);
    }
}

#[test]
fn a_waiter_is_counted_with_how_long_it_waited() {
    let pool = Pool::builder()
        .buffer_size(64)
        .capacity(1)
        .cache_size(0)
        .build()
        .unwrap();
    let held = pool.try_acquire_owned().unwrap();
    let waiter = {
        let pool = pool.clone();
        thread::spawn(move || {
            drop(pool.acquire_blocking(Duration::from_secs(60)).unwrap());
        })
    };
    while pool.stats().waiting == 0 {
        thread::yield_now();
    }
    // It has queued; it cannot get the buffer before this sleep ends.
    thread::sleep(Duration::from_millis(50));
    drop(held);
    waiter.join().unwrap();
    let s = pool.stats();
    assert_eq!(s.waits, 1, "{s:?}");
    assert!(s.wait_total >= Duration::from_millis(50), "{s:?}");
    assert_eq!(s.wait_max, s.wait_total);
    assert_eq!((s.acquires, s.releases), (2, 2), "{s:?}");
    // A timeout counts its wait too.
    let held = pool.try_acquire().unwrap();
    assert!(pool.acquire_blocking(Duration::from_millis(20)).is_err());
    let s = pool.stats();
    assert_eq!((s.waits, s.failed_acquires), (2, 1), "{s:?}");
    assert!(s.wait_total >= Duration::from_millis(70), "{s:?}");
    drop(held);
}

#[test]
fn held_high_water_leaves_out_what_the_caches_hold() {
    let pool = Pool::builder()
        .buffer_size(64)
        .capacity(64)
        .cache_size(32)
        .build()
        .unwrap();
    {
        let held: Vec<_> = (0..10).map(|_| pool.try_acquire().unwrap()).collect();
        let s = pool.stats();
        assert_eq!(s.in_use, 10);
        assert_eq!(s.held_high_water, 10, "{s:?}");
        drop(held);
    }
    let s = pool.stats();
    // The refill took more than was held off the shared list.
    assert!(s.high_water > 10, "{s:?}");
    assert_eq!(s.held_high_water, 10, "{s:?}");
    assert!(s.refills >= 1, "{s:?}");
    // Running out samples it: every buffer held, seen at the failure.
    let all: Vec<_> = (0..64).map(|_| pool.try_acquire().unwrap()).collect();
    assert!(pool.try_acquire().is_none());
    drop(all);
    let s = pool.stats();
    assert_eq!(s.held_high_water, 64, "{s:?}");
    assert!(s.flushes >= 1, "{s:?}");
}

#[test]
fn an_empty_shared_list_steals_from_an_idle_threads_cache() {
    let pool = Pool::builder()
        .buffer_size(64)
        .capacity(8)
        .cache_size(8)
        .build()
        .unwrap();
    let idle = Arc::new(Barrier::new(2));
    let end = Arc::new(Barrier::new(2));
    let t = {
        let (pool, idle, end) = (pool.clone(), idle.clone(), end.clone());
        thread::spawn(move || {
            // Takes all 8 into its cache (refill), returns them there.
            let all: Vec<_> = (0..8).map(|_| pool.try_acquire().unwrap()).collect();
            drop(all);
            idle.wait();
            end.wait();
        })
    };
    idle.wait();
    assert!(pool.stats().cached > 0);
    let b = pool.try_acquire().expect("stolen from the idle thread");
    let s = pool.stats();
    assert_eq!(s.steals, 1, "{s:?}");
    drop(b);
    end.wait();
    t.join().unwrap();
}

#[test]
fn growth_is_counted() {
    let pool = Pool::builder()
        .buffer_size(64)
        .capacity(2)
        .grow_to(8)
        .cache_size(0)
        .build()
        .unwrap();
    let held: Vec<_> = (0..5).map(|_| pool.try_acquire().unwrap()).collect();
    let s = pool.stats();
    assert_eq!((s.growths, s.segments), (2, 3), "{s:?}");
    assert_eq!(s.held_high_water, 5);
    drop(held);
}

#[test]
fn display_is_one_line_with_the_counts() {
    let pool = Pool::new(64, 4).unwrap();
    round_trips(&pool, 3);
    let line = pool.stats().to_string();
    assert!(!line.contains('\n'));
    for part in [
        "4 buffers",
        "3 acquires",
        "3 releases",
        "0 failed",
        "0 waits",
    ] {
        assert!(line.contains(part), "{part}: {line}");
    }
}

#[cfg(feature = "serde")]
#[test]
fn stats_serialise_with_every_counter() {
    let pool = Pool::new(64, 4).unwrap();
    round_trips(&pool, 2);
    let v = serde_json::to_value(pool.stats()).unwrap();
    assert_eq!(v["acquires"], 2);
    assert_eq!(v["releases"], 2);
    assert_eq!(v["capacity"], 4);
    assert!(v["wait_total"].is_object(), "{v}");
}
