//! Waiting for a buffer: the FIFO wait queue shared by the blocking
//! [`Pool::acquire_timeout`] and the async [`Pool::acquire`].
//!
//! # Fair hand-off
//!
//! The queue is an [`event_listener::Event`] whose notifications carry a
//! *tag*: the slot itself. event-listener keeps its listeners in arrival
//! order and notifies the oldest one not yet notified, so a release that
//! finds waiters hands its slot straight to the longest waiter instead of
//! putting it where any caller could grab it first. A caller that arrives
//! while others wait joins the back of the queue instead of taking a
//! buffer, so buffers that keep cycling between busy tasks cannot starve an
//! early waiter.
//!
//! A slot in a notification is a [`Grant`], which gives the slot back to
//! the free list if it is dropped undelivered. That happens when a notified
//! waiter is cancelled: event-listener passes its notification, grant and
//! all, to the next listener, and drops it only if there is none.
//!
//! # No lost wake-ups
//!
//! A waiter *listens first*, then counts itself (in `gate`, which the hot
//! path reads, and in the monotonic `arrivals`), then makes a no-op
//! read-modify-write of the free list's head ([`FreeList::sync`]) and only
//! then tries to take a slot. A releaser pushes its slot with a CAS on the
//! same head and then loads `gate`. Every change of the head is a
//! read-modify-write, so the two RMWs are ordered:
//!
//! * the push first: the waiter's RMW reads it (or a later value), and its
//!   attempt finds the slot, or finds that someone else took it, and then
//!   *that* holder's release comes later;
//! * the waiter's RMW first: the push's CAS reads it or a later value in the
//!   same release sequence, so it synchronises with it, and the releaser's
//!   load of `gate` sees the waiter.
//!
//! (A `SeqCst` fence on both sides would also do; the RMW costs the hot
//! release path nothing, and loom can check it.)
//!
//! A releaser that sees waiters pops a slot and offers it to the queue.
//! The offer fails only if every listener is already notified, and then the
//! slot goes back to the free list. A waiter that started listening after
//! the offer could miss that push; so the releaser reads `arrivals` before
//! the offer and again after the push, and offers again if it changed. The
//! same argument covers this pair, and every repetition is paid for by a
//! new arrival, so the loop ends. `wait::loom_tests` checks the protocol.
//!
//! [`FreeList::sync`]: crate::freelist::FreeList::sync

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use event_listener::{EventListener, IntoNotification, Listener};

use crate::error::Exhausted;
use crate::pool::{Shared, WAITER};
use crate::sync::Ordering::{Relaxed, SeqCst};

/// A slot on its way from a releaser to a waiter, inside an event
/// notification. Dropped undelivered, it pushes the slot onto the free list
/// (without waking anyone: it may be dropped inside event-listener's lock,
/// and then there is no listener left to wake; see the module docs).
pub(crate) struct Grant {
    idx: u32,
    pool: Option<Weak<Shared>>,
}

impl Grant {
    /// Delivered: the caller owns the slot now.
    pub(crate) fn into_index(mut self) -> u32 {
        self.pool = None;
        self.idx
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take().and_then(|p| p.upgrade()) {
            pool.free.push(&pool.segments, self.idx);
        }
    }
}

/// What the queue's listeners receive. `None` never arrives (every offer
/// carries a grant); a waiter that got one would simply wait again.
pub(crate) type Tag = Option<Grant>;

impl Shared {
    /// Offers `idx` to the oldest waiter not yet notified. Gives it back if
    /// there is none.
    #[cold]
    pub(crate) fn offer(&self, idx: u32) -> Result<(), u32> {
        let mut handed = false;
        self.event.notify(1.additional().tag_with(|| {
            handed = true;
            Some(Grant {
                idx,
                pool: Some(self.me.clone()),
            })
        }));
        if handed { Ok(()) } else { Err(idx) }
    }

    /// After `n` slots were pushed onto the free list while someone waits:
    /// hands up to `n` free slots to waiters (see the module docs).
    #[cold]
    pub(crate) fn serve(&self, mut n: usize) {
        while n > 0 && self.gate.load(Relaxed) >= WAITER {
            let before = self.slow.arrivals.load(Relaxed);
            // Nothing free: whoever took the slot will release it later,
            // and that release serves the waiters.
            let Some(idx) = self.take_shared() else {
                return;
            };
            match self.offer(idx) {
                Ok(()) => n -= 1,
                Err(idx) => {
                    self.free.push(&self.segments, idx);
                    if self.slow.arrivals.load(Relaxed) == before {
                        return;
                    }
                }
            }
        }
    }

    /// Joins the queue: listen, count, sync with the free list (in that
    /// order; see the module docs). The caller must try to take a slot next, and must call
    /// [`leave`](Self::leave) once, whatever happens.
    pub(crate) fn enqueue(&self) -> EventListener<Tag> {
        let listener = self.event.listen();
        self.slow.waits.fetch_add(1, Relaxed);
        self.slow.arrivals.fetch_add(1, SeqCst);
        self.gate.fetch_add(WAITER, SeqCst);
        self.free.sync();
        listener
    }

