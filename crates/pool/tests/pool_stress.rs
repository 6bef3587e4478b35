//! Stress: several threads acquire and release far more buffers than the
//! pool holds. Every holder stamps its own pattern over the whole buffer,
//! yields now and then, and checks the pattern is intact before release, so
//! a slot handed to two owners at once shows up as a clobbered pattern.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use arenapool::{OwnedBuf, Pool};

const THREADS: usize = 4;
const ITERS: u64 = if cfg!(miri) { 40 } else { 100_000 };
/// Long enough that a correct pool never times out: a timeout is a failure
/// (a lost wake-up or a leaked slot), not a slow machine.
const LONG: Duration = Duration::from_secs(120);
const BUF: usize = 61; // not a multiple of 8, so the tag wraps mid-word

/// The tag a holder stamps: who it is, which iteration, which of its buffers.
fn tag(owner: u64, iter: u64, k: u64) -> u64 {
    (owner << 56) ^ (iter << 8) ^ k ^ 0x5A5A_0000_0000_0000
}

fn stamp(buf: &mut [u8], tag: u64) {
    let bytes = tag.to_le_bytes();
    for (j, b) in buf.iter_mut().enumerate() {
        *b = bytes[j % 8] ^ (j as u8);
    }
}

#[track_caller]
fn verify(buf: &[u8], tag: u64, index: u32) {
    let bytes = tag.to_le_bytes();
    for (j, &b) in buf.iter().enumerate() {
        let want = bytes[j % 8] ^ (j as u8);
        assert_eq!(
            b, want,
            "slot {index} byte {j} was overwritten: another owner wrote to it (tag {tag:#x})"
        );
    }
}

/// Yield on some iterations so holders interleave while holding.
fn maybe_yield(i: u64) {
    if i.is_multiple_of(7) {
        std::thread::yield_now();
    }
}

/// The pool is idle: nothing in use, and all `capacity` buffers can be out
/// at once with distinct indices, after which it is exhausted.
fn check_idle(pool: &Pool) {
    let s = pool.stats();
    assert_eq!(s.in_use, 0, "every buffer came back: {s:?}");
    assert!(s.capacity <= s.max_capacity, "{s:?}");
    assert!(s.high_water <= s.capacity, "{s:?}");
    let all: Vec<_> = (0..s.capacity)
        .map(|_| {
            pool.try_acquire()
                .expect("an idle pool hands out every buffer")
        })
        .collect();
    let indices: HashSet<u32> = all.iter().map(|b| b.index()).collect();
    assert_eq!(indices.len(), s.capacity, "distinct indices");
    assert!(indices.iter().all(|&i| (i as usize) < s.capacity));
    if s.capacity == s.max_capacity {
        assert!(pool.try_acquire().is_none(), "all buffers are out");
    }
    drop(all);
    assert_eq!(pool.stats().in_use, 0);
}

/// One thread's loop over borrowed handles: acquire one (waiting if need be)
/// and try for a second, stamp both, yield, verify, release.
fn borrowed_worker(pool: &Pool, owner: u64) {
    for i in 0..ITERS {
        let mut first = pool
            .acquire_blocking(LONG)
            .expect("a buffer comes back well within the timeout");
        let mut second = pool.try_acquire();
        assert_eq!(first.capacity(), BUF);
        stamp(first.as_full_mut(), tag(owner, i, 0));
        if let Some(b) = second.as_mut() {
            assert_ne!(b.index(), first.index(), "one slot handed out twice");
            stamp(b.as_full_mut(), tag(owner, i, 1));
        }
        maybe_yield(i);
        verify(first.as_full(), tag(owner, i, 0), first.index());
        if let Some(b) = &second {
            verify(b.as_full(), tag(owner, i, 1), b.index());
        }
        // Release in varying order.
        if i.is_multiple_of(2) {
            drop(first);
            drop(second);
        } else {
            drop(second);
            drop(first);
        }
    }
}

