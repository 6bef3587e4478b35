//! The handles a program holds, the model of the pool, and the check
//! that runs after every operation.

use std::cell::RefCell;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, Waker};

use arenapool::{Acquire, AcquireOwned, OwnedBuf, Pool, PoolBuf, SharedBuf, Stats};
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
    pub(super) fn capacity(&self) -> usize {
        with!(self, b => b.capacity())
    }
    /// The buffer size of the class the buffer belongs to.
    pub(super) fn class_size(&self) -> usize {
        with!(self, b => b.pool().buffer_size())
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
pub(super) fn zeroed_slot(len: usize) -> Vec<u8> {
    let mut v = SPARE
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| Vec::with_capacity(MAX_BUFFER_SIZE));
    v.clear();
    v.resize(len, 0);
    v
}

/// Keeps a slot buffer for a later run.
pub(super) fn recycle(slot: Vec<u8>) {
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
    /// The handle's region of the slot: `rcap` bytes from `off` (the whole
    /// slot, unless `split_to` / `split_off` froze part of it, or it came
    /// from `try_into_mut` of a view that started late).
    pub(super) off: usize,
    pub(super) rcap: usize,
}

impl<'p> Held<'p> {
    /// A handle of the whole slot.
    pub(super) fn new(h: Handle<'p>, len: usize, slot: Vec<u8>) -> Self {
        let rcap = slot.len();
        Self {
            h,
            len,
            slot,
            off: 0,
            rcap,
        }
    }

    /// The model's bytes of its region.
    pub(super) fn region(&mut self) -> &mut [u8] {
        &mut self.slot[self.off..self.off + self.rcap]
    }

    pub(super) fn check(&self, cap: usize) {
        let h = &self.h;
        let rc = self.rcap;
        assert!(self.off + rc <= cap && self.len <= rc);
        assert_eq!(h.len(), self.len, "len of buffer {}", h.index());
        assert_eq!(h.class_size(), cap, "the class of buffer {}", h.index());
        with!(h, b => {
            assert_eq!(b.capacity(), rc, "capacity of buffer {} (region at {})", h.index(), self.off);
            assert_eq!(b.remaining(), rc - self.len);
            assert_eq!(b.is_empty(), self.len == 0);
            assert_eq!(b.remaining_mut(), rc - self.len);
        });
        let region = &self.slot[self.off..self.off + rc];
        assert!(h.full() == region, "bytes of buffer {}", h.index());
        assert!(h.filled() == &region[..self.len]);
    }
}

/// A frozen buffer: every view (`SharedBuf`) that still shares it, with
/// the range of the slot each one shows; `writer` while its `OwnedBuf`
/// (split, not frozen) is still held, which then counts the slot in
/// `in_use`, owns the slot's bytes outside the views, and keeps the slot
/// out of the pool. A group with a writer always has a view (it goes with
/// its last one).
pub(super) struct Group {
    pub(super) idx: u32,
    pub(super) slot: Vec<u8>,
    pub(super) views: Vec<(SharedBuf, usize, usize)>,
    pub(super) writer: bool,
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

/// The larger size class of a pool built with classes, modelled apart
/// from the smallest one (`State`): the buffers taken from it by
/// `try_acquire*_with_capacity`, the bytes of its free slots, its counters.
/// It never grows and nothing waits in it.
pub(super) struct Upper<'p> {
    /// Its buffer size (twice the smallest class's).
    pub(super) cap: usize,
    /// Its buffers (it never grows).
    pub(super) capacity: usize,
    pub(super) fall_up: bool,
    pub(super) held: Vec<Held<'p>>,
    /// Bytes of its free slots that were used, by index (others are zero).
    pub(super) free_slots: Vec<Option<Vec<u8>>>,
    pub(super) failed: u64,
    pub(super) most_out: usize,
    pub(super) tick: usize,
}

impl<'p> Upper<'p> {
    pub(super) fn new(cap: usize, capacity: usize, fall_up: bool) -> Self {
        Self {
            cap,
            capacity,
            fall_up,
            held: Vec::new(),
            free_slots: (0..capacity).map(|_| None).collect(),
            failed: 0,
            most_out: 0,
            tick: 0,
        }
    }

    /// Whether it has a free buffer.
    pub(super) fn has_free(&self) -> bool {
        self.held.len() < self.capacity
    }

