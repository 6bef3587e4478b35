//! Configuration: [`PoolBuilder`] checks every setting and reports a bad one
//! as a [`BuildError`]; nothing here panics or aborts.

use std::time::Duration;

use crate::backing::{Backing, Fallback, Request};
use crate::classes::Classes;
use crate::error::BuildError;
use crate::shared::{Config, Pool};

/// The largest number of buffers a pool can hold: `u32::MAX - 1`, because
/// slot indices are `u32` and one value marks "no slot".
pub const MAX_CAPACITY: usize = u32::MAX as usize - 1;

/// The largest buffer alignment a pool supports: one 4 KiB page.
pub const MAX_ALIGNMENT: usize = 4096;

/// The largest per-thread cache a pool supports, in buffers.
pub const MAX_CACHE_SIZE: usize = 4096;

/// Settings for a [`Pool`], checked by [`build`](PoolBuilder::build).
///
/// The defaults suit packet buffers: 4096-byte buffers, 1024 of them, 64-byte
/// (cache-line) alignment, a per-thread cache of 128 buffers, no zeroing, no
/// growth.
///
/// ```
/// use arenapool::Pool;
///
/// let pool = Pool::builder()
///     .buffer_size(1500)
///     .capacity(256)
///     .alignment(128)
///     .zero_on_release(true)
///     .cache_size(16)
///     .grow_to(1024)
///     .build()?;
/// assert_eq!(pool.buffer_size(), 1500);
/// assert_eq!(pool.stats().capacity, 256);
/// # Ok::<(), arenapool::BuildError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct PoolBuilder {
    pub(crate) buffer_size: usize,
    pub(crate) capacity: usize,
    pub(crate) alignment: usize,
    pub(crate) zero_on_release: bool,
    pub(crate) grow_to: Option<usize>,
    pub(crate) cache_size: usize,
    pub(crate) request: Request,
    /// Size classes: `(buffer_size, capacity, grow_to)` each.
    pub(crate) classes: Vec<(usize, usize, Option<usize>)>,
    /// `buffer_size`, `capacity` or `grow_to` was set (which classes
    /// replace).
    pub(crate) sized: bool,
    pub(crate) fall_up: bool,
    /// Track one acquisition in this many (0: off).
    pub(crate) track_every: u32,
    pub(crate) trim_after: Option<Duration>,
}

impl Default for PoolBuilder {
    fn default() -> Self {
        Self {
            buffer_size: 4096,
            capacity: 1024,
            alignment: 64,
            zero_on_release: false,
            grow_to: None,
            cache_size: 128,
            request: Request::default(),
            classes: Vec::new(),
            sized: false,
            fall_up: true,
            track_every: 0,
            trim_after: None,
        }
    }
}