#[test]
fn borrowed_handles_scoped_threads() {
    scoped_threads(Pool::builder().cache_size(0));
}

#[test]
fn borrowed_handles_scoped_threads_cached() {
    // Per-thread caches larger than the pool: every exhaustion steals.
    scoped_threads(Pool::builder().cache_size(4));
}

fn scoped_threads(builder: arenapool::PoolBuilder) {
    // 4 threads x up to 2 held > 3 buffers.
    let pool = builder
        .buffer_size(BUF)
        .capacity(3)
        .alignment(8)
        .build()
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let pool = &pool;
            s.spawn(move || borrowed_worker(pool, t as u64));
        }
    });
    let s = pool.stats();
    assert_eq!(s.capacity, 3);
    assert_eq!(s.segments, 1);
    if !cfg!(miri) {
        // 400 000 acquires by 4 threads holding up to 2 each: the pool was
        // surely full at some point.
        assert_eq!(s.high_water, 3, "{s:?}");
    }
    check_idle(&pool);
}

#[test]
fn borrowed_handles_try_acquire_only() {
    // Non-blocking only: a failed try_acquire is fine and counted; a
    // success must never give a slot someone else holds.
    let pool = Pool::builder()
        .buffer_size(BUF)
        .capacity(2)
        .alignment(1)
        .build()
        .unwrap();
    let got = AtomicU64::new(0);
    let missed = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (pool, got, missed) = (&pool, &got, &missed);
            s.spawn(move || {
                for i in 0..ITERS {
                    let Some(mut b) = pool.try_acquire() else {
                        missed.fetch_add(1, Ordering::Relaxed);
                        std::thread::yield_now();
                        continue;
                    };
                    got.fetch_add(1, Ordering::Relaxed);
                    stamp(b.as_full_mut(), tag(t as u64, i, 0));
                    maybe_yield(i);
                    verify(b.as_full(), tag(t as u64, i, 0), b.index());
                }
            });
        }
    });
    let s = pool.stats();
    assert_eq!(
        got.load(Ordering::Relaxed) + missed.load(Ordering::Relaxed),
        THREADS as u64 * ITERS
    );
    assert_eq!(s.failed_acquires, missed.load(Ordering::Relaxed));
    assert_eq!(s.waits, 0);
    check_idle(&pool);
}

#[test]
fn owned_handles_sent_across_threads() {
    // Two producers acquire and stamp; two consumers verify, restamp,
    // verify again and drop. Every buffer is acquired on one thread and
    // released on another. The pool (3) is smaller than what is in flight.
    let pool = Pool::builder()
        .buffer_size(BUF)
        .capacity(3)
        .zero_on_release(true)
        .build()
        .unwrap();
    let producers = THREADS / 2;
    let received = Arc::new(AtomicU64::new(0));
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..THREADS - producers)
        .map(|_| mpsc::channel::<(OwnedBuf, u64)>())
        .unzip();

    let consumers: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(c, rx)| {
            let received = Arc::clone(&received);
            std::thread::spawn(move || {
                let me = (producers + c) as u64;
                for (i, (mut buf, t)) in (0u64..).zip(rx.iter()) {
                    verify(buf.as_full(), t, buf.index());
                    assert_eq!(buf.len(), BUF, "the producer's set_len travelled");
                    stamp(buf.as_full_mut(), tag(me, i, 0));
                    maybe_yield(i);
                    verify(buf.as_full(), tag(me, i, 0), buf.index());
                    received.fetch_add(1, Ordering::Relaxed);
                    // `buf` drops here, on a thread that did not acquire it.
                }
            })
        })
        .collect();

    let producer_threads: Vec<_> = (0..producers)
        .map(|p| {
            let pool = pool.clone();
            let senders = senders.clone();
            std::thread::spawn(move || {
                for i in 0..ITERS {
                    let mut buf = pool
                        .acquire_owned_blocking(LONG)
                        .expect("consumers free buffers well within the timeout");
                    assert!(
                        buf.as_full().iter().all(|&b| b == 0),
                        "zero_on_release: slot {} came back dirty",
                        buf.index()
                    );
                    let t = tag(p as u64, i, 0);
                    stamp(buf.as_full_mut(), t);
                    buf.set_len(BUF).unwrap();
                    maybe_yield(i);
                    verify(buf.as_full(), t, buf.index());
                    let to = (i as usize + p) % senders.len();
                    senders[to].send((buf, t)).expect("consumer alive");
                }
            })
        })
        .collect();
    drop(senders);

    for h in producer_threads {
        h.join().unwrap();
    }
    for h in consumers {
        h.join().unwrap();
    }
    assert_eq!(received.load(Ordering::Relaxed), producers as u64 * ITERS);
    let s = pool.stats();
    assert_eq!(s.capacity, 3);
    assert_eq!(s.failed_acquires, 0, "no acquire timed out");
    check_idle(&pool);
}

