//! The state shared by the pool handles, the buffers, the thread caches and
//! the wait queue ([`Shared`]), the [`Pool`] handle itself, and the
//! reference counting that decides when that state is freed.
//!
//! Everything above this module (`pool.rs`, `cache.rs`, `wait.rs`,
//! `handle.rs`, `builder.rs`, `future.rs`) imports from here; this module
//! imports none of them.
//!
//! # Who keeps the pool alive
//!
//! [`Shared`] lives in an `Arc` that has exactly one strong reference, the
//! *lease*, plus the weak references of thread caches (`cache.rs`). The
//! lease is released when `refs` reaches zero, and `refs` is the sum of:
//!
//! * one while the pool is *open*, that is while any [`Pool`] handle is
//!   alive (`handles > 0`);
//! * one per [`OwnedBuf`](crate::OwnedBuf) taken on the shared path;
//! * the *credits* of every thread cache: references a cache took from
//!   `refs` in a batch and hands to the owned buffers it serves, one each,
//!   without touching `refs`; a release into a cache gives its reference
//!   back to the cache as a credit, again without touching `refs`.
//!
//! So in steady state the owned path makes no atomic read-modify-write on
//! shared memory: a cache goes to `refs` once per [`CREDITS`] buffers
//! (`fetch_add` to refill, `fetch_sub` to flush). A borrowed
//! [`PoolBuf`](crate::PoolBuf) borrows a handle and holds no reference.
//!
//! Cloning a `Pool` adds one to `handles`; dropping the last handle *closes*
//! the pool (`cache.rs`): under the cache-list lock it sets the `CACHES_OFF`
//! bit of `gate`, so that no cache operation starts any more, waits (with the
//! steal handshake) for operations in progress to end, takes every cache's
//! slots and credits, and subtracts those credits and the open reference from
//! `refs`. From then on every release goes to the shared path and subtracts
//! its own reference, so the last buffer (or frozen view) to go releases the
//! lease, promptly, whichever threads still have caches: their entries keep
//! only a weak reference.
//!
//! `refs` cannot reach zero before the pool is closed: until then it holds
//! the open reference and every credit. A handle can be cloned again after
//! the pool closed only from an owned buffer
//! ([`OwnedBuf::pool`](crate::OwnedBuf::pool)), whose reference keeps
//! `refs` above zero; such a clone reopens the pool (`handles` from 0 to 1
//! adds the open reference back), with the caches staying off.

use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::{Arc, Weak};

use crossbeam_utils::CachePadded;

use crate::backing::Request;
use crate::cache::Cache;
use crate::classes::Classes;
use crate::error::BuildError;
use crate::freelist::{Chain, FreeList, Links, NIL, pack, unpack};
use crate::segments::Segments;
use crate::sync::Ordering::{Acquire, Relaxed, Release};
use crate::sync::{AtomicU32, AtomicU64, AtomicUsize, Mutex};
use crate::wait::Queue;

/// A configuration that passed every check, in the types the pool uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub(crate) buffer_size: usize,
    pub(crate) capacity: u32,
    pub(crate) alignment: usize,
    /// `buffer_size` rounded up to `alignment`: the distance between slots.
    pub(crate) stride: usize,
    pub(crate) zero_on_release: bool,
    /// Most slots the pool may ever have (`capacity` when it cannot grow).
    pub(crate) limit: u32,
    /// Slots each thread may keep in its cache; 0 disables caches.
    pub(crate) cache_size: u32,
    /// Where each arena comes from.
    pub(crate) request: Request,
    /// Track one acquisition in this many (`leaks.rs`); 0: off.
    pub(crate) track_every: u32,
    /// Trim after the pool stayed below half its capacity for this many
    /// nanoseconds less one (`trim.rs`); 0: never by itself.
    pub(crate) trim_after_ns: u64,
}

/// References a thread cache takes from `refs` at once, for the owned
/// buffers it serves; it gives back all but this many when it holds more
/// than twice as many.
pub(crate) const CREDITS: usize = 256;