    /// A buffer of this class came: a slot nobody holds, empty, with the
    /// bytes it was released with. `stamp` fills the slot and keeps
    /// `len` of it (as far as it fits).
    pub(super) fn acquired(
        &mut self,
        zero_on_release: bool,
        mut h: Handle<'p>,
        stamp: Option<u8>,
        len: usize,
    ) {
        let idx = h.index();
        assert!(
            (idx as usize) < self.capacity,
            "index {idx} of the larger class not below its capacity {}",
            self.capacity
        );
        assert!(
            !self.held.iter().any(|o| o.h.index() == idx),
            "buffer {idx} of the larger class handed out twice"
        );
        assert_eq!(h.len(), 0, "a fresh buffer is empty");
        let mut slot = self.free_slots[idx as usize]
            .take()
            .unwrap_or_else(|| zeroed_slot(self.cap));
        assert!(
            h.full() == &slot[..],
            "buffer {idx} of the larger class does not hold the bytes it was released with{}",
            if zero_on_release {
                " (zero_on_release: all zero)"
            } else {
                ""
            }
        );
        let mut kept = 0;
        if let Some(seed) = stamp {
            slot.copy_from_slice(pattern(seed ^ idx as u8, self.cap));
            kept = len.min(self.cap);
            with!(&mut h, b => {
                b.as_full_mut().copy_from_slice(&slot);
                b.set_len(kept).unwrap();
            });
        }
        let held = Held::new(h, kept, slot);
        held.check(self.cap);
        self.held.push(held);
        self.most_out = self.most_out.max(self.held.len());
    }

    /// Gives buffer `i` back: checks it and drops it with the panicking
    /// wakers armed (none may run: nothing waits in this class, and the
    /// smallest class's waiters are not its). Its bytes persist unless
    /// `zero_on_release`.
    pub(super) fn release(&mut self, zero_on_release: bool, i: usize) {
        let held = self.held.swap_remove(i);
        held.check(self.cap);
        let idx = held.h.index() as usize;
        if zero_on_release {
            recycle(held.slot);
        } else {
            self.free_slots[idx] = Some(held.slot);
        }
        expect_panic(held.h, false, "a release into the larger class");
    }

