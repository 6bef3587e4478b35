//! The handles a program holds, the model of the pool, and the check
//! that runs after every operation.

use std::cell::RefCell;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, Waker};

use arenapool::{Acquire, AcquireOwned, OwnedBuf, Pool, PoolBuf, SharedBuf};
use bytes::BufMut as _;

use super::settings::Resolved;
use super::wakers::{Kind, Reentries, expect_panic};
use super::{MAX_BUFFER_SIZE, MAX_BUFFERS};
use crate::pattern;

pub(super) enum Handle<'p> {
    B(PoolBuf<'p>),
    O(OwnedBuf),
}

impl Handle<'_> {
    pub(super) fn index(&self) -> u32 {
        with!(self, b => b.index())
    }
    pub(super) fn len(&self) -> usize {
        with!(self, b => b.len())
    }
    pub(super) fn full(&self) -> &[u8] {
        with!(self, b => b.as_full())
    }
    pub(super) fn filled(&self) -> &[u8] {
        with!(self, b => &b[..])
    }
}

thread_local! {
    /// The model's slot buffers of earlier runs, for later runs. A fresh
    /// one costs a `calloc`, 4 KiB of `memset` and page faults (the
    /// AddressSanitizer quarantine does not hand back recently freed
    /// memory), and a run made up to 64 of them, more than the rest of a
    /// short run cost.
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A slot's worth of zero bytes, for the model of a slot never written.
fn zeroed_slot(len: usize) -> Vec<u8> {
    let mut v = SPARE
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| Vec::with_capacity(MAX_BUFFER_SIZE));
    v.clear();
    v.resize(len, 0);
    v
}

/// Keeps a slot buffer for a later run.
fn recycle(slot: Vec<u8>) {
    SPARE.with_borrow_mut(|spare| {
        if slot.capacity() >= MAX_BUFFER_SIZE && spare.len() < 2 * MAX_BUFFERS {
            spare.push(slot);
        }
    });
}

/// A held handle and what the model says it holds.
pub(super) struct Held<'p> {
    pub(super) h: Handle<'p>,
    pub(super) len: usize,
    /// The whole slot.
    pub(super) slot: Vec<u8>,
}

impl Held<'_> {
    pub(super) fn check(&self, cap: usize) {
        let h = &self.h;
        assert_eq!(h.len(), self.len, "len of buffer {}", h.index());
        with!(h, b => {
            assert_eq!(b.capacity(), cap);
            assert_eq!(b.remaining(), cap - self.len);
            assert_eq!(b.is_empty(), self.len == 0);
            assert_eq!(b.remaining_mut(), cap - self.len);
        });
        assert!(h.full() == &self.slot[..], "bytes of buffer {}", h.index());
        assert!(h.filled() == &self.slot[..self.len]);
    }
}

/// A frozen buffer: every view (`SharedBuf`) that still shares it, with
/// the range of the slot each one shows.
pub(super) struct Group {
    pub(super) idx: u32,
    pub(super) slot: Vec<u8>,
    pub(super) views: Vec<(SharedBuf, usize, usize)>,
}

pub(super) enum Future<'p> {
    B(Pin<Box<Acquire<'p>>>),
    O(Pin<Box<AcquireOwned<'p>>>),
}

/// A queued future, the waker it is always polled with, and whether the
/// program "forgot" it: never polled or cancelled again (as after
/// `mem::forget`; it is dropped only at the end of the run).
pub(super) struct Waiter<'p> {
    pub(super) fut: Future<'p>,
    pub(super) kind: Kind,
    pub(super) waker: Waker,
    pub(super) forgotten: bool,
}

impl<'p> Waiter<'p> {
    pub(super) fn poll(&mut self) -> Poll<Handle<'p>> {
        let mut cx = Context::from_waker(&self.waker);
        match &mut self.fut {
            Future::B(f) => f.as_mut().poll(&mut cx).map(Handle::B),
            Future::O(f) => f.as_mut().poll(&mut cx).map(Handle::O),
        }
    }
}

pub(super) struct State<'p> {
    pub(super) pool: &'p Pool,
    pub(super) cfg: Resolved,
    /// Buffer size.
    pub(super) cap: usize,
    pub(super) held: Vec<Held<'p>>,
    pub(super) groups: Vec<Group>,
    /// Queued futures, oldest first; the first `granted` of them were
    /// handed a buffer (and no longer count as waiting).
    pub(super) waiters: Vec<Waiter<'p>>,
    pub(super) granted: usize,
    /// What the re-entering wakers did, and what the model expects.
    pub(super) reentries: Arc<Reentries>,
    pub(super) reentered: (u64, u64),
    /// Bytes of the free slots that were used, by index (others are zero).
    pub(super) free_slots: Vec<Option<Vec<u8>>>,
    /// Expected `stats()` counters.
    pub(super) capacity: usize,
    pub(super) limit: usize,
    pub(super) segments: usize,
    pub(super) failed: u64,
    pub(super) waits: u64,
    /// Most buffers out at once (held, frozen or handed to waiters).
    pub(super) most_out: usize,
    /// Rotates which held handle is fully checked after each operation.
    pub(super) tick: usize,
}

impl<'p> State<'p> {
    pub(super) fn out(&self) -> usize {
        self.held.len() + self.groups.len() + self.granted
    }

    /// A slot's bytes as it comes out of the pool (it is no longer free).
    pub(super) fn take_free_bytes(&mut self, idx: u32) -> Vec<u8> {
        match self.free_slots[idx as usize].take() {
            Some(b) => b,
            None => zeroed_slot(self.cap),
        }
    }

    /// Hands the model's slot buffers to the next run (see [`SPARE`]).
    pub(super) fn recycle_slots(&mut self) {
        for held in self.held.drain(..) {
            recycle(held.slot);
        }
        for slot in self.free_slots.iter_mut().filter_map(Option::take) {
            recycle(slot);
        }
    }

