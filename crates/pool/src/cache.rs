//! Per-thread caches of slot indices ("magazines").
//!
//! Each thread that uses a pool gets a small array of free slot indices for
//! it, as in Bonwick's magazines, DPDK's per-lcore mempool cache and
//! jemalloc's tcache. Acquire pops from it and release pushes to it, so the
//! common case touches only memory that this thread alone writes: no atomic
//! read-modify-write and no shared cache line. When the cache is empty it
//! refills half of its size from the shared free list with one CAS; when it
//! is full it flushes half of itself back with one CAS and keeps the other
//! half, so a thread that alternates around the boundary does not thrash.
//! A buffer released on another thread goes into *that* thread's cache.
//!
//! # Nothing is stranded
//!
//! * When a thread exits, its thread-local entry is dropped and gives every
//!   cached slot back to the shared list (if the pool still exists).
//! * When a thread finds the shared list empty, it *steals*: it takes the
//!   slots out of every thread's cache before it reports exhaustion, grows
//!   the pool or goes to sleep. So `try_acquire` fails only when every
//!   buffer is held by a user, and a sleeping waiter is never kept waiting by
//!   a buffer parked in an idle thread's cache.
//!
//! There is no limit on the number of threads: caches live in a `Vec` that
//! grows, and an entry is removed when its thread exits.
//!
//! # The steal handshake
//!
//! The owner must not be in the middle of a push or pop while a stealer
//! empties its cache, yet the owner may not pay for a lock on every
//! operation. Owner and stealer use a Dekker-style handshake over two flags:
//!
//! ```text
//! owner (every operation)               stealer (rare)
//!   busy = true                           gate |= STEALING
//!   light barrier                         heavy barrier
//!   if gate != 0: busy = false,           for each cache:
//!      use the shared list instead            wait while busy
//!   ... push or pop ...                       take all its slots
//!   busy = false (Release)                gate &= !STEALING (Release)
//! ```
//!
//! With full fences on both sides, at least one of them sees the other's
//! flag: either the stealer sees `busy` and waits for the operation to end,
//! or the owner sees the `STEALING` bit and stays out of its cache. The light
//! barrier on the hot path is only a compiler fence when Linux's
//! `membarrier` is available; the stealer's heavy barrier then forces the
//! hardware fence onto the owner's CPU (see `barrier.rs`). A stealer holds
//! the pool's cache-list lock for the whole steal, which also serialises it
//! with other stealers and with caches handed back by exiting threads.
//!
//! Waiters (blocking and async) rely on the same handshake: a waiter
//! increments the waiter count and then steals; a release that started
//! before the steal is waited for and its slot taken, one that starts after
//! it sees the waiter count (owners read it in the same `gate` word as the
//! `STEALING` bit) and hands its slot to the queue (`wait.rs`).
//!
//! Stealing costs a `membarrier` system call (0.2 us measured here with one
//! thread; it interrupts every CPU running the process's threads), so an
//! exhausted pool's failing `try_acquire` is slower than a successful one.

use std::cell::{Cell, RefCell};
use std::sync::Weak;

use crate::barrier;
use crate::shared::{CREDITS, Shared};
use crate::sync::Ordering::{Acquire, Relaxed, Release};
use crate::sync::{Arc, AtomicBool, AtomicU32, AtomicU64, lock};

/// One thread's cache for one pool.
///
/// Written by its owner thread only, except while a stealer (or the owner's
/// exit) holds the pool's cache-list lock and the owner is provably not in
/// an operation (the handshake above). The atomics are for that hand-over;
/// the owner uses them with plain loads and stores.
pub(crate) struct Cache {
    /// The owner is inside an operation on this cache.
    busy: AtomicBool,
    /// Valid entries in `slots`: `0 ..= slots.len()`.
    len: AtomicU32,
    /// References to the pool this cache holds for owned buffers
    /// (`shared.rs`): taken from `refs` in batches, handed one to each
    /// owned buffer this cache serves, given back one by each owned buffer
    /// released into it.
    credits: AtomicU32,
    slots: Box<[AtomicU32]>,
    /// What this thread did with the pool, summed by `Pool::stats`.
    pub(crate) tally: Tally,
}