/// A handle to a pool of fixed-size byte buffers carved from one arena.
///
/// `Pool` is a cheap handle: cloning it costs one reference count, and
/// every clone names the same buffers. Share it by clone (or by reference)
/// between threads and tasks; there is no need for an `Arc<Pool>`.
///
/// Buffers come out as RAII handles: [`PoolBuf`](crate::PoolBuf) borrows
/// the pool, [`OwnedBuf`](crate::OwnedBuf) is `'static` and keeps the
/// pool's memory alive by itself. Dropping a buffer returns it to the
/// pool, also during a panic. The memory is freed when the last handle,
/// owned buffer and frozen view ([`SharedBuf`](crate::SharedBuf)) are
/// all gone.
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
/// let b = pool.clone().try_acquire_owned().expect("a free buffer");
/// assert!(pool.try_acquire().is_none(), "both buffers are out");
/// drop((a, b));
/// assert_eq!(pool.stats().in_use, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Pool {
    /// The lease's `Shared` (see the module docs): valid while this handle
    /// is counted in `handles`, or while the owned buffer that holds this
    /// (uncounted) copy keeps its reference.
    shared: NonNull<Shared>,
}

// SAFETY: `Pool` is a pointer to `Shared`, whose state is atomics, locks
// and slots handed to one owner at a time; every method takes `&self`.
unsafe impl Send for Pool {}
// SAFETY: as above.
unsafe impl Sync for Pool {}

impl Pool {
    /// Builds the shared state and its first handle; `classes` are the
    /// pool's larger size classes (`classes.rs`), empty for one size.
    pub(crate) fn from_config(config: Config, classes: Classes) -> Result<Self, BuildError> {
        let lease = Arc::into_raw(Shared::new(config, classes)?);
        Ok(Self {
            shared: NonNull::new(lease.cast_mut()).expect("Arc::into_raw is never null"),
        })
    }

    /// The shared state.
    #[inline]
    pub(crate) fn shared(&self) -> &Shared {
        // SAFETY: valid while `self` is (field invariant); `Shared` is only
        // ever reached through shared references.
        unsafe { self.shared.as_ref() }
    }

    /// The shared state's pointer, for handles that must release their
    /// reference after the last use of `&Shared`.
    #[inline]
    pub(crate) fn shared_ptr(&self) -> NonNull<Shared> {
        self.shared
    }

    /// A copy of this handle that is not counted in `handles`: for an
    /// owned buffer, which keeps the memory alive by its own reference.
    /// Never dropped as a `Pool` (hence `ManuallyDrop`).
    #[inline]
    pub(crate) fn uncounted(&self) -> ManuallyDrop<Pool> {
        ManuallyDrop::new(Pool {
            shared: self.shared,
        })
    }

    /// Whether two handles name the same pool (as `Arc::ptr_eq`).
    ///
    /// ```
    /// let a = arenapool::Pool::new(64, 1)?;
    /// let b = arenapool::Pool::new(64, 1)?;
    /// assert!(arenapool::Pool::ptr_eq(&a, &a.clone()));
    /// assert!(!arenapool::Pool::ptr_eq(&a, &b));
    /// # Ok::<(), arenapool::BuildError>(())
    /// ```
    #[inline]
    pub fn ptr_eq(this: &Pool, other: &Pool) -> bool {
        this.shared == other.shared
    }
}

