//! Growth: the slow path of an acquire that found the shared free list
//! empty. It steals from the thread caches (`cache/reclaim.rs`), else adds
//! the next segment (`segments.rs`) under the growth lock, which trims
//! (`trim.rs`) hold too.

use crate::freelist::Chain;
use crate::shared::Shared;
use crate::sync::Ordering::{Acquire, Relaxed, Release};
use crate::sync::lock;

impl Shared {
    /// The free list was empty: steal from the thread caches, else grow.
    ///
    /// A trim (`trim.rs`) holds every free slot for a while, under the
    /// growth lock, and says so in `SlowPath::trims`, which is odd from
    /// before it empties the free list until after it gave the slots back.
    /// The count is read after the free list was found empty: if a trim
    /// may have emptied it, the count is odd (the trim made its odd count
    /// visible through the free list's head, `FreeList::sync`, before it
    /// popped), and this waits for the growth lock, then looks again. If a
    /// trim ran since the count was read, the slots it gave back may sit
    /// in another thread's cache by now, so `grow` does not decide; this
    /// looks again. Each retry follows a trim, so a retry loop means
    /// another thread keeps trimming, and ends when it stops. A pool with
    /// no trim running never takes the lock here unless it may grow.
    #[cold]
    pub(crate) fn take_slow(&self) -> Option<u32> {
        loop {
            // Acquire: pairs with the trim's even count, made after it
            // gave the slots back, so that they are visible.
            let trims = self.slow.trims.load(Acquire);
            if !trims.is_multiple_of(2) {
                drop(lock(&self.slow.grow));
                continue;
            }
            if self.config.cache_size > 0
                && let Some(idx) = self.steal()
            {
                return Some(idx);
            }
            match self.grow(trims) {
                Err(Retry) => continue,
                Ok(got) => return got,
            }
        }
    }

    /// Adds the next segment if the limit allows, keeps its first slot for
    /// the caller and frees the rest. `None` if the pool is at its limit or
    /// the allocation failed (the pool keeps serving what it has).
    ///
    /// `trims` is the trim count the caller saw before it last looked for
    /// free slots (even: no trim held them then); if it changed since,
    /// this returns `Err(Retry)` rather than decide (see `take_slow`).
    #[cold]
    fn grow(&self, trims: u64) -> Result<Option<u32>, Retry> {
        if self.config.limit == self.config.capacity {
            // No growth and no lock: one more look at the list, as the
            // locked path below makes, for slots a trim that ended before
            // `trims` was read gave back.
            if let Some(idx) = self.take_shared() {
                return Ok(Some(idx));
            }
            return if self.slow.trims.load(Acquire) == trims {
                Ok(None)
            } else {
                Err(Retry)
            };
        }
        let (mine, pushed) = {
            let mut segments = lock(&self.slow.grow);
            // Another thread may have grown, or slots come back (a trim
            // ended, say), meanwhile.
            if let Some(idx) = self.take_shared() {
                return Ok(Some(idx));
            }
            // Trims count under this lock, so this is exact.
            if self.slow.trims.load(Relaxed) != trims {
                return Err(Retry);
            }
            let capacity = self.capacity.load(Relaxed);
            let room = self.config.limit - capacity;
            if room == 0 {
                return Ok(None);
            }
            let len = capacity.min(room);
            let Ok(chain) = self.segments.grow(*segments, capacity, len) else {
                return Ok(None);
            };
            *segments += 1;
            self.slow.growths.fetch_add(1, Relaxed);
            self.not_idle();
            self.capacity.store(capacity + len, Release);
            let mine = chain.first;
            self.note_taken(mine);
            // The rest is pushed under the lock, so that the next thread
            // to take it finds the slots instead of growing again.
            if len > 1 {
                self.free.push_chain(
                    &self.segments,
                    Chain {
                        first: mine + 1,
                        last: chain.last,
                        len: len - 1,
                    },
                );
            }
            self.note_held_locked();
            (mine, len as usize - 1)
        };
        // Waiters are served (their wakers run) with the lock released.
        Ok(Some(self.serve_keeping(pushed, mine)))
    }
}

/// [`Shared::grow`]'s answer when a trim ran since the caller looked.
struct Retry;