/// One thread's cumulative counts for one pool: written by the owner
/// only, with a plain load and store (no read-modify-write, no shared
/// line), read by anyone; when the thread exits they move to the pool's
/// `SlowPath::retired` (`retire`, under the cache-list lock, where
/// readers sum them too). Releases are not counted: every buffer
/// acquired is either held or was released, so `Pool::stats` derives
/// them from the acquires and the buffers in use, and the release path
/// pays nothing.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) acquires: AtomicU64,
    pub(crate) refills: AtomicU64,
    pub(crate) flushes: AtomicU64,
}

impl Tally {
    /// Owner: one more in `counter`.
    #[inline]
    fn bump(counter: &AtomicU64) {
        counter.store(counter.load(Relaxed) + 1, Relaxed);
    }

    /// Adds these counts to `totals` (acquires, refills, flushes).
    pub(crate) fn add_to(&self, totals: &mut [u64; 3]) {
        for (t, c) in totals.iter_mut().zip(self.counters()) {
            *t += c.load(Relaxed);
        }
    }

    fn counters(&self) -> [&AtomicU64; 3] {
        [&self.acquires, &self.refills, &self.flushes]
    }
}

impl Cache {
    pub(crate) fn new(size: u32) -> Self {
        Self {
            busy: AtomicBool::new(false),
            len: AtomicU32::new(0),
            credits: AtomicU32::new(0),
            slots: (0..size).map(|_| AtomicU32::new(0)).collect(),
            tally: Tally::default(),
        }
    }

    /// Slots cached right now (a racy read when called by another thread).
    pub(crate) fn len(&self) -> usize {
        self.len.load(Relaxed) as usize
    }

    /// Starts an owner operation. `false`: a steal is in progress or a
    /// waiter is sleeping, so the caller must use the shared list instead.
    #[inline]
    fn enter(&self, shared: &Shared) -> bool {
        self.busy.store(true, Relaxed);
        barrier::light(shared.asymmetric);
        if shared.gate.load(Acquire) != 0 {
            self.busy.store(false, Release);
            return false;
        }
        true
    }

    #[inline]
    fn leave(&self) {
        self.busy.store(false, Release);
    }

    /// Owner: a cached slot, or a refill from the shared list.
    #[inline]
    pub(crate) fn pop(&self, shared: &Shared) -> Option<u32> {
        let n = self.len.load(Relaxed);
        if let Some(slot) = n.checked_sub(1).and_then(|i| self.slots.get(i as usize)) {
            let idx = slot.load(Relaxed);
            self.len.store(n - 1, Relaxed);
            return Some(idx);
        }
        self.refill(shared)
    }

    #[cold]
    fn refill(&self, shared: &Shared) -> Option<u32> {
        let mut n = 0;
        let got = shared.take_many(batch(self.slots.len()) as u32 + 1, |idx| {
            self.slots[n].store(idx, Relaxed);
            n += 1;
        })?;
        self.len.store(n as u32, Relaxed);
        Tally::bump(&self.tally.refills);
        Some(got)
    }

    /// Owner: caches `idx`, flushing half the cache first if it is full.
    /// Returns how many slots went to the shared list (0 unless it
    /// flushed); waiters are served only once the operation is over.
    #[inline]
    pub(crate) fn push(&self, shared: &Shared, idx: u32) -> usize {
        let n = self.len.load(Relaxed);
        if let Some(slot) = self.slots.get(n as usize) {
            slot.store(idx, Relaxed);
            self.len.store(n + 1, Relaxed);
            return 0;
        }
        self.flush(shared, idx)
    }

    /// Full: pushes the newest `batch` slots and `idx` to the shared list
    /// with one CAS, keeps the oldest ones.
    #[cold]
    fn flush(&self, shared: &Shared, idx: u32) -> usize {
        let keep = self.slots.len() - batch(self.slots.len());
        let out = self.slots[keep..].iter().map(|s| s.load(Relaxed));
        let pushed = shared.push_many(std::iter::once(idx).chain(out));
        self.len.store(keep as u32, Relaxed);
        Tally::bump(&self.tally.flushes);
        pushed
    }

