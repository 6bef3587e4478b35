//! Giving memory back: [`Pool::trim`] and the `trim_after` policy.
//!
//! # What a trim does
//!
//! Under the growth lock (so that no growth, other trim or arena listing
//! runs meanwhile), a trim
//!
//! 1. takes the slots parked in every thread cache back onto the free list,
//!    with the steal handshake (`cache.rs`);
//! 2. pops the *whole* free list: from here until step 5 the trim owns
//!    every free slot, and nobody else can reach one;
//! 3. retires grown segments from the top down while it owns every slot of
//!    the highest live one: its arena is freed, the capacity drops to the
//!    segment's first slot, and the next growth makes a new arena for the
//!    same slots (`segments.rs`). Segment 0, the configured capacity, is
//!    never retired;
//! 4. hands the pages that lie wholly inside runs of free slots back to
//!    the kernel, for mapped arenas (`arena/pages.rs`);
//! 5. pushes the free slots back in index order, so that the lowest slots
//!    are taken first and the high segments stay free for the next trim;
//!
//! and then, with no lock held, serves waiters (their wakers are user
//! code).
//!
//! While a trim runs, its count (`SlowPath::trims`) is odd. An acquire
//! that finds the free list empty reads the count; if it is odd, it waits
//! for the growth lock and looks again, and if it moved meanwhile, it looks
//! again too (`grow.rs`): a trim never makes an acquire fail. A slot held
//! by a user is never touched, so every handle stays valid.
//!
//! Arenas the kernel may hold (io_uring fixed buffers, `Segments::pinned`)
//! are left as they are: a trim then only flushes the caches.

use std::fmt;

use crate::freelist::{Links, unpack};
use crate::shared::{Pool, Shared};
use crate::stats::Bytes;
use crate::sync::Ordering::{Relaxed, Release};
use crate::sync::{MutexGuard, lock, try_lock};

/// What [`Pool::trim`] gave back.
///
/// ```
/// let pool = arenapool::Pool::builder().capacity(8).grow_to(64).build()?;
/// let held: Vec<_> = (0..64).map(|_| pool.try_acquire().unwrap()).collect();
/// drop(held);
/// let trimmed = pool.trim();
/// assert_eq!(trimmed.segments_freed, 3); // 8 -> 16 -> 32 -> 64, undone
/// assert_eq!(trimmed.bytes_unreserved, 56 * 4096);
/// assert_eq!(pool.stats().capacity, 8);
/// println!("{trimmed}");
/// # Ok::<(), arenapool::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Trimmed {
    /// Bytes that were in memory and no longer are: the resident pages of
    /// the arenas freed, and of free slots handed back to the kernel, as
    /// the kernel reported them just before (`mincore`).
    pub bytes_released: usize,
    /// Bytes of the arenas freed (reserved, resident or not).
    pub bytes_unreserved: usize,
    /// Grown segments freed; the capacity went down by their buffers.
    pub segments_freed: usize,
    /// Buffers taken back from thread caches.
    pub buffers_flushed: usize,
}

impl Trimmed {
    fn plus(self, o: Trimmed) -> Trimmed {
        Trimmed {
            bytes_released: self.bytes_released + o.bytes_released,
            bytes_unreserved: self.bytes_unreserved + o.bytes_unreserved,
            segments_freed: self.segments_freed + o.segments_freed,
            buffers_flushed: self.buffers_flushed + o.buffers_flushed,
        }
    }
}

impl fmt::Display for Trimmed {
    /// `released 960.0 MiB resident (960.0 MiB reserved, 4 segments), 64 buffers from caches`
    /// (the trim example's heap run: `cargo run --release -p arenapool --example trim`)
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "released {} resident ({} reserved, {} segments), {} buffers from caches",
            Bytes(self.bytes_released),
            Bytes(self.bytes_unreserved),
            self.segments_freed,
            self.buffers_flushed
        )
    }
}

impl Pool {
    /// Gives memory back without invalidating any handle, in every size
    /// class: takes the buffers parked in thread caches back, frees grown
    /// segments whose buffers are all free (the capacity goes back down,
    /// never below the configured one), and hands the pages of free
    /// buffers of mapped arenas ([`Backing::Mmap`](crate::Backing::Mmap)
    /// and the huge-page backings, unless locked) back to the kernel with
    /// `madvise(MADV_DONTNEED)`; they read as zeros when next used.
    ///
    /// Buffers held by users are not touched. An acquire racing a trim
    /// waits for it (tens of milliseconds for a gibibyte of 4 KiB buffers)
    /// rather than fail.
    /// With io_uring fixed buffers registered (`uring`), the kernel may
    /// hold the arenas' pages, so a trim only flushes the caches.
    ///
    /// See [`PoolBuilder::trim_after`](crate::PoolBuilder::trim_after) for
    /// trimming without a call, and [`Stats::resident_bytes`](crate::Stats::resident_bytes)
    /// for what is in memory.
    ///
    /// ```
    /// use arenapool::{Backing, Pool};
    ///
    /// let pool = Pool::builder().capacity(16).backing(Backing::Mmap).build()?;
    /// let mut buf = pool.try_acquire().unwrap();
    /// buf.as_full_mut().fill(7);
    /// drop(buf);
    /// let trimmed = pool.trim();
    /// # #[cfg(all(target_os = "linux", not(miri)))]
    /// assert_eq!(trimmed.bytes_released, 4096); // the one page written
    /// let buf = pool.try_acquire().unwrap();
    /// # #[cfg(all(target_os = "linux", not(miri)))]
    /// assert!(buf.as_full().iter().all(|&b| b == 0)); // the page was handed back
    /// # Ok::<(), arenapool::BuildError>(())
    /// ```
    pub fn trim(&self) -> Trimmed {
        (0..=self.shared().classes.pools.len())
            .map(|k| {
                let s = self.class(k).shared();
                s.trim(lock(&s.slow.grow))
            })
            .fold(Trimmed::default(), Trimmed::plus)
    }
}

