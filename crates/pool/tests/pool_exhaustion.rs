//! Exhaustion: what happens when the pool runs out. `try_acquire` fails
//! fast and counts it, `acquire_blocking` waits and either wakes on a release
//! or gives up after the timeout, `grow_to` adds segments up to its limit,
//! and a panic while holding buffers gives every one of them back.
//!
//! No test here bounds how long anything takes: the only time assertions
//! are lower bounds (a timeout waited at least as long as asked), and waits
//! that must succeed use timeouts far beyond any plausible delay.

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};

use arenapool::{Exhausted, Pool};

/// A timeout that a correct pool never reaches in these tests, also under
/// a sanitizer on a loaded machine, where a panicking thread can spend
/// seconds symbolising its backtrace before it unwinds and releases.
const LONG: Duration = Duration::from_secs(120);
/// Deadlock detector for `burst_of_releases_wakes_every_waiter`: not a
/// performance bound. The waiters there need microseconds once buffers are
/// free; reaching this means they are asleep for good.
const STUCK: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(if cfg!(miri) { 5 } else { 50 });

fn pool(buffer_size: usize, capacity: usize) -> Pool {
    Pool::new(buffer_size, capacity).unwrap()
}

/// Blocks until some acquire has started waiting on `pool`. A release made
/// after this is seen by a waiter, whichever way the race goes, so tests
/// that need "release while someone waits" need no sleeps.
fn until_waiting(pool: &Pool, waits: u64) {
    while pool.stats().waits < waits {
        std::thread::yield_now();
    }
}

#[test]
fn try_acquire_on_exhausted_pool_returns_none_and_counts() {
    let pool = Arc::new(pool(64, 2));
    let a = pool.try_acquire().unwrap();
    let b = pool.try_acquire_owned().unwrap();
    assert_ne!(a.index(), b.index());
    for n in 1..=3 {
        assert!(pool.try_acquire().is_none());
        assert_eq!(pool.stats().failed_acquires, 2 * n - 1);
        assert!(pool.try_acquire_owned().is_none());
        assert_eq!(pool.stats().failed_acquires, 2 * n);
    }
    let s = pool.stats();
    assert_eq!((s.in_use, s.capacity, s.segments, s.waits), (2, 2, 1, 0));
    assert_eq!(s.high_water, 2);

    // One back: exactly one more can be taken, and it is the freed slot.
    let freed = a.index();
    drop(a);
    assert_eq!(pool.stats().in_use, 1);
    let c = pool.try_acquire().expect("a buffer was released");
    assert_eq!(c.index(), freed);
    assert!(pool.try_acquire().is_none());
    assert_eq!(pool.stats().failed_acquires, 7);
    drop((b, c));
    assert_eq!(pool.stats().in_use, 0);
}

#[test]
fn acquire_blocking_gives_up_after_the_timeout() {
    let pool = Arc::new(pool(64, 1));
    let held = pool.try_acquire().unwrap();

    let start = Instant::now();
    let err: Exhausted = pool.acquire_blocking(SHORT).unwrap_err();
    let elapsed = start.elapsed();
    assert!(err.waited >= SHORT, "waited {:?} < {SHORT:?}", err.waited);
    assert!(elapsed >= SHORT, "returned after {elapsed:?} < {SHORT:?}");
    assert!(err.waited <= elapsed, "reported more than it waited");
    let s = pool.stats();
    assert_eq!((s.waits, s.failed_acquires, s.in_use), (1, 1, 1));

    // The owned variant behaves the same and counts the same.
    let err = pool.acquire_owned_blocking(SHORT).unwrap_err();
    assert!(err.waited >= SHORT, "waited {:?} < {SHORT:?}", err.waited);
    let s = pool.stats();
    assert_eq!((s.waits, s.failed_acquires, s.in_use), (2, 2, 1));

    // The error says what happened.
    assert!(err.to_string().contains("exhausted"), "{err}");

    // A zero timeout fails without blocking, and counts a failure.
    assert!(pool.acquire_blocking(Duration::ZERO).is_err());
    assert_eq!(pool.stats().failed_acquires, 3);

    // With a free buffer, no wait is counted.
    drop(held);
    let b = pool.acquire_blocking(SHORT).unwrap();
    let s = pool.stats();
    assert_eq!((s.failed_acquires, s.in_use), (3, 1));
    let waits_before = s.waits;
    drop(b);
    let _b = pool.acquire_blocking(Duration::ZERO).unwrap();
    assert_eq!(pool.stats().waits, waits_before);
}

