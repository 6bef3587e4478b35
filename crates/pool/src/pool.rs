//! [`Pool`]: acquire, release, growth, waiting and statistics.
//!
//! # The hot path
//!
//! `try_acquire` is one pop from the free list (one CAS on the head), one
//! read-mostly load for the high-water mark and the slot's address
//! (`base + index * stride`). Dropping a handle is one push (one CAS) and one
//! read-mostly load of the waiter count. Nothing else shared is written.
//!
//! # Waiting without lost wake-ups
//!
//! [`Pool::acquire_timeout`] sleeps on an [`event_listener::Event`], which
//! the async acquire of a later release will share. A release wakes a
//! sleeper only if the waiter count is non-zero, so the common case pays one
//! load, not a notification. That skip is safe by a Dekker-style argument:
//!
//! * a waiter increments `waiters` (`SeqCst`), issues a `SeqCst` fence, and
//!   only then tries the free list;
//! * a releaser pushes with a `SeqCst` CAS and then loads `waiters`
//!   (`SeqCst`).
//!
//! In the single total order of `SeqCst` operations, either the releaser's
//! load comes after the increment (it sees the waiter and notifies), or it
//! comes before, and then the push precedes the waiter's fence, so the
//! waiter's attempt finds the slot. After its first attempt a waiter follows
//! event-listener's own protocol: register a listener, try again, sleep.

use std::ptr::{self, NonNull};
use std::sync::atomic::fence;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use event_listener::{Event, IntoNotification, Listener};

use crate::builder::{Config, PoolBuilder};
use crate::error::{BuildError, Exhausted};
use crate::freelist::{Chain, FreeList};
use crate::handle::{Buf, OwnedBuf};
use crate::segments::Segments;
use crate::stats::Stats;
use crate::sync::Ordering::{Acquire, Relaxed, Release, SeqCst};
use crate::sync::{AtomicU32, AtomicU64, AtomicUsize};

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
    free: FreeList,
    segments: Segments,
    config: Config,
    /// Highest slot index ever handed out, plus one. Read on every acquire,
    /// written only when it rises: see [`Stats::high_water`].
    frontier: AtomicU32,
    /// Callers sleeping (or about to) in a blocking acquire. Read on every
    /// release; see the module docs for the protocol.
    waiters: AtomicUsize,
    /// Slots in all published segments. Written only while growing.
    capacity: AtomicU32,
    event: Event,
    /// Written only on slow paths; kept off the read-mostly lines above.
    slow: CachePadded<SlowPath>,
}

