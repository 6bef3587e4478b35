//! Owned handles and frozen `Bytes` keep the pool alive after every
//! user-held `Pool` is gone, and the arena is freed exactly when the
//! last of them drops: measured with the counting global allocator from
//! `arenapool-alloc`, on this thread's own counters (so other tests'
//! threads cannot disturb the figures).

#![cfg(feature = "bytes")]

use std::sync::mpsc;

use arenapool::Pool;
use arenapool_alloc::{Counting, global_stats, thread_stats};

#[global_allocator]
static ALLOC: Counting = Counting::new(std::alloc::System);

/// The churn test reads process-wide totals: the tests take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const SIZE: usize = 64 * 1024;
const CAPACITY: usize = 16;
const ARENA: i64 = (SIZE * CAPACITY) as i64;

/// Bytes allocated by this thread and not yet freed.
fn live() -> i64 {
    thread_stats().current_bytes
}

fn check(cache_size: usize) {
    let base = live();
    let pool = Pool::builder()
        .buffer_size(SIZE)
        .capacity(CAPACITY)
        .cache_size(cache_size)
        .build()
        .unwrap();
    assert!(live() - base >= ARENA, "the arena was not counted");
    let clone = pool.clone();
    let mut owned = clone.try_acquire_owned().unwrap();
    owned.extend_from_slice(b"outlives the pool").unwrap();
    let mut other = pool.try_acquire_owned().unwrap();
    other.extend_from_slice(b"frozen").unwrap();
    let frozen = other.freeze();
    let slice = frozen.slice(1..);
    drop(frozen);
    drop(pool);
    assert!(live() - base >= ARENA, "arena freed while a clone lives");
    drop(clone);
    // No Pool handle left: the buffers keep the arena.
    let with_handles = live() - base;
    assert!(with_handles >= ARENA, "arena freed while handles live");
    drop(owned);
    assert!(
        live() - base >= ARENA,
        "arena freed while a Bytes slice lives"
    );
    assert_eq!(&slice[..], b"rozen");
    let before_last = live();
    drop(slice);
    let freed = before_last - live();
    assert!(
        freed >= ARENA,
        "the last drop freed {freed} bytes, not the arena"
    );
    // What is left is this thread's cache bookkeeping (kept until the
    // thread exits), never the arena.
    assert!(live() - base < ARENA / 16, "{} bytes left", live() - base);
}

#[test]
fn arena_is_freed_when_the_last_handle_or_bytes_drops() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert!(arenapool_alloc::is_counting(), "Counting is not installed");
    check(0);
    check(32);
}

/// Thread churn does not grow memory: 2,000 threads that used the pool
/// and exited leave the process's live bytes where 100 of them did.
#[test]
#[cfg_attr(miri, ignore = "thousands of threads")]
fn thread_churn_does_not_grow_memory() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = Pool::builder()
        .buffer_size(256)
        .capacity(64)
        .cache_size(8)
        .build()
        .unwrap();
    let run = |n: usize| {
        for _ in 0..n / 50 {
            let threads: Vec<_> = (0..50)
                .map(|_| {
                    let pool = pool.clone();
                    std::thread::spawn(move || drop(pool.try_acquire().unwrap()))
                })
                .collect();
            threads.into_iter().for_each(|t| t.join().unwrap());
        }
        arenapool_alloc::global_stats().current_bytes
    };
    let after_warm_up = run(100);
    let after_churn = run(2000);
    let s = pool.stats();
    assert_eq!((s.in_use, s.cached, s.threads), (0, 0, 0), "{s:?}");
    // Allow for allocator-internal noise (thread-exit bookkeeping), far
    // below what 1,900 leaked caches would be.
    assert!(
        after_churn - after_warm_up < 64 * 1024,
        "live bytes grew by {} over 1,900 threads",
        after_churn - after_warm_up
    );
}

