use std::time::Duration;

use crate::Pool;
use crate::sync::{AtomicBool, model, thread};
use loom::sync::Arc;

use super::*;

/// A small pool for the models.
pub(crate) fn pool(capacity: usize, cache_size: usize) -> Pool {
    Pool::builder()
        .buffer_size(8)
        .capacity(capacity)
        .cache_size(cache_size)
        .build()
        .unwrap()
}

/// A thread keeps releasing into (and taking from) its cache while
/// another thread, finding the shared list empty, steals: no slot is
/// handed out twice and none is lost.
#[test]
fn steal_races_cached_ops() {
    model(|| {
        let p = pool(2, 2);
        let owned: Arc<Vec<AtomicBool>> =
            Arc::new((0..2).map(|_| AtomicBool::new(false)).collect());
        let claim = |owned: &[AtomicBool], i: u32| {
            assert!(!owned[i as usize].swap(true, Relaxed), "slot {i} twice");
        };
        let t = {
            let (p, owned) = (p.clone(), owned.clone());
            thread::spawn(move || {
                for _ in 0..2 {
                    if let Some(b) = p.try_acquire() {
                        claim(&owned, b.index());
                        owned[b.index() as usize].store(false, Relaxed);
                    }
                }
            })
        };
        if let Some(b) = p.try_acquire() {
            claim(&owned, b.index());
            owned[b.index() as usize].store(false, Relaxed);
        }
        t.join().unwrap();
        // The spawned thread has exited, so its cache was handed back.
        let all: Vec<_> = (0..2).map_while(|_| p.try_acquire()).collect();
        assert_eq!(all.len(), 2, "{:?}", p.stats());
        assert_ne!(all[0].index(), all[1].index());
    });
}

/// A release into a cache while the only other thread is about to sleep
/// in a blocking acquire: the sleeper must get the buffer (the release
/// either sees the waiter or the waiter's steal sees the cached slot).
/// The releasing thread stays alive until then, so its exit cannot hand
/// the slot over and hide a lost wake-up.
#[test]
fn cached_release_wakes_waiter() {
    model(|| {
        let p = pool(1, 1);
        let buf = p.try_acquire_owned().unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let t = {
            let done = done.clone();
            thread::spawn(move || {
                drop(buf);
                while !done.load(Acquire) {
                    thread::yield_now();
                }
            })
        };
        let got = p.acquire_blocking(Duration::MAX).unwrap();
        done.store(true, Release);
        drop(got);
        t.join().unwrap();
    });
}

/// A thread acquires and releases through its cache, then exits (its
/// tally moves to the pool) while another thread reads the stats: a read
/// sees the thread's acquires once or not yet, never twice, and after
/// the join exactly once.
#[test]
fn counts_survive_a_threads_exit_during_a_read() {
    model(|| {
        let p = pool(2, 2);
        let t = {
            let p = p.clone();
            thread::spawn(move || {
                drop(p.try_acquire().unwrap());
                drop(p.try_acquire().unwrap());
            })
        };
        let during = p.stats();
        assert!(during.acquires <= 2, "{during:?}");
        assert!(during.releases <= during.acquires, "{during:?}");
        t.join().unwrap();
        let after = p.stats();
        assert_eq!((after.acquires, after.releases), (2, 2), "{after:?}");
    });
}