    /// Its `class_stats()` entry against the model.
    fn check(&mut self, s: &Stats, cache_size: usize) {
        assert_eq!(s.capacity, self.capacity, "larger class: capacity {s:?}");
        assert_eq!(s.max_capacity, self.capacity, "larger class {s:?}");
        assert_eq!(s.in_use, self.held.len(), "larger class: in_use {s:?}");
        assert_eq!(s.waiting, 0, "larger class: waiting {s:?}");
        assert_eq!(s.waits, 0, "larger class: waits {s:?}");
        assert_eq!(s.segments, 1, "larger class: segments {s:?}");
        assert_eq!(s.failed_acquires, self.failed, "larger class {s:?}");
        assert!(s.in_use + s.cached <= s.capacity, "larger class {s:?}");
        if cache_size == 0 {
            assert_eq!(s.cached, 0, "larger class {s:?}");
            assert_eq!(s.high_water, self.most_out, "larger class {s:?}");
        } else {
            assert!(s.high_water >= self.most_out, "larger class {s:?}");
            assert!(s.high_water <= s.capacity, "larger class {s:?}");
        }
        let mut seen = [false; 8];
        for h in &self.held {
            let idx = h.h.index() as usize;
            assert!(idx < self.capacity);
            assert!(
                !seen[idx],
                "two live handles share buffer {idx} of the larger class"
            );
            seen[idx] = true;
            assert_eq!(h.h.len(), h.len);
        }
        if !self.held.is_empty() {
            self.tick += 1;
            self.held[self.tick % self.held.len()].check(self.cap);
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
    /// The larger size class, if the pool was built with classes; all
    /// the rest of the model is the smallest class's.
    pub(super) upper: Option<Upper<'p>>,
    /// Expected `class_stats()[0]` counters.
    pub(super) capacity: usize,
    pub(super) limit: usize,
    pub(super) segments: usize,
    pub(super) growths: u64,
    pub(super) trims: u64,
    pub(super) failed: u64,
    pub(super) waits: u64,
    /// Most buffers out at once (held, frozen or handed to waiters).
    pub(super) most_out: usize,
    /// Rotates which held handle is fully checked after each operation.
    pub(super) tick: usize,
}

impl<'p> State<'p> {
    pub(super) fn out(&self) -> usize {
        self.held.len() + self.frozen() + self.granted
    }

    /// Frozen slots: the groups whose writer is gone.
    pub(super) fn frozen(&self) -> usize {
        self.groups.iter().filter(|g| !g.writer).count()
    }

    /// The group of views of the slot of a held writer, if it has one.
    pub(super) fn writer_group(&self, idx: u32) -> Option<usize> {
        self.groups.iter().position(|g| g.writer && g.idx == idx)
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
        if let Some(u) = &mut self.upper {
            for held in u.held.drain(..) {
                recycle(held.slot);
            }
            for slot in u.free_slots.iter_mut().filter_map(Option::take) {
                recycle(slot);
            }
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
            self.growths += 1;
        }
        true
    }

    pub(super) fn live_indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.held
            .iter()
            .map(|h| h.h.index())
            .chain(self.groups.iter().filter(|g| !g.writer).map(|g| g.idx))
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
        self.held.push(Held::new(h, 0, slot));
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
        if matches!(held.h, Handle::O(_))
            && let Some(g) = self.writer_group(idx)
        {
            // Views are left: they keep the slot, with the writer's bytes.
            let group = &mut self.groups[g];
            group.writer = false;
            recycle(std::mem::replace(&mut group.slot, held.slot));
            expect_panic(held.h, false, "a writer whose views are left");
            return;
        }
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
        let classes = self.pool.class_stats();
        let total = self.pool.stats();
        assert_eq!(classes.len(), 1 + usize::from(self.upper.is_some()));
        assert_eq!(classes[0].buffer_size, self.cap);
        // `stats()` is the sum over the classes (the most threads of any,
        // and whether any has its caches off).
        let sum = classes[1..].iter().fold(classes[0].stats, |mut sum, c| {
            let s = &c.stats;
            sum.capacity += s.capacity;
            sum.max_capacity += s.max_capacity;
            sum.in_use += s.in_use;
            sum.cached += s.cached;
            sum.high_water += s.high_water;
            sum.held_high_water += s.held_high_water;
            sum.acquires += s.acquires;
            sum.releases += s.releases;
            sum.failed_acquires += s.failed_acquires;
            sum.waits += s.waits;
            sum.waiting += s.waiting;
            sum.wait_total += s.wait_total;
            sum.wait_max = sum.wait_max.max(s.wait_max);
            sum.growths += s.growths;
            sum.trims += s.trims;
            sum.reserved_bytes += s.reserved_bytes;
            sum.resident_bytes += s.resident_bytes;
            sum.steals += s.steals;
            sum.refills += s.refills;
            sum.flushes += s.flushes;
            sum.segments += s.segments;
            sum.threads = sum.threads.max(s.threads);
            sum.caches_off |= s.caches_off;
            sum
        });
        assert_eq!(total, sum, "stats() is not the sum over the classes");
        if let Some(u) = &mut self.upper {
            assert_eq!(classes[1].buffer_size, u.cap);
            u.check(&classes[1].stats, self.cfg.cache_size);
        }
        // The rest is the smallest class's.
        let s = classes[0].stats;
        // Every buffer acquired is held or was released; the peak held
        // is at least what is held, and no more than ever taken.
        assert_eq!(s.releases, s.acquires - s.in_use as u64, "releases {s:?}");
        assert!(s.held_high_water >= s.in_use, "held_high_water {s:?}");
        assert!(s.held_high_water <= s.high_water, "held_high_water {s:?}");
        assert_eq!(s.growths, self.growths, "growths {s:?}");
        assert_eq!(s.trims, self.trims, "trims {s:?}");
        assert_eq!(
            s.reserved_bytes,
            self.capacity * self.stride(),
            "reserved {s:?}"
        );
        assert!(s.resident_bytes <= s.reserved_bytes, "resident {s:?}");
        assert_eq!(s.capacity, self.capacity, "capacity {s:?}");
        assert_eq!(s.max_capacity, self.limit, "max_capacity {s:?}");
        assert_eq!(
            s.in_use,
            self.out(),
            "in_use: {} held, {} frozen, {} handed to waiters; {s:?}",
            self.held.len(),
            self.frozen(),
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
        // A trim may free segments whose buffers were once out.
        assert!(s.high_water <= self.limit, "high_water {s:?}");
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
        for g in self.groups.iter().filter(|g| g.writer) {
            assert!(!g.views.is_empty(), "a writer's group without views");
            assert!(
                self.held
                    .iter()
                    .any(|h| matches!(h.h, Handle::O(_)) && h.h.index() == g.idx),
                "the writer of buffer {} is not held",
                g.idx
            );
        }
        if !self.held.is_empty() {
            self.tick += 1;
            self.held[self.tick % self.held.len()].check(self.cap);
        }
    }
}