impl Clone for Pool {
    /// One more handle to the same pool: one atomic increment.
    #[inline]
    fn clone(&self) -> Self {
        let s = self.shared();
        if s.handles.fetch_add(1, Relaxed) == 0 {
            // Reopened from an owned buffer's copy (module docs): its
            // reference keeps `refs` above zero meanwhile.
            s.refs.fetch_add(1, Relaxed);
        }
        Self {
            shared: self.shared,
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let handles = &self.shared().handles;
        if handles.fetch_sub(1, Release) != 1 {
            return;
        }
        acquire(handles);
        self.report_leaks();
        let credits = self.shared().close();
        // SAFETY: the open reference and the reclaimed credits are ours
        // to give back, and `self` does not touch the state afterwards.
        unsafe { Shared::unref(self.shared, 1 + credits) };
    }
}

/// The acquire half of dropping the last of a count, after its
/// `fetch_sub(.., Release)` returned 1: whoever took the count to zero
/// then sees everything the other holders did before their decrements.
///
/// An acquire load of the counter rather than `fence(Acquire)`, as in
/// std's `Arc` under ThreadSanitizer: TSan does not model fences, and with
/// a fence it reported the free of a pool whose last handle dropped while
/// another thread gave back its last buffer as a race with that thread's
/// last use (`tests/pool_lifetime.rs`, 3 of 10 runs). The load reads
/// our own decrement, which is in the release sequence of every earlier
/// decrement, so it synchronises with all of them, as the fence does; on
/// x86 both are free.
#[inline]
fn acquire(count: &AtomicUsize) {
    count.load(Acquire);
}

/// The pool's state, shared with the thread caches.
pub(crate) struct Shared {
    pub(crate) free: FreeList,
    pub(crate) segments: Segments,
    pub(crate) config: Config,
    /// Highest slot index ever taken from the free list, plus one. Written
    /// only when it rises: see `Stats::high_water`.
    pub(crate) frontier: AtomicU32,
    /// `WAITER` times the number of callers waiting (blocking or async)
    /// and not yet granted a slot, plus `STEALING` while a thread takes the
    /// slots out of every cache, plus `CACHES_OFF` for good once the cache
    /// handshake's barrier failed (`cache.rs`) or the last handle dropped.
    /// One word, so that the cached hot path learns "leave the cache
    /// alone" from a single load; read on every acquire and release.
    pub(crate) gate: AtomicUsize,
    /// Whether the cache handshake uses `membarrier` (see `barrier.rs`);
    /// fixed at build time so both sides agree.
    pub(crate) asymmetric: bool,
    /// Slots in all live segments. Written only under the growth lock
    /// (growing, and trimming: `trim.rs`).
    pub(crate) capacity: AtomicU32,
    /// The wait queue (`wait.rs`). Its lock is never held while user code
    /// (a waker) runs.
    pub(crate) queue: Mutex<Queue>,
    /// Every thread cache of this pool. Its lock also serialises stealing,
    /// closing, and the hand-back of a cache when its thread exits.
    pub(crate) caches: Mutex<Vec<crate::sync::Arc<Cache>>>,
    /// This state's own weak reference, for thread caches to keep.
    pub(crate) me: Weak<Shared>,
    /// The pool's other size classes, larger than this one, each a pool of
    /// its own (`classes.rs`); empty for a pool of one size and for the
    /// classes themselves.
    pub(crate) classes: Classes,
    /// Where tracked buffers were acquired (`leaks.rs`); `None` unless
    /// `track_leaks` is on.
    pub(crate) leaks: Option<Box<crate::leaks::Leaks>>,
    /// A release has work before the slot goes back: `zero_on_release`,
    /// or clearing the slot's leak record.
    pub(crate) release_work: bool,
    /// When the pool was built, the epoch of `SlowPath::below_since`.
    pub(crate) born: std::time::Instant,
    /// Written only on slow paths; kept off the read-mostly lines above.
    pub(crate) slow: CachePadded<SlowPath>,
    /// Pool handles alive, and references that keep the memory (module
    /// docs); written by clones, the shared path and cache batches only.
    pub(crate) handles: CachePadded<AtomicUsize>,
    pub(crate) refs: CachePadded<AtomicUsize>,
    /// Under loom the lease is never freed, so that a model can check that
    /// it is released exactly once and never used afterwards.
    #[cfg(loom)]
    pub(crate) released: crate::sync::AtomicBool,
}

/// `Shared::gate` bit: a steal (or the close) is in progress.
pub(crate) const STEALING: usize = 1;
/// `Shared::gate` bit: the thread caches are off for good, because the
/// steal handshake's heavy barrier failed (`cache.rs`), or the pool closed.
pub(crate) const CACHES_OFF: usize = 2;
/// `Shared::gate` unit: one waiter not yet granted a slot.
pub(crate) const WAITER: usize = 4;

pub(crate) struct SlowPath {
    pub(crate) failed: AtomicU64,
    pub(crate) waits: AtomicU64,
    /// Nanoseconds waiters spent in the queue, in all and the longest.
    pub(crate) wait_ns: AtomicU64,
    pub(crate) max_wait_ns: AtomicU64,
    /// Steals that emptied the thread caches (`cache.rs`).
    pub(crate) steals: AtomicU64,
    /// The most buffers seen held by users at once (`Pool::stats`).
    pub(crate) held_high: AtomicUsize,
    /// The tallies of threads that exited, and counts made while a
    /// thread's cache was out of reach (`cache.rs`).
    pub(crate) retired: crate::cache::Tally,
    /// Waiters that ever joined the queue (`wait.rs`).
    pub(crate) arrivals: AtomicUsize,
    /// Segments added.
    pub(crate) growths: AtomicU64,
    /// Twice the trims run, plus one while one runs (`trim.rs`,
    /// `Shared::take_slow`).
    pub(crate) trims: AtomicU64,
    /// For `trim_after`: since when the pool has been seen below half
    /// its capacity, in nanoseconds since `born` (at least 1); 0 while it
    /// is not below (`trim.rs`).
    pub(crate) below_since: AtomicU64,
    /// Serialises growth and trimming; holds the number of live segments.
    pub(crate) grow: Mutex<usize>,
}

impl Shared {
    fn new(config: Config, classes: Classes) -> Result<Arc<Self>, BuildError> {
        let segments = Segments::new(
            config.capacity,
            config.stride,
            config.alignment,
            config.request,
        )?;
        let free = FreeList::new();
        free.push_chain(&segments, segments.first_chain());
        let asymmetric = config.cache_size > 0 && crate::barrier::asymmetric_available();
        Ok(Arc::new_cyclic(|me| Shared {
            free,
            segments,
            config,
            frontier: AtomicU32::new(0),
            gate: AtomicUsize::new(0),
            asymmetric,
            capacity: AtomicU32::new(config.capacity),
            queue: Queue::new(),
            caches: Mutex::new(Vec::new()),
            me: me.clone(),
            leaks: crate::leaks::Leaks::new(config.track_every, config.limit),
            release_work: config.zero_on_release || config.track_every > 0,
            classes,
            slow: CachePadded::new(SlowPath {
                failed: AtomicU64::new(0),
                waits: AtomicU64::new(0),
                wait_ns: AtomicU64::new(0),
                max_wait_ns: AtomicU64::new(0),
                steals: AtomicU64::new(0),
                held_high: AtomicUsize::new(0),
                retired: crate::cache::Tally::default(),
                arrivals: AtomicUsize::new(0),
                growths: AtomicU64::new(0),
                trims: AtomicU64::new(0),
                below_since: AtomicU64::new(0),
                grow: Mutex::new(1),
            }),
            born: std::time::Instant::now(),
            handles: CachePadded::new(AtomicUsize::new(1)),
            refs: CachePadded::new(AtomicUsize::new(1)),
            #[cfg(loom)]
            released: crate::sync::AtomicBool::new(false),
        }))
    }

