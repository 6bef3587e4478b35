//! Fault injection: a global allocator that fails on command, panics while
//! holding buffers, and threads that come and go by the thousand.
//!
//! The allocator here fails every allocation at or above a size threshold
//! that a test sets: arenas are the only large allocations, so building and
//! growing fail while the rest of the program (test harness, thread caches)
//! keeps working. The tests share that threshold, so they take a lock.

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use arenapool::{BuildError, Pool};

/// Fails allocations of `FAIL_FROM` bytes or more, and counts failures.
struct FailingAlloc;

static FAIL_FROM: AtomicUsize = AtomicUsize::new(usize::MAX);
static FAILURES: AtomicU64 = AtomicU64::new(0);

impl FailingAlloc {
    fn refuse(size: usize) -> bool {
        if size >= FAIL_FROM.load(SeqCst) {
            FAILURES.fetch_add(1, SeqCst);
            return true;
        }
        false
    }
}

// SAFETY: forwards to `System`, or returns null (a valid "failed" answer)
// without touching memory.
unsafe impl GlobalAlloc for FailingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Self::refuse(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract for `alloc` is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if Self::refuse(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if Self::refuse(new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: FailingAlloc = FailingAlloc;

/// Buffer size of the pools whose growth fails: their segments are the
/// only allocations this large.
const BIG: usize = 64 * 1024;

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the threshold for one test; resets it when dropped (also on a
/// failed assertion).
struct Faults(#[allow(dead_code)] MutexGuard<'static, ()>);

impl Faults {
    fn new() -> Self {
        let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        FAIL_FROM.store(usize::MAX, SeqCst);
        Faults(guard)
    }

    /// Allocations of `bytes` or more fail from now on.
    fn fail_from(&self, bytes: usize) {
        FAIL_FROM.store(bytes, SeqCst);
    }

    fn heal(&self) {
        FAIL_FROM.store(usize::MAX, SeqCst);
    }
}

impl Drop for Faults {
    fn drop(&mut self) {
        self.heal();
    }
}

#[test]
fn a_failed_arena_allocation_is_a_build_error() {
    let faults = Faults::new();
    faults.fail_from(1 << 20);
    let before = FAILURES.load(SeqCst);
    let err = Pool::new(4096, 1024).unwrap_err();
    assert_eq!(err, BuildError::Alloc { bytes: 4096 * 1024 });
    assert!(
        FAILURES.load(SeqCst) > before,
        "the allocator was not asked"
    );
    // Small pools still build while large allocations fail.
    let small = Pool::new(4096, 16).unwrap();
    assert!(small.try_acquire().is_some());
    faults.heal();
    assert!(Pool::new(4096, 1024).is_ok());
}

#[test]
fn failed_growth_keeps_serving_what_the_pool_has() {
    let faults = Faults::new();
    let pool = Pool::builder()
        .buffer_size(BIG)
        .capacity(16)
        .grow_to(1024)
        .cache_size(0)
        .build()
        .unwrap();
    faults.fail_from(16 * BIG);
    let held: Vec<_> = (0..16).map(|_| pool.try_acquire_owned().unwrap()).collect();
    assert!(pool.try_acquire().is_none(), "growth should have failed");
    let err = pool.acquire_blocking(Duration::from_millis(5)).unwrap_err();
    assert!(err.waited >= Duration::from_millis(5));
    let s = pool.stats();
    assert_eq!((s.capacity, s.segments, s.in_use), (16, 1, 16), "{s:?}");
    assert_eq!(s.failed_acquires, 2);

    // The buffers it has still cycle, with their contents intact.
    let mut held = held;
    let mut last = held.pop().unwrap();
    last.extend_from_slice(b"still works").unwrap();
    let idx = last.index();
    drop(last);
    let again = pool.try_acquire().unwrap();
    assert_eq!(again.index(), idx);
    drop(again);

    // Once memory is back, growth works.
    faults.heal();
    let more: Vec<_> = (0..2).map(|_| pool.try_acquire_owned().unwrap()).collect();
    let s = pool.stats();
    assert_eq!((s.capacity, s.segments), (32, 2), "{s:?}");
    drop((held, more));
    assert_eq!(pool.stats().in_use, 0);
}

#[test]
fn a_waiter_on_a_pool_that_cannot_grow_gets_a_released_buffer() {
    let faults = Faults::new();
    let pool = Pool::builder()
        .buffer_size(BIG)
        .capacity(2)
        .grow_to(64)
        .build()
        .unwrap();
    faults.fail_from(2 * BIG);
    let a = pool.try_acquire_owned().unwrap();
    let b = pool.try_acquire_owned().unwrap();
    let waiter = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            pool.acquire_owned_blocking(Duration::from_secs(60))
                .map(|b| b.index())
        })
    };
    while pool.stats().waiting == 0 {
        std::thread::yield_now();
    }
    let idx = a.index();
    drop(a);
    assert_eq!(waiter.join().unwrap().unwrap(), idx);
    drop(b);
    assert_eq!(pool.stats().capacity, 2);
}

/// Threads that panic while holding buffers give every one back.
#[test]
#[cfg_attr(miri, ignore = "a thread pool")]
fn panics_while_holding_buffers_return_them() {
    let _faults = Faults::new();
    let pool = Pool::new(256, 32).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let _held: Vec<_> = (0..3).map(|_| pool.try_acquire_owned().unwrap()).collect();
                if t % 2 == 0 {
                    panic!("thread {t} fails while holding buffers");
                }
            })
        })
        .collect();
    let panicked = threads
        .into_iter()
        .map(|t| t.join())
        .filter(Result::is_err)
        .count();
    assert_eq!(panicked, 4);
    assert_eq!(pool.stats().in_use, 0);

    // In a plain closure too, caught where it happens.
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let _x = pool.try_acquire().unwrap();
        panic!("caught");
    }));
    assert!(caught.is_err());
    let s = pool.stats();
    assert_eq!((s.in_use, s.waiting), (0, 0), "{s:?}");
    assert_eq!(
        (0..32).filter_map(|_| pool.try_acquire_owned()).count(),
        32,
        "every buffer is acquirable again"
    );
}

