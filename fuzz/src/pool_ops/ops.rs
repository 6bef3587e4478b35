//! The operations of a program, and what each one must do.

use std::io::Write;
use std::task::Poll;
use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::BufMut;

use arenapool::CapacityError;

use super::model::{Future, Handle, Held, State, Waiter};
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
    /// its buffer's only one and no writer is left; the writable buffer is
    /// checked and kept as a held handle (`keep`) or dropped.
    TryIntoMut {
        g: u8,
        v: u8,
        keep: bool,
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
    /// `OwnedBuf::split_to(at % (len + 1))`: the front becomes a view of
    /// the slot, the handle writes on after it.
    SplitTo {
        h: u8,
        at: u16,
    },
    /// `OwnedBuf::split_off(at % (len + 1))`: the tail becomes a view, the
    /// handle's region ends at `at`.
    SplitOff {
        h: u8,
        at: u16,
    },
    /// `SharedBuf::split_to(at % (len + 1))`.
    ViewSplitTo {
        g: u8,
        v: u8,
        at: u16,
    },
    /// `SharedBuf::split_off(at % (len + 1))`.
    ViewSplitOff {
        g: u8,
        v: u8,
        at: u16,
    },
    /// `SharedBuf::truncate(n % (len + 2))`.
    TruncateView {
        g: u8,
        v: u8,
        n: u16,
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
    /// `Pool::trim` (`trim.rs`).
    Trim,
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
                    let rc = held.rcap;
                    let data = pattern(seed, usize::from(len) % (rc + 16));
                    let r = with!(&mut held.h, b => b.extend_from_slice(data));
                    let (len, end) = (held.len, held.len + data.len());
                    if end <= rc {
                        assert_eq!(r, Ok(()));
                        held.region()[len..end].copy_from_slice(data);
                        held.len = end;
                    } else {
                        assert_eq!(
                            r,
                            Err(CapacityError {
                                requested: end,
                                capacity: rc
                            })
                        );
                    }
                    held.check(cap);
                }
            }
            Op::SetLen { h, len } => {
                if let Some(i) = self.pick(h) {
                    let held = &mut self.held[i];
                    let rc = held.rcap;
                    let len = usize::from(len) % (rc + 16);
                    let r = with!(&mut held.h, b => b.set_len(len));
                    if len <= rc {
                        assert_eq!(r, Ok(()));
                        held.len = len;
                    } else {
                        assert_eq!(
                            r,
                            Err(CapacityError {
                                requested: len,
                                capacity: rc
                            })
                        );
                    }
                    held.check(cap);
                }
            }
            Op::Truncate { h, len } => {
                if let Some(i) = self.pick(h) {
                    let held = &mut self.held[i];
                    let len = usize::from(len) % (held.rcap + 16);
                    with!(&mut held.h, b => b.truncate(len));
                    held.len = held.len.min(len);
                    held.check(cap);
                }
            }
            Op::Clear(h) => {
                if let Some(i) = self.pick(h) {
                    // The whole slot comes back once no view of it is left.
                    let whole = self.writer_group(self.held[i].h.index()).is_none();
                    let held = &mut self.held[i];
                    with!(&mut held.h, b => b.clear());
                    held.len = 0;
                    if whole {
                        held.off = 0;
                        held.rcap = cap;
                    }
                    held.check(cap);
                }
            }
            Op::FillFull { h, len, seed } => {
                if let Some(i) = self.pick(h) {
                    let held = &mut self.held[i];
                    let rc = held.rcap;
                    let data = pattern(seed, rc);
                    let (off, slot) = (held.off, &mut held.slot);
                    with!(&mut held.h, b => {
                        let full = b.as_full_mut();
                        assert_eq!(full.len(), rc);
                        assert!(*full == slot[off..off + rc], "as_full_mut shows other bytes");
                        full.copy_from_slice(data);
                    });
                    held.region().copy_from_slice(data);
                    let len = usize::from(len) % (rc + 1);
                    with!(&mut held.h, b => b.set_len(len)).unwrap();
                    held.len = len;
                    held.check(cap);
                }
            }
            Op::FillSpare { h, n, seed, commit } => {
                if let Some(i) = self.pick(h) {
                    let held = &mut self.held[i];
                    let (rc, len) = (held.rcap, held.len);
                    let n = usize::from(n) % (rc - len + 1);
                    let data = pattern(seed, n);
                    with!(&mut held.h, b => {
                        let spare = b.spare_mut();
                        assert_eq!(spare.len(), rc - len);
                        spare[..n].copy_from_slice(data);
                    });
                    held.region()[len..len + n].copy_from_slice(data);
                    if commit {
                        let len = len + n;
                        with!(&mut held.h, b => b.set_len(len)).unwrap();
                        held.len = len;
                    }
                    held.check(cap);
                }
            }
            Op::MutateFilled { h, seed } => {
                if let Some(i) = self.pick(h) {
                    let held = &mut self.held[i];
                    let len = held.len;
                    with!(&mut held.h, b => {
                        assert_eq!(b.len(), len);
                        for x in b.iter_mut() {
                            *x ^= seed;
                        }
                        for x in b.as_mut() {
                            *x = x.wrapping_add(1);
                        }
                    });
                    for x in &mut held.region()[..len] {
                        *x = (*x ^ seed).wrapping_add(1);
                    }
                    held.check(cap);
                }
            }
            Op::Put { h, len, seed } => {
                if let Some(i) = self.pick(h) {
                    let held = &mut self.held[i];
                    let rc = held.rcap;
                    let data = pattern(seed, usize::from(len) % (rc + 16));
                    let room = with!(&held.h, b => b.remaining_mut());
                    assert_eq!(room, rc - held.len);
                    if data.len() <= room {
                        with!(&mut held.h, b => b.put_slice(data));
                        let len = held.len;
                        held.region()[len..len + data.len()].copy_from_slice(data);
                        held.len += data.len();
                    }
                    if held.len < rc {
                        with!(&mut held.h, b => b.put_u8(seed));
                        let len = held.len;
                        held.region()[len] = seed;
                        held.len += 1;
                    }
                    held.check(cap);
                }
            }
            Op::IoWrite { h, len, seed } => {
                if let Some(i) = self.pick(h) {
                    let held = &mut self.held[i];
                    let (rc, filled) = (held.rcap, held.len);
                    let data = pattern(seed, usize::from(len) % (rc + 16));
                    let n = with!(&mut held.h, b => b.write(data)).unwrap();
                    assert_eq!(n, data.len().min(rc - filled), "io::Write took");
                    held.region()[filled..filled + n].copy_from_slice(&data[..n]);
                    held.len += n;
                    with!(&mut held.h, b => b.flush()).unwrap();
                    held.check(cap);
                }
            }
            Op::Freeze(h) => self.freeze(h),
            Op::TryIntoMut { g, v, keep } => self.try_into_mut(g, v, keep),
            Op::CloneView { g, v } => self.clone_view(g, v),
            Op::SliceView { g, v, a, b } => self.slice_view(g, v, a, b),
            Op::DropView {
                g,
                v,
                on_thread,
                exit,
            } => self.drop_view(g, v, on_thread, exit, worker),
            Op::SplitTo { h, at } => self.split_writer(h, at, true),
            Op::SplitOff { h, at } => self.split_writer(h, at, false),
            Op::ViewSplitTo { g, v, at } => self.split_view(g, v, at, true),
            Op::ViewSplitOff { g, v, at } => self.split_view(g, v, at, false),
            Op::TruncateView { g, v, n } => self.truncate_view(g, v, n),
            Op::SendToThread {
                h,
                write,
                back,
                exit,
            } => {
                // Not a writer whose slot has views: they stay here.
                if let Some(i) = self.pick(h)
                    && (matches!(self.held[i].h, Handle::B(_))
                        || self.writer_group(self.held[i].h.index()).is_none())
                {
                    let held = self.held.swap_remove(i);
                    let idx = held.h.index();
                    let (slot, len, (off, rcap)) = (held.slot, held.len, (held.off, held.rcap));
                    let r = (off, rcap);
                    let there = worker.handoff();
                    let (h, slot, len) = match held.h {
                        Handle::O(b) if !there => {
                            let (b, slot, len) = on_thread(b, slot, len, r, write, back);
                            (b.map(Handle::O), slot, len)
                        }
                        Handle::B(b) if !there => {
                            let (b, slot, len) = on_thread(b, slot, len, r, write, back);
                            (b.map(Handle::B), slot, len)
                        }
                        Handle::O(b) => {
                            let (b, slot, len) =
                                worker.run(move || on_thread(b, slot, len, r, write, back));
                            (b.map(Handle::O), slot, len)
                        }
                        Handle::B(b) => {
                            let (b, slot, len) =
                                worker.run(move || on_thread(b, slot, len, r, write, back));
                            (b.map(Handle::B), slot, len)
                        }
                    };
                    if exit {
                        worker.exit();
                    }
                    match h {
                        Some(h) => {
                            assert_eq!(h.index(), idx);
                            let held = Held {
                                h,
                                len,
                                slot,
                                off,
                                rcap,
                            };
                            held.check(cap);
                            self.held.push(held);
                        }
                        // Dropped there (unarmed: no waker panics).
                        None => {
                            self.released(idx, slot);
                        }
                    }
                }
            }
            Op::SizedAcquire { n, owned, stamp } => self.sized_acquire(n, owned, stamp),
            Op::Trim => self.trim(),
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
