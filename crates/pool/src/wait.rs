//! Waiting for a buffer: the FIFO wait queue shared by the blocking
//! [`Pool::acquire_blocking`] and the async [`Pool::acquire`].
//!
//! # Fair hand-off
//!
//! The queue is ours: a slab of waiter nodes linked in arrival order, behind
//! one mutex. A release that finds waiters hands its slot straight to the
//! oldest one (the node becomes [`State::Granted`] and leaves the list)
//! instead of putting it where any caller could grab it first. A caller that
//! arrives while others wait joins the back of the queue instead of taking
//! a buffer, so buffers that keep cycling between busy tasks cannot starve
//! an early waiter.
//!
//! # User code: collect, release, then wake
//!
//! A waker is user code: it may panic, or call back into this pool (release
//! another buffer, acquire, read the statistics). So no waker is ever
//! cloned, called or dropped while the queue's lock (or any other lock of
//! the pool) is held or an invariant is half-done:
//!
//! * a hand-off finishes completely under the lock (the node is granted and
//!   unlinked, the waiter count lowered), and the waker it took out is
//!   called after the lock is released;
//! * a poll clones the new waker before it locks, and drops the old one
//!   after it unlocks;
//! * a panicking waker is caught ([`Panic`]) so that a release that serves
//!   several waiters serves them all; the first panic is then resumed, once
//!   the pool is consistent, at the caller (unless that caller is already
//!   unwinding, when it is dropped: a second panic would abort).
//!
//! # A forgotten future costs one buffer
//!
//! The waiter count in `gate` (which turns the thread caches off while
//! anyone waits) counts nodes that have *not yet been granted*: the
//! releaser lowers it as it grants, not the waiter when it wakes. A waiter
//! that is never polled again, even one leaked with `mem::forget`, so
//! costs exactly the one buffer granted to it (and its node); the queue,
//! the count and the caches go on as if it had left (tokio's semaphore
//! has the same contract for its permits). A waiter that leaves before it
//! is granted takes its node out and its count with it; one that leaves
//! after passes the granted slot on to the next waiter.
//!
//! # No lost wake-ups
//!
//! A waiter *joins first* (node and count, under the lock; the count also
//! in the monotonic `arrivals`), then makes a no-op read-modify-write of the
//! free list's head ([`FreeList::sync`]) and only then tries to take a slot.
//! A releaser pushes its slot with a CAS on the same head and then loads
//! `gate`. Every change of the head is a read-modify-write, so the two RMWs
//! are ordered:
//!
//! * the push first: the waiter's RMW reads it (or a later value), and its
//!   attempt finds the slot, or finds that someone else took it, and then
//!   *that* holder's release comes later;
//! * the waiter's RMW first: the push's CAS reads it or a later value in the
//!   same release sequence, so it synchronises with it, and the releaser's
//!   load of `gate` sees the waiter.
//!
//! A releaser that sees waiters pops a slot and offers it to the queue.
//! The offer fails only if no node is waiting any more, and then the slot
//! goes back to the free list. A waiter that joined after the offer could
//! miss that push; so the releaser reads `arrivals` before the offer and
//! again after the push, and offers again if it changed. The same argument
//! covers this pair, and every repetition is paid for by a new arrival, so
//! the loop ends. `wait::loom_tests` checks the protocol.
//!
//! [`FreeList::sync`]: crate::freelist::FreeList::sync

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::task::Waker;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::error::Exhausted;
use crate::shared::{Shared, WAITER};
use crate::sync::Ordering::{Relaxed, SeqCst};
use crate::sync::{Mutex, lock, thread};

/// No node: the end of the list.
const NONE: usize = usize::MAX;

/// How a waiter wants to be told that it was granted a slot.
pub(crate) enum Wake {
    /// An async task: user code.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    Task(Waker),
    /// A thread sleeping in a blocking acquire: `unpark` runs no user code.
    Thread(thread::Thread),
}

impl Wake {
    fn wake(self) {
        match self {
            Self::Task(w) => w.wake(),
            Self::Thread(t) => t.unpark(),
        }
    }
}

enum State {
    /// In the list, waiting; the waker is `None` only between a node's
    /// creation and its first registration.
    Waiting(Option<Wake>),
    /// Out of the list: this slot is the waiter's now.
    Granted(u32),
}

struct Node {
    prev: usize,
    next: usize,
    state: State,
    /// When the waiter joined: its wait ends when the node is removed.
    since: Instant,
}

/// The queue: nodes in a slab (keys stay valid until their waiter removes
/// them), the waiting ones linked oldest first.
pub(crate) struct Queue {
    nodes: Slab<Node>,
    head: usize,
    tail: usize,
}

