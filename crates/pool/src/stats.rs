//! A snapshot of a pool's counters.

use std::fmt;
use std::time::Duration;

/// What [`Pool::stats`](crate::Pool::stats) reports. For a pool with size
/// classes, the sum over its classes ([`Pool::class_stats`](crate::Pool::class_stats)
/// gives each).
///
/// Buffer counts are exact whenever no acquire or release is in flight, and
/// a consistent recent value otherwise. None of them costs a shared counter
/// on the acquire/release hot path: `in_use` is the capacity less the free
/// list's length (kept in its link words) and the thread caches' lengths,
/// `high_water` comes from the highest slot ever taken off the free list,
/// the cumulative `acquires`, `refills` and `flushes` are counted per
/// thread (a plain store into memory only that thread writes) and summed
/// when read, `releases` is what was acquired less what is in use, and
/// the other event counters are written only on slow paths.
///
/// `Display` gives a one-line summary; with the feature `serde` it is
/// `serde::Serialize` and `Deserialize`.
///
/// ```
/// let pool = arenapool::Pool::new(64, 4)?;
/// let a = pool.try_acquire().unwrap();
/// drop(a);
/// let s = pool.stats();
/// assert_eq!((s.acquires, s.releases, s.in_use), (1, 1, 0));
/// assert!(s.to_string().starts_with("4 buffers (0 in use"));
/// # Ok::<(), arenapool::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
#[non_exhaustive]
pub struct Stats {
    /// Buffers the pool has now (grows with `grow_to`, and goes back down
    /// with [`Pool::trim`](crate::Pool::trim)).
    pub capacity: usize,
    /// Most buffers the pool may ever have: the `grow_to` limit, or
    /// `capacity` when the pool cannot grow.
    pub max_capacity: usize,
    /// Buffers held by users right now.
    pub in_use: usize,
    /// Free buffers parked in per-thread caches right now.
    pub cached: usize,
    /// Most buffers ever out of the shared free list at once: held by
    /// users or parked in thread caches. The list is LIFO and starts in
    /// index order, so this is the highest slot index ever taken, plus one.
    /// With `cache_size(0)` it is exactly the most buffers ever held at
    /// once; with caches it can exceed that by what the caches held (see
    /// `held_high_water`). A peak, so after a trim it can exceed
    /// `capacity`.
    pub high_water: usize,
    /// The most buffers seen held by users at once, not counting thread
    /// caches: sampled at every growth and failed acquire and whenever
    /// the stats are read, so it is exact for a pool that an acquire
    /// found empty, and otherwise a lower bound (a peak between two
    /// reads, or one that only made callers wait, is not seen).
    pub held_high_water: usize,
    /// Successful acquires, of every kind (`try_acquire`, blocking, async,
    /// by size), since the pool was built.
    pub acquires: u64,
    /// Buffers returned (a handle dropped, or the last view of a frozen
    /// buffer), since the pool was built: `acquires - in_use`, exact
    /// like `in_use` when no acquire or release is in flight. A buffer
    /// lost to `mem::forget` is never returned and stays in use.
    pub releases: u64,
    /// Acquires that returned without a buffer (`try_acquire` on an
    /// exhausted pool, timeouts).
    pub failed_acquires: u64,
    /// Acquires that found the pool empty (or others waiting) and queued.
    pub waits: u64,
    /// Callers in the wait queue right now (blocking and async) that have
    /// not been handed a buffer yet. A waiter that was handed one stops
    /// counting at once, even before it runs to collect it (and so does a
    /// future that was leaked while it waited).
    pub waiting: usize,
    /// Time waiters spent in the queue, all of them together (a waiter
    /// counts once it got its buffer, timed out or gave up).
    pub wait_total: Duration,
    /// The longest one waiter spent in the queue.
    pub wait_max: Duration,
    /// Times the pool grew by a segment.
    pub growths: u64,
    /// Times the pool was trimmed ([`Pool::trim`](crate::Pool::trim), or
    /// by itself with [`trim_after`](crate::PoolBuilder::trim_after)).
    pub trims: u64,
    /// Times a thread took the buffers parked in every thread cache back,
    /// because the shared list was empty.
    pub steals: u64,
    /// Times a thread cache refilled itself from the shared list.
    pub refills: u64,
    /// Times a full thread cache gave half of itself back.
    pub flushes: u64,
    /// Arena segments allocated now: 1, plus one per growth step that no
    /// trim has undone.
    pub segments: usize,
    /// Bytes of the arenas the pool holds now: what it asked the system
    /// for, in memory or not.
    pub reserved_bytes: usize,
    /// Of `reserved_bytes`, those in memory now, as the kernel reports
    /// them (`mincore`, counting whole pages; where it cannot be asked,
    /// all of them). Fresh arena pages count only once written, and
    /// [`Pool::trim`](crate::Pool::trim) hands those of free buffers of
    /// mapped arenas back.
    pub resident_bytes: usize,
    /// Threads that have a cache for this pool now (live threads that used
    /// it since it was built).
    pub threads: usize,
    /// The thread caches are off for good: the barrier that lets a thread
    /// take back what idle threads' caches hold failed (Linux's
    /// `membarrier`, refused by a seccomp filter installed after the pool
    /// was built, for example). The pool keeps working without caches;
    /// what a thread had cached goes back the next time that thread uses
    /// the pool, or when it exits.
    pub caches_off: bool,
}