    /// One reference for an owned buffer taken on the shared path. The
    /// caller holds a handle (or a buffer), so `refs` is above zero.
    #[inline]
    pub(crate) fn add_ref(&self, n: usize) {
        self.check_alive();
        self.refs.fetch_add(n, Relaxed);
    }

    /// Gives `n` references back; the last one releases the lease, which
    /// frees the state unless a thread cache's exit holds it right now.
    ///
    /// # Safety
    ///
    /// `this` is a live pool's state, the caller owns `n` of its
    /// references, and it does not use `this` (or any reference derived
    /// from it) afterwards unless it holds another reference.
    pub(crate) unsafe fn unref(this: NonNull<Shared>, n: usize) {
        // SAFETY: the caller's references keep the state alive until the
        // `fetch_sub` below; the reference ends with this statement.
        let refs = &unsafe { this.as_ref() }.refs;
        if refs.fetch_sub(n, Release) != n {
            return;
        }
        acquire(refs);
        #[cfg(loom)]
        {
            // SAFETY: the lease is never freed under loom (field docs).
            let s = unsafe { this.as_ref() };
            assert!(!s.released.swap(true, Relaxed), "lease released twice");
            // What freeing would drop and loom tracks: the caches.
            crate::sync::lock(&s.caches).clear();
        }
        #[cfg(not(loom))]
        // SAFETY: `refs` reached zero, so nothing else holds a reference:
        // the lease is ours, and `this` came from `Arc::into_raw`.
        drop(unsafe { Arc::from_raw(this.as_ptr().cast_const()) });
    }