    /// What an acquire that does not queue must do: succeed iff a buffer
    /// is free or the pool may grow; growth doubles the capacity up to the
    /// limit.
    pub(super) fn expect_take(&mut self) -> bool {
        let out = self.out();
        if out >= self.limit {
            return false;
        }
        if out == self.capacity {
            self.capacity += self.capacity.min(self.limit - self.capacity);
            self.segments += 1;
        }
        true
    }

    pub(super) fn live_indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.held
            .iter()
            .map(|h| h.h.index())
            .chain(self.groups.iter().map(|g| g.idx))
    }

    /// A fresh handle: a slot nobody else holds, with the bytes the model
    /// says it has, empty.
    pub(super) fn acquired(&mut self, mut h: Handle<'p>, stamp: Option<u8>) {
        let idx = h.index();
        assert!(
            (idx as usize) < self.capacity,
            "index {idx} not below capacity {}",
            self.capacity
        );
        assert!(
            !self.live_indices().any(|i| i == idx),
            "buffer {idx} handed out twice"
        );
        assert_eq!(h.len(), 0, "a fresh buffer is empty");
        let mut slot = self.take_free_bytes(idx);
        assert!(
            h.full() == &slot[..],
            "buffer {idx} does not hold the bytes it was released with{}",
            if self.cfg.zero_on_release {
                " (zero_on_release: all zero)"
            } else {
                ""
            }
        );
        if let Some(seed) = stamp {
            slot.copy_from_slice(pattern(seed ^ idx as u8, self.cap));
            with!(&mut h, b => b.as_full_mut().copy_from_slice(&slot));
        }
        self.held.push(Held { h, len: 0, slot });
        self.most_out = self.most_out.max(self.out());
    }

    /// A slot went back to the pool (from any thread) with these bytes. If
    /// a waiter is queued without a buffer, it is handed this one. Returns
    /// whether that ran a panicking waker (see [`grant_next`](Self::grant_next)).
    pub(super) fn released(&mut self, idx: u32, slot: Vec<u8>) -> bool {
        if self.cfg.zero_on_release {
            recycle(slot);
        } else {
            self.free_slots[idx as usize] = Some(slot);
        }
        self.grant_next()
    }

    /// A slot is handed to the oldest waiter without one, if any, and its
    /// waker runs: a re-entering one takes a buffer (if one is free, or the
    /// pool may grow) and gives it straight back, which hands it on in
    /// turn. Returns whether a panicking waker ran in that chain.
    pub(super) fn grant_next(&mut self) -> bool {
        if self.granted == self.waiters.len() {
            return false;
        }
        let kind = self.waiters[self.granted].kind;
        self.granted += 1;
        match kind {
            Kind::Noop => false,
            Kind::Panics => true,
            Kind::Reenters => {
                if self.expect_take() {
                    self.reentered.0 += 1;
                    self.most_out = self.most_out.max(self.out() + 1);
                    // Taken and given back unchanged: only the hand-on.
                    self.grant_next()
                } else {
                    self.reentered.1 += 1;
                    self.failed += 1;
                    false
                }
            }
        }
    }

    pub(super) fn release(&mut self, i: usize) {
        let held = self.held.swap_remove(i);
        held.check(self.cap);
        let idx = held.h.index();
        let panics = self.released(idx, held.slot);
        expect_panic(held.h, panics, "a release");
    }

    pub(super) fn pick(&self, h: u8) -> Option<usize> {
        if self.held.is_empty() {
            None
        } else {
            Some(usize::from(h) % self.held.len())
        }
    }

    pub(super) fn check(&mut self) {
        let s = self.pool.stats();
        assert_eq!(s.capacity, self.capacity, "capacity {s:?}");
        assert_eq!(s.max_capacity, self.limit, "max_capacity {s:?}");
        assert_eq!(
            s.in_use,
            self.out(),
            "in_use: {} held, {} frozen, {} handed to waiters; {s:?}",
            self.held.len(),
            self.groups.len(),
            self.granted
        );
        assert_eq!(
            s.waiting,
            self.waiters.len() - self.granted,
            "waiting: {} queued, {} of them handed a buffer; {s:?}",
            self.waiters.len(),
            self.granted
        );
        let r = &self.reentries;
        assert_eq!(
            (r.got.load(Relaxed), r.missed.load(Relaxed)),
            self.reentered,
            "acquires from inside a waker (got, missed)"
        );
        assert_eq!(s.segments, self.segments, "segments {s:?}");
        assert_eq!(s.failed_acquires, self.failed, "failed_acquires {s:?}");
        assert_eq!(s.waits, self.waits, "waits {s:?}");
        assert!(s.in_use + s.cached <= s.capacity, "{s:?}");
        assert!(s.high_water <= s.capacity, "high_water {s:?}");
        if self.cfg.cache_size == 0 {
            assert_eq!(
                s.high_water, self.most_out,
                "high_water without caches {s:?}"
            );
        } else {
            assert!(s.high_water >= self.most_out, "high_water {s:?}");
        }
        if self.cfg.cache_size == 0 {
            assert_eq!(s.cached, 0);
        }
        let mut seen = [false; MAX_BUFFERS];
        for idx in self.live_indices() {
            assert!((idx as usize) < self.capacity);
            let seen = &mut seen[idx as usize];
            assert!(!*seen, "two live handles share buffer {idx}");
            *seen = true;
        }
        for h in &self.held {
            assert_eq!(h.h.len(), h.len);
        }
        if !self.held.is_empty() {
            self.tick += 1;
            self.held[self.tick % self.held.len()].check(self.cap);
        }
    }
}