    /// Owner: one reference for an owned buffer, from the credits (a
    /// batch from `refs` when there are none).
    #[inline]
    fn take_credit(&self, shared: &Shared) {
        let n = match self.credits.load(Relaxed) {
            0 => Self::more_credits(shared),
            n => n,
        };
        self.credits.store(n - 1, Relaxed);
    }

    #[cold]
    fn more_credits(shared: &Shared) -> u32 {
        shared.add_ref(CREDITS);
        CREDITS as u32
    }

    /// Owner: an owned buffer's reference comes back as a credit; past
    /// twice the batch, all but one batch goes back to `refs`. That never
    /// releases the lease: until the pool closes, `refs` counts the open
    /// reference and every credit, and closing waits for this operation.
    #[inline]
    fn give_credit(&self, shared: &Shared) {
        let n = self.credits.load(Relaxed) + 1;
        if n as usize > 2 * CREDITS {
            Self::fewer_credits(shared, n);
            self.credits.store(CREDITS as u32, Relaxed);
        } else {
            self.credits.store(n, Relaxed);
        }
    }

    #[cold]
    fn fewer_credits(shared: &Shared, n: u32) {
        let back = n as usize - CREDITS;
        // Release, as every decrement of `refs`: whoever takes it to zero
        // (with an acquire fence) then sees what this thread did first.
        let before = shared.refs.fetch_sub(back, Release);
        debug_assert!(before > back, "a cache flush released the lease");
    }

    /// Takes every cached slot out. Only with the cache-list lock held and
    /// the owner known to be outside an operation (or gone), or by the
    /// owner itself once the caches are off for good.
    fn drain(&self) -> impl Iterator<Item = u32> + '_ {
        let n = self.len.swap(0, Relaxed) as usize;
        self.slots[..n].iter().map(|s| s.load(Relaxed))
    }
}

/// Slots moved per refill or flush: half the cache, at least one.
fn batch(size: usize) -> usize {
    size.div_ceil(2)
}

/// A thread's link to one pool's cache. Dropping it (when the thread exits)
/// gives the cached slots and credits back.
struct Entry {
    /// `pool`'s address: the lookup key, valid as long as `pool` is kept
    /// (a `Weak` keeps the allocation, so no other pool can reuse it).
    key: usize,
    pool: Weak<Shared>,
    cache: Arc<Cache>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        if let Some(shared) = self.pool.upgrade() {
            // From `Arc::as_ptr`, not a reference: `unref` may turn it back
            // into the lease's `Arc`, which needs the whole allocation's
            // provenance.
            let this = std::ptr::NonNull::new(std::sync::Arc::as_ptr(&shared).cast_mut())
                .expect("an Arc is never null");
            // SAFETY: `this` is the state's address and `shared` is a
            // strong reference held until after the call.
            unsafe { Shared::retire(this, &self.cache) };
            drop(shared);
        }
    }
}

/// This thread's caches, one per pool it has used.
struct Local {
    /// Fast path: the key (pool address) of the pool this thread used
    /// last, or 0, and a pointer to its cache. The pointer is valid while
    /// `entries` holds that cache's `Arc`: `find_or_register` resets
    /// `last_key` before it drops any entry.
    last_key: Cell<usize>,
    last: Cell<*const Cache>,
    entries: RefCell<Vec<Entry>>,
}

#[cfg(not(loom))]
std::thread_local! {
    static LOCAL: Local = const {
        Local {
            last_key: Cell::new(0),
            last: Cell::new(std::ptr::null()),
            entries: RefCell::new(Vec::new()),
        }
    };
}
#[cfg(loom)]
loom::thread_local! {
    static LOCAL: Local = Local {
        last_key: Cell::new(0),
        last: Cell::new(std::ptr::null()),
        entries: RefCell::new(Vec::new()),
    };
}

/// Runs `f` on this thread's cache for `pool`, making one if needed.
/// `None` if this thread's caches are gone (it is exiting).
#[inline]
fn with_cache<R>(pool: &Shared, f: impl FnOnce(&Cache) -> R) -> Option<R> {
    let key = std::ptr::from_ref(pool).addr();
    LOCAL
        .try_with(|local| {
            if local.last_key.get() == key {
                // SAFETY: `last` points to the cache of the entry for
                // `key`, which `entries` keeps alive (see `Local`); this
                // thread is its owner.
                return Some(f(unsafe { &*local.last.get() }));
            }
            let cache = find_or_register(local, pool, key)?;
            Some(f(&cache))
        })
        .ok()
        .flatten()
}