    /// Under loom: fails the model if the state is used after its lease
    /// was released.
    #[inline]
    pub(crate) fn check_alive(&self) {
        #[cfg(loom)]
        assert!(!self.released.load(Relaxed), "pool used after release");
    }

    /// One slot from the free list.
    #[inline]
    pub(crate) fn take_shared(&self) -> Option<u32> {
        let idx = self.free.pop(&self.segments)?;
        self.note_taken(idx);
        Some(idx)
    }

    /// Links `slots` into a chain and pushes it with one CAS (nothing if
    /// `slots` is empty). The caller owns every slot in it. Returns how
    /// many it pushed; the caller serves waiters with `serve_pushed`
    /// (`wait.rs`) once it holds no lock.
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
    pub(crate) fn note_taken(&self, idx: u32) {
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
        self.note_held();
        None
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use std::ptr::NonNull;

    use super::Shared;
    use crate::cache::loom_tests::pool;
    use crate::sync::Ordering::Relaxed;
    use crate::sync::{model, thread};

    /// Whether the lease was released (under loom it is marked, not freed),
    /// letting joined threads finish their thread-local destructors first:
    /// loom may run those after `join` returns, where std runs them before.
    fn eventually_released(shared: NonNull<Shared>) -> bool {
        for _ in 0..4 {
            // SAFETY: never freed under loom.
            if unsafe { shared.as_ref() }.released.load(Relaxed) {
                return true;
            }
            thread::yield_now();
        }
        false
    }

    /// The last handle drops while an owned buffer is released on another
    /// thread (into that thread's cache, as a credit, which the close must
    /// take back) and a frozen view is dropped on a third: the lease is
    /// released exactly once, after the last of them, and nothing uses the
    /// pool afterwards (`check_alive`).
    #[test]
    fn pool_dropped_while_buffers_bytes_and_caches_are_out() {
        model(|| {
            let p = pool(3, 2);
            let shared = p.shared_ptr();
            let a = p.try_acquire_owned().unwrap();
            let b = p.try_acquire_owned().unwrap();
            let t = thread::spawn(move || drop(a));
            #[cfg(feature = "bytes")]
            let b = b.freeze();
            let u = thread::spawn(move || drop(b));
            drop(p);
            t.join().unwrap();
            u.join().unwrap();
            assert!(eventually_released(shared), "the pool was never released");
        });
    }

    /// A thread that cached the pool (slots and credits) exits while the
    /// last handle drops and the last owned buffer is released: one of the
    /// three releases the lease, once.
    #[test]
    fn pool_dropped_while_a_caching_thread_exits() {
        model(|| {
            let p = pool(2, 2);
            let shared = p.shared_ptr();
            let q = p.clone();
            let last = p.try_acquire_owned().unwrap();
            let t = thread::spawn(move || {
                drop(q.try_acquire_owned().unwrap()); // a credit in this cache
                drop(q);
            });
            drop(p);
            drop(last);
            t.join().unwrap();
            assert!(eventually_released(shared), "the pool was never released");
        });
    }
}