impl Stats {
    /// The counters of two pools (two size classes) added up: buffer
    /// counts and event counts are sums, `threads` is the larger of the
    /// two (a thread that uses both counts once at least), `wait_max` the
    /// longer, and `caches_off` holds if it holds for either. The high
    /// waters add up to at most the classes' peaks together.
    pub(crate) fn plus(&self, o: &Stats) -> Stats {
        Stats {
            capacity: self.capacity + o.capacity,
            max_capacity: self.max_capacity + o.max_capacity,
            in_use: self.in_use + o.in_use,
            cached: self.cached + o.cached,
            high_water: self.high_water + o.high_water,
            held_high_water: self.held_high_water + o.held_high_water,
            acquires: self.acquires + o.acquires,
            releases: self.releases + o.releases,
            failed_acquires: self.failed_acquires + o.failed_acquires,
            waits: self.waits + o.waits,
            waiting: self.waiting + o.waiting,
            wait_total: self.wait_total + o.wait_total,
            wait_max: self.wait_max.max(o.wait_max),
            growths: self.growths + o.growths,
            trims: self.trims + o.trims,
            reserved_bytes: self.reserved_bytes + o.reserved_bytes,
            resident_bytes: self.resident_bytes + o.resident_bytes,
            steals: self.steals + o.steals,
            refills: self.refills + o.refills,
            flushes: self.flushes + o.flushes,
            segments: self.segments + o.segments,
            threads: self.threads.max(o.threads),
            caches_off: self.caches_off || o.caches_off,
        }
    }
}

impl fmt::Display for Stats {
    /// One line: buffers, the high waters, then the cumulative counts;
    /// its shape (the numbers are made up):
    ///
    /// ```text
    /// 1024 buffers (12 in use, 40 cached; high water 130, held 100), 4.0 MiB reserved, 1.2 MiB resident, 9000 acquires, 8988 releases, 0 failed, 3 waits (1.2ms, longest 800µs), 0 growths, 0 trims, 1 steals, 70 refills, 64 flushes, 2 threads
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} buffers (", self.capacity)?;
        write!(
            f,
            "{} in use, {} cached; high water {}, held {})",
            self.in_use, self.cached, self.high_water, self.held_high_water
        )?;
        if self.max_capacity > self.capacity {
            write!(f, " of at most {}", self.max_capacity)?;
        }
        write!(
            f,
            ", {} reserved, {} resident",
            Bytes(self.reserved_bytes),
            Bytes(self.resident_bytes)
        )?;
        write!(
            f,
            ", {} acquires, {} releases, {} failed, {} waits",
            self.acquires, self.releases, self.failed_acquires, self.waits
        )?;
        if self.waits > 0 {
            write!(f, " ({:?}, longest {:?})", self.wait_total, self.wait_max)?;
        }
        if self.waiting > 0 {
            write!(f, ", {} waiting", self.waiting)?;
        }
        write!(
            f,
            ", {} growths, {} trims, {} steals, {} refills, {} flushes, {} threads",
            self.growths, self.trims, self.steals, self.refills, self.flushes, self.threads
        )?;
        if self.caches_off {
            f.write_str(", caches off")?;
        }
        Ok(())
    }
}

/// A byte count in the largest binary unit that keeps it at least 1.
pub(crate) struct Bytes(pub(crate) usize);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        let mut v = self.0 as f64 / 1024.0;
        let mut unit = 0;
        while v >= 1024.0 && unit + 1 < UNITS.len() {
            v /= 1024.0;
            unit += 1;
        }
        write!(f, "{v:.1} {}", UNITS[unit])
    }
}