impl PoolBuilder {
    /// Bytes in each buffer (default 4096). Must be at least 1.
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.buffer_size = bytes;
        self.sized = true;
        self
    }

    /// Buffers allocated up front (default 1024), between 1 and
    /// [`MAX_CAPACITY`].
    pub fn capacity(mut self, buffers: usize) -> Self {
        self.capacity = buffers;
        self.sized = true;
        self
    }

    /// Alignment of every buffer in bytes (default 64): a power of two up to
    /// [`MAX_ALIGNMENT`]. Buffers are `buffer_size` rounded up to this apart.
    pub fn alignment(mut self, bytes: usize) -> Self {
        self.alignment = bytes;
        self
    }

    /// Zero each buffer when it is released (default off), so no user ever
    /// sees bytes written by another. Only the bytes the previous holder
    /// could have written are cleared: up to the furthest length it
    /// reached through `extend_from_slice`, `io::Write`, `set_len` or the
    /// `BufMut` `put_*` methods (a 2-byte `put_slice` into a 64 KiB buffer
    /// clears 2 bytes), and the whole buffer once it was handed out whole
    /// (`as_full_mut`, `spare_mut`, `BufMut::chunk_mut`, a kernel read).
    pub fn zero_on_release(mut self, on: bool) -> Self {
        self.zero_on_release = on;
        self
    }

    /// Let the pool grow when it runs out, up to `max_buffers` in total
    /// (default: no growth). Each growth step adds one arena segment that
    /// doubles the capacity, cut to the limit. Memory is never moved, so
    /// handles stay valid, and it is given back only when the pool drops:
    /// the limit is what bounds it.
    pub fn grow_to(mut self, max_buffers: usize) -> Self {
        self.grow_to = Some(max_buffers);
        self.sized = true;
        self
    }

    /// Free buffers each thread keeps at hand (default 128; 0 turns the
    /// per-thread caches off), at most [`MAX_CACHE_SIZE`].
    ///
    /// With caches, acquiring and releasing touch only thread-local memory
    /// until a cache runs empty or full; then half of it moves to or from
    /// the shared free list in one step. Buffers parked in a thread's cache
    /// are not lost to others: an acquire that finds the pool empty takes
    /// them back from every cache before it gives up, grows or waits, and a
    /// thread's cache is emptied when the thread exits.
    ///
    /// The default lets a thread hold a window of 64 buffers (a server task's
    /// reads in flight, say) and release them in any order without touching the
    /// shared list. A cache costs each thread that uses the pool 4 bytes per
    /// buffer of `cache_size` (512 bytes at the default) plus a few words of
    /// bookkeeping. In a pool of fewer than about `cache_size` buffers per
    /// thread, threads take buffers back from each other's caches often (each
    /// time a system call that interrupts every CPU running the process, see
    /// the crate docs); give such a pool a smaller cache.
    pub fn cache_size(mut self, buffers: usize) -> Self {
        self.cache_size = buffers;
        self
    }

    /// Where the arenas come from (default [`Backing::Heap`]): the global
    /// allocator, or an anonymous mapping of 4 KiB pages, transparent huge
    /// pages or reserved huge pages. Every segment a growing pool adds is
    /// made the same way. See [`Backing`] for what each needs from the
    /// system, [`on_backing_unavailable`](Self::on_backing_unavailable) for
    /// what happens when the system cannot oblige, and
    /// [`Pool::backing`] for what was obtained.
    ///
    /// ```
    /// use arenapool::{Backing, Pool};
    ///
    /// let pool = Pool::builder()
    ///     .buffer_size(4096)
    ///     .capacity(512) // 2 MiB: one huge page
    ///     .backing(Backing::TransparentHugePages)
    ///     .build()?;
    /// println!("{}", pool.backing());
    /// # Ok::<(), arenapool::BuildError>(())
    /// ```
    pub fn backing(mut self, backing: Backing) -> Self {
        self.request.backing = backing;
        self
    }

    /// Records where buffers are acquired, to find leaks: one acquisition
    /// in `every` (counted per thread; 1 tracks all of them, 0, the
    /// default, none) stores its caller's location (`#[track_caller]`)
    /// and the time in the slot's entry of a side table, and its release
    /// clears it. [`Pool::outstanding`](crate::Pool::outstanding) lists the tracked buffers held
    /// now, with where and how long ago each was taken; when the last
    /// `Pool` handle drops while some are still out, the pool says so
    /// once through `tracing` (a `warn!` event, with the feature
    /// `tracing`). A buffer lost to `mem::forget` stays listed for ever.
    ///
    /// The table costs 16 bytes per buffer of the growth limit; off, it
    /// does not exist and an acquire or release tests one field.
    ///
    /// ```
    /// let pool = arenapool::Pool::builder().capacity(4).track_leaks(1).build()?;
    /// let kept = pool.try_acquire().unwrap(); // this line is reported
    /// drop(pool.try_acquire().unwrap());
    /// let out = pool.outstanding();
    /// assert_eq!(out.len(), 1);
    /// assert_eq!(out[0].location.line(), line!() - 4);
    /// assert_eq!(out[0].index, kept.index());
    /// # Ok::<(), arenapool::BuildError>(())
    /// ```
    pub fn track_leaks(mut self, every: u32) -> Self {
        self.track_every = every;
        self
    }

    /// Trim by itself (default off): when a release reaches the shared
    /// free list (any release without caches, or a thread cache flushing
    /// on the release of a borrowed buffer) and finds that fewer than
    /// half the pool's buffers have been out of that list for at least
    /// `idle`, the releasing thread
    /// runs [`Pool::trim`](crate::Pool::trim), unless another thread is
    /// growing or trimming right then. No timer or thread is involved: a
    /// pool nobody uses is not trimmed. Off, a release pays nothing for
    /// this; on, a release to the shared list reads the clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = arenapool::Pool::builder()
    ///     .capacity(4)
    ///     .grow_to(64)
    ///     .cache_size(0)
    ///     .trim_after(Duration::ZERO)
    ///     .build()?;
    /// let held: Vec<_> = (0..40).map(|_| pool.try_acquire().unwrap()).collect();
    /// assert_eq!(pool.stats().capacity, 64);
    /// drop(held);
    /// // The releases that left the pool below half full trimmed it.
    /// assert_eq!(pool.stats().capacity, 4);
    /// assert!(pool.stats().trims > 0);
    /// # Ok::<(), arenapool::BuildError>(())
    /// ```
    pub fn trim_after(mut self, idle: Duration) -> Self {
        self.trim_after = Some(idle);
        self
    }

    /// `mlock` each arena (default off), so that its pages are faulted in
    /// at build (or growth) time and never swapped out; they are unlocked
    /// and unmapped when the pool drops. Needs a mapped [`backing`](Self::backing):
    /// with [`Backing::Heap`], [`build`](Self::build) returns
    /// [`BuildError::LockHeap`]. Without `CAP_IPC_LOCK`, a process may lock
    /// only `RLIMIT_MEMLOCK` bytes in all; beyond that `mlock` fails and
    /// [`on_backing_unavailable`](Self::on_backing_unavailable) decides.
    ///
    /// ```
    /// use arenapool::{Backing, BuildError, Pool};
    ///
    /// let pool = Pool::builder().capacity(16).backing(Backing::Mmap).lock_memory(true).build()?;
    /// println!("{}", pool.backing()); // "4 KiB pages (mmap), locked" where allowed
    ///
    /// let heap = Pool::builder().lock_memory(true).build();
    /// assert_eq!(heap.unwrap_err(), BuildError::LockHeap);
    /// # Ok::<(), arenapool::BuildError>(())
    /// ```
    pub fn lock_memory(mut self, on: bool) -> Self {
        self.request.lock = on;
        self
    }

    /// What to do when the system cannot provide the requested
    /// [`backing`](Self::backing) or [`lock_memory`](Self::lock_memory):
    /// [`Fallback::Degrade`] (the default) takes the next best thing and
    /// reports it in [`Pool::backing`]; [`Fallback::Fail`] makes
    /// [`build`](Self::build) return [`BuildError::BackingUnavailable`], and
    /// makes a growth step fail (the pool keeps the buffers it has).
    ///
    /// ```
    /// use arenapool::{Backing, Fallback, Pool};
    ///
    /// let pool = Pool::builder()
    ///     .backing(Backing::Mmap)
    ///     .on_backing_unavailable(Fallback::Fail)
    ///     .build();
    /// # #[cfg(target_os = "linux")]
    /// assert!(pool.is_ok());
    /// ```
    pub fn on_backing_unavailable(mut self, fallback: Fallback) -> Self {
        self.request.fallback = fallback;
        self
    }

    /// Adds a size class of `capacity` buffers of `buffer_size` bytes: a
    /// pool with classes hands out buffers of several sizes, one handle
    /// type for all ([`capacity`](crate::PoolBuf::capacity) tells the
    /// size), and [`Pool::try_acquire_with_capacity`] and its siblings pick
    /// the smallest class that holds the size asked for. Each class has its
    /// own arena, thread caches, wait queue and counters
    /// ([`Pool::class_stats`]); the other settings (alignment, zeroing,
    /// cache size, backing) apply to every class. Classes replace
    /// [`buffer_size`](Self::buffer_size), [`capacity`](Self::capacity) and
    /// [`grow_to`](Self::grow_to); give each class its growth limit with
    /// [`growing_class`](Self::growing_class).
    ///
    /// ```
    /// let pool = arenapool::Pool::builder()
    ///     .class(64, 4096)     // headers
    ///     .class(1500, 1024)   // datagrams
    ///     .class(65536, 64)    // large reads
    ///     .build()?;
    /// assert_eq!(pool.buffer_sizes().collect::<Vec<_>>(), [64, 1500, 65536]);
    /// let buf = pool.try_acquire_with_capacity(1200)?.unwrap();
    /// assert_eq!(buf.capacity(), 1500);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn class(self, buffer_size: usize, capacity: usize) -> Self {
        self.add_class(buffer_size, capacity, None)
    }

    /// Adds a size class, as [`class`](Self::class) does, that may grow to
    /// `grow_to` buffers (see [`grow_to`](Self::grow_to)).
    pub fn growing_class(self, buffer_size: usize, capacity: usize, grow_to: usize) -> Self {
        self.add_class(buffer_size, capacity, Some(grow_to))
    }

    fn add_class(mut self, buffer_size: usize, capacity: usize, grow_to: Option<usize>) -> Self {
        self.classes.push((buffer_size, capacity, grow_to));
        self
    }

    /// Whether an acquire of a given size whose class has no free buffer
    /// takes one from the next larger class that has (default `true`), or
    /// waits (or fails, without waiting) in its own class (`false`).
    pub fn fall_up(mut self, on: bool) -> Self {
        self.fall_up = on;
        self
    }

    /// Checks the settings and allocates the first arena (one per size
    /// class).
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the first setting that is out of range, or
    /// [`BuildError::Alloc`] if the allocator cannot provide the arena, or
    /// [`BuildError::BackingUnavailable`] under [`Fallback::Fail`]. Nothing
    /// is allocated unless every setting (of every class) is valid.
    pub fn build(self) -> Result<Pool, BuildError> {
        if self.classes.is_empty() {
            return Pool::from_config(self.check()?, Classes::default());
        }
        if self.sized {
            return Err(BuildError::ClassesAndSize);
        }
        let mut classes = self.classes.clone();
        classes.sort_by_key(|c| c.0);
        if let Some(w) = classes.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(BuildError::DuplicateClass(w[0].0));
        }
        let configs = classes
            .iter()
            .map(|&(buffer_size, capacity, grow_to)| {
                PoolBuilder {
                    buffer_size,
                    capacity,
                    grow_to,
                    classes: Vec::new(),
                    ..self.clone()
                }
                .check()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (smallest, larger) = configs.split_first().expect("classes is not empty");
        let larger = larger
            .iter()
            .map(|&c| Pool::from_config(c, Classes::default()))
            .collect::<Result<Vec<_>, _>>()?;
        Pool::from_config(*smallest, Classes::new(larger, self.fall_up))
    }

    /// Validates the settings without allocating.
    pub(crate) fn check(&self) -> Result<Config, BuildError> {
        if self.buffer_size == 0 {
            return Err(BuildError::ZeroSize);
        }
        if self.capacity == 0 {
            return Err(BuildError::ZeroCapacity);
        }
        let too_large = |n: usize| BuildError::CapacityTooLarge {
            requested: n as u64,
            max: MAX_CAPACITY as u64,
        };
        if self.capacity > MAX_CAPACITY {
            return Err(too_large(self.capacity));
        }
        if !self.alignment.is_power_of_two() || self.alignment > MAX_ALIGNMENT {
            return Err(BuildError::BadAlignment(self.alignment));
        }
        if self.cache_size > MAX_CACHE_SIZE {
            return Err(BuildError::CacheTooLarge(self.cache_size));
        }
        if self.request.lock && self.request.backing == Backing::Heap {
            return Err(BuildError::LockHeap);
        }
        let capacity = self.capacity as u32;
        let limit = match self.grow_to {
            None => capacity,
            Some(n) if n > MAX_CAPACITY => return Err(too_large(n)),
            Some(n) if n < self.capacity => {
                return Err(BuildError::GrowLimitBelowCapacity {
                    capacity,
                    limit: n as u32,
                });
            }
            Some(n) => n as u32,
        };
        let stride = self
            .buffer_size
            .checked_next_multiple_of(self.alignment)
            .ok_or(BuildError::TooLarge)?;
        stride
            .checked_mul(limit as usize)
            .filter(|&bytes| bytes <= isize::MAX as usize)
            .ok_or(BuildError::TooLarge)?;
        Ok(Config {
            buffer_size: self.buffer_size,
            capacity,
            alignment: self.alignment,
            stride,
            zero_on_release: self.zero_on_release,
            limit,
            cache_size: self.cache_size as u32,
            request: self.request,
            track_every: self.track_every,
            // The idle time plus one, so that 0 means off.
            trim_after_ns: self.trim_after.map_or(0, |d| {
                u64::try_from(d.as_nanos())
                    .unwrap_or(u64::MAX)
                    .saturating_add(1)
            }),
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn err(b: PoolBuilder) -> BuildError {
        b.check().unwrap_err()
    }

    #[test]
    fn every_bad_setting_is_a_typed_error() {
        let b = PoolBuilder::default;
        assert_eq!(err(b().buffer_size(0)), BuildError::ZeroSize);
        assert_eq!(err(b().capacity(0)), BuildError::ZeroCapacity);
        assert_eq!(
            err(b().capacity(MAX_CAPACITY + 1)),
            BuildError::CapacityTooLarge {
                requested: u32::MAX as u64,
                max: MAX_CAPACITY as u64
            }
        );
        assert!(matches!(
            err(b().grow_to(usize::MAX)),
            BuildError::CapacityTooLarge { .. }
        ));
        assert_eq!(
            err(b().capacity(10).grow_to(9)),
            BuildError::GrowLimitBelowCapacity {
                capacity: 10,
                limit: 9
            }
        );
        for a in [0, 3, 48, 8192] {
            assert_eq!(err(b().alignment(a)), BuildError::BadAlignment(a));
        }
        assert_eq!(
            err(b().cache_size(MAX_CACHE_SIZE + 1)),
            BuildError::CacheTooLarge(MAX_CACHE_SIZE + 1)
        );
        assert!(b().cache_size(MAX_CACHE_SIZE).check().is_ok());
        assert!(b().cache_size(0).check().is_ok());
        assert_eq!(err(b().buffer_size(usize::MAX)), BuildError::TooLarge);
        assert_eq!(
            err(b().buffer_size(1 << 40).capacity(1 << 24)),
            BuildError::TooLarge
        );
        // The growth limit counts too, not only the initial capacity.
        assert_eq!(
            err(b().buffer_size(1 << 40).capacity(1).grow_to(1 << 24)),
            BuildError::TooLarge
        );
    }

    #[test]
    fn backing_settings_are_checked() {
        let b = PoolBuilder::default;
        assert_eq!(err(b().lock_memory(true)), BuildError::LockHeap);
        assert_eq!(
            err(b().backing(Backing::Heap).lock_memory(true)),
            BuildError::LockHeap
        );
        // The other checks still come first.
        assert_eq!(
            err(b().capacity(0).lock_memory(true)),
            BuildError::ZeroCapacity
        );
        for backing in [
            Backing::Mmap,
            Backing::TransparentHugePages,
            Backing::HugeTlb,
        ] {
            for fallback in [Fallback::Degrade, Fallback::Fail] {
                let c = b()
                    .backing(backing)
                    .lock_memory(true)
                    .on_backing_unavailable(fallback)
                    .check()
                    .unwrap();
                assert_eq!(
                    c.request,
                    Request {
                        backing,
                        lock: true,
                        fallback
                    }
                );
            }
        }
        let c = b().check().unwrap();
        assert_eq!(c.request, Request::default());
        assert_eq!(
            (c.request.backing, c.request.lock, c.request.fallback),
            (Backing::Heap, false, Fallback::Degrade)
        );
    }

    #[test]
    fn good_settings_give_the_stride() {
        let c = PoolBuilder::default()
            .buffer_size(100)
            .alignment(64)
            .check()
            .unwrap();
        assert_eq!((c.stride, c.limit, c.capacity), (128, 1024, 1024));
        let c = PoolBuilder::default()
            .buffer_size(4096)
            .alignment(4096)
            .capacity(2)
            .grow_to(5)
            .check()
            .unwrap();
        assert_eq!((c.stride, c.limit), (4096, 5));
        assert_eq!(
            PoolBuilder::default()
                .alignment(1)
                .buffer_size(3)
                .check()
                .unwrap()
                .stride,
            3
        );
    }
}