impl Queue {
    pub(crate) fn new() -> Mutex<Self> {
        Mutex::new(Self {
            nodes: Slab::new(),
            head: NONE,
            tail: NONE,
        })
    }

    fn push_back(&mut self, wake: Option<Wake>) -> usize {
        let key = self.nodes.insert(Node {
            prev: self.tail,
            next: NONE,
            state: State::Waiting(wake),
            since: Instant::now(),
        });
        match self.tail {
            NONE => self.head = key,
            tail => self.nodes[tail].next = key,
        }
        self.tail = key;
        key
    }

    fn unlink(&mut self, key: usize) {
        let (prev, next) = (self.nodes[key].prev, self.nodes[key].next);
        match prev {
            NONE => self.head = next,
            p => self.nodes[p].next = next,
        }
        match next {
            NONE => self.tail = prev,
            n => self.nodes[n].prev = prev,
        }
    }
}

/// A waiter's place in the queue: the key of its node. Not `Clone`; the
/// waiter that holds it is the only one that removes the node.
#[derive(Debug)]
pub(crate) struct Ticket(usize);

/// The first panic of a waker, kept until the pool is consistent again.
#[derive(Default)]
pub(crate) struct Panic(Option<Box<dyn Any + Send>>);

impl Panic {
    /// Calls `wake`, catching a panic.
    fn wake(&mut self, wake: Wake) {
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| wake.wake())) {
            self.0.get_or_insert(p);
        }
    }

    /// Whether a panic was caught that [`resume`](Self::resume) would
    /// resume (not when this thread is unwinding already).
    fn pending(&self) -> bool {
        self.0.is_some() && !std::thread::panicking()
    }

    /// Resumes the first panic caught, if any (dropped instead when this
    /// thread is already unwinding: resuming would abort the process).
    pub(crate) fn resume(self) {
        if let Some(p) = self.0
            && !std::thread::panicking()
        {
            resume_unwind(p);
        }
    }
}

impl Shared {
    /// Grants `idx` to the oldest waiter and wakes it (after unlocking).
    /// Gives the slot back if no one waits.
    #[cold]
    pub(crate) fn offer(&self, idx: u32, panic: &mut Panic) -> Result<(), u32> {
        let wake = {
            let mut q = lock(&self.queue);
            let key = q.head;
            if key == NONE {
                return Err(idx);
            }
            q.unlink(key);
            let old = std::mem::replace(&mut q.nodes[key].state, State::Granted(idx));
            self.gate.fetch_sub(WAITER, SeqCst);
            match old {
                State::Waiting(wake) => wake,
                State::Granted(_) => unreachable!("granted nodes are not in the list"),
            }
        };
        if let Some(wake) = wake {
            panic.wake(wake);
        }
        Ok(())
    }

