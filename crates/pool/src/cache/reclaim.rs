//! Taking thread caches' slots back without their owners: stealing when
//! the shared list is empty, flushing for a trim, a thread's exit, and
//! the close of the pool. All of it runs under the cache-list lock; the
//! handshake with owners that may be inside an operation is in the
//! parent module's docs.

use crossbeam_utils::Backoff;

use super::Cache;
use crate::barrier;
use crate::shared::{CACHES_OFF, STEALING, Shared};
use crate::sync::Ordering::{Acquire, Relaxed, Release};
use crate::sync::{Arc, lock, spin_wait};

impl Shared {
    /// Takes the slots out of every thread's cache; keeps one for the
    /// caller and pushes the rest onto the free list. See `cache.rs`.
    #[cold]
    pub(crate) fn steal(&self) -> Option<u32> {
        let (got, pushed) = {
            let caches = lock(&self.caches);
            // A thread that exited just now moved its cache to the free
            // list under this lock (`retire`): look there first, or that
            // slot would be in neither place this steal looks.
            if let Some(idx) = self.take_shared() {
                return Some(idx);
            }
            // No thread has a cache (new ones need this lock), or the
            // caches are off for good and their owners give them back.
            if caches.is_empty() || self.gate.load(Relaxed) & CACHES_OFF != 0 {
                return None;
            }
            match self.drain_all(&caches, true) {
                Some(drained) => {
                    self.slow.steals.fetch_add(1, Relaxed);
                    drained
                }
                None => (None, 0),
            }
        };
        // Waiters are served (their wakers run) with the lock released.
        got.map(|mine| self.serve_keeping(pushed, mine))
    }

    /// For a trim (`trim.rs`): pushes every thread cache's slots onto the
    /// free list with the steal handshake, and returns how many. The
    /// caller serves waiters once it holds no lock.
    pub(crate) fn flush_caches(&self) -> usize {
        let caches = lock(&self.caches);
        if caches.is_empty() || self.gate.load(Relaxed) & CACHES_OFF != 0 {
            return 0;
        }
        self.drain_all(&caches, false)
            .map_or(0, |(_, pushed)| pushed)
    }

    /// The steal handshake, with the cache-list lock held (`caches` is
    /// its list): empties every cache, keeping the first slot for the
    /// caller if `keep_one` and pushing the rest, and returns both. If
    /// the heavy barrier fails, it turns the caches off for good instead
    /// and returns `None`.
    fn drain_all(&self, caches: &[Arc<Cache>], keep_one: bool) -> Option<(Option<u32>, usize)> {
        self.gate.fetch_or(STEALING, Relaxed);
        let (mut got, mut pushed) = (None, 0);
        let fenced = barrier::heavy(self.asymmetric);
        if fenced {
            for cache in caches {
                let backoff = Backoff::new();
                while cache.busy.load(Acquire) {
                    spin_wait(&backoff);
                }
                let mut slots = cache.drain();
                if keep_one && got.is_none() {
                    got = slots.next();
                }
                pushed += self.push_many(slots);
            }
        } else {
            // The barrier failed (a seccomp filter installed after the
            // pool was built, say): without it this thread cannot tell
            // whether an owner is inside an operation, so it must not
            // touch their caches, now or later. Turn the caches off for
            // good; each owner then empties its own cache the next time
            // it uses the pool, and every release goes to the shared
            // list, where waiters see it.
            self.gate.fetch_or(CACHES_OFF, Release);
        }
        self.gate.fetch_and(!STEALING, Release);
        fenced.then_some((got, pushed))
    }

    /// A cache whose thread is exiting: its slots go back to the free list,
    /// its credits to `refs`, and it leaves the cache list.
    ///
    /// # Safety
    ///
    /// `this` is `self`'s address, and the caller holds a strong reference
    /// to the state's `Arc` for the whole call: giving the credits back may
    /// release the lease.
    pub(super) unsafe fn retire(this: std::ptr::NonNull<Shared>, cache: &Arc<Cache>) {
        // SAFETY: the caller's strong reference keeps the state alive.
        let shared = unsafe { this.as_ref() };
        let (pushed, credits) = {
            let mut caches = lock(&shared.caches);
            let pushed = shared.push_many(cache.drain());
            let credits = cache.credits.swap(0, Relaxed) as usize;
            // Its counts stay counted: readers sum the live caches and
            // the retired totals under this same lock.
            for (to, from) in shared
                .slow
                .retired
                .counters()
                .into_iter()
                .zip(cache.tally.counters())
            {
                to.fetch_add(from.load(Relaxed), Relaxed);
            }
            caches.retain(|c| !Arc::ptr_eq(c, cache));
            (pushed, credits)
        };
        // In a thread-local destructor, where a panic would abort.
        shared.serve_quietly(pushed);
        if credits > 0 {
            // SAFETY: the credits are references this cache owned; the
            // caller's strong reference outlives the call.
            unsafe { Shared::unref(this, credits) };
        }
    }

    /// The last handle dropped: turns the caches off for good, takes every
    /// cache's slots back onto the free list and every credit out, and
    /// returns how many credits, for the caller to give back to `refs`
    /// (`shared.rs`). Uses the steal handshake, so no cache operation is
    /// in progress when a cache is emptied, and none starts afterwards.
    ///
    /// If the handshake's barrier fails, the credits of other threads'
    /// caches cannot be taken safely: they stay counted, and each comes
    /// back when its owner next uses the pool (`disown`) or exits. Until
    /// then the memory stays allocated, which is safe.
    pub(crate) fn close(&self) -> usize {
        let (credits, pushed) = {
            let caches = lock(&self.caches);
            if self.gate.fetch_or(CACHES_OFF | STEALING, Relaxed) & CACHES_OFF != 0 {
                // Off already (a failed barrier, or a second close after a
                // reopen): each owner gives its own cache back.
                self.gate.fetch_and(!STEALING, Release);
                return 0;
            }
            let (mut credits, mut pushed) = (0, 0);
            if barrier::heavy(self.asymmetric) {
                for cache in caches.iter() {
                    let backoff = Backoff::new();
                    while cache.busy.load(Acquire) {
                        spin_wait(&backoff);
                    }
                    pushed += self.push_many(cache.drain());
                    credits += cache.credits.swap(0, Relaxed) as usize;
                }
            }
            self.gate.fetch_and(!STEALING, Release);
            (credits, pushed)
        };
        // No handle is left, so nobody waits unless a buffer's copy of the
        // handle reopened the pool; in `Drop`, so a waker's panic is not
        // passed on.
        self.serve_quietly(pushed);
        credits
    }
}
