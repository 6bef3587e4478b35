//! Leak reports that name the call site: [`PoolBuilder::track_leaks`].
//!
//! With tracking on, one acquisition in `every` (counted per thread)
//! records where it was made (the caller's `#[track_caller]` location)
//! and when, in a side table with one entry per slot; the release clears
//! the entry. [`Pool::outstanding`] lists the entries set: the tracked
//! buffers held right now. A buffer lost to `mem::forget` is never
//! released, so it stays listed for as long as the pool lives, and
//! when the last `Pool` handle drops with tracked buffers still out, the
//! pool says so once through `tracing` (a `warn!` event, with the
//! feature `tracing`).
//!
//! Off (the default), the table does not exist: an acquire tests one
//! `Option` that is `None`, and a release the same.
//!
//! [`PoolBuilder::track_leaks`]: crate::PoolBuilder::track_leaks
//! [`Pool::outstanding`]: crate::Pool::outstanding

use std::cell::Cell;
use std::fmt;
use std::panic::Location;
use std::ptr;
use std::time::{Duration, Instant};

use crate::sync::Ordering::{Acquire, Relaxed, Release};
use crate::sync::{AtomicBool, AtomicPtr, AtomicU64};

/// A tracked buffer that is held right now, as [`Pool::outstanding`]
/// reports it.
///
/// [`Pool::outstanding`]: crate::Pool::outstanding
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outstanding {
    /// Where it was acquired: the caller of `try_acquire`, `acquire`,
    /// `acquire_blocking` or their owned and sized forms.
    pub location: &'static Location<'static>,
    /// How long ago.
    pub age: Duration,
    /// Its size class: bytes per buffer.
    pub buffer_size: usize,
    /// Its slot, as [`PoolBuf::index`](crate::PoolBuf::index) says.
    pub index: u32,
}

impl fmt::Display for Outstanding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a {}-byte buffer (slot {}) acquired at {} {:?} ago",
            self.buffer_size, self.index, self.location, self.age
        )
    }
}

/// One slot's record: where and when (nanoseconds since the table was
/// made) it was acquired; a null location when it is not tracked.
struct Entry {
    at: AtomicPtr<Location<'static>>,
    since_ns: AtomicU64,
}

/// The side table of one pool (one size class).
pub(crate) struct Leaks {
    every: u32,
    born: Instant,
    entries: Box<[Entry]>,
    /// The report at close was made (for this class, or for the pool of
    /// classes it belongs to, whose close lists every class).
    pub(crate) reported: AtomicBool,
}

#[cfg(not(loom))]
std::thread_local! {
    /// Acquisitions this thread may still make before the next tracked
    /// one (all pools together: sampling only has to be fair).
    static UNTIL_NEXT: Cell<u32> = const { Cell::new(0) };
}
#[cfg(loom)]
loom::thread_local! {
    static UNTIL_NEXT: Cell<u32> = Cell::new(0);
}

impl Leaks {
    /// A table for `slots` slots (the pool's growth limit), tracking one
    /// acquisition in `every`; `None` when `every` is 0.
    pub(crate) fn new(every: u32, slots: u32) -> Option<Box<Leaks>> {
        (every > 0).then(|| {
            Box::new(Leaks {
                every,
                born: Instant::now(),
                entries: (0..slots)
                    .map(|_| Entry {
                        at: AtomicPtr::new(ptr::null_mut()),
                        since_ns: AtomicU64::new(0),
                    })
                    .collect(),
                reported: AtomicBool::new(false),
            })
        })
    }

    /// Slot `idx` was just acquired at `at`: recorded if it is this
    /// thread's turn. The caller owns the slot, so nobody else writes its
    /// entry now.
    #[cold]
    #[inline(never)]
    pub(crate) fn acquired(&self, idx: u32, at: &'static Location<'static>) {
        let turn = UNTIL_NEXT
            .try_with(|left| match left.get() {
                0 => {
                    left.set(self.every - 1);
                    true
                }
                n => {
                    left.set(n - 1);
                    false
                }
            })
            .unwrap_or(true);
        if let (true, Some(e)) = (turn, self.entries.get(idx as usize)) {
            let ns = u64::try_from(self.born.elapsed().as_nanos()).unwrap_or(u64::MAX);
            e.since_ns.store(ns, Relaxed);
            // Release: a reader that sees the location sees the time.
            e.at.store(ptr::from_ref(at).cast_mut(), Release);
        }
    }

    /// Slot `idx` is being released by its owner: no longer tracked.
    #[inline]
    pub(crate) fn released(&self, idx: u32) {
        if let Some(e) = self.entries.get(idx as usize) {
            e.at.store(ptr::null_mut(), Relaxed);
        }
    }

    /// The tracked slots held now, among the first `slots`. A slot that
    /// is released or acquired while this runs may be listed or not.
    pub(crate) fn outstanding(&self, slots: u32, buffer_size: usize, out: &mut Vec<Outstanding>) {
        let now = self.born.elapsed();
        for (index, e) in (0..slots).zip(self.entries.iter()) {
            let at = e.at.load(Acquire);
            if at.is_null() {
                continue;
            }
            // SAFETY: a non-null entry was stored from a
            // `&'static Location<'static>` in `acquired`.
            let location: &'static Location<'static> = unsafe { &*at };
            let since = Duration::from_nanos(e.since_ns.load(Relaxed));
            out.push(Outstanding {
                location,
                age: now.saturating_sub(since),
                buffer_size,
                index,
            });
        }
    }
}

/// Says, once, that the last handle of a pool dropped with tracked
/// buffers still out (with the feature `tracing`; a no-op without).
pub(crate) fn report_at_close(out: &[Outstanding]) {
    #[cfg(not(feature = "tracing"))]
    let _ = out;
    #[cfg(feature = "tracing")]
    if !out.is_empty() {
        let first = out
            .iter()
            .take(8)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        tracing::warn!(
            outstanding = out.len(),
            "arenapool: the last Pool handle dropped with {} tracked buffer(s) still out \
             (their memory stays allocated until they are dropped; a buffer lost to \
             mem::forget never is): {first}",
            out.len()
        );
    }
}
