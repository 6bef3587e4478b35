//! [`Pool`]: acquire, release, growth, waiting and statistics.
//!
//! # The hot path
//!
//! With per-thread caches on (the default), acquiring pops an index from the
//! calling thread's cache and releasing pushes one: thread-local memory
//! only, no atomic read-modify-write (see `cache.rs`). Without caches, or
//! when a cache is empty or full, the shared free list does the work: one
//! CAS on its head per buffer, or one per batch when a cache refills or
//! flushes.
//!
//! # Waiting
//!
//! [`Pool::acquire_timeout`] and the async [`Pool::acquire`] share one FIFO
//! wait queue (`wait.rs`). A release checks the `gate` word (one load it
//! makes anyway) and, only when someone waits, hands its slot straight to
//! the longest waiter. `wait.rs` explains why no wake-up is lost and
//! `cache.rs` how releases into thread caches take part.

use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::backing::BackingReport;
use crate::builder::{Config, PoolBuilder};
use crate::cache::{self, Cache};
use crate::error::{BuildError, Exhausted};
use crate::freelist::{Chain, FreeList, Links, NIL, pack, unpack};
use crate::handle::{Buf, OwnedBuf};
use crate::segments::Segments;
use crate::stats::Stats;
use crate::sync::Ordering::{Acquire, Relaxed, Release};
use crate::sync::{AtomicU32, AtomicU64, AtomicUsize, Mutex, lock};
use crate::wait::{Panic, Queue};

/// A pool of fixed-size byte buffers carved from one arena.
///
/// Buffers come out as RAII handles: [`Buf`] borrows the pool, [`OwnedBuf`]
/// holds an `Arc<Pool>` and is `'static`. Dropping a handle returns its
/// buffer, also during a panic. The pool is `Send + Sync`; share it by
/// reference (scoped threads) or in an [`Arc`].
///
/// ```
/// use std::io::Write;
/// use arenapool::Pool;
///
/// let pool = Pool::builder().buffer_size(2048).capacity(2).build()?;
/// let mut a = pool.try_acquire().expect("a free buffer");
/// write!(a, "hello")?;
/// assert_eq!(&a[..], b"hello");
///
/// let b = pool.try_acquire().expect("a free buffer");
/// assert!(pool.try_acquire().is_none(), "both buffers are out");
/// drop((a, b));
/// assert_eq!(pool.stats().in_use, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Pool {
    /// On the heap and reference-counted so that thread caches can name it
    /// (weakly) and give their slots back when their thread exits.
    shared: Arc<Shared>,
}

/// The pool's state, shared with the thread caches.
pub(crate) struct Shared {
    pub(crate) free: FreeList,
    pub(crate) segments: Segments,
    pub(crate) config: Config,
    /// Highest slot index ever taken from the free list, plus one. Written
    /// only when it rises: see [`Stats::high_water`].
    frontier: AtomicU32,
    /// `WAITER` times the number of callers waiting (blocking or async)
    /// and not yet granted a slot, plus `STEALING` while a thread takes the
    /// slots out of every cache, plus `CACHES_OFF` for good once the cache
    /// handshake's barrier failed (`cache.rs`). One word, so that the
    /// cached hot path learns "leave the cache alone" from a single load;
    /// read on every acquire and release. See the module docs for the
    /// protocol.
    pub(crate) gate: AtomicUsize,
    /// Whether the cache handshake uses `membarrier` (see `barrier.rs`);
    /// fixed at build time so both sides agree.
    pub(crate) asymmetric: bool,
    /// Slots in all published segments. Written only while growing.
    capacity: AtomicU32,
    /// The wait queue (`wait.rs`). Its lock is never held while user code
    /// (a waker) runs.
    pub(crate) queue: Mutex<Queue>,
    /// Every thread cache of this pool. Its lock also serialises stealing
    /// and the hand-back of a cache when its thread exits.
    pub(crate) caches: Mutex<Vec<crate::sync::Arc<Cache>>>,
    /// Written only on slow paths; kept off the read-mostly lines above.
    pub(crate) slow: CachePadded<SlowPath>,
}
/// `Shared::gate` bit: a steal is in progress.
pub(crate) const STEALING: usize = 1;
/// `Shared::gate` bit: the thread caches are off for good, because the
/// steal handshake's heavy barrier failed (`cache.rs`).
pub(crate) const CACHES_OFF: usize = 2;
/// `Shared::gate` unit: one waiter not yet granted a slot.
pub(crate) const WAITER: usize = 4;