    /// After `n` slots were pushed onto the free list while someone waits:
    /// hands up to `n` free slots to waiters (see the module docs).
    #[cold]
    pub(crate) fn serve(&self, mut n: usize, panic: &mut Panic) {
        while n > 0 && self.gate.load(Relaxed) >= WAITER {
            let before = self.slow.arrivals.load(Relaxed);
            // Nothing free: whoever took the slot will release it later,
            // and that release serves the waiters.
            let Some(idx) = self.take_shared() else {
                return;
            };
            match self.offer(idx, panic) {
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

    /// [`serve`](Self::serve) when `n` slots were pushed, if anyone waits;
    /// resumes a waker's panic at the end. Call with no lock of the pool
    /// held, no operation half-done and no slot taken for the caller
    /// (see [`serve_keeping`](Self::serve_keeping)).
    #[inline]
    pub(crate) fn serve_pushed(&self, n: usize) {
        if n > 0 && self.gate.load(Relaxed) >= WAITER {
            let mut panic = Panic::default();
            self.serve(n, &mut panic);
            panic.resume();
        }
    }

    /// [`serve_pushed`](Self::serve_pushed) for an acquire that already
    /// took `mine` for its caller: if a waker panics, `mine` goes back to
    /// the pool (to a waiter, if any) before the panic is resumed, so that
    /// no slot is lost. Returns `mine` otherwise.
    pub(crate) fn serve_keeping(&self, n: usize, mine: u32) -> u32 {
        if n > 0 && self.gate.load(Relaxed) >= WAITER {
            let mut panic = Panic::default();
            self.serve(n, &mut panic);
            if panic.pending() {
                if let Err(idx) = self.offer(mine, &mut panic) {
                    self.free.push(&self.segments, idx);
                    self.serve(1, &mut panic);
                }
                panic.resume();
            }
        }
        mine
    }

    /// [`serve_pushed`](Self::serve_pushed) where a panic must not escape
    /// (a thread-local destructor, where it would abort the process): a
    /// waker's panic is dropped.
    pub(crate) fn serve_quietly(&self, n: usize) {
        if n > 0 && self.gate.load(Relaxed) >= WAITER {
            let mut panic = Panic::default();
            self.serve(n, &mut panic);
        }
    }

    /// Joins the queue: node and count, then sync with the free list (in
    /// that order; see the module docs). The caller must try to take a
    /// slot next, and must end the ticket with [`leave`](Self::leave) or a
    /// `Ready` from [`poll_ticket`](Self::poll_ticket) /
    /// [`check_ticket`](Self::check_ticket).
    pub(crate) fn enqueue(&self, wake: Option<Wake>) -> Ticket {
        let key = {
            let mut q = lock(&self.queue);
            let key = q.push_back(wake);
            self.slow.waits.fetch_add(1, Relaxed);
            self.slow.arrivals.fetch_add(1, SeqCst);
            self.gate.fetch_add(WAITER, SeqCst);
            key
        };
        self.free.sync();
        Ticket(key)
    }

    /// Leaves the queue. A slot granted meanwhile goes to the next waiter
    /// (or back to the pool); a waker kept in the node is dropped after
    /// unlocking.
    #[cold]
    pub(crate) fn leave(&self, ticket: Ticket) {
        if let Some(idx) = self.withdraw(ticket) {
            self.put_uncached(idx);
        }
    }

    /// Takes the node out: `Some(slot)` if it had been granted one, which
    /// the caller now owns.
    fn withdraw(&self, ticket: Ticket) -> Option<u32> {
        let node = {
            let mut q = lock(&self.queue);
            if matches!(q.nodes[ticket.0].state, State::Waiting(_)) {
                q.unlink(ticket.0);
                self.gate.fetch_sub(WAITER, SeqCst);
            }
            self.remove_node(&mut q, ticket.0)
        };
        match node.state {
            State::Granted(idx) => Some(idx),
            State::Waiting(wake) => {
                drop(wake); // user code, outside the lock
                None
            }
        }
    }

    /// Whether the ticket was granted a slot (then the ticket is used up).
    pub(crate) fn check_ticket(&self, ticket: &Ticket) -> Option<u32> {
        let mut q = lock(&self.queue);
        let State::Granted(idx) = q.nodes[ticket.0].state else {
            return None;
        };
        self.remove_node(&mut q, ticket.0);
        Some(idx)
    }

    /// An async waiter's poll: `Ready(slot)` if granted (the ticket is used
    /// up), else registers `waker` and stays pending.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn poll_ticket(&self, ticket: &Ticket, waker: &Waker) -> Option<u32> {
        {
            let mut q = lock(&self.queue);
            match &q.nodes[ticket.0].state {
                &State::Granted(idx) => {
                    self.remove_node(&mut q, ticket.0);
                    return Some(idx);
                }
                State::Waiting(Some(Wake::Task(w))) if w.will_wake(waker) => return None,
                State::Waiting(_) => {}
            }
        }
        // Cloning a waker is user code: not under the lock.
        let new = Wake::Task(waker.clone());
        let (granted, unused) = {
            let mut q = lock(&self.queue);
            match &mut q.nodes[ticket.0].state {
                State::Granted(idx) => {
                    let idx = *idx;
                    self.remove_node(&mut q, ticket.0);
                    (Some(idx), Some(new))
                }
                State::Waiting(wake) => (None, wake.replace(new)),
            }
        };
        drop(unused); // user code, outside the lock
        granted
    }

    /// A first attempt that respects the queue: a caller that finds others
    /// waiting queues behind them instead of taking a buffer. `OWNED` as
    /// for [`Shared::take`].
    #[inline]
    pub(crate) fn take_unless_queued<const OWNED: bool>(&self) -> Option<u32> {
        if self.gate.load(Relaxed) >= WAITER {
            return None;
        }
        self.take::<OWNED>()
    }

    /// A slot granted through the queue, for an owned buffer: its
    /// reference to the pool (the caller holds a handle).
    #[inline]
    pub(crate) fn granted<const OWNED: bool>(&self, idx: u32) -> u32 {
        crate::cache::count_uncached(self);
        if OWNED {
            self.add_ref(1);
        }
        idx
    }

    /// Takes a waiter's node out of the slab (its ticket is used up) and
    /// counts how long it waited.
    fn remove_node(&self, q: &mut Queue, key: usize) -> Node {
        let node = q.nodes.remove(key);
        let waited = u64::try_from(node.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.slow.wait_ns.fetch_add(waited, Relaxed);
        self.slow.max_wait_ns.fetch_max(waited, Relaxed);
        node
    }

    /// The blocking acquire behind `acquire_blocking` and
    /// `acquire_owned_blocking`; `OWNED` as for [`Shared::take`].
    pub(crate) fn take_blocking<const OWNED: bool>(
        &self,
        timeout: Duration,
    ) -> Result<u32, Exhausted> {
        if let Some(idx) = self.take_unless_queued::<OWNED>() {
            return Ok(idx);
        }
        let start = Instant::now();
        let deadline = start.checked_add(timeout);
        // The guard leaves the queue if `take` unwinds (a waker run by a
        // steal or a growth may panic): a node left behind would count as
        // a waiter for ever.
        let mut guard = Queued {
            shared: self,
            ticket: Some(self.enqueue(Some(Wake::Thread(thread::current())))),
        };
        if let Some(idx) = self.take::<OWNED>() {
            drop(guard); // leaves
            return Ok(idx);
        }
        let ticket = guard.ticket.take().expect("queued above");
        drop(guard); // empty now: the loop below cannot unwind
        loop {
            if let Some(idx) = self.check_ticket(&ticket) {
                return Ok(self.granted::<OWNED>(idx));
            }
            match deadline {
                None => thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    park_timeout(deadline - now);
                }
            }
        }
        // Timed out; granted just now, or one last look before giving up.
        if let Some(idx) = self.withdraw(ticket) {
            return Ok(self.granted::<OWNED>(idx));
        }
        self.take::<OWNED>().ok_or_else(|| {
            self.count_failure::<()>();
            Exhausted {
                waited: start.elapsed(),
            }
        })
    }
}

/// A ticket that leaves the queue when dropped.
struct Queued<'a> {
    shared: &'a Shared,
    ticket: Option<Ticket>,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.shared.leave(ticket);
        }
    }
}

