//! The operations of a program, and what each one must do.

use std::io::Write;
use std::task::Poll;
use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::BufMut;

use arenapool::CapacityError;

use super::model::{Future, Group, Handle, Held, State, Waiter};
use super::thread::{Worker, on_thread};
use super::wakers::{self, Kind, expect_panic};
use crate::pattern;

#[derive(Arbitrary, Debug)]
pub enum Op {
    /// `try_acquire` / `try_acquire_owned`; `stamp` fills the whole slot
    /// with a pattern.
    TryAcquire {
        owned: bool,
        stamp: Option<u8>,
    },
    /// `acquire_blocking(0)` / `acquire_owned_blocking(0)`.
    AcquireNow {
        owned: bool,
        stamp: Option<u8>,
    },
    /// `acquire()` / `acquire_owned()` polled once, with a waker that may
    /// panic or call back into the pool; queued if pending.
    AcquireAsync {
        owned: bool,
        waker: Kind,
    },
    /// Forgets a queued future, as `mem::forget` would: it is never polled
    /// or cancelled again, and may be handed a buffer it never collects.
    ForgetWaiter(u8),
    /// Up to `n % 17` `try_acquire`s in a row (grows the pool).
    AcquireMany {
        n: u8,
        owned: bool,
    },
    /// Polls every queued future, oldest first.
    PollWaiters,
    /// Drops a queued future.
    CancelWaiter(u8),
    /// Drops a held handle.
    Release(u8),
    Extend {
        h: u8,
        len: u16,
        seed: u8,
    },
    SetLen {
        h: u8,
        len: u16,
    },
    Truncate {
        h: u8,
        len: u16,
    },
    Clear(u8),
    /// Writes the whole slot through `as_full_mut`, then `set_len`.
    FillFull {
        h: u8,
        len: u16,
        seed: u8,
    },
    /// Writes `n` bytes of `spare_mut`, then maybe extends over them.
    FillSpare {
        h: u8,
        n: u16,
        seed: u8,
        commit: bool,
    },
    /// Changes the filled bytes through `DerefMut`.
    MutateFilled {
        h: u8,
        seed: u8,
    },
    /// `BufMut::put_slice` (when it fits) and `put_u8`.
    Put {
        h: u8,
        len: u16,
        seed: u8,
    },
    /// `io::Write::write`, which takes what fits.
    IoWrite {
        h: u8,
        len: u16,
        seed: u8,
    },
    /// `OwnedBuf::freeze` into a `SharedBuf`.
    Freeze(u8),
    /// `SharedBuf::try_into_mut`: must succeed exactly when the view is
    /// its buffer's only one; the writable buffer is checked and dropped.
    TryIntoMut {
        g: u8,
        v: u8,
    },
    CloneView {
        g: u8,
        v: u8,
    },
    SliceView {
        g: u8,
        v: u8,
        a: u16,
        b: u16,
    },
    /// Drops a `Bytes`, here or on the worker thread (which then exits if
    /// `exit`).
    DropView {
        g: u8,
        v: u8,
        on_thread: bool,
        exit: bool,
    },
    /// Moves a handle to the worker thread, which checks it, maybe writes
    /// to it, and drops it there or sends it back; then exits if `exit`.
    SendToThread {
        h: u8,
        write: Option<(u16, u8)>,
        back: bool,
        exit: bool,
    },
    /// `try_acquire_with_capacity(n)` / `try_acquire_owned_with_capacity(n)`
    /// (`n` mostly up to twice the largest class, sometimes near
    /// `usize::MAX`): the smallest class for `n`, falling up to the larger
    /// one when it is empty (with `fall_up`), or `TooLarge`. `stamp` fills
    /// the whole slot; a buffer of the larger class then keeps `n` bytes
    /// of it (as far as they fit).
    SizedAcquire {
        n: u16,
        owned: bool,
        stamp: Option<u8>,
    },
    /// Drops a held buffer of the larger size class.
    ReleaseUpper(u8),
}

