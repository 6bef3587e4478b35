//! Per-thread caches: nothing is stranded in a cache, whether its thread
//! exits, idles or receives buffers released by other threads.

use std::sync::mpsc;
use std::sync::{Arc, Barrier};

use arenapool::Pool;

fn pool(capacity: usize, cache_size: usize) -> Pool {
    Pool::builder()
        .buffer_size(64)
        .capacity(capacity)
        .cache_size(cache_size)
        .build()
        .unwrap()
}

/// Takes every buffer at once from this thread, checks they are distinct,
/// and that one more is refused.
fn assert_all_acquirable(pool: &Pool) {
    let cap = pool.stats().capacity;
    let bufs: Vec<_> = (0..cap).map_while(|_| pool.try_acquire()).collect();
    assert_eq!(bufs.len(), cap, "stranded buffers: {:?}", pool.stats());
    let mut idx: Vec<u32> = bufs.iter().map(|b| b.index()).collect();
    idx.sort_unstable();
    idx.dedup();
    assert_eq!(idx.len(), cap, "a buffer was handed out twice");
    assert!(pool.try_acquire().is_none());
}

#[test]
fn short_lived_threads_give_their_caches_back() {
    let threads = if cfg!(miri) { 20 } else { 1000 };
    let p = pool(64, 16);
    for t in 0..threads {
        let p = p.clone();
        std::thread::spawn(move || {
            // Take a few (a refill puts more into this thread's cache),
            // give them back (into the cache), exit with them cached.
            let held: Vec<_> = (0..=t % 5).map(|_| p.try_acquire().unwrap()).collect();
            drop(held);
            assert!(p.stats().cached > 0);
        })
        .join()
        .unwrap();
    }
    let s = p.stats();
    assert_eq!(s.in_use, 0);
    assert_eq!(s.cached, 0, "exited threads keep no cache: {s:?}");
    assert_eq!(s.threads, 0, "exited threads are forgotten: {s:?}");
    assert_all_acquirable(&p);
}

#[test]
fn idle_threads_caches_are_stolen_on_exhaustion() {
    let p = pool(16, 16);
    let (park_tx, park_rx) = mpsc::channel::<()>();
    let filled = Arc::new(Barrier::new(2));
    let idle = {
        let (p, filled) = (p.clone(), filled.clone());
        std::thread::spawn(move || {
            let all: Vec<_> = (0..16).map(|_| p.try_acquire().unwrap()).collect();
            drop(all); // all 16 now sit in this thread's cache
            filled.wait();
            park_rx.recv().unwrap(); // idle, holding them
        })
    };
    filled.wait();
    assert_eq!(p.stats().cached, 16);
    // The main thread finds the shared list empty and must steal.
    assert_all_acquirable(&p);
    assert_eq!(p.stats().failed_acquires, 1);
    park_tx.send(()).unwrap();
    idle.join().unwrap();
}

#[test]
fn blocking_acquire_steals_from_an_idle_cache() {
    let p = pool(2, 8);
    let (park_tx, park_rx) = mpsc::channel::<()>();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let idle = {
        let p = p.clone();
        std::thread::spawn(move || {
            drop((p.try_acquire().unwrap(), p.try_acquire().unwrap()));
            ready_tx.send(()).unwrap();
            park_rx.recv().unwrap();
        })
    };
    ready_rx.recv().unwrap();
    let a = p
        .acquire_blocking(std::time::Duration::from_secs(10))
        .unwrap();
    let b = p
        .acquire_blocking(std::time::Duration::from_secs(10))
        .unwrap();
    assert_ne!(a.index(), b.index());
    assert_eq!(
        p.stats().waits,
        0,
        "nothing to wait for: the buffers were cached"
    );
    park_tx.send(()).unwrap();
    idle.join().unwrap();
}

#[test]
fn cross_thread_release_goes_to_the_releasers_cache() {
    let rounds = if cfg!(miri) { 50 } else { 20_000 };
    let p = pool(256, 32);
    let (tx, rx) = mpsc::sync_channel(64);
    let producer = {
        let p = p.clone();
        std::thread::spawn(move || {
            for i in 0..rounds {
                let mut b = p
                    .acquire_owned_blocking(std::time::Duration::from_secs(10))
                    .unwrap();
                b.extend_from_slice(&(i as u64).to_le_bytes()).unwrap();
                tx.send((i as u64, b)).unwrap();
            }
        })
    };
    let consumer = std::thread::spawn(move || {
        for (i, b) in rx {
            assert_eq!(&b[..], &i.to_le_bytes());
        }
    });
    producer.join().unwrap();
    consumer.join().unwrap();
    assert_eq!(p.stats().in_use, 0);
    assert_all_acquirable(&p);
}

#[test]
fn pool_dropped_before_threads_that_cached_it() {
    // A thread keeps a cache entry for a pool that is dropped first: the
    // entry must not touch the freed pool (that the memory goes at once is
    // measured in `pool_lifetime.rs`).
    let (tx, rx) = mpsc::channel::<()>();
    let t;
    {
        let p = pool(4, 4);
        let p2 = p.clone();
        let (ready_tx, ready_rx) = mpsc::channel();
        t = std::thread::spawn(move || {
            drop(p2.try_acquire().unwrap());
            drop(p2);
            ready_tx.send(()).unwrap();
            rx.recv().unwrap();
            // A new pool in the same thread after the old one died.
            let q = pool(2, 2);
            assert_all_acquirable(&q);
        });
        ready_rx.recv().unwrap();
    }
    tx.send(()).unwrap();
    t.join().unwrap();
}

#[test]
fn caches_off_means_no_thread_state() {
    let p = pool(4, 0);
    let b = p.try_acquire().unwrap();
    drop(b);
    let s = p.stats();
    assert_eq!((s.cached, s.threads), (0, 0));
    assert_eq!(p.cache_size(), 0);
}
