//! User code that runs inside the pool: wakers called when a release hands
//! a buffer to a waiter, and futures that are dropped, forgotten or leaked
//! at their await point. Each test plays a hostile user and then checks
//! that the pool still keeps every invariant: no deadlock, no buffer lost
//! or handed out twice, no waiter count left behind, caches on again.
//!
//! Tests that could hang on a broken pool run under [`within`], a hang
//! guard (a deadlock fails the test instead of stalling the suite; it is
//! not a timing assertion).

#![cfg(feature = "async")]

use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use arenapool::{OwnedBuf, Pool};

/// Runs `f` on its own thread and fails if it does not finish within a
/// generous bound: a deadlocked pool fails the test instead of hanging.
fn within(what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    // Miri runs a thousand times slower, and printing a panic's backtrace
    // there takes a while.
    let bound = Duration::from_secs(if cfg!(miri) { 1800 } else { 30 });
    match rx.recv_timeout(bound) {
        Ok(()) => worker.join().unwrap(),
        // `f` panicked: report its panic.
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(p) = worker.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("deadlock: {what} did not finish"),
    }
}

fn pool(capacity: usize) -> Pool {
    Pool::builder()
        .buffer_size(64)
        .capacity(capacity)
        .build()
        .unwrap()
}

fn poll<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

/// A waker that counts its wake-ups and then runs `on_wake`.
struct Hostile<F: Fn() + Send + Sync + 'static> {
    woken: AtomicUsize,
    on_wake: F,
}

impl<F: Fn() + Send + Sync + 'static> Wake for Hostile<F> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.fetch_add(1, SeqCst);
        (self.on_wake)();
    }
}

fn hostile<F: Fn() + Send + Sync + 'static>(on_wake: F) -> (Arc<Hostile<F>>, Waker) {
    let h = Arc::new(Hostile {
        woken: AtomicUsize::new(0),
        on_wake,
    });
    (Arc::clone(&h), Waker::from(h))
}

fn panicking_waker() -> Waker {
    hostile(|| panic!("a waker that panics")).1
}

/// Polls an owned acquire once (it must be pending) and "forgets" it: the
/// caller keeps what this returns in scope and never drops it, as after
/// `mem::forget` (the future lives on the caller's stack, so the leak
/// checkers of Miri and LeakSanitizer see nothing leaked).
fn forget_pending(pool: &Pool) -> ManuallyDrop<arenapool::AcquireOwned<'_>> {
    let mut fut = ManuallyDrop::new(pool.acquire_owned());
    assert!(poll(&mut *fut, futures::task::noop_waker_ref()).is_pending());
    fut
}

/// Every buffer can be taken at once: none was lost, none is out twice.
fn assert_whole(pool: &Pool, capacity: usize) {
    let all: Vec<_> = (0..capacity).map_while(|_| pool.try_acquire()).collect();
    assert_eq!(all.len(), capacity, "buffers lost: {:?}", pool.stats());
    let mut idx: Vec<_> = all.iter().map(|b| b.index()).collect();
    idx.sort_unstable();
    idx.dedup();
    assert_eq!(idx.len(), capacity, "a buffer was handed out twice");
}

/// A waker whose `wake` drops another buffer of the same pool re-enters the
/// pool's release path while the first release is still handing its buffer
/// over. That must neither deadlock nor lose either buffer.
#[test]
fn a_waker_that_releases_into_the_same_pool_does_not_deadlock() {
    within("a release from inside a waker", || {
        let pool = pool(2);
        let a = pool.try_acquire_owned().unwrap();
        let b = pool.try_acquire_owned().unwrap();
        let stash: Arc<Mutex<Option<OwnedBuf>>> = Arc::new(Mutex::new(Some(b)));
        let (h, waker) = {
            let stash = Arc::clone(&stash);
            hostile(move || drop(stash.lock().unwrap().take()))
        };
        let mut fut = pool.acquire_owned();
        assert!(poll(&mut fut, &waker).is_pending());
        drop(a); // hands `a` to the waiter, whose waker releases `b`
        assert_eq!(h.woken.load(SeqCst), 1);
        let Poll::Ready(got) = poll(&mut fut, &waker) else {
            panic!("the waiter was woken but has no buffer: {:?}", pool.stats());
        };
        assert_eq!(pool.stats().in_use, 1);
        assert_eq!(pool.stats().waiting, 0);
        drop(got);
        assert_whole(&pool, 2);
    });
}

/// A waker that acquires from the same pool, and one that reads its
/// statistics (which take the pool's internal locks), while a release is
/// handing a buffer over.
#[test]
fn a_waker_that_acquires_or_reads_stats_does_not_deadlock() {
    within("an acquire and stats() from inside a waker", || {
        let pool = pool(2);
        let a = pool.try_acquire_owned().unwrap();
        let b = pool.try_acquire_owned().unwrap();
        let (h, waker) = {
            let pool = pool.clone();
            hostile(move || {
                let _ = pool.stats();
                let _ = pool.backing();
                drop(pool.try_acquire());
            })
        };
        let mut fut = pool.acquire_owned();
        assert!(poll(&mut fut, &waker).is_pending());
        drop(a);
        drop(b);
        assert!(h.woken.load(SeqCst) >= 1);
        let Poll::Ready(got) = poll(&mut fut, &waker) else {
            panic!("woken without a buffer");
        };
        drop(got);
        assert_eq!(pool.stats().waiting, 0);
        assert_whole(&pool, 2);
    });
}