/// Segments a pool of initial capacity `c` has once it reaches `capacity`
/// under the doubling rule cut at `limit`.
fn segments_for(c: usize, limit: usize, capacity: usize) -> usize {
    let (mut cap, mut segs) = (c, 1);
    while cap < capacity {
        cap += cap.min(limit - cap);
        segs += 1;
    }
    assert_eq!(cap, capacity, "{capacity} is not a step of the growth rule");
    segs
}

#[test]
fn growth_under_contention() {
    // 1 -> 2 -> 4 -> 6 (cut at the limit); demand is up to 4 x 2 = 8.
    const LIMIT: usize = 6;
    let pool = Pool::builder()
        .buffer_size(BUF)
        .capacity(1)
        .grow_to(LIMIT)
        .alignment(32)
        .build()
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let pool = &pool;
            s.spawn(move || {
                for i in 0..ITERS {
                    let mut first = pool.acquire_blocking(LONG).expect("within the timeout");
                    let mut second = pool.try_acquire();
                    assert!((first.index() as usize) < LIMIT);
                    assert_eq!(first.as_full().as_ptr() as usize % 32, 0);
                    stamp(first.as_full_mut(), tag(t as u64, i, 0));
                    if let Some(b) = second.as_mut() {
                        assert!((b.index() as usize) < LIMIT);
                        assert_eq!(b.as_full().as_ptr() as usize % 32, 0);
                        stamp(b.as_full_mut(), tag(t as u64, i, 1));
                    }
                    if i.is_multiple_of(64) {
                        let st = pool.stats();
                        assert!(st.capacity <= LIMIT, "grew past the limit: {st:?}");
                        assert!(st.segments <= 4, "{st:?}");
                        assert_eq!(st.max_capacity, LIMIT);
                    }
                    maybe_yield(i);
                    verify(first.as_full(), tag(t as u64, i, 0), first.index());
                    if let Some(b) = &second {
                        verify(b.as_full(), tag(t as u64, i, 1), b.index());
                    }
                }
            });
        }
    });
    let s = pool.stats();
    assert!(s.capacity <= LIMIT, "{s:?}");
    assert!(s.capacity >= 2, "demand above 1 made the pool grow: {s:?}");
    assert_eq!(s.segments, segments_for(1, LIMIT, s.capacity), "{s:?}");
    check_idle(&pool);
    // Grow the rest of the way by hand: never past the limit.
    let all: Vec<_> = std::iter::from_fn(|| pool.try_acquire()).collect();
    assert_eq!(all.len(), LIMIT);
    let s = pool.stats();
    assert_eq!((s.capacity, s.segments, s.in_use), (LIMIT, 4, LIMIT));
    let indices: HashSet<u32> = all.iter().map(|b| b.index()).collect();
    assert_eq!(indices, (0..LIMIT as u32).collect());
    drop(all);
    check_idle(&pool);
}
