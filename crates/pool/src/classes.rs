//! Size classes: one [`Pool`] handing out buffers of several sizes.
//!
//! A pool built with [`PoolBuilder::class`](crate::PoolBuilder::class) is
//! its smallest class; each larger class is a pool of its own, held by the
//! smallest one's state ([`Classes`]), with its own arena segments, free
//! list, thread caches, wait queue, growth limit and counters. The
//! `*_with_capacity` acquires pick the smallest class whose buffers hold
//! the size asked for, with a scan of the sorted sizes, and fall up to a
//! larger class when that one is empty (unless
//! [`fall_up(false)`](crate::PoolBuilder::fall_up)). A buffer belongs to
//! its class's pool, which is where it goes back; [`OwnedBuf::pool`] and
//! [`PoolBuf::pool`] name that class.
//!
//! Nothing here touches the single-size hot path: `try_acquire` is what it
//! was, and takes from the smallest class.

#[cfg(feature = "async")]
use std::future::Future;
#[cfg(feature = "async")]
use std::panic::Location;
use std::time::Duration;

use crate::error::{AcquireError, TooLarge};
use crate::handle::{OwnedBuf, PoolBuf};
use crate::shared::Pool;
use crate::stats::Stats;

/// The classes above a pool's own size, smallest first.
#[derive(Default)]
pub(crate) struct Classes {
    /// Buffer size of each class in `pools`, ascending; all above the
    /// owning pool's size.
    sizes: Box<[usize]>,
    pub(crate) pools: Box<[Pool]>,
    /// Whether an empty class hands the request to a larger one.
    fall_up: bool,
}

impl Classes {
    /// `pools` sorted by buffer size, each larger than the owner's.
    pub(crate) fn new(pools: Vec<Pool>, fall_up: bool) -> Self {
        debug_assert!(pools.is_sorted_by_key(Pool::buffer_size));
        Self {
            sizes: pools.iter().map(Pool::buffer_size).collect(),
            pools: pools.into_boxed_slice(),
            fall_up,
        }
    }
}

/// One size class of a pool, as [`Pool::class_stats`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ClassStats {
    /// Bytes in each buffer of the class.
    pub buffer_size: usize,
    /// The class's own counters.
    pub stats: Stats,
}

impl Pool {
    /// Class `k` of this pool: 0 is the pool itself.
    #[inline]
    pub(crate) fn class(&self, k: usize) -> &Pool {
        match k {
            0 => self,
            k => &self.shared().classes.pools[k - 1],
        }
    }

    /// The smallest class whose buffers hold `n` bytes.
    #[inline]
    fn class_for(&self, n: usize) -> Result<usize, TooLarge> {
        let s = self.shared();
        if n <= s.config.buffer_size {
            return Ok(0);
        }
        let sizes = &s.classes.sizes;
        match sizes.iter().position(|&size| n <= size) {
            Some(i) => Ok(i + 1),
            None => Err(TooLarge {
                requested: n,
                largest: sizes.last().copied().unwrap_or(s.config.buffer_size),
            }),
        }
    }

    /// A free slot from class `k`, or (falling up) from a larger one,
    /// without waiting, with the class it came from. Counts a failed
    /// acquire in class `k` if none had one.
    ///
    /// Class `k` first, inlined as `try_acquire` is; the rest out of line.
    #[inline]
    fn take_from<const OWNED: bool>(&self, k: usize) -> Option<(&Pool, u32)> {
        let class = self.class(k);
        match class.shared().take::<OWNED>() {
            Some(idx) => Some((class, idx)),
            None => self.take_above::<OWNED>(k),
        }
    }

    /// Class `k` is empty: a slot from a larger class if the pool falls
    /// up, else (or if none has one) a failure counted in class `k`.
    #[cold]
    #[inline(never)]
    fn take_above<const OWNED: bool>(&self, k: usize) -> Option<(&Pool, u32)> {
        let classes = &self.shared().classes;
        if classes.fall_up {
            for j in k + 1..=classes.pools.len() {
                let class = self.class(j);
                if let Some(idx) = class.shared().take::<OWNED>() {
                    return Some((class, idx));
                }
            }
        }
        self.class(k).shared().count_failure()
    }