struct SlowPath {
    failed: AtomicU64,
    waits: AtomicU64,
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
        let segments = Segments::new(config.capacity, config.stride, config.alignment)?;
        let free = FreeList::new();
        free.push_chain(&segments, segments.first_chain());
        Ok(Self {
            free,
            segments,
            config,
            frontier: AtomicU32::new(0),
            waiters: AtomicUsize::new(0),
            capacity: AtomicU32::new(config.capacity),
            event: Event::new(),
            slow: CachePadded::new(SlowPath {
                failed: AtomicU64::new(0),
                waits: AtomicU64::new(0),
                grow: Mutex::new(1),
            }),
        })
    }

    /// Takes a free buffer, growing the pool if it is empty and allowed to
    /// grow. Returns `None` (and counts a failed acquire) if neither works.
    /// Never blocks.
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
        match self.take() {
            Some(idx) => Some(Buf::new(self, idx)),
            None => self.count_failure(),
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
        match self.take() {
            Some(idx) => Some(OwnedBuf::new(Arc::clone(self), idx)),
            None => self.count_failure(),
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
        self.take_blocking(timeout).map(|idx| Buf::new(self, idx))
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
        self.take_blocking(timeout)
            .map(|idx| OwnedBuf::new(Arc::clone(self), idx))
    }

    /// Bytes in each buffer, as configured.
    #[inline]
    pub fn buffer_size(&self) -> usize {
        self.config.buffer_size
    }

    /// Alignment of each buffer in bytes.
    pub fn alignment(&self) -> usize {
        self.config.alignment
    }

    /// A snapshot of the pool's counters; see [`Stats`].
    pub fn stats(&self) -> Stats {
        let capacity = self.capacity.load(Acquire) as usize;
        let free = self.free.len(&self.segments) as usize;
        Stats {
            capacity,
            max_capacity: self.config.limit as usize,
            in_use: capacity.saturating_sub(free),
            high_water: self.frontier.load(Relaxed) as usize,
            failed_acquires: self.slow.failed.load(Relaxed),
            waits: self.slow.waits.load(Relaxed),
            segments: *self
                .slow
                .grow
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// Pointer to slot `idx`, derived from its arena's allocation.
    #[inline]
    pub(crate) fn slot_ptr(&self, idx: u32) -> NonNull<u8> {
        self.segments.slot_ptr(idx)
    }

    /// Pops a free slot, or grows. Counts nothing on failure.
    #[inline]
    fn take(&self) -> Option<u32> {
        let idx = match self.free.pop(&self.segments) {
            Some(idx) => idx,
            None => self.grow()?,
        };
        if idx >= self.frontier.load(Relaxed) {
            self.raise_frontier(idx);
        }
        Some(idx)
    }

    #[cold]
    fn raise_frontier(&self, idx: u32) {
        self.frontier.fetch_max(idx + 1, Relaxed);
    }

    #[cold]
    fn count_failure<T>(&self) -> Option<T> {
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
        let mut segments = self
            .slow
            .grow
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Another thread may have grown, or slots come back, meanwhile.
        if let Some(idx) = self.free.pop(&self.segments) {
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
        if len > 1 {
            let rest = Chain {
                first: mine + 1,
                last: chain.last,
                len: len - 1,
            };
            self.free.push_chain(&self.segments, rest);
            if self.waiters.load(SeqCst) != 0 {
                self.event.notify((rest.len as usize).additional());
            }
        }
        Some(mine)
    }

    /// The blocking acquire behind `acquire_timeout`.
    fn take_blocking(&self, timeout: Duration) -> Result<u32, Exhausted> {
        if let Some(idx) = self.take() {
            return Ok(idx);
        }
        let start = Instant::now();
        let deadline = start.checked_add(timeout);
        self.slow.waits.fetch_add(1, Relaxed);
        self.waiters.fetch_add(1, SeqCst);
        fence(SeqCst);
        let got = loop {
            if let Some(idx) = self.take() {
                break Some(idx);
            }
            let listener = self.event.listen();
            if let Some(idx) = self.take() {
                break Some(idx);
            }
            match deadline {
                None => listener.wait(),
                Some(deadline) => {
                    if listener.wait_deadline(deadline).is_none() {
                        // Timed out; one last look before giving up.
                        break self.take();
                    }
                }
            }
        };
        self.waiters.fetch_sub(1, SeqCst);
        got.ok_or_else(|| {
            self.slow.failed.fetch_add(1, Relaxed);
            Exhausted {
                waited: start.elapsed(),
            }
        })
    }

    /// Returns slot `idx` to the free list and wakes a waiter if any.
    ///
    /// # Safety
    ///
    /// The caller owns slot `idx` (it came from `take` and was not returned
    /// since), `ptr` is `self.slot_ptr(idx)`, `dirty <= buffer_size`, and
    /// the caller does not touch the slot afterwards.
    #[inline]
    pub(crate) unsafe fn release(&self, idx: u32, ptr: NonNull<u8>, dirty: usize) {
        debug_assert_eq!(ptr, self.slot_ptr(idx));
        debug_assert!(dirty <= self.config.buffer_size);
        if self.config.zero_on_release && dirty > 0 {
            // SAFETY: the caller owns the slot, and `dirty` bytes from `ptr`
            // lie inside it; `ptr` derives from the arena allocation.
            unsafe { ptr::write_bytes(ptr.as_ptr(), 0, dirty) };
        }
        self.free.push(&self.segments, idx);
        if self.waiters.load(SeqCst) != 0 {
            self.wake_one();
        }
    }

    #[cold]
    fn wake_one(&self) {
        // `additional`: a plain `notify(1)` only makes sure that *some*
        // listener is notified, so a burst of releases before the first
        // woken waiter runs would wake just one.
        self.event.notify(1.additional());
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("buffer_size", &self.config.buffer_size)
            .field("alignment", &self.config.alignment)
            .field("zero_on_release", &self.config.zero_on_release)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