/// Sleeps until unparked or `timeout` passes (spurious wake-ups allowed).
fn park_timeout(timeout: Duration) {
    #[cfg(not(loom))]
    std::thread::park_timeout(timeout);
    // loom has no timed park; its models wait without a deadline.
    #[cfg(loom)]
    {
        let _ = timeout;
        thread::park();
    }
}

#[cfg(all(test, not(loom), feature = "async"))]
mod tests {
    use std::future::Future;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    use crate::Pool;

    struct Panics;

    impl Wake for Panics {
        fn wake(self: Arc<Self>) {
            panic!("a waker that panics");
        }
    }

    /// An acquire that took a slot for its caller (a steal, a growth) and
    /// then serves waiters whose waker panics: the caller's slot goes to
    /// the next waiter before the panic reaches the caller, so no slot is
    /// lost and no waiter is left waiting while one is free.
    #[test]
    fn a_panic_while_serving_returns_the_callers_slot() {
        let pool = Pool::builder()
            .buffer_size(8)
            .capacity(3)
            .cache_size(0)
            .build()
            .unwrap();
        let shared = pool.shared();
        let (a, b, c) = (
            pool.try_acquire().unwrap(),
            pool.try_acquire().unwrap(),
            pool.try_acquire().unwrap(),
        );
        let panics = Waker::from(Arc::new(Panics));
        let noop = futures::task::noop_waker();
        let mut first = Box::pin(pool.acquire_owned());
        let mut second = Box::pin(pool.acquire_owned());
        assert!(
            first
                .as_mut()
                .poll(&mut Context::from_waker(&panics))
                .is_pending()
        );
        assert!(
            second
                .as_mut()
                .poll(&mut Context::from_waker(&noop))
                .is_pending()
        );
        // The test owns slots `a` and `b` now, as an acquire would.
        let (mine, surplus) = (a.index(), b.index());
        std::mem::forget((a, b));
        shared.free.push(&shared.segments, surplus);
        let served = catch_unwind(AssertUnwindSafe(|| shared.serve_keeping(1, mine)));
        assert!(served.is_err(), "the waker's panic reaches the caller");
        let mut cx = Context::from_waker(&noop);
        let (Poll::Ready(x), Poll::Ready(y)) =
            (first.as_mut().poll(&mut cx), second.as_mut().poll(&mut cx))
        else {
            panic!("a waiter was left waiting: {:?}", pool.stats());
        };
        let mut got = [x.index(), y.index()];
        got.sort_unstable();
        let mut want = [mine, surplus];
        want.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(pool.stats().waiting, 0);
        drop((x, y, c));
        assert_eq!(pool.stats().in_use, 0);
    }
}

#[cfg(all(test, loom))]
mod loom_tests;
