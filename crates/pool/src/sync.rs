//! The one place that chooses between `std` and `loom` primitives.
//!
//! Everything in this crate that is shared between threads imports its
//! atomics and locks from here, so that `RUSTFLAGS="--cfg loom"` swaps every
//! one of them for loom's model-checked versions (see `bin/loom.sh` at the
//! repository root). The layout follows sharded-slab's `src/sync.rs`.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};
// loom has no compiler fence; under loom the cache handshake always uses
// full fences anyway (`barrier.rs`).
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use std::sync::atomic::compiler_fence;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering, compiler_fence, fence,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::thread;
#[cfg(not(loom))]
pub(crate) use std::thread;

#[cfg(all(test, loom))]
pub(crate) use loom::model;

/// Locks `mutex`, ignoring poisoning: every critical section in this crate
/// leaves its data consistent at each point where it could panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(loom)]
    return mutex.lock().unwrap();
    #[cfg(not(loom))]
    return mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
}

/// Locks `mutex` if no one holds it, ignoring poisoning as [`lock`] does.
pub(crate) fn try_lock<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// One step of waiting for another thread that is known to be about to
/// finish something short (a cache operation): spin, then yield.
#[inline]
pub(crate) fn spin_wait(backoff: &crossbeam_utils::Backoff) {
    #[cfg(loom)]
    {
        let _ = backoff;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    backoff.snooze();
}
