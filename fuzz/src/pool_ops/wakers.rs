//! Hostile wakers: user code that the pool runs when it hands a queued
//! future a buffer. One panics, one calls back into the same pool (reads
//! its statistics and its backing, takes a buffer and gives it back).
//!
//! The panicking waker panics only while the fuzzing thread is *armed*,
//! inside [`expect_panic`] (`crate::expect_panic`): that is where the model knows whether a
//! release hands a buffer to it, so it can check that the panic reaches
//! the releaser exactly then. Anywhere else (a hand-off on the worker
//! thread, the end of a run) it does nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Wake, Waker};

use arbitrary::Arbitrary;
use arenapool::Pool;

/// What a waiter's waker does when woken.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Noop,
    Panics,
    Reenters,
}

struct Panics;

impl Wake for Panics {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        crate::user_panic();
    }
}

/// Acquires made by re-entering wakers: those that got a buffer, and
/// those that did not. One per run, shared by its wakers.
#[derive(Default)]
pub(super) struct Reentries {
    pub(super) got: AtomicU64,
    pub(super) missed: AtomicU64,
}

/// Calls back into the pool: `stats()`, `backing()`, and one
/// `try_acquire_owned` whose buffer it drops at once.
struct Reenters {
    pool: Pool,
    counts: Arc<Reentries>,
}

impl Wake for Reenters {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let s = self.pool.stats();
        assert!(s.in_use <= s.capacity);
        let _ = self.pool.backing();
        match self.pool.try_acquire_owned() {
            Some(b) => {
                self.counts.got.fetch_add(1, Relaxed);
                drop(b);
            }
            None => {
                self.counts.missed.fetch_add(1, Relaxed);
            }
        }
    }
}

/// A waker of `kind`.
pub(super) fn waker(kind: Kind, pool: &Pool, counts: &Arc<Reentries>) -> Waker {
    match kind {
        Kind::Noop => Waker::noop().clone(),
        Kind::Panics => Waker::from(Arc::new(Panics)),
        Kind::Reenters => Waker::from(Arc::new(Reenters {
            pool: pool.clone(),
            counts: Arc::clone(counts),
        })),
    }
}

/// Drops `v` (a handle, `Bytes` or future whose drop gives a buffer back)
/// with the panicking wakers armed, and checks that their panic reaches
/// this caller exactly when `expected`.
pub(super) fn expect_panic<T>(v: T, expected: bool, what: &str) {
    match crate::expect_panic(move || drop(v)) {
        Some(()) => assert!(
            !expected,
            "{what}: the waker's panic did not reach the releaser"
        ),
        None => assert!(
            expected,
            "{what}: a waker panicked, but none was handed a buffer"
        ),
    }
}
