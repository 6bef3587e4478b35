//! Asymmetric barriers: a nearly free one for the hot path, a heavy one for
//! the rare path that must see what the hot path did.
//!
//! The per-thread caches (`cache.rs`) use a Dekker-style handshake: an owner
//! marks its cache busy and then reads the pool's "steal pending" flag; a
//! stealer sets the flag and then reads every cache's busy mark. For that to
//! work, neither side may see the other's *old* value after writing its own,
//! which normally takes a full fence (`mfence`, tens of cycles) on both sides.
//! With Linux's `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` the stealer
//! can instead force a full barrier onto every running thread of the process,
//! so the owner only needs to stop the *compiler* from reordering: the same
//! asymmetric-fence technique as liburcu and folly's `asymmetricHeavyBarrier`.
//!
//! Where `membarrier` is not available (other systems, old kernels, seccomp,
//! Miri, loom), both sides use `fence(SeqCst)` instead: correct, slower.

use crate::sync::Ordering::SeqCst;
use crate::sync::{compiler_fence, fence};

/// Registers the process for expedited membarriers (once) and says whether
/// the asymmetric mode can be used. A pool asks at build time and keeps the
/// answer, so both sides of one pool always agree on the mode.
pub(crate) fn asymmetric_available() -> bool {
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    {
        use rustix::thread::{MembarrierCommand, membarrier};
        static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *REGISTERED.get_or_init(|| membarrier(MembarrierCommand::RegisterPrivateExpedited).is_ok())
    }
    #[cfg(not(all(target_os = "linux", not(loom), not(miri))))]
    false
}

/// The hot-path side: orders this thread's earlier stores before its later
/// loads, as seen by a thread that runs [`heavy`].
#[inline]
pub(crate) fn light(asymmetric: bool) {
    if asymmetric {
        compiler_fence(SeqCst);
    } else {
        fence(SeqCst);
    }
}

/// The rare side: after it returns, every other thread's stores that were
/// ordered by [`light`] are visible, and every later [`light`] sees this
/// thread's earlier stores. Returns `false` if the barrier could not be
/// issued; the caller must then not rely on it.
pub(crate) fn heavy(asymmetric: bool) -> bool {
    #[cfg(all(test, not(loom)))]
    if tests::FAIL_HEAVY.get() {
        return false;
    }
    if asymmetric {
        #[cfg(all(target_os = "linux", not(loom), not(miri)))]
        {
            use rustix::thread::{MembarrierCommand, membarrier};
            return membarrier(MembarrierCommand::PrivateExpedited).is_ok();
        }
        #[cfg(not(all(target_os = "linux", not(loom), not(miri))))]
        return false;
    }
    fence(SeqCst);
    true
}

#[cfg(all(test, not(loom)))]
pub(crate) mod tests {
    use std::cell::Cell;

    std::thread_local! {
        /// Makes this thread's [`heavy`](super::heavy) barriers fail, as
        /// they do once a seccomp filter refuses `membarrier`.
        pub(crate) static FAIL_HEAVY_CELL: Cell<bool> = const { Cell::new(false) };
    }

    /// Reads and sets [`FAIL_HEAVY_CELL`].
    pub(crate) struct FailHeavy;

    impl FailHeavy {
        pub(crate) fn get(&self) -> bool {
            FAIL_HEAVY_CELL.with(Cell::get)
        }
        pub(crate) fn set(&self, fail: bool) {
            FAIL_HEAVY_CELL.with(|c| c.set(fail));
        }
    }

    pub(crate) static FAIL_HEAVY: FailHeavy = FailHeavy;
}
