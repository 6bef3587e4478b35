//! The async acquire: [`Acquire`] and [`AcquireOwned`], futures over the
//! wait queue of `wait.rs` (which explains the protocol).

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::handle::{OwnedBuf, PoolBuf};
use crate::shared::{Pool, Shared};
use crate::wait::Ticket;

/// The state of an async acquire, shared by [`Acquire`] and
/// [`AcquireOwned`]: not yet queued, or queued with its ticket.
#[derive(Default)]
struct Waiting {
    ticket: Option<Ticket>,
}

impl Waiting {
    /// The first poll with a buffer free costs what `try_acquire` costs:
    /// this part is inlined into the futures' `poll`, the rest is not.
    ///
    /// With `OWNED`, the slot comes with an owned buffer's reference to the
    /// pool, whichever way it came.
    #[inline]
    fn poll<const OWNED: bool>(&mut self, shared: &Shared, cx: &mut Context<'_>) -> Poll<u32> {
        if self.ticket.is_none()
            && let Some(idx) = shared.take_unless_queued::<OWNED>()
        {
            return Poll::Ready(idx);
        }
        self.poll_queued::<OWNED>(shared, cx)
    }

    #[inline(never)]
    fn poll_queued<const OWNED: bool>(
        &mut self,
        shared: &Shared,
        cx: &mut Context<'_>,
    ) -> Poll<u32> {
        let ticket = match &self.ticket {
            Some(ticket) => ticket,
            None => {
                // Queued without a waker first: the attempt below may free
                // slots (a steal, a growth) and hand one to this very node,
                // which then needs no wake-up.
                let ticket = self.ticket.insert(shared.enqueue(None));
                if let Some(idx) = shared.take::<OWNED>() {
                    self.cancel(shared);
                    return Poll::Ready(idx);
                }
                // The waker is registered (and cloned, outside the queue's
                // lock) here; a grant that came meanwhile is taken now.
                ticket
            }
        };
        match shared.poll_ticket(ticket, cx.waker()) {
            Some(idx) => {
                self.ticket = None; // used up
                Poll::Ready(shared.granted::<OWNED>(idx))
            }
            None => Poll::Pending,
        }
    }

    /// Leaves the queue if in it (on completion or when the future is
    /// dropped): a slot granted meanwhile goes to the next waiter.
    #[inline]
    fn cancel(&mut self, shared: &Shared) {
        if let Some(ticket) = self.ticket.take() {
            shared.leave(ticket);
        }
    }
}

/// The future returned by [`Pool::acquire`]: resolves to a buffer when one
/// is free.
///
/// Waiters are served in arrival order. Dropping the future at any point is
/// safe: a buffer that was on its way to it goes to the next waiter (or
/// back to the pool), and no wake-up is lost. A future that is leaked
/// instead (`mem::forget`) while it waits costs at most the one buffer
/// handed to it: once it is granted one it no longer counts as a waiter,
/// so the pool's thread caches and other waiters carry on.
///
/// The waker of a waiting task is user code that the pool calls when a
/// release hands the task a buffer; the pool calls it with no lock held
/// and its state consistent, so a waker may panic (the panic reaches the
/// releaser) or use the pool again.
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'pool> {
    pool: &'pool Pool,
    waiting: Waiting,
    /// Who asked, for leak tracking.
    at: &'static Location<'static>,
}

/// The future returned by [`Pool::acquire_owned`]; as [`Acquire`], for an
/// [`OwnedBuf`]. It borrows the pool; the buffer it resolves to does not.
#[must_use = "futures do nothing unless polled"]
pub struct AcquireOwned<'pool> {
    pool: &'pool Pool,
    waiting: Waiting,
    at: &'static Location<'static>,
}

impl Pool {
    /// Waits (asynchronously) for a free buffer.
    ///
    /// Returns at once if one is free or the pool may grow; otherwise the
    /// task sleeps until a release hands it a buffer. Waiters are served in
    /// arrival order, and a caller that arrives while others wait queues
    /// behind them. Works on any executor (the queue is the
    /// pool's own FIFO queue); cancellation-safe (see [`Acquire`]).
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let pool = arenapool::Pool::new(64, 1)?;
    /// let mut buf = pool.acquire().await;
    /// buf.extend_from_slice(b"hello")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    #[inline]
    #[track_caller]
    pub fn acquire(&self) -> Acquire<'_> {
        self.acquire_at(Location::caller())
    }

    /// [`acquire`](Self::acquire) on behalf of the caller at `at`.
    #[inline]
    pub(crate) fn acquire_at(&self, at: &'static Location<'static>) -> Acquire<'_> {
        Acquire {
            pool: self,
            waiting: Waiting::default(),
            at,
        }
    }

    /// Like [`acquire`](Self::acquire), for an [`OwnedBuf`] that can move
    /// into spawned tasks. The future borrows the pool; to spawn the wait
    /// itself, move a clone of the pool (a cheap handle) into the task.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let pool = arenapool::Pool::new(64, 1)?;
    /// let buf = pool.acquire_owned().await;
    /// let waiting = pool.acquire_owned(); // the pool is empty now
    /// drop(buf);
    /// assert_eq!(waiting.await.index(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    #[inline]
    #[track_caller]
    pub fn acquire_owned(&self) -> AcquireOwned<'_> {
        self.acquire_owned_at(Location::caller())
    }

    /// [`acquire_owned`](Self::acquire_owned) on behalf of the caller at
    /// `at`.
    #[inline]
    pub(crate) fn acquire_owned_at(&self, at: &'static Location<'static>) -> AcquireOwned<'_> {
        AcquireOwned {
            pool: self,
            waiting: Waiting::default(),
            at,
        }
    }
}

impl<'pool> Future for Acquire<'pool> {
    type Output = PoolBuf<'pool>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<PoolBuf<'pool>> {
        let this = self.get_mut();
        let (pool, at) = (this.pool, this.at);
        this.waiting
            .poll::<false>(pool.shared(), cx)
            .map(|idx| PoolBuf::new_at(pool, idx, at))
    }
}

impl Future for AcquireOwned<'_> {
    type Output = OwnedBuf;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<OwnedBuf> {
        let this = self.get_mut();
        let (pool, at) = (this.pool, this.at);
        this.waiting
            .poll::<true>(pool.shared(), cx)
            .map(|idx| OwnedBuf::new_at(pool, idx, at))
    }
}

impl Drop for Acquire<'_> {
    #[inline]
    fn drop(&mut self) {
        self.waiting.cancel(self.pool.shared());
    }
}

impl Drop for AcquireOwned<'_> {
    #[inline]
    fn drop(&mut self) {
        self.waiting.cancel(self.pool.shared());
    }
}

impl std::fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acquire")
            .field("queued", &self.waiting.ticket.is_some())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AcquireOwned<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcquireOwned")
            .field("queued", &self.waiting.ticket.is_some())
            .finish_non_exhaustive()
    }
}
