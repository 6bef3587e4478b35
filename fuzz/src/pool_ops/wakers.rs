//! Hostile wakers: user code that the pool runs when it hands a queued
//! future a buffer. One panics, one calls back into the same pool (reads
//! its statistics and its backing, takes a buffer and gives it back).
//!
//! The panicking waker panics only while the fuzzing thread is *armed*,
//! inside [`expect_panic`]: that is where the model knows whether a
//! release hands a buffer to it, so it can check that the panic reaches
//! the releaser exactly then. Anywhere else (a hand-off on the worker
//! thread, the end of a run) it does nothing.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Once};
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

/// The message of the panicking waker's panic.
pub(super) const PANIC: &str = "fuzz: a waker that panics";

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

/// Lets the panicking waker's panic unwind: libFuzzer's panic hook
/// aborts on every panic (so that a failed check is a crash), which would
/// turn this expected one into a crash too. Every other panic still goes
/// to the previous hook.
fn quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = ARMED.get() && info.payload().downcast_ref::<&str>() == Some(&PANIC);
            if !ours {
                previous(info);
            }
        }));
    });
}

struct Panics;

impl Wake for Panics {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if ARMED.get() {
            std::panic::panic_any(PANIC);
        }
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
    pool: Arc<Pool>,
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
pub(super) fn waker(kind: Kind, pool: &Arc<Pool>, counts: &Arc<Reentries>) -> Waker {
    match kind {
        Kind::Noop => Waker::noop().clone(),
        Kind::Panics => Waker::from(Arc::new(Panics)),
        Kind::Reenters => Waker::from(Arc::new(Reenters {
            pool: Arc::clone(pool),
            counts: Arc::clone(counts),
        })),
    }
}

/// Drops `v` (a handle, `Bytes` or future whose drop gives a buffer back)
/// with the panicking wakers armed, and checks that their panic reaches
/// this caller exactly when `expected`.
pub(super) fn expect_panic<T>(v: T, expected: bool, what: &str) {
    quiet_hook();
    ARMED.set(true);
    let r = catch_unwind(AssertUnwindSafe(move || drop(v)));
    ARMED.set(false);
    match r {
        Ok(()) => assert!(
            !expected,
            "{what}: the waker's panic did not reach the releaser"
        ),
        Err(p) => {
            if p.downcast_ref::<&str>() != Some(&PANIC) {
                resume_unwind(p);
            }
            assert!(
                expected,
                "{what}: a waker panicked, but none was handed a buffer"
            );
        }
    }
}