pub(crate) struct SlowPath {
    failed: AtomicU64,
    pub(crate) waits: AtomicU64,
    /// Waiters that ever joined the queue (`wait.rs`).
    pub(crate) arrivals: AtomicUsize,
    /// Serialises growth; holds the number of segments.
    grow: Mutex<usize>,
}

impl Pool {
    /// A builder with the default settings; see [`PoolBuilder`].
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// A pool of `capacity` buffers of `buffer_size` bytes, other settings
    /// at their defaults.
    ///
    /// # Errors
    ///
    /// As [`PoolBuilder::build`].
    pub fn new(buffer_size: usize, capacity: usize) -> Result<Self, BuildError> {
        Self::builder()
            .buffer_size(buffer_size)
            .capacity(capacity)
            .build()
    }

    pub(crate) fn from_config(config: Config) -> Result<Self, BuildError> {
        let segments = Segments::new(
            config.capacity,
            config.stride,
            config.alignment,
            config.request,
        )?;
        let free = FreeList::new();
        free.push_chain(&segments, segments.first_chain());
        let asymmetric = config.cache_size > 0 && crate::barrier::asymmetric_available();
        let shared = Arc::new(Shared {
            free,
            segments,
            config,
            frontier: AtomicU32::new(0),
            gate: AtomicUsize::new(0),
            asymmetric,
            capacity: AtomicU32::new(config.capacity),
            queue: Queue::new(),
            caches: Mutex::new(Vec::new()),
            slow: CachePadded::new(SlowPath {
                failed: AtomicU64::new(0),
                waits: AtomicU64::new(0),
                arrivals: AtomicUsize::new(0),
                grow: Mutex::new(1),
            }),
        });
        Ok(Self { shared })
    }