/// Tasks that panic while holding buffers (and while others wait for
/// them) give every one back.
#[cfg(feature = "async")]
#[test]
#[cfg_attr(miri, ignore = "a thread pool")]
fn panicking_tasks_return_their_buffers() {
    let _faults = Faults::new();
    let pool = Pool::new(256, 32).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let _a = pool.acquire_owned().await;
                    tokio::task::yield_now().await;
                    let _b = pool.acquire_owned().await;
                    if t % 3 == 0 {
                        panic!("task {t} fails while holding buffers");
                    }
                })
            })
            .collect();
        let mut panicked = 0;
        for t in tasks {
            panicked += usize::from(t.await.is_err_and(|e| e.is_panic()));
        }
        assert_eq!(panicked, 6);
    });
    drop(rt);
    let s = pool.stats();
    assert_eq!((s.in_use, s.waiting), (0, 0), "{s:?}");
}

/// 10,000 short-lived threads, each of which parks buffers in its cache and
/// exits: nothing is stranded, and the pool's bookkeeping does not grow.
#[test]
#[cfg_attr(miri, ignore = "10,000 threads")]
fn ten_thousand_threads_strand_nothing() {
    let _faults = Faults::new();
    let pool = Pool::builder()
        .buffer_size(64)
        .capacity(64)
        .cache_size(8)
        .build()
        .unwrap();
    for wave in 0..100 {
        let threads: Vec<_> = (0..100)
            .map(|_| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    // Take and give back a few: they land in this thread's
                    // cache, which must go back when the thread exits.
                    let bufs: Vec<_> = (0..3).filter_map(|_| pool.try_acquire()).collect();
                    drop(bufs);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = pool.stats();
        assert_eq!(
            (s.in_use, s.cached, s.threads),
            (0, 0, 0),
            "wave {wave}: {s:?}"
        );
        assert_eq!(s.capacity, 64);
    }
    assert_eq!((0..64).filter_map(|_| pool.try_acquire_owned()).count(), 64);
}