#[test]
fn acquire_blocking_wakes_when_another_thread_releases() {
    let pool = pool(128, 1);
    let mut held = pool.try_acquire().unwrap();
    held.extend_from_slice(b"from the holder").unwrap();
    let held_idx = held.index();
    std::thread::scope(|s| {
        let pool = &pool;
        s.spawn(move || {
            until_waiting(pool, 1);
            drop(held);
        });
        let b = pool
            .acquire_blocking(LONG)
            .expect("woken by the release long before the timeout");
        assert_eq!(b.index(), held_idx);
        assert!(b.is_empty(), "a fresh handle starts empty");
    });
    let s = pool.stats();
    assert_eq!((s.waits, s.failed_acquires, s.in_use), (1, 0, 0));
}

#[test]
fn acquire_owned_blocking_wakes_when_another_thread_releases() {
    let pool = Arc::new(pool(128, 1));
    let held = pool.try_acquire_owned().unwrap();
    let p = pool.clone();
    let releaser = std::thread::spawn(move || {
        until_waiting(&p, 1);
        drop(held);
    });
    let b = pool
        .acquire_owned_blocking(LONG)
        .expect("woken by the release");
    releaser.join().unwrap();
    let s = pool.stats();
    assert_eq!((s.waits, s.failed_acquires, s.in_use), (1, 0, 1));
    drop(b);
    assert_eq!(pool.stats().in_use, 0);
}