    /// Takes a free buffer, growing the pool if it is empty and allowed to
    /// grow. Returns `None` (and counts a failed acquire) if neither works.
    /// Never blocks.
    ///
    /// With thread caches on, an empty pool first takes back the buffers
    /// parked in other threads' caches, so `None` means that every buffer
    /// is really held by a user.
    ///
    /// ```
    /// let pool = arenapool::Pool::new(64, 1)?;
    /// let buf = pool.try_acquire().unwrap();
    /// assert!(pool.try_acquire().is_none());
    /// drop(buf);
    /// assert!(pool.try_acquire().is_some());
    /// # Ok::<(), arenapool::BuildError>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Option<Buf<'_>> {
        match self.shared.take(&self.shared) {
            Some(idx) => Some(Buf::new(self, idx)),
            None => self.shared.count_failure(),
        }
    }

    /// Like [`try_acquire`](Self::try_acquire), but the handle keeps the
    /// pool alive and is `'static`, so it can move into threads and tasks.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let pool = Arc::new(arenapool::Pool::new(64, 1)?);
    /// let buf = pool.try_acquire_owned().unwrap();
    /// std::thread::spawn(move || drop(buf)).join().unwrap();
    /// assert_eq!(pool.stats().in_use, 0);
    /// # Ok::<(), arenapool::BuildError>(())
    /// ```
    #[inline]
    pub fn try_acquire_owned(self: &Arc<Self>) -> Option<OwnedBuf> {
        match self.shared.take(&self.shared) {
            Some(idx) => Some(OwnedBuf::new(Arc::clone(self), idx)),
            None => self.shared.count_failure(),
        }
    }

    /// Takes a free buffer, waiting up to `timeout` for one to be released
    /// if the pool is empty (and cannot grow). The thread sleeps while it
    /// waits; it does not spin. `Duration::MAX` waits without limit.
    ///
    /// # Errors
    ///
    /// [`Exhausted`] if no buffer became free in time.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = arenapool::Pool::new(64, 1)?;
    /// let held = pool.try_acquire().unwrap();
    /// let err = pool.acquire_timeout(Duration::from_millis(5)).unwrap_err();
    /// assert!(err.waited >= Duration::from_millis(5));
    /// std::thread::scope(|s| {
    ///     s.spawn(move || drop(held));
    ///     assert!(pool.acquire_timeout(Duration::from_secs(10)).is_ok());
    /// });
    /// # Ok::<(), arenapool::BuildError>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Buf<'_>, Exhausted> {
        self.shared
            .take_blocking(&self.shared, timeout)
            .map(|idx| Buf::new(self, idx))
    }

    /// Like [`acquire_timeout`](Self::acquire_timeout), returning an
    /// [`OwnedBuf`].
    ///
    /// # Errors
    ///
    /// [`Exhausted`] if no buffer became free in time.
    pub fn acquire_owned_timeout(
        self: &Arc<Self>,
        timeout: Duration,
    ) -> Result<OwnedBuf, Exhausted> {
        self.shared
            .take_blocking(&self.shared, timeout)
            .map(|idx| OwnedBuf::new(Arc::clone(self), idx))
    }

    /// Bytes in each buffer, as configured.
    #[inline]
    pub fn buffer_size(&self) -> usize {
        self.shared.config.buffer_size
    }

    /// Alignment of each buffer in bytes.
    pub fn alignment(&self) -> usize {
        self.shared.config.alignment
    }

    /// Most slot indices each thread keeps in its cache (0: no caches).
    pub fn cache_size(&self) -> usize {
        self.shared.config.cache_size as usize
    }

    /// What the pool asked for its arenas and what it got, across all
    /// segments; see [`BackingReport`] and
    /// [`PoolBuilder::backing`](crate::PoolBuilder::backing).
    ///
    /// ```
    /// use arenapool::{Backing, Pages, Pool};
    ///
    /// let pool = Pool::builder().capacity(8).grow_to(32).backing(Backing::Mmap).build()?;
    /// let held: Vec<_> = (0..9).map(|_| pool.try_acquire().unwrap()).collect(); // grows once
    /// let report = pool.backing();
    /// assert_eq!(report.segments, 2);
    /// # #[cfg(target_os = "linux")]
    /// assert_eq!(report.obtained, Pages::Small);
    /// println!("{report}");
    /// # Ok::<(), arenapool::BuildError>(())
    /// ```
    pub fn backing(&self) -> BackingReport {
        let segments = &self.shared.segments;
        let request = segments.request();
        // Hold the growth lock so that no segment is half-published while
        // the report is made.
        let _grow = lock(&self.shared.slow.grow);
        BackingReport::new(request.backing, request.lock, segments.outcomes())
    }

    /// A snapshot of the pool's counters; see [`Stats`].
    pub fn stats(&self) -> Stats {
        let s = &*self.shared;
        let (cached, threads) = {
            let caches = lock(&s.caches);
            (caches.iter().map(|c| c.len()).sum::<usize>(), caches.len())
        };
        let capacity = s.capacity.load(Acquire) as usize;
        let free = s.free.len(&s.segments) as usize;
        Stats {
            capacity,
            max_capacity: s.config.limit as usize,
            in_use: capacity.saturating_sub(free + cached),
            cached,
            high_water: s.frontier.load(Relaxed) as usize,
            failed_acquires: s.slow.failed.load(Relaxed),
            waits: s.slow.waits.load(Relaxed),
            waiting: s.gate.load(Relaxed) / WAITER,
            segments: *lock(&s.slow.grow),
            threads,
            caches_off: s.gate.load(Relaxed) & CACHES_OFF != 0,
        }
    }

    /// The state shared with thread caches and wait queues.
    #[cfg(feature = "async")]
    #[inline]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The segment table, for registering the arenas with io_uring.
    #[cfg(all(feature = "io-uring", target_os = "linux"))]
    pub(crate) fn segments(&self) -> &Segments {
        &self.shared.segments
    }

    /// Pointer to slot `idx`, derived from its arena's allocation.
    #[inline]
    pub(crate) fn slot_ptr(&self, idx: u32) -> NonNull<u8> {
        self.shared.segments.slot_ptr(idx)
    }

    /// Returns slot `idx` to the pool and wakes a waiter if any.
    ///
    /// # Safety
    ///
    /// The caller owns slot `idx` (it came from this pool's `take` and was
    /// not returned since), `ptr` is `self.slot_ptr(idx)`,
    /// `dirty <= buffer_size`, and the caller does not touch the slot
    /// afterwards.
    #[inline]
    pub(crate) unsafe fn release(&self, idx: u32, ptr: NonNull<u8>, dirty: usize) {
        let s = &*self.shared;
        debug_assert_eq!(ptr, self.slot_ptr(idx));
        debug_assert!(dirty <= s.config.buffer_size);
        if s.config.zero_on_release && dirty > 0 {
            // SAFETY: the caller owns the slot, and `dirty` bytes from `ptr`
            // lie inside it; `ptr` derives from the arena allocation.
            unsafe { ptr::write_bytes(ptr.as_ptr(), 0, dirty) };
        }
        s.put(&self.shared, idx);
    }
}