/// Slow path of [`with_cache`]: another pool than last time, or the first
/// use of this pool by this thread.
#[cold]
#[inline(never)]
fn find_or_register(local: &Local, pool: &Shared, key: usize) -> Option<Arc<Cache>> {
    let mut entries = local.entries.try_borrow_mut().ok()?;
    let found = entries
        .iter()
        .find(|e| e.key == key)
        .map(|e| e.cache.clone());
    let cache = match found {
        Some(cache) => cache,
        None => {
            // Forget caches of pools that are gone. `last` may point into
            // one of them, so forget it first.
            local.last_key.set(0);
            entries.retain(|e| e.pool.strong_count() > 0);
            let cache = Arc::new(Cache::new(pool.config.cache_size));
            lock(&pool.caches).push(Arc::clone(&cache));
            entries.push(Entry {
                key,
                pool: pool.me.clone(),
                cache: Arc::clone(&cache),
            });
            cache
        }
    };
    local.last.set(Arc::as_ptr(&cache));
    local.last_key.set(key);
    Some(cache)
}

/// Acquire through this thread's cache; with `OWNED`, the buffer's
/// reference comes from the cache's credits too. `None`: not served (a
/// steal or a waiter in progress, the caches are off, the thread is
/// exiting, or the cache and the shared list are both empty).
#[inline]
pub(crate) fn take<const OWNED: bool>(pool: &Shared) -> Option<u32> {
    with_cache(pool, |cache| {
        if !cache.enter(pool) {
            return None;
        }
        let got = cache.pop(pool);
        if got.is_some() {
            Tally::bump(&cache.tally.acquires);
            if OWNED {
                cache.take_credit(pool);
            }
        }
        cache.leave();
        got
    })
    .flatten()
}

/// With the caches off for good (`CACHES_OFF`), no stealer touches a
/// cache any more, so each owner hands what its cache holds back itself,
/// the next time it uses the pool: this is that. Call with no slot taken
/// for the caller (serving waiters may run a waker that panics), holding a
/// handle or an owned buffer's reference.
#[cold]
pub(crate) fn disown(pool: &Shared) {
    let (pushed, credits) = with_cache(pool, |cache| {
        (
            pool.push_many(cache.drain()),
            cache.credits.swap(0, Relaxed) as usize,
        )
    })
    .unwrap_or((0, 0));
    if credits > 0 {
        // The caller's handle or buffer keeps `refs` above the credits.
        let before = pool.refs.fetch_sub(credits, Release);
        debug_assert!(before > credits, "disown released the lease");
    }
    pool.serve_pushed(pushed);
}

/// Counts an acquire that did not go through this thread's cache: in
/// this thread's tally, or on the pool's shared counter while the thread
/// exits and in a pool without caches, which keeps no state per thread
/// (there each acquire pays this read-modify-write besides the free
/// list's). Not on the cached hot path, where `take` counts.
#[inline(never)]
pub(crate) fn count_uncached(pool: &Shared) {
    let counted = pool.config.cache_size > 0
        && with_cache(pool, |cache| Tally::bump(&cache.tally.acquires)).is_some();
    if !counted {
        pool.slow.retired.acquires.fetch_add(1, Relaxed);
    }
}

/// Release through this thread's cache; with `OWNED`, the buffer's
/// reference becomes a credit. `None`: not taken (a steal or a waiter in
/// progress, the caches are off, or the thread is exiting); the caller
/// uses the shared list (and gives the reference back itself). `Some(n)`:
/// cached, and `n` slots were flushed to the shared list, for the caller
/// to serve waiters with.
#[inline]
pub(crate) fn put<const OWNED: bool>(pool: &Shared, idx: u32) -> Option<usize> {
    with_cache(pool, |cache| {
        if !cache.enter(pool) {
            return None;
        }
        let flushed = cache.push(pool, idx);
        if OWNED {
            cache.give_credit(pool);
        }
        cache.leave();
        Some(flushed)
    })
    .flatten()
}

mod reclaim;

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
pub(crate) mod loom_tests;