impl<'p> State<'p> {
    pub(super) fn op(&mut self, op: &Op, worker: &mut Worker) {
        let pool = self.pool;
        let cap = self.cap;
        match *op {
            Op::TryAcquire { owned, stamp } => {
                let ok = self.expect_take();
                let h = if owned {
                    pool.try_acquire_owned().map(Handle::O)
                } else {
                    pool.try_acquire().map(Handle::B)
                };
                assert_eq!(h.is_some(), ok, "try_acquire with {} out", self.out());
                match h {
                    Some(h) => self.acquired(h, stamp),
                    None => self.failed += 1,
                }
            }
            Op::AcquireNow { owned, stamp } => {
                // A caller that finds the pool empty, or others queued,
                // queues (and counts a wait) before it tries again. A
                // buffer can be free while others are queued only when
                // each of them was handed one already, so it gets one iff
                // `try_acquire` would.
                let queued = self.waiters.len() > self.granted; // waiting without a buffer
                let ok = self.expect_take();
                if queued || !ok {
                    self.waits += 1;
                }
                let h = if owned {
                    pool.acquire_owned_blocking(Duration::ZERO).map(Handle::O)
                } else {
                    pool.acquire_blocking(Duration::ZERO).map(Handle::B)
                };
                assert_eq!(h.is_ok(), ok, "acquire_blocking(0) with {} out", self.out());
                match h {
                    Ok(h) => self.acquired(h, stamp),
                    Err(e) => {
                        assert!(e.waited < Duration::from_secs(5));
                        self.failed += 1;
                    }
                }
            }
            Op::AcquireAsync { owned, waker } => {
                // As for `AcquireNow`.
                let queued = self.waiters.len() > self.granted; // waiting without a buffer
                let ok = self.expect_take();
                if queued || !ok {
                    self.waits += 1;
                }
                let fut = if owned {
                    Future::O(Box::pin(pool.acquire_owned()))
                } else {
                    Future::B(Box::pin(pool.acquire()))
                };
                let mut w = Waiter {
                    fut,
                    kind: waker,
                    waker: wakers::waker(waker, pool, &self.reentries),
                    forgotten: false,
                };
                match w.poll() {
                    Poll::Ready(h) => {
                        assert!(ok, "acquire() was ready with {} out", self.out());
                        self.acquired(h, None);
                    }
                    Poll::Pending => {
                        assert!(!ok, "acquire() pending with {} out", self.out());
                        self.waiters.push(w);
                    }
                }
            }
            Op::AcquireMany { n, owned } => {
                for _ in 0..n % 17 {
                    let ok = self.expect_take();
                    let h = if owned {
                        pool.try_acquire_owned().map(Handle::O)
                    } else {
                        pool.try_acquire().map(Handle::B)
                    };
                    assert_eq!(h.is_some(), ok, "try_acquire with {} out", self.out());
                    match h {
                        Some(h) => self.acquired(h, None),
                        None => {
                            self.failed += 1;
                            break;
                        }
                    }
                }
            }
            Op::PollWaiters => self.poll_waiters(),
            Op::CancelWaiter(i) => {
                if let Some(i) = self.pick_waiter(i) {
                    let w = self.waiters.remove(i);
                    let mut panics = false;
                    if i < self.granted {
                        // Its buffer passes to the next waiter without
                        // one (whose waker runs), or back to the pool.
                        self.granted -= 1;
                        panics = self.grant_next();
                    }
                    expect_panic(w, panics, "a cancelled waiter");
                }
            }
            Op::ForgetWaiter(i) => {
                if let Some(i) = self.pick_waiter(i) {
                    self.waiters[i].forgotten = true;
                }
            }
            Op::Release(h) => {
                if let Some(i) = self.pick(h) {
                    self.release(i);
                }
            }
            Op::Extend { h, len, seed } => {
                if let Some(i) = self.pick(h) {
                    let held = &mut self.held[i];
                    let data = pattern(seed, usize::from(len) % (cap + 16));
                    let r = with!(&mut held.h, b => b.extend_from_slice(data));
                    let end = held.len + data.len();
                    if end <= cap {
                        assert_eq!(r, Ok(()));
                        held.slot[held.len..end].copy_from_slice(data);
                        held.len = end;
                    } else {
                        assert_eq!(
                            r,
                            Err(CapacityError {
                                requested: end,
                                capacity: cap
                            })
                        );
                    }
                    held.check(cap);
                }
            }
            Op::SetLen { h, len } => {
                if let Some(i) = self.pick(h) {
                    let held = &mut self.held[i];
                    let len = usize::from(len) % (cap + 16);
                    let r = with!(&mut held.h, b => b.set_len(len));
                    if len <= cap {
                        assert_eq!(r, Ok(()));
                        held.len = len;
                    } else {
                        assert_eq!(
                            r,
                            Err(CapacityError {
                                requested: len,
                                capacity: cap
                            })
                        );
                    }
                    held.check(cap);
                }
            }
            Op::Truncate { h, len } => {
                if let Some(i) = self.pick(h) {
                    let held = &mut self.held[i];
                    let len = usize::from(len) % (cap + 16);
                    with!(&mut held.h, b => b.truncate(len));
                    held.len = held.len.min(len);
                    held.check(cap);
                }
            }
            Op::Clear(h) => {
                if let Some(i) = self.pick(h) {
                    let held = &mut self.held[i];
                    with!(&mut held.h, b => b.clear());
                    held.len = 0;
                    held.check(cap);
                }
            }
            Op::FillFull { h, len, seed } => {
                if let Some(i) = self.pick(h) {
                    let held = &mut self.held[i];
                    let data = pattern(seed, cap);
                    with!(&mut held.h, b => {
                        let full = b.as_full_mut();
                        assert_eq!(full.len(), cap);
                        assert!(*full == held.slot[..], "as_full_mut shows other bytes");
                        full.copy_from_slice(data);
                    });
                    held.slot.copy_from_slice(data);
                    let len = usize::from(len) % (cap + 1);
                    with!(&mut held.h, b => b.set_len(len)).unwrap();
                    held.len = len;
                    held.check(cap);
                }
            }
            Op::FillSpare { h, n, seed, commit } => {
                if let Some(i) = self.pick(h) {
                    let held = &mut self.held[i];
                    let n = usize::from(n) % (cap - held.len + 1);
                    let data = pattern(seed, n);
                    with!(&mut held.h, b => {
                        let spare = b.spare_mut();
                        assert_eq!(spare.len(), cap - held.len);
                        spare[..n].copy_from_slice(data);
                    });
                    held.slot[held.len..held.len + n].copy_from_slice(data);
                    if commit {
                        let len = held.len + n;
                        with!(&mut held.h, b => b.set_len(len)).unwrap();
                        held.len = len;
                    }
                    held.check(cap);
                }
            }
            Op::MutateFilled { h, seed } => {
                if let Some(i) = self.pick(h) {
                    let held = &mut self.held[i];
                    with!(&mut held.h, b => {
                        assert_eq!(b.len(), held.len);
                        for x in b.iter_mut() {
                            *x ^= seed;
                        }
                        for x in b.as_mut() {
                            *x = x.wrapping_add(1);
                        }
                    });
                    for x in &mut held.slot[..held.len] {
                        *x = (*x ^ seed).wrapping_add(1);
                    }
                    held.check(cap);
                }
            }
            Op::Put { h, len, seed } => {
                if let Some(i) = self.pick(h) {
                    let held = &mut self.held[i];
                    let data = pattern(seed, usize::from(len) % (cap + 16));
                    let room = with!(&held.h, b => b.remaining_mut());
                    assert_eq!(room, cap - held.len);
                    if data.len() <= room {
                        with!(&mut held.h, b => b.put_slice(data));
                        held.slot[held.len..held.len + data.len()].copy_from_slice(data);
                        held.len += data.len();
                    }
                    if held.len < cap {
                        with!(&mut held.h, b => b.put_u8(seed));
                        held.slot[held.len] = seed;
                        held.len += 1;
                    }
                    held.check(cap);
                }
            }
            Op::IoWrite { h, len, seed } => {
                if let Some(i) = self.pick(h) {
                    let held = &mut self.held[i];
                    let data = pattern(seed, usize::from(len) % (cap + 16));
                    let n = with!(&mut held.h, b => b.write(data)).unwrap();
                    assert_eq!(n, data.len().min(cap - held.len), "io::Write took");
                    held.slot[held.len..held.len + n].copy_from_slice(&data[..n]);
                    held.len += n;
                    with!(&mut held.h, b => b.flush()).unwrap();
                    held.check(cap);
                }
            }
            Op::Freeze(h) => {
                if let Some(i) = self.pick(h)
                    && matches!(self.held[i].h, Handle::O(_))
                {
                    let held = self.held.swap_remove(i);
                    held.check(cap);
                    let Handle::O(b) = held.h else { unreachable!() };
                    let idx = b.index();
                    let bytes = b.freeze();
                    assert!(
                        bytes[..] == held.slot[..held.len],
                        "freeze changed the bytes"
                    );
                    self.groups.push(Group {
                        idx,
                        slot: held.slot,
                        views: vec![(bytes, 0, held.len)],
                    });
                }
            }
            Op::CloneView { g, v } => {
                if let Some((g, v)) = self.pick_view(g, v) {
                    let group = &mut self.groups[g];
                    let (bytes, a, b) = &group.views[v];
                    let copy = bytes.clone();
                    assert_eq!(copy.as_ptr(), bytes.as_ptr(), "a clone shares the buffer");
                    assert!(copy[..] == group.slot[*a..*b]);
                    let (a, b) = (*a, *b);
                    group.views.push((copy, a, b));
                }
            }
            Op::SliceView { g, v, a, b } => {
                if let Some((g, v)) = self.pick_view(g, v) {
                    let group = &mut self.groups[g];
                    let (bytes, start, end) = &group.views[v];
                    let n = end - start;
                    let (mut a, mut b) = (usize::from(a) % (n + 1), usize::from(b) % (n + 1));
                    if a > b {
                        std::mem::swap(&mut a, &mut b);
                    }
                    let part = bytes.slice(a..b);
                    assert!(part[..] == group.slot[start + a..start + b]);
                    // Even an empty slice shares (and keeps) the buffer.
                    let start = *start;
                    group.views.push((part, start + a, start + b));
                }
            }
            Op::TryIntoMut { g, v } => {
                if let Some((g, v)) = self.pick_view(g, v) {
                    let group = &mut self.groups[g];
                    let (view, a, b) = group.views.swap_remove(v);
                    let only = group.views.is_empty();
                    match view.try_into_mut() {
                        Ok(buf) => {
                            assert!(only, "try_into_mut of a shared buffer succeeded");
                            assert!(
                                buf[..] == group.slot[a..b],
                                "try_into_mut changed the bytes"
                            );
                            assert_eq!(buf.capacity(), cap - a, "from the view's start on");
                            let group = self.groups.swap_remove(g);
                            let panics = self.released(group.idx, group.slot);
                            expect_panic(buf, panics, "a reclaimed buffer");
                        }
                        Err(view) => {
                            assert!(!only, "try_into_mut of the only view failed");
                            group.views.push((view, a, b));
                        }
                    }
                }
            }
            Op::DropView {
                g,
                v,
                on_thread,
                exit,
            } => {
                if let Some((g, v)) = self.pick_view(g, v) {
                    let group = &mut self.groups[g];
                    let (bytes, a, b) = group.views.swap_remove(v);
                    assert!(
                        bytes[..] == group.slot[a..b],
                        "Bytes of buffer {}",
                        group.idx
                    );
                    let last = group.views.is_empty();
                    if on_thread && worker.handoff() {
                        worker.run(move || drop(bytes));
                        if exit {
                            worker.exit();
                        }
                        if last {
                            let group = self.groups.swap_remove(g);
                            self.released(group.idx, group.slot);
                        }
                    } else {
                        // The model first: the last view's drop hands the
                        // buffer to a waiter, whose waker may panic.
                        let mut panics = false;
                        if last {
                            let group = self.groups.swap_remove(g);
                            panics = self.released(group.idx, group.slot);
                        }
                        expect_panic(bytes, panics, "the last Bytes");
                    }
                }
            }
            Op::SendToThread {
                h,
                write,
                back,
                exit,
            } => {
                if let Some(i) = self.pick(h) {
                    let held = self.held.swap_remove(i);
                    let idx = held.h.index();
                    let (slot, len) = (held.slot, held.len);
                    let there = worker.handoff();
                    let (h, slot, len) = match held.h {
                        Handle::O(b) if !there => {
                            let (b, slot, len) = on_thread(b, slot, len, cap, write, back);
                            (b.map(Handle::O), slot, len)
                        }
                        Handle::B(b) if !there => {
                            let (b, slot, len) = on_thread(b, slot, len, cap, write, back);
                            (b.map(Handle::B), slot, len)
                        }
                        Handle::O(b) => {
                            let (b, slot, len) =
                                worker.run(move || on_thread(b, slot, len, cap, write, back));
                            (b.map(Handle::O), slot, len)
                        }
                        Handle::B(b) => {
                            let (b, slot, len) =
                                worker.run(move || on_thread(b, slot, len, cap, write, back));
                            (b.map(Handle::B), slot, len)
                        }
                    };
                    if exit {
                        worker.exit();
                    }
                    match h {
                        Some(h) => {
                            assert_eq!(h.index(), idx);
                            let held = Held { h, len, slot };
                            held.check(cap);
                            self.held.push(held);
                        }
                        // Dropped there.
                        // Dropped there (unarmed: no waker panics).
                        None => {
                            self.released(idx, slot);
                        }
                    }
                }
            }
            Op::SizedAcquire { n, owned, stamp } => self.sized_acquire(n, owned, stamp),
            Op::ReleaseUpper(h) => {
                let zero = self.cfg.zero_on_release;
                if let Some(u) = &mut self.upper
                    && !u.held.is_empty()
                {
                    let i = usize::from(h) % u.held.len();
                    u.release(zero, i);
                }
            }
        }
    }