impl Shared {
    /// Takes a slot: from this thread's cache, else the free list, else the
    /// other threads' caches, else a new segment. Counts nothing on failure.
    #[inline]
    pub(crate) fn take(&self, this: &Arc<Shared>) -> Option<u32> {
        if self.config.cache_size > 0 {
            if let Some(idx) = cache::take(this) {
                return Some(idx);
            }
            self.disown_if_off(this);
        }
        self.take_uncached()
    }

    /// With the caches off for good, this thread's cache goes back to the
    /// shared list (`cache::disown`).
    #[inline]
    fn disown_if_off(&self, this: &Arc<Shared>) {
        if self.gate.load(Relaxed) & CACHES_OFF != 0 {
            cache::disown(this);
        }
    }

    /// The shared-list part of [`take`](Self::take).
    ///
    /// Out of line: with caches on it is the fallback, and keeping it out
    /// of the inlined fast path keeps that path small.
    #[inline(never)]
    pub(crate) fn take_uncached(&self) -> Option<u32> {
        self.take_shared().or_else(|| self.take_slow())
    }

    /// One slot from the free list.
    #[inline]
    pub(crate) fn take_shared(&self) -> Option<u32> {
        let idx = self.free.pop(&self.segments)?;
        self.note_taken(idx);
        Some(idx)
    }

    #[cold]
    fn take_slow(&self) -> Option<u32> {
        if self.config.cache_size > 0
            && let Some(idx) = self.steal()
        {
            return Some(idx);
        }
        self.grow()
    }

    /// Gives slot `idx` back: to this thread's cache if it has room, else to
    /// the free list.
    #[inline]
    fn put(&self, this: &Arc<Shared>, idx: u32) {
        if self.config.cache_size > 0
            && let Some(flushed) = cache::put(this, idx)
        {
            // A full cache flushed a batch; serve waiters now that the
            // cache operation is over.
            self.serve_pushed(flushed);
            return;
        }
        self.put_uncached(idx);
        if self.config.cache_size > 0 {
            self.disown_if_off(this);
        }
    }

    /// Pushes one slot onto the free list, or hands it straight to the
    /// longest waiter if any wait (`wait.rs`).
    /// Out of line for the same reason as [`take_uncached`](Self::take_uncached).
    #[inline(never)]
    pub(crate) fn put_uncached(&self, idx: u32) {
        if self.gate.load(Relaxed) >= WAITER {
            return self.hand_over(idx);
        }
        self.free.push(&self.segments, idx);
        self.serve_pushed(1);
    }