impl Shared {
    /// The trim of this class (module docs); `live` is the growth lock's
    /// guard, released before waiters are served.
    fn trim(&self, mut live: MutexGuard<'_, usize>) -> Trimmed {
        // Odd: a trim is in progress (`Shared::take_slow`). The no-op RMW
        // of the free list's head after it makes the odd count visible to
        // every thread that reads a head value written after it, such as
        // the empty list the pop below leaves.
        self.slow.trims.fetch_add(1, Relaxed);
        let even_again = EvenAgain(&self.slow.trims);
        self.free.sync();
        let flushed = if self.config.cache_size > 0 {
            self.flush_caches()
        } else {
            0
        };
        let mut out = Trimmed {
            buffers_flushed: flushed,
            ..Trimmed::default()
        };
        let pushed = if self.segments.pinned() {
            flushed
        } else {
            self.trim_free(&mut live, &mut out)
        };
        drop(even_again);
        drop(live);
        self.serve_pushed(pushed);
        out
    }

    /// Steps 2 to 5 of the module docs, with the growth lock held (`live`
    /// is its count of live segments). Returns how many slots it pushed.
    fn trim_free(&self, live: &mut usize, out: &mut Trimmed) -> usize {
        let Some(chain) = self.free.pop_chain(&self.segments, u32::MAX) else {
            return 0;
        };
        let mut slots = Vec::new();
        if slots.try_reserve_exact(chain.len as usize).is_err() {
            // No memory for the list: give the slots back as they were.
            self.free.push_chain(&self.segments, chain);
            return chain.len as usize;
        }
        let mut node = chain.first;
        slots.push(node);
        while node != chain.last {
            node = unpack(self.segments.link(node).load(Relaxed)).1;
            slots.push(node);
        }
        slots.sort_unstable();
        // Step 3: whole segments, from the top.
        while *live > 1 {
            let Some((start, len)) = self.segments.span(*live - 1) else {
                unreachable!("live segments are published")
            };
            let first = slots.partition_point(|&i| i < start);
            if slots.len() - first != len as usize {
                break;
            }
            slots.truncate(first);
            self.capacity.store(start, Release);
            // SAFETY: growth lock held; `*live - 1` is the highest live
            // segment, and every one of its `len` slots was in the free
            // list, which this trim emptied: it owns them all, and a free
            // slot has no pointer into it.
            let (bytes, resident) = unsafe { self.segments.retire(*live - 1) };
            *live -= 1;
            out.segments_freed += 1;
            out.bytes_unreserved += bytes;
            out.bytes_released += resident;
        }
        // Step 4: pages inside runs of free slots, segment by segment.
        for k in 0..*live {
            let Some((start, len)) = self.segments.span(k) else {
                unreachable!("live segments are published")
            };
            let lo = slots.partition_point(|&i| i < start);
            let hi = slots.partition_point(|&i| i < start + len);
            for run in slots[lo..hi].chunk_by(|a, b| a + 1 == *b) {
                // SAFETY: the trim owns every slot in the run (popped from
                // the free list), no pointer into a free slot is left, and
                // the arenas are not pinned (checked under this lock,
                // which pinning takes).
                out.bytes_released += unsafe {
                    self.segments
                        .discard(run[0], *run.last().expect("chunks are not empty"))
                };
            }
        }
        // Step 5.
        self.push_many(slots.into_iter())
    }

    /// The `trim_after` policy, after a release reached the shared list:
    /// notes when the pool went below half its capacity (counting buffers
    /// in thread caches as out), and trims once it stayed there for the
    /// configured time, unless another thread holds the growth lock.
    #[cold]
    #[inline(never)]
    pub(crate) fn maybe_trim(&self) {
        let capacity = self.capacity.load(Relaxed) as u64;
        let free = self.free.len(&self.segments) as u64;
        if 2 * free <= capacity {
            // At least half out: not idle.
            self.slow.below_since.store(0, Relaxed);
            return;
        }
        let now = u64::try_from(self.born.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut since = self.slow.below_since.load(Relaxed);
        if since == 0 {
            since = now.max(1);
            self.slow.below_since.store(since, Relaxed);
        }
        // `trim_after_ns` is the idle time plus one.
        if now.saturating_sub(since).saturating_add(1) < self.config.trim_after_ns {
            return;
        }
        if let Some(live) = try_lock(&self.slow.grow) {
            // The next trim is another idle period away.
            self.slow.below_since.store(now, Relaxed);
            self.trim(live);
        }
    }

    /// A growth: the pool is busy, which ends any idle period.
    #[inline]
    pub(crate) fn not_idle(&self) {
        if self.config.trim_after_ns != 0 {
            self.slow.below_since.store(0, Relaxed);
        }
    }
}

/// Makes the trim count even again when dropped, also if the trim
/// unwinds: an odd count left behind would keep every acquire that finds
/// the list empty waiting for a trim that is over (`Shared::take_slow`).
struct EvenAgain<'a>(&'a crate::sync::AtomicU64);

impl Drop for EvenAgain<'_> {
    fn drop(&mut self) {
        // Release: an acquire that sees this count sees the slots given
        // back (`Shared::take_slow`).
        self.0.fetch_add(1, Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests;
