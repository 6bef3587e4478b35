use std::sync::mpsc;

use crate::Pool;
use crate::barrier::tests::FAIL_HEAVY;

/// The steal handshake's barrier fails after the pool was built (as it
/// does once a seccomp filter refuses `membarrier`): the pool turns the
/// caches off for good instead of silently stealing nothing, and the
/// buffers an idle thread had cached come back as soon as that thread
/// uses the pool again.
#[test]
fn a_failed_barrier_turns_the_caches_off_and_strands_nothing() {
    let pool = Pool::builder()
        .buffer_size(8)
        .capacity(2)
        .cache_size(2)
        .build()
        .unwrap();
    std::thread::scope(|s| {
        // Made in here, so that a failed assertion drops `go` and the
        // helper thread ends instead of waiting for ever.
        let (go, wait) = mpsc::channel::<()>();
        let (done, finished) = mpsc::channel::<()>();
        let pool = &pool;
        s.spawn(move || {
            // Park both buffers in this thread's cache, then idle.
            let both = (pool.try_acquire().unwrap(), pool.try_acquire().unwrap());
            drop(both);
            done.send(()).unwrap();
            wait.recv().unwrap();
            // Use the pool once more: this gives the cache back.
            drop(pool.try_acquire());
            done.send(()).unwrap();
            wait.recv().unwrap();
        });
        finished.recv().unwrap();
        assert_eq!(pool.stats().cached, 2);

        FAIL_HEAVY.set(true);
        // The steal cannot run its barrier: nothing is taken from the
        // idle thread's cache, and the caches go off.
        assert!(pool.try_acquire().is_none());
        FAIL_HEAVY.set(false);
        assert!(pool.stats().caches_off, "{:?}", pool.stats());

        go.send(()).unwrap();
        finished.recv().unwrap();
        let s = pool.stats();
        assert_eq!(s.cached, 0, "the owner gave its cache back: {s:?}");
        let all = (pool.try_acquire(), pool.try_acquire());
        assert!(all.0.is_some() && all.1.is_some(), "{:?}", pool.stats());
        drop(all);
        // Releases now go to the shared list.
        assert_eq!(pool.stats().cached, 0);
        go.send(()).unwrap();
    });
}