    /// A release while someone waits: to the oldest waiter, or (if none is
    /// left) to the free list, serving anyone who arrived meanwhile.
    #[cold]
    fn hand_over(&self, idx: u32) {
        let mut panic = Panic::default();
        if let Err(idx) = self.offer(idx, &mut panic) {
            self.free.push(&self.segments, idx);
            self.serve(1, &mut panic);
        }
        panic.resume();
    }

    /// Links `slots` into a chain and pushes it with one CAS (nothing if
    /// `slots` is empty). The caller owns every slot in it. Returns how
    /// many it pushed; the caller serves waiters with
    /// [`serve_pushed`](Self::serve_pushed) once it holds no lock.
    pub(crate) fn push_many(&self, slots: impl Iterator<Item = u32>) -> usize {
        let mut chain: Option<Chain> = None;
        for idx in slots {
            chain = Some(match chain {
                None => Chain {
                    first: idx,
                    last: idx,
                    len: 1,
                },
                Some(c) => {
                    self.segments.link(c.last).store(pack(0, idx), Relaxed);
                    Chain {
                        last: idx,
                        len: c.len + 1,
                        ..c
                    }
                }
            });
        }
        match chain {
            Some(chain) => {
                self.free.push_chain(&self.segments, chain);
                chain.len as usize
            }
            None => 0,
        }
    }

    /// Pops up to `max` slots, for a cache refill: the first is returned,
    /// the others are handed to `keep` in order.
    pub(crate) fn take_many(&self, max: u32, mut keep: impl FnMut(u32)) -> Option<u32> {
        let chain = self.free.pop_chain(&self.segments, max)?;
        let mut highest = chain.first;
        let mut node = chain.first;
        while node != chain.last {
            node = unpack(self.segments.link(node).load(Relaxed)).1;
            debug_assert_ne!(node, NIL);
            highest = highest.max(node);
            keep(node);
        }
        self.note_taken(highest);
        Some(chain.first)
    }

    /// Keeps the high-water mark: `idx` just left the free list.
    #[inline]
    fn note_taken(&self, idx: u32) {
        if idx >= self.frontier.load(Relaxed) {
            self.raise_frontier(idx);
        }
    }

    #[cold]
    fn raise_frontier(&self, idx: u32) {
        self.frontier.fetch_max(idx + 1, Relaxed);
    }

    #[cold]
    pub(crate) fn count_failure<T>(&self) -> Option<T> {
        self.slow.failed.fetch_add(1, Relaxed);
        None
    }

    /// Adds the next segment if the limit allows, keeps its first slot for
    /// the caller and frees the rest. `None` if the pool is at its limit or
    /// the allocation failed (the pool keeps serving what it has).
    #[cold]
    fn grow(&self) -> Option<u32> {
        if self.config.limit == self.config.capacity {
            return None;
        }
        let (mine, pushed) = {
            let mut segments = lock(&self.slow.grow);
            // Another thread may have grown, or slots come back, meanwhile.
            if let Some(idx) = self.take_shared() {
                return Some(idx);
            }
            let capacity = self.capacity.load(Relaxed);
            let room = self.config.limit - capacity;
            if room == 0 {
                return None;
            }
            let len = capacity.min(room);
            let chain = self.segments.grow(*segments, capacity, len).ok()?;
            *segments += 1;
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
            (mine, len as usize - 1)
        };
        // Waiters are served (their wakers run) with the lock released.
        Some(self.serve_keeping(pushed, mine))
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.shared.config;
        f.debug_struct("Pool")
            .field("buffer_size", &c.buffer_size)
            .field("alignment", &c.alignment)
            .field("cache_size", &c.cache_size)
            .field("zero_on_release", &c.zero_on_release)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