#[test]
fn many_waiters_all_finish_and_nothing_is_lost() {
    const THREADS: u64 = if cfg!(miri) { 4 } else { 8 };
    const ROUNDS: u64 = if cfg!(miri) { 10 } else { 200 };
    let pool = pool(64, 2);
    let done = AtomicU64::new(0);
    let start = Barrier::new(THREADS as usize);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (pool, done, start) = (&pool, &done, &start);
            s.spawn(move || {
                start.wait();
                for r in 0..ROUNDS {
                    let mut b = pool
                        .acquire_blocking(LONG)
                        .unwrap_or_else(|e| panic!("thread {t} round {r}: {e}"));
                    let stamp = [t as u8, r as u8, (r >> 8) as u8, 0xEE];
                    for chunk in b.as_full_mut().chunks_mut(4) {
                        chunk.copy_from_slice(&stamp[..chunk.len()]);
                    }
                    std::thread::yield_now();
                    for chunk in b.as_full().chunks(4) {
                        assert_eq!(chunk, &stamp[..chunk.len()], "slot {} shared", b.index());
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    assert_eq!(done.load(Ordering::Relaxed), THREADS * ROUNDS);
    let s = pool.stats();
    assert_eq!(s.failed_acquires, 0, "no acquire timed out: {s:?}");
    assert_eq!((s.in_use, s.capacity, s.high_water), (0, 2, 2), "{s:?}");
    // Both buffers are still there, and only those.
    let a = pool.try_acquire().unwrap();
    let b = pool.try_acquire().unwrap();
    assert_ne!(a.index(), b.index());
    assert!(pool.try_acquire().is_none());
}

#[test]
fn grows_to_exactly_the_limit_and_keeps_handles_valid() {
    // 3 -> 6 -> 10 (the second step is cut from 6 to 4 by the limit).
    let pool = Pool::builder()
        .buffer_size(100)
        .capacity(3)
        .alignment(256)
        .grow_to(10)
        .build()
        .unwrap();
    let mut held = Vec::new();
    let expect = [
        // (after this many held: capacity, segments)
        (1, 3, 1),
        (3, 3, 1),
        (4, 6, 2),
        (6, 6, 2),
        (7, 10, 3),
        (10, 10, 3),
    ];
    for n in 1..=10 {
        let mut b = pool.try_acquire().expect("below the limit");
        // Written before any later growth; read back after it.
        b.extend_from_slice(&[n as u8; 100]).unwrap();
        held.push(b);
        let s = pool.stats();
        assert_eq!(s.in_use, n);
        assert_eq!(s.max_capacity, 10);
        if let Some(&(_, cap, segs)) = expect.iter().find(|e| e.0 == n) {
            assert_eq!((s.capacity, s.segments), (cap, segs), "after {n}: {s:?}");
        }
    }
    // At the limit: no further growth.
    assert!(pool.try_acquire().is_none());
    assert!(pool.acquire_blocking(Duration::ZERO).is_err());
    let s = pool.stats();
    assert_eq!((s.capacity, s.segments, s.in_use), (10, 3, 10));
    assert_eq!(s.failed_acquires, 2);
    assert_eq!(s.high_water, 10);

    // Every handle, old segment or new, kept its bytes and its own memory.
    let mut ranges = Vec::new();
    for (n, b) in held.iter().enumerate() {
        assert_eq!(&b[..], &[n as u8 + 1; 100][..], "handle {n} lost its bytes");
        let p = b.as_full().as_ptr() as usize;
        assert_eq!(p % 256, 0, "handle {n} misaligned");
        ranges.push((p, p + 100));
    }
    ranges.sort_unstable();
    assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "overlap");
    let indices: HashSet<u32> = held.iter().map(|b| b.index()).collect();
    assert_eq!(indices, (0..10).collect());

    // Released and taken again: no more growth.
    held.clear();
    assert_eq!(pool.stats().in_use, 0);
    let again: Vec<_> = (0..10).map(|_| pool.try_acquire().unwrap()).collect();
    assert!(pool.try_acquire().is_none());
    let s = pool.stats();
    assert_eq!((s.capacity, s.segments), (10, 3));
    drop(again);
}

#[test]
fn growth_limit_equal_to_capacity_never_grows() {
    let pool = Pool::builder()
        .buffer_size(8)
        .capacity(2)
        .grow_to(2)
        .build()
        .unwrap();
    let _a = pool.try_acquire().unwrap();
    let _b = pool.try_acquire().unwrap();
    assert!(pool.try_acquire().is_none());
    let s = pool.stats();
    assert_eq!((s.capacity, s.max_capacity, s.segments), (2, 2, 1));
}

#[test]
fn blocking_acquire_grows_instead_of_waiting() {
    let pool = Pool::builder()
        .buffer_size(8)
        .capacity(1)
        .grow_to(3)
        .build()
        .unwrap();
    let a = pool.acquire_blocking(LONG).unwrap();
    let b = pool.acquire_blocking(LONG).unwrap();
    let c = pool.acquire_blocking(LONG).unwrap();
    let s = pool.stats();
    assert_eq!(
        (s.capacity, s.segments, s.waits),
        (3, 3, 0),
        "1 -> 2 -> 3: {s:?}"
    );
    assert!(pool.acquire_blocking(SHORT).is_err());
    assert_eq!(pool.stats().waits, 1);
    drop((a, b, c));
}

/// Several buffers released back to back while several threads sleep in
/// `acquire_blocking`: every sleeper must get one. Each waiter keeps its
/// buffer until all have one, so a waiter that is never woken cannot be
/// rescued by another waiter's later release; with `Duration::MAX` it would
/// sleep forever next to free buffers (a lost wake-up).
#[test]
fn burst_of_releases_wakes_every_waiter() {
    const WAITERS: usize = 3;
    const ROUNDS: usize = if cfg!(miri) { 1 } else { 5 };
    let pool = Arc::new(pool(8, WAITERS + 1));
    for round in 0..ROUNDS {
        let all: Vec<_> = (0..=WAITERS)
            .map(|_| pool.try_acquire_owned().unwrap())
            .collect();
        let barrier = Arc::new(Barrier::new(WAITERS));
        let (tx, rx) = mpsc::channel();
        let waits_before = pool.stats().waits;
        for _ in 0..WAITERS {
            let (pool, barrier, tx) = (pool.clone(), Arc::clone(&barrier), tx.clone());
            // Detached, so a stuck waiter fails the test instead of hanging it.
            std::thread::spawn(move || {
                let b = pool.acquire_owned_blocking(Duration::MAX).unwrap();
                barrier.wait(); // hold it until every waiter has one
                tx.send(b.index()).unwrap();
            });
        }
        until_waiting(&pool, waits_before + WAITERS as u64);
        // Not needed for correctness: lets the waiters fall asleep, so the
        // burst below meets sleepers rather than threads still looking.
        std::thread::sleep(SHORT);
        drop(all); // WAITERS + 1 releases, back to back
        let mut got = HashSet::new();
        for w in 0..WAITERS {
            let idx = rx.recv_timeout(STUCK).unwrap_or_else(|_| {
                panic!(
                    "round {round}: lost wake-up: {w} of {WAITERS} waiters \
                     finished, {} buffers were released, and stats show free \
                     buffers while waiters sleep: {:?}",
                    WAITERS + 1,
                    pool.stats()
                )
            });
            got.insert(idx);
        }
        assert_eq!(got.len(), WAITERS, "distinct buffers");
        // The senders are done: the buffers are back.
        while pool.stats().in_use != 0 {
            std::thread::yield_now();
        }
    }
    assert_eq!(pool.stats().failed_acquires, 0);
}

#[test]
fn waiters_on_a_grown_pool_are_woken_by_releases() {
    // Waiters on a pool at its limit are woken by releases, and a grown
    // pool's slots are as usable from other threads as the first ones.
    let pool = Pool::builder()
        .buffer_size(16)
        .capacity(1)
        .grow_to(4)
        .build()
        .unwrap();
    let all: Vec<_> = (0..4).map(|_| pool.try_acquire().unwrap()).collect();
    assert_eq!(pool.stats().segments, 3);
    std::thread::scope(|s| {
        let pool = &pool;
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(move || {
                    let mut b = pool.acquire_blocking(LONG).expect("a release wakes me");
                    b.extend_from_slice(b"ok").unwrap();
                    b.index()
                })
            })
            .collect();
        s.spawn(move || {
            until_waiting(pool, 1);
            drop(all);
        });
        let got: HashSet<u32> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
        assert!(got.iter().all(|&i| i < 4));
    });
    let s = pool.stats();
    assert_eq!((s.in_use, s.capacity, s.failed_acquires), (0, 4, 0));
}

#[test]
fn duration_max_waits_until_release() {
    let pool = Arc::new(pool(32, 1));

    // With a free buffer it returns at once (no overflow computing a
    // deadline).
    let b = pool.acquire_blocking(Duration::MAX).unwrap();
    assert_eq!(pool.stats().waits, 0);

    std::thread::scope(|s| {
        let p = &pool;
        s.spawn(move || {
            until_waiting(p, 1);
            drop(b);
        });
        let c = pool
            .acquire_blocking(Duration::MAX)
            .expect("MAX never times out");
        assert_eq!(pool.stats().in_use, 1);
        drop(c);
    });

    // The owned variant, released from a plain spawned thread.
    let held = pool.try_acquire_owned().unwrap();
    let p = pool.clone();
    let t = std::thread::spawn(move || {
        until_waiting(&p, 2);
        drop(held);
    });
    let c = pool.acquire_owned_blocking(Duration::MAX).unwrap();
    t.join().unwrap();
    let s = pool.stats();
    assert_eq!((s.waits, s.failed_acquires, s.in_use), (2, 0, 1));
    drop(c);
    assert_eq!(pool.stats().in_use, 0);
}

#[test]
fn panics_while_holding_buffers_return_every_buffer() {
    const THREADS: usize = 4;
    let pool = Pool::builder()
        .buffer_size(64)
        .capacity(2 * THREADS)
        .zero_on_release(true)
        .build()
        .unwrap();
    let ready = Barrier::new(THREADS + 1);
    std::thread::scope(|s| {
        let caught: Vec<_> = (0..THREADS)
            .map(|t| {
                let (pool, ready) = (&pool, &ready);
                s.spawn(move || {
                    catch_unwind(AssertUnwindSafe(|| {
                        let mut a = pool.try_acquire().unwrap();
                        let mut b = pool.try_acquire_owned().unwrap();
                        a.as_full_mut().fill(0xA0 + t as u8);
                        b.as_full_mut().fill(0xB0 + t as u8);
                        ready.wait(); // all 8 are out at once...
                        ready.wait(); // ...and the main thread has checked
                        panic!("thread {t} panics holding {:?} and {:?}", a, b);
                    }))
                })
            })
            .collect();
        ready.wait();
        assert_eq!(pool.stats().in_use, 2 * THREADS);
        assert!(pool.try_acquire().is_none());
        ready.wait();
        for h in caught {
            let r = h.join().expect("the panic was caught inside the thread");
            assert!(r.is_err(), "the closure panicked");
        }
    });
    let s = pool.stats();
    assert_eq!(s.in_use, 0, "unwinding dropped every handle: {s:?}");

    // Uncaught: the thread dies, the handles still come back.
    let p = pool.clone();
    let r = std::thread::spawn(move || {
        let _a = p.try_acquire_owned().unwrap();
        let _b = p.try_acquire().unwrap();
        panic!("dies holding two buffers");
    })
    .join();
    assert!(r.is_err());
    assert_eq!(pool.stats().in_use, 0);

    // Every buffer can be taken again, distinct, and was zeroed on the way
    // back (the panicking holders had dirtied all of them).
    let all: Vec<_> = (0..2 * THREADS)
        .map(|_| pool.try_acquire().unwrap())
        .collect();
    let idx: HashSet<u32> = all.iter().map(|b| b.index()).collect();
    assert_eq!(idx.len(), 2 * THREADS);
    for b in &all {
        assert!(
            b.as_full().iter().all(|&x| x == 0),
            "slot {} dirty",
            b.index()
        );
    }
    assert!(pool.try_acquire().is_none());
}

#[test]
fn a_panicking_holder_wakes_a_waiter() {
    let pool = pool(32, 1);
    std::thread::scope(|s| {
        let pool = &pool;
        let holder = s.spawn(move || {
            let _b = pool.try_acquire().unwrap();
            until_waiting(pool, 1);
            panic!("holder dies while someone waits");
        });
        // Wait until the holder has the buffer, then block on it.
        while pool.stats().in_use == 0 {
            std::thread::yield_now();
        }
        let got = pool.acquire_blocking(LONG);
        assert!(got.is_ok(), "the unwinding holder's release woke us");
        assert!(holder.join().is_err());
    });
    assert_eq!(pool.stats().in_use, 0);
    assert_eq!(pool.stats().failed_acquires, 0);
}