/// Long-lived threads (a runtime's workers) used the pool, owned buffers
/// included, and keep running with buffers and references parked in their
/// caches: dropping the last handle frees the arena at once, not when
/// those threads exit.
#[test]
fn a_pool_is_freed_at_once_while_threads_that_cached_it_live_on() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let base = live();
    let pool = Pool::builder()
        .buffer_size(SIZE)
        .capacity(CAPACITY)
        .cache_size(8)
        .build()
        .unwrap();
    let (used_tx, used) = mpsc::channel::<()>();
    let (exit_tx, exit) = mpsc::channel::<()>();
    let exit = std::sync::Arc::new(std::sync::Mutex::new(exit));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (pool, used_tx, exit) = (pool.clone(), used_tx.clone(), exit.clone());
            std::thread::spawn(move || {
                let owned: Vec<_> = (0..3).map(|_| pool.try_acquire_owned().unwrap()).collect();
                drop(owned); // into this thread's cache, with their references
                drop(pool.try_acquire().unwrap());
                drop(pool);
                used_tx.send(()).unwrap();
                // Alive, holding the cache, until the main thread says so.
                let _ = exit.lock().unwrap().recv();
            })
        })
        .collect();
    used.recv().unwrap();
    used.recv().unwrap();
    assert!(pool.stats().cached > 0, "{:?}", pool.stats());
    let before = live();
    drop(pool);
    let freed = before - live();
    assert!(
        freed >= ARENA,
        "dropping the last handle freed {freed} bytes while the workers live"
    );
    drop(exit_tx);
    workers.into_iter().for_each(|w| w.join().unwrap());
    assert!(live() - base < ARENA / 16, "{} bytes left", live() - base);
}

/// 10,000 pools, each built, used by every thread of a long-lived thread
/// pool (owned and borrowed buffers, so every thread caches it) and
/// dropped: the heap does not grow with the number of pools.
#[test]
#[cfg_attr(miri, ignore = "10,000 pools")]
fn ten_thousand_pools_on_a_thread_pool_do_not_grow_the_heap() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const WORKERS: usize = 4;
    let (done_tx, done) = mpsc::channel::<()>();
    let jobs: Vec<mpsc::Sender<Pool>> = (0..WORKERS)
        .map(|_| {
            let (tx, rx) = mpsc::channel::<Pool>();
            let done_tx = done_tx.clone();
            std::thread::spawn(move || {
                for pool in rx {
                    let owned = pool.try_acquire_owned().unwrap();
                    drop(pool.try_acquire().unwrap());
                    drop(pool);
                    drop(owned); // after the handle: the buffer frees it
                    done_tx.send(()).unwrap();
                }
            });
            tx
        })
        .collect();
    let run = |pools: usize| {
        for _ in 0..pools {
            let pool = Pool::builder()
                .buffer_size(64)
                .capacity(8)
                .cache_size(4)
                .build()
                .unwrap();
            for job in &jobs {
                job.send(pool.clone()).unwrap();
            }
            drop(pool);
            for _ in 0..WORKERS {
                done.recv().unwrap();
            }
        }
        global_stats().current_bytes
    };
    let after_warm_up = run(1_000);
    let after_all = run(9_000);
    // Far below what 9,000 pools' arenas (512 bytes each, plus their
    // state) or their caches would be.
    assert!(
        after_all - after_warm_up < 64 * 1024,
        "live bytes grew by {} over 9,000 pools",
        after_all - after_warm_up
    );
    drop(jobs);
}

/// An owned buffer whose release hands it to a waiter whose waker panics:
/// the panic reaches the releaser, and the buffer's reference to the pool
/// is still given back, so the arena is freed when the rest goes.
#[test]
#[cfg(feature = "async")]
fn a_waker_panic_during_an_owned_release_does_not_keep_the_arena() {
    use std::future::Future;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    struct Panics;
    impl Wake for Panics {
        fn wake(self: Arc<Self>) {
            panic!("a waker that panics");
        }
    }

    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = Pool::builder()
        .buffer_size(SIZE)
        .capacity(1)
        .cache_size(0)
        .build()
        .unwrap();
    let held = pool.try_acquire_owned().unwrap();
    let mut waiting = Box::pin(pool.acquire_owned());
    let panics = Waker::from(Arc::new(Panics));
    assert!(
        waiting
            .as_mut()
            .poll(&mut Context::from_waker(&panics))
            .is_pending()
    );
    let released = catch_unwind(AssertUnwindSafe(|| drop(held)));
    assert!(released.is_err(), "the waker's panic reaches the releaser");
    let noop = futures::task::noop_waker();
    let Poll::Ready(got) = waiting.as_mut().poll(&mut Context::from_waker(&noop)) else {
        panic!("the waiter was not handed the buffer");
    };
    drop(waiting);
    drop(pool);
    let before_last = live();
    drop(got);
    assert!(
        before_last - live() >= SIZE as i64,
        "the last buffer did not free the arena"
    );
    // Not compared with `base`: the panic's backtrace keeps what it
    // allocated on this thread.
}