    /// Leaves the queue. Dropping the listener first passes on a grant it
    /// may have received meanwhile.
    #[cold]
    pub(crate) fn leave(&self, listener: EventListener<Tag>) {
        drop(listener);
        self.gate.fetch_sub(WAITER, SeqCst);
    }

    /// A first attempt that respects the queue: a caller that finds others
    /// waiting queues behind them instead of taking a buffer.
    #[inline]
    pub(crate) fn take_unless_queued(&self, this: &Arc<Shared>) -> Option<u32> {
        if self.gate.load(Relaxed) >= WAITER {
            return None;
        }
        self.take(this)
    }

    /// The blocking acquire behind `acquire_timeout`.
    pub(crate) fn take_blocking(
        &self,
        this: &Arc<Shared>,
        timeout: Duration,
    ) -> Result<u32, Exhausted> {
        if let Some(idx) = self.take_unless_queued(this) {
            return Ok(idx);
        }
        let start = Instant::now();
        let deadline = start.checked_add(timeout);
        let mut listener = self.enqueue();
        loop {
            if let Some(idx) = self.take(this) {
                self.leave(listener);
                return Ok(idx);
            }
            // Both waits consume the listener (and pass on a grant that
            // arrives as it goes); only the count is left to undo.
            let tag = match deadline {
                None => Some(listener.wait()),
                Some(deadline) => listener.wait_deadline(deadline),
            };
            self.gate.fetch_sub(WAITER, SeqCst);
            match tag {
                Some(Some(grant)) => return Ok(grant.into_index()),
                // Never sent (see `Tag`); wait again.
                Some(None) => listener = self.enqueue(),
                None => break,
            }
        }
        // Timed out; one last look before giving up.
        self.take(this).ok_or_else(|| {
            self.count_failure::<()>();
            Exhausted {
                waited: start.elapsed(),
            }
        })
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use std::sync::Arc as StdArc;
    use std::time::Duration;

    use crate::Pool;
    use std::future::Future;

    use crate::sync::{model, thread};

    fn pool(capacity: usize) -> StdArc<Pool> {
        StdArc::new(
            Pool::builder()
                .buffer_size(8)
                .capacity(capacity)
                .cache_size(0)
                .build()
                .unwrap(),
        )
    }

    /// A release racing a blocking waiter that is joining the queue: the
    /// waiter gets the slot (by hand-off or from the free list).
    #[test]
    fn release_reaches_waiter() {
        model(|| {
            let p = pool(1);
            let buf = p.try_acquire_owned().unwrap();
            let t = thread::spawn(move || drop(buf));
            let got = p.acquire_timeout(Duration::MAX).unwrap();
            assert_eq!(got.index(), 0);
            drop(got);
            t.join().unwrap();
            assert_eq!(p.stats().in_use, 0);
        });
    }

    /// Two waiters, two releases: both waiters are served, whatever the
    /// interleaving of offers, failed offers and late arrivals.
    #[test]
    fn two_waiters_two_releases() {
        model(|| {
            let p = pool(2);
            let a = p.try_acquire_owned().unwrap();
            let b = p.try_acquire_owned().unwrap();
            let releaser = thread::spawn(move || {
                drop(a);
                drop(b);
            });
            let waiter = {
                let p = p.clone();
                thread::spawn(move || p.acquire_owned_timeout(Duration::MAX).unwrap())
            };
            let mine = p.acquire_owned_timeout(Duration::MAX).unwrap();
            let theirs = waiter.join().unwrap();
            assert_ne!(mine.index(), theirs.index());
            releaser.join().unwrap();
        });
    }

    /// A queued async waiter is dropped while a release hands it the slot:
    /// the slot is not lost (the next acquire gets it).
    #[test]
    fn cancelled_waiter_loses_no_slot() {
        model(|| {
            let p = pool(1);
            let buf = p.try_acquire_owned().unwrap();
            let mut fut = Box::pin(p.acquire_owned());
            let waker = futures::task::noop_waker();
            let mut cx = std::task::Context::from_waker(&waker);
            assert!(fut.as_mut().poll(&mut cx).is_pending());
            let t = thread::spawn(move || drop(buf));
            drop(fut);
            t.join().unwrap();
            assert!(p.try_acquire().is_some(), "{:?}", p.stats());
        });
    }

    /// A cancelled waiter in front of a blocking one: the grant it may have
    /// received passes on, so the blocking waiter does not hang.
    #[test]
    fn grant_passes_to_next_waiter() {
        model(|| {
            let p = pool(1);
            let buf = p.try_acquire_owned().unwrap();
            let mut fut = Box::pin(p.acquire_owned());
            let waker = futures::task::noop_waker();
            let mut cx = std::task::Context::from_waker(&waker);
            assert!(fut.as_mut().poll(&mut cx).is_pending());
            let waiter = {
                let p = p.clone();
                thread::spawn(move || p.acquire_owned_timeout(Duration::MAX).unwrap())
            };
            drop(buf);
            drop(fut);
            assert_eq!(waiter.join().unwrap().index(), 0);
        });
    }
}