    /// Takes a free buffer of at least `n` bytes, without waiting: from
    /// the smallest class that holds `n`, else (with
    /// [`fall_up`](crate::PoolBuilder::fall_up), the default) from the next
    /// larger class that has one. `Ok(None)` (and a failed acquire counted
    /// in the class for `n`) when none is free. [`capacity`](PoolBuf::capacity)
    /// tells the size of the buffer that came.
    ///
    /// # Errors
    ///
    /// [`TooLarge`] if `n` is above the largest class's buffer size.
    ///
    /// ```
    /// let pool = arenapool::Pool::builder()
    ///     .class(64, 2)
    ///     .class(1500, 1)
    ///     .build()?;
    /// let small = pool.try_acquire_with_capacity(10)?.unwrap();
    /// let big = pool.try_acquire_with_capacity(1000)?.unwrap();
    /// assert_eq!((small.capacity(), big.capacity()), (64, 1500));
    /// assert!(pool.try_acquire_with_capacity(1000)?.is_none(), "one 1500-byte buffer");
    /// assert!(pool.try_acquire_with_capacity(9000).is_err(), "no class is that large");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline(always)]
    #[track_caller]
    pub fn try_acquire_with_capacity(&self, n: usize) -> Result<Option<PoolBuf<'_>>, TooLarge> {
        let k = self.class_for(n)?;
        let Some((class, idx)) = self.take_from::<false>(k) else {
            return Ok(None);
        };
        // Not in a closure: the caller's location is this function's.
        Ok(Some(PoolBuf::new(class, idx)))
    }

    /// Like [`try_acquire_with_capacity`](Self::try_acquire_with_capacity),
    /// returning an [`OwnedBuf`].
    ///
    /// # Errors
    ///
    /// [`TooLarge`] if `n` is above the largest class's buffer size.
    #[inline(always)]
    #[track_caller]
    pub fn try_acquire_owned_with_capacity(&self, n: usize) -> Result<Option<OwnedBuf>, TooLarge> {
        let k = self.class_for(n)?;
        let Some((class, idx)) = self.take_from::<true>(k) else {
            return Ok(None);
        };
        // Not in a closure: the caller's location is this function's.
        Ok(Some(OwnedBuf::new(class, idx)))
    }

    /// Takes a buffer of at least `n` bytes, waiting asynchronously when
    /// none is free: from the smallest class that holds `n`, else (with
    /// [`fall_up`](crate::PoolBuilder::fall_up)) from a larger class that
    /// has one free right now, else it waits in the queue of the class for
    /// `n`, like [`acquire`](Self::acquire). Cancel-safe, as `acquire` is.
    ///
    /// # Errors
    ///
    /// [`TooLarge`] if `n` is above the largest class's buffer size; it
    /// never waits then.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let pool = arenapool::Pool::builder().class(256, 4).class(65536, 1).build()?;
    /// let buf = pool.acquire_with_capacity(20_000).await?;
    /// assert_eq!(buf.capacity(), 65536);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    #[cfg(feature = "async")]
    #[track_caller]
    pub fn acquire_with_capacity(
        &self,
        n: usize,
    ) -> impl Future<Output = Result<PoolBuf<'_>, TooLarge>> + '_ {
        // An `async fn` cannot know its caller: the location is taken
        // here, where the future is made, for leak tracking.
        let at = Location::caller();
        async move {
            let k = self.class_for(n)?;
            if let Some((class, idx)) = self.take_quietly::<false>(k) {
                return Ok(PoolBuf::new_at(class, idx, at));
            }
            Ok(self.class(k).acquire_at(at).await)
        }
    }

    /// Like [`acquire_with_capacity`](Self::acquire_with_capacity),
    /// returning an [`OwnedBuf`].
    ///
    /// # Errors
    ///
    /// [`TooLarge`] if `n` is above the largest class's buffer size.
    #[cfg(feature = "async")]
    #[track_caller]
    pub fn acquire_owned_with_capacity(
        &self,
        n: usize,
    ) -> impl Future<Output = Result<OwnedBuf, TooLarge>> + '_ {
        let at = Location::caller();
        async move {
            let k = self.class_for(n)?;
            if let Some((class, idx)) = self.take_quietly::<true>(k) {
                return Ok(OwnedBuf::new_at(class, idx, at));
            }
            Ok(self.class(k).acquire_owned_at(at).await)
        }
    }

    /// Takes a buffer of at least `n` bytes, **blocking the thread** up to
    /// `timeout` when none is free, as
    /// [`acquire_blocking`](Self::acquire_blocking) does, in the class for
    /// `n` (after falling up, as
    /// [`acquire_with_capacity`](Self::acquire_with_capacity) does).
    ///
    /// # Errors
    ///
    /// [`AcquireError::TooLarge`] at once if `n` is above the largest
    /// class's buffer size; [`AcquireError::Exhausted`] if no buffer became
    /// free in time.
    #[track_caller]
    pub fn acquire_blocking_with_capacity(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<PoolBuf<'_>, AcquireError> {
        let k = self.class_for(n)?;
        if let Some((class, idx)) = self.take_quietly::<false>(k) {
            return Ok(PoolBuf::new(class, idx));
        }
        Ok(self.class(k).acquire_blocking(timeout)?)
    }

    /// Like [`acquire_blocking_with_capacity`](Self::acquire_blocking_with_capacity),
    /// returning an [`OwnedBuf`].
    ///
    /// # Errors
    ///
    /// As `acquire_blocking_with_capacity`.
    #[track_caller]
    pub fn acquire_owned_blocking_with_capacity(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<OwnedBuf, AcquireError> {
        let k = self.class_for(n)?;
        if let Some((class, idx)) = self.take_quietly::<true>(k) {
            return Ok(OwnedBuf::new(class, idx));
        }
        Ok(self.class(k).acquire_owned_blocking(timeout)?)
    }

    /// When the pool falls up, a free slot from class `k` or a larger one,
    /// for the waiting acquires: they wait in class `k` when none has one,
    /// and that counts (a wait, or a failure) there, not here. Without
    /// falling up they go to class `k` at once.
    fn take_quietly<const OWNED: bool>(&self, k: usize) -> Option<(&Pool, u32)> {
        let classes = &self.shared().classes;
        if !classes.fall_up {
            return None;
        }
        (k..=classes.pools.len()).find_map(|j| {
            let class = self.class(j);
            class.shared().take::<OWNED>().map(|idx| (class, idx))
        })
    }

    /// The buffer sizes this pool hands out, smallest first: one for a pool
    /// of one size, one per class otherwise.
    pub fn buffer_sizes(&self) -> impl Iterator<Item = usize> + '_ {
        let s = self.shared();
        std::iter::once(s.config.buffer_size).chain(s.classes.sizes.iter().copied())
    }

    /// Each size class's own counters, smallest first. [`stats`](Self::stats)
    /// is their sum.
    ///
    /// ```
    /// let pool = arenapool::Pool::builder().class(64, 8).class(4096, 2).build()?;
    /// let held = pool.try_acquire_with_capacity(100)?;
    /// let classes = pool.class_stats();
    /// assert_eq!(classes[1].buffer_size, 4096);
    /// assert_eq!((classes[0].stats.in_use, classes[1].stats.in_use), (0, 1));
    /// assert_eq!(pool.stats().capacity, 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn class_stats(&self) -> Vec<ClassStats> {
        (0..=self.shared().classes.pools.len())
            .map(|k| {
                let class = self.class(k);
                ClassStats {
                    buffer_size: class.buffer_size(),
                    stats: class.own_stats(),
                }
            })
            .collect()
    }

    /// The counters of this pool and all its classes, summed.
    pub(crate) fn family_stats(&self) -> Stats {
        let own = self.own_stats();
        let classes = &self.shared().classes.pools;
        classes.iter().fold(own, |sum, c| sum.plus(&c.own_stats()))
    }
}