/// A waker that panics when a release hands its task a buffer: the panic
/// reaches the releaser, but the hand-off is complete (the waiter has its
/// buffer) and the pool is intact.
#[test]
fn a_panicking_waker_leaves_the_pool_intact() {
    within("a release whose waker panics", || {
        let pool = pool(2);
        let a = pool.try_acquire_owned().unwrap();
        let b = pool.try_acquire_owned().unwrap();
        let waker = panicking_waker();
        let mut fut = pool.acquire_owned();
        assert!(poll(&mut fut, &waker).is_pending());
        let caught = catch_unwind(AssertUnwindSafe(|| drop(a)));
        assert!(caught.is_err(), "the waker's panic reaches the releaser");
        assert_eq!(pool.stats().waiting, 0, "{:?}", pool.stats());
        let Poll::Ready(got) = poll(&mut fut, futures::task::noop_waker_ref()) else {
            panic!("the hand-off did not complete: {:?}", pool.stats());
        };
        drop(b);
        drop(got);
        assert_whole(&pool, 2);
    });
}

/// A cancelled waiter that was already granted a buffer passes it to the
/// next waiter. If that waiter's waker panics, the cancelled one still
/// leaves the queue completely (its count in the waiter total included).
#[test]
fn a_panicking_waker_during_cancellation_leaves_no_waiter_count() {
    within(
        "a cancellation whose hand-off wakes a panicking waker",
        || {
            let pool = pool(1);
            let a = pool.try_acquire_owned().unwrap();
            let noop = futures::task::noop_waker();
            let panics = panicking_waker();
            let mut first = pool.acquire_owned();
            let mut second = pool.acquire_owned();
            assert!(poll(&mut first, &noop).is_pending());
            assert!(poll(&mut second, &panics).is_pending());
            drop(a); // granted to `first`
            let _ = catch_unwind(AssertUnwindSafe(|| drop(first)));
            // `second` holds the buffer now, or it is back in the pool.
            drop(second);
            let s = pool.stats();
            assert_eq!(s.waiting, 0, "a waiter count was left behind: {s:?}");
            assert_eq!(s.in_use, 0, "{s:?}");
            assert_whole(&pool, 1);
            // The caches are on again: a release on this thread is cached.
            drop(pool.try_acquire());
            assert!(pool.stats().cached > 0, "{:?}", pool.stats());
        },
    );
}

/// `mem::forget` of a pending future costs at most the one buffer handed
/// to it: the waiter count drops, the thread caches come back on, and
/// every other buffer stays usable.
#[test]
fn a_forgotten_future_costs_at_most_one_buffer() {
    within("a pool with a forgotten waiter", || {
        let pool = pool(3);
        let held: Vec<_> = (0..3).map(|_| pool.try_acquire_owned().unwrap()).collect();
        let _forgotten = forget_pending(&pool);
        assert_eq!(pool.stats().waiting, 1);
        drop(held); // the first goes to the forgotten waiter, for ever
        let s = pool.stats();
        assert_eq!(s.waiting, 0, "the forgotten waiter still counts: {s:?}");
        assert_eq!(s.in_use, 1, "only the granted buffer is gone: {s:?}");
        // The caches are on again: a release on this thread is cached.
        drop(pool.try_acquire().unwrap());
        assert!(
            pool.stats().cached > 0,
            "caches stayed off: {:?}",
            pool.stats()
        );
        assert_whole(&pool, 2);
    });
}

/// A forgotten *borrowed* future: the pool can be dropped after it, and
/// that drops the waker it kept, nothing else.
#[test]
fn the_pool_can_drop_after_a_forgotten_borrowed_future() {
    let (h, waker) = hostile(|| {});
    let pool = Pool::new(64, 1).unwrap();
    let held = pool.try_acquire().unwrap();
    // On the stack, never dropped: nothing on the heap leaks, and the
    // pool below is dropped with the future still "alive".
    let mut fut = std::mem::ManuallyDrop::new(pool.acquire());
    assert!(poll(&mut *fut, &waker).is_pending());
    drop(held);
    assert_eq!(h.woken.load(SeqCst), 1);
    drop(pool);
    drop(waker);
    // Only our `h` is left: the pool dropped the waker it kept.
    assert_eq!(Arc::strong_count(&h), 1);
}

/// A blocking waiter and a forgotten async one: the blocking waiter is
/// served by a later release.
#[test]
fn a_forgotten_future_does_not_strand_a_blocking_waiter() {
    within("a blocking waiter behind a forgotten one", || {
        let pool = pool(2);
        let a = pool.try_acquire_owned().unwrap();
        let b = pool.try_acquire_owned().unwrap();
        let _forgotten = forget_pending(&pool);
        let waiter = {
            let pool = pool.clone();
            std::thread::spawn(move || pool.acquire_owned_blocking(Duration::MAX).unwrap())
        };
        while pool.stats().waiting < 2 {
            std::thread::yield_now();
        }
        drop(a); // to the forgotten waiter
        drop(b); // to the blocking one
        let got = waiter.join().unwrap();
        assert_eq!(pool.stats().waiting, 0);
        drop(got);
        assert_whole(&pool, 1);
    });
}