    pub(super) fn pick_view(&self, g: u8, v: u8) -> Option<(usize, usize)> {
        if self.groups.is_empty() {
            return None;
        }
        let g = usize::from(g) % self.groups.len();
        let v = usize::from(v) % self.groups[g].views.len();
        Some((g, v))
    }

    /// Polls every queued future that was not forgotten: exactly those
    /// among the first `granted` are ready. Forgotten ones keep their
    /// place (and a buffer handed to them).
    pub(super) fn poll_waiters(&mut self) {
        let granted = self.granted;
        let mut ready = Vec::new();
        let mut kept = Vec::new();
        let mut still_granted = 0;
        for (i, mut w) in std::mem::take(&mut self.waiters).into_iter().enumerate() {
            if w.forgotten {
                still_granted += usize::from(i < granted);
                kept.push(w);
                continue;
            }
            match w.poll() {
                Poll::Ready(h) => {
                    assert!(
                        i < granted,
                        "waiter {i} ready, but only {granted} were handed a buffer"
                    );
                    ready.push(h);
                }
                Poll::Pending => {
                    assert!(
                        i >= granted,
                        "waiter {i} was handed a buffer but is pending"
                    );
                    kept.push(w);
                }
            }
        }
        self.waiters = kept;
        self.granted = still_granted;
        for h in ready {
            self.acquired(h, None);
        }
    }

    /// A waiter the program may still touch (not forgotten).
    fn pick_waiter(&self, i: u8) -> Option<usize> {
        let live: Vec<usize> = (0..self.waiters.len())
            .filter(|&j| !self.waiters[j].forgotten)
            .collect();
        (!live.is_empty()).then(|| live[usize::from(i) % live.len()])
    }
}
