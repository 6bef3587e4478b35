//! Owned handles and frozen `Bytes` keep the pool alive after every
//! user-held `Arc<Pool>` is gone, and the arena is freed exactly when the
//! last of them drops: measured with the counting global allocator from
//! `arenapool-alloc`, on this thread's own counters (so other tests'
//! threads cannot disturb the figures).

#![cfg(feature = "bytes")]

use std::sync::Arc;

use arenapool::Pool;
use arenapool_alloc::{Counting, thread_stats};

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
    let pool = Arc::new(
        Pool::builder()
            .buffer_size(SIZE)
            .capacity(CAPACITY)
            .cache_size(cache_size)
            .build()
            .unwrap(),
    );
    assert!(live() - base >= ARENA, "the arena was not counted");
    let mut owned = pool.try_acquire_owned().unwrap();
    owned.extend_from_slice(b"outlives the pool").unwrap();
    let mut other = pool.try_acquire_owned().unwrap();
    other.extend_from_slice(b"frozen").unwrap();
    let frozen = other.freeze();
    let slice = frozen.slice(1..);
    drop(frozen);
    drop(pool);
    // No user-held Arc<Pool> left: the handles keep the arena.
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
    let pool = Arc::new(
        Pool::builder()
            .buffer_size(256)
            .capacity(64)
            .cache_size(8)
            .build()
            .unwrap(),
    );
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
