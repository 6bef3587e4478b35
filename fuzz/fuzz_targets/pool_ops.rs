//! `arenapool::Pool` against a plain model.
//!
//! Each input builds a pool from fuzzed settings (bounded: at most 64
//! buffers of at most 4 KiB, with sometimes an out-of-range setting, which
//! must come back as the matching typed `BuildError`, never a panic) and
//! runs a program of at most 64 operations on it: borrowed and owned
//! acquires (non-blocking, zero timeout, async futures polled by hand that
//! queue when the pool is exhausted), releases, writes of every kind
//! (`extend_from_slice`, `set_len`, `truncate`, `clear`, `as_full_mut`,
//! `spare_mut`, `DerefMut`, `bytes::BufMut`, `io::Write`), growth up to
//! `grow_to`, `freeze` into `Bytes` with clones and slices, and hand-offs of
//! handles and `Bytes` to other threads (dropped there or sent back).
//!
//! The model keeps the bytes of every slot (a handle's and a free slot's,
//! which persist unless `zero_on_release` clears them), each handle's
//! length, the waiters in arrival order and how many of them were handed a
//! buffer. After every operation the pool's `stats()` must match it
//! (`in_use` is exactly the held handles plus the frozen buffers plus the
//! buffers handed to waiters, and `capacity`, `waiting`, `segments`,
//! `failed_acquires`, `waits` are exact), no two live handles may share an
//! index, and every byte a handle or `Bytes` shows is checked against the
//! model when it is touched and when it is released.

#![no_main]

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use arbitrary::Arbitrary;
use arenapool::{
    Acquire, AcquireOwned, Buf, BuildError, CapacityError, MAX_ALIGNMENT, MAX_CACHE_SIZE,
    MAX_CAPACITY, OwnedBuf, Pool,
};
use bytes::{BufMut, Bytes};
use libfuzzer_sys::fuzz_target;

/// Bounds each run: programs of at most this many operations...
const MAX_OPS: usize = 64;
/// ...on pools of at most this many buffers...
const MAX_BUFFERS: usize = 64;
/// ...of at most this many bytes.
const MAX_BUFFER_SIZE: usize = 4096;
/// Threads spawned per run at most (each costs about a millisecond under
/// AddressSanitizer); later hand-offs run on the fuzzing thread.
const MAX_THREADS: usize = 8;

#[derive(Arbitrary, Debug)]
struct Input {
    settings: Settings,
    /// At the end, drop the pool's `Arc` first and the owned handles and
    /// `Bytes` after it (they keep the pool alive).
    outlive_pool: bool,
    ops: Vec<Op>,
}

/// Raw settings, mapped onto bounded values by [`Settings::resolve`].
#[derive(Arbitrary, Debug)]
struct Settings {
    buffer_size: u16,
    capacity: u8,
    grow_to: Option<u8>,
    cache_size: u16,
    alignment: u16,
    zero_on_release: bool,
    /// Picks one setting to push far out of range.
    oversize: u8,
    big: u32,
}

#[derive(Debug, Clone, Copy)]
struct Resolved {
    buffer_size: usize,
    capacity: usize,
    grow_to: Option<usize>,
    cache_size: usize,
    alignment: usize,
    zero_on_release: bool,
}

impl Settings {
    fn resolve(&self) -> Resolved {
        let mut r = Resolved {
            // 0 is out of range.
            buffer_size: usize::from(self.buffer_size) % (MAX_BUFFER_SIZE + 1),
            capacity: usize::from(self.capacity) % (MAX_BUFFERS + 1),
            grow_to: self.grow_to.map(|g| usize::from(g) % (MAX_BUFFERS + 1)),
            cache_size: match self.cache_size >> 14 {
                0 | 1 => usize::from(self.cache_size) % 9,
                2 => usize::from(self.cache_size) % 70,
                // Around the maximum, on both sides.
                _ => MAX_CACHE_SIZE - 4 + usize::from(self.cache_size) % 8,
            },
            alignment: if self.alignment & 0x8000 != 0 {
                // Mostly not a power of two, or too large.
                usize::from(self.alignment & 0x7fff)
            } else {
                1 << (self.alignment % 13)
            },
            zero_on_release: self.zero_on_release,
        };
        let big = self.big as usize;
        match self.oversize % 16 {
            1 => r.buffer_size = isize::MAX as usize + 1 + big,
            2 => r.buffer_size = usize::MAX - big,
            3 => r.capacity = MAX_CAPACITY + 1 + big,
            4 => r.grow_to = Some(MAX_CAPACITY + 1 + big),
            _ => {}
        }
        r
    }
}

impl Resolved {
    /// Every error `build` may report for these settings (each names one
    /// setting that is out of range); empty if they are all valid.
    fn errors(&self) -> Vec<BuildError> {
        let mut v = Vec::new();
        let too_large = |n: usize| BuildError::CapacityTooLarge {
            requested: n as u64,
            max: MAX_CAPACITY as u64,
        };
        if self.buffer_size == 0 {
            v.push(BuildError::ZeroSize);
        }
        if self.capacity == 0 {
            v.push(BuildError::ZeroCapacity);
        }
        if self.capacity > MAX_CAPACITY {
            v.push(too_large(self.capacity));
        }
        if !self.alignment.is_power_of_two() || self.alignment > MAX_ALIGNMENT {
            v.push(BuildError::BadAlignment(self.alignment));
        }
        if self.cache_size > MAX_CACHE_SIZE {
            v.push(BuildError::CacheTooLarge(self.cache_size));
        }
        if let Some(g) = self.grow_to {
            if g > MAX_CAPACITY {
                v.push(too_large(g));
            } else if self.capacity <= MAX_CAPACITY && g < self.capacity {
                v.push(BuildError::GrowLimitBelowCapacity {
                    capacity: self.capacity as u32,
                    limit: g as u32,
                });
            }
        }
        if self.buffer_size > isize::MAX as usize {
            v.push(BuildError::TooLarge);
        }
        v
    }

    fn build(&self) -> Result<Pool, BuildError> {
        let mut b = Pool::builder()
            .buffer_size(self.buffer_size)
            .capacity(self.capacity)
            .cache_size(self.cache_size)
            .alignment(self.alignment)
            .zero_on_release(self.zero_on_release);
        if let Some(g) = self.grow_to {
            b = b.grow_to(g);
        }
        b.build()
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// `try_acquire` / `try_acquire_owned`; `stamp` fills the whole slot
    /// with a pattern.
    TryAcquire {
        owned: bool,
        stamp: Option<u8>,
    },
    /// `acquire_timeout(0)` / `acquire_owned_timeout(0)`.
    AcquireNow {
        owned: bool,
        stamp: Option<u8>,
    },
    /// `acquire()` / `acquire_owned()` polled once; queued if pending.
    AcquireAsync {
        owned: bool,
    },
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
    /// `OwnedBuf::freeze` into `Bytes`.
    Freeze(u8),
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
    /// Drops a `Bytes`, here or on another thread.
    DropView {
        g: u8,
        v: u8,
        on_thread: bool,
    },
    /// Moves a handle to another thread, which checks it, maybe writes to
    /// it, and drops it there or sends it back.
    SendToThread {
        h: u8,
        write: Option<(u16, u8)>,
        back: bool,
    },
}

enum Handle<'p> {
    B(Buf<'p>),
    O(OwnedBuf),
}

/// Runs `$e` with `$b` bound to the `Buf` or `OwnedBuf` inside a handle.
macro_rules! with {
    ($h:expr, $b:ident => $e:expr) => {
        match $h {
            Handle::B($b) => $e,
            Handle::O($b) => $e,
        }
    };
}

impl Handle<'_> {
    fn index(&self) -> u32 {
        with!(self, b => b.index())
    }
    fn len(&self) -> usize {
        with!(self, b => b.len())
    }
    fn full(&self) -> &[u8] {
        with!(self, b => b.as_full())
    }
    fn filled(&self) -> &[u8] {
        with!(self, b => &b[..])
    }
}

/// A held handle and what the model says it holds.
struct Held<'p> {
    h: Handle<'p>,
    len: usize,
    /// The whole slot.
    slot: Vec<u8>,
}

impl Held<'_> {
    fn check(&self, cap: usize) {
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

/// A frozen buffer: every `Bytes` that still shares it, with the range of
/// the slot each one shows.
struct Group {
    idx: u32,
    slot: Vec<u8>,
    views: Vec<(Bytes, usize, usize)>,
}

enum Waiter<'p> {
    B(Pin<Box<Acquire<'p>>>),
    O(Pin<Box<AcquireOwned>>),
}

impl<'p> Waiter<'p> {
    fn poll(&mut self) -> Poll<Handle<'p>> {
        let mut cx = Context::from_waker(Waker::noop());
        match self {
            Waiter::B(f) => f.as_mut().poll(&mut cx).map(Handle::B),
            Waiter::O(f) => f.as_mut().poll(&mut cx).map(Handle::O),
        }
    }
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i as u8).wrapping_mul(97)) ^ (i >> 8) as u8)
        .collect()
}

struct State<'p> {
    pool: &'p Arc<Pool>,
    cfg: Resolved,
    /// Buffer size.
    cap: usize,
    held: Vec<Held<'p>>,
    groups: Vec<Group>,
    /// Queued futures, oldest first; the first `granted` of them were
    /// handed a buffer and are ready to be polled.
    waiters: Vec<Waiter<'p>>,
    granted: usize,
    /// Bytes of the free slots that were used (others are zero).
    free_slots: HashMap<u32, Vec<u8>>,
    /// Expected `stats()` counters.
    capacity: usize,
    limit: usize,
    segments: usize,
    failed: u64,
    waits: u64,
    /// Most buffers out at once (held, frozen or handed to waiters).
    most_out: usize,
    /// Rotates which held handle is fully checked after each operation.
    tick: usize,
    /// Threads spawned so far (see [`MAX_THREADS`]).
    threads: usize,
}

impl<'p> State<'p> {
    fn out(&self) -> usize {
        self.held.len() + self.groups.len() + self.granted
    }

    /// A slot's bytes as it comes out of the pool.
    fn free_bytes(&self, idx: u32) -> Vec<u8> {
        match self.free_slots.get(&idx) {
            Some(b) => b.clone(),
            None => vec![0; self.cap],
        }
    }

    /// What an acquire that does not queue must do: succeed iff a buffer
    /// is free or the pool may grow; growth doubles the capacity up to the
    /// limit.
    fn expect_take(&mut self) -> bool {
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

    fn live_indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.held
            .iter()
            .map(|h| h.h.index())
            .chain(self.groups.iter().map(|g| g.idx))
    }

    /// A fresh handle: a slot nobody else holds, with the bytes the model
    /// says it has, empty.
    fn acquired(&mut self, mut h: Handle<'p>, stamp: Option<u8>) {
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
        let mut slot = self.free_bytes(idx);
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
            slot = pattern(seed ^ idx as u8, self.cap);
            with!(&mut h, b => b.as_full_mut().copy_from_slice(&slot));
        }
        self.held.push(Held { h, len: 0, slot });
        self.most_out = self.most_out.max(self.out());
    }

    /// A slot went back to the pool (from any thread) with these bytes. If
    /// a waiter is queued without a buffer, it is handed this one.
    fn released(&mut self, idx: u32, slot: Vec<u8>) {
        if self.cfg.zero_on_release {
            self.free_slots.remove(&idx);
        } else {
            self.free_slots.insert(idx, slot);
        }
        if self.granted < self.waiters.len() {
            self.granted += 1;
        }
    }

    fn release(&mut self, i: usize) {
        let held = self.held.swap_remove(i);
        held.check(self.cap);
        let idx = held.h.index();
        drop(held.h);
        self.released(idx, held.slot);
    }

    fn pick(&self, h: u8) -> Option<usize> {
        if self.held.is_empty() {
            None
        } else {
            Some(usize::from(h) % self.held.len())
        }
    }

    fn check(&mut self) {
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
        assert_eq!(s.waiting, self.waiters.len(), "waiting {s:?}");
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
        let mut seen = HashSet::new();
        for idx in self.live_indices() {
            assert!((idx as usize) < self.capacity);
            assert!(seen.insert(idx), "two live handles share buffer {idx}");
        }
        for h in &self.held {
            assert_eq!(h.h.len(), h.len);
        }
        if !self.held.is_empty() {
            self.tick += 1;
            self.held[self.tick % self.held.len()].check(self.cap);
        }
    }

    fn op(&mut self, op: &Op) {
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
                let queued = !self.waiters.is_empty();
                let ok = self.expect_take();
                if queued || !ok {
                    self.waits += 1;
                }
                let h = if owned {
                    pool.acquire_owned_timeout(Duration::ZERO).map(Handle::O)
                } else {
                    pool.acquire_timeout(Duration::ZERO).map(Handle::B)
                };
                assert_eq!(h.is_ok(), ok, "acquire_timeout(0) with {} out", self.out());
                match h {
                    Ok(h) => self.acquired(h, stamp),
                    Err(e) => {
                        assert!(e.waited < Duration::from_secs(5));
                        self.failed += 1;
                    }
                }
            }
            Op::AcquireAsync { owned } => {
                // As for `AcquireNow`.
                let queued = !self.waiters.is_empty();
                let ok = self.expect_take();
                if queued || !ok {
                    self.waits += 1;
                }
                let mut w = if owned {
                    Waiter::O(Box::pin(pool.acquire_owned()))
                } else {
                    Waiter::B(Box::pin(pool.acquire()))
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
                if !self.waiters.is_empty() {
                    let i = usize::from(i) % self.waiters.len();
                    drop(self.waiters.remove(i));
                    if i < self.granted {
                        // Its buffer passes to the next waiter without
                        // one, or back to the pool.
                        if self.waiters.len() < self.granted {
                            self.granted -= 1;
                        }
                    }
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
                    let r = with!(&mut held.h, b => b.extend_from_slice(&data));
                    let end = held.len + data.len();
                    if end <= cap {
                        assert_eq!(r, Ok(()));
                        held.slot[held.len..end].copy_from_slice(&data);
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
                        full.copy_from_slice(&data);
                    });
                    held.slot = data;
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
                        spare[..n].copy_from_slice(&data);
                    });
                    held.slot[held.len..held.len + n].copy_from_slice(&data);
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
                        with!(&mut held.h, b => b.put_slice(&data));
                        held.slot[held.len..held.len + data.len()].copy_from_slice(&data);
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
                    let n = with!(&mut held.h, b => b.write(&data)).unwrap();
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
                    // An empty slice is `Bytes::new()`: it does not share
                    // (or keep) the buffer.
                    if a < b {
                        let start = *start;
                        group.views.push((part, start + a, start + b));
                    }
                }
            }
            Op::DropView { g, v, on_thread } => {
                if let Some((g, v)) = self.pick_view(g, v) {
                    let spawn = on_thread && self.spawn_ok();
                    let group = &mut self.groups[g];
                    let (bytes, a, b) = group.views.swap_remove(v);
                    assert!(
                        bytes[..] == group.slot[a..b],
                        "Bytes of buffer {}",
                        group.idx
                    );
                    if spawn {
                        std::thread::spawn(move || drop(bytes)).join().unwrap();
                    } else {
                        drop(bytes);
                    }
                    if group.views.is_empty() {
                        let group = self.groups.swap_remove(g);
                        self.released(group.idx, group.slot);
                    }
                }
            }
            Op::SendToThread { h, write, back } => {
                if let Some(i) = self.pick(h) {
                    let spawn = self.spawn_ok();
                    let held = self.held.swap_remove(i);
                    let idx = held.h.index();
                    let (slot, len) = (held.slot, held.len);
                    let (h, slot, len) = match held.h {
                        Handle::O(b) if !spawn => {
                            let (b, slot, len) = on_thread(b, slot, len, cap, write, back);
                            (b.map(Handle::O), slot, len)
                        }
                        Handle::B(b) if !spawn => {
                            let (b, slot, len) = on_thread(b, slot, len, cap, write, back);
                            (b.map(Handle::B), slot, len)
                        }
                        Handle::O(b) => {
                            let (b, slot, len) = std::thread::spawn(move || {
                                on_thread(b, slot, len, cap, write, back)
                            })
                            .join()
                            .unwrap();
                            (b.map(Handle::O), slot, len)
                        }
                        Handle::B(b) => {
                            let (b, slot, len) = std::thread::scope(|s| {
                                s.spawn(move || on_thread(b, slot, len, cap, write, back))
                                    .join()
                                    .unwrap()
                            });
                            (b.map(Handle::B), slot, len)
                        }
                    };
                    match h {
                        Some(h) => {
                            assert_eq!(h.index(), idx);
                            let held = Held { h, len, slot };
                            held.check(cap);
                            self.held.push(held);
                        }
                        // Dropped there.
                        None => self.released(idx, slot),
                    }
                }
            }
        }
    }

    /// Whether the next hand-off may spawn a thread.
    fn spawn_ok(&mut self) -> bool {
        self.threads += 1;
        self.threads <= MAX_THREADS
    }

    fn pick_view(&self, g: u8, v: u8) -> Option<(usize, usize)> {
        if self.groups.is_empty() {
            return None;
        }
        let g = usize::from(g) % self.groups.len();
        let v = usize::from(v) % self.groups[g].views.len();
        Some((g, v))
    }

    /// Polls every queued future: exactly the first `granted` are ready.
    fn poll_waiters(&mut self) {
        let granted = self.granted;
        let mut ready = Vec::new();
        for (i, w) in self.waiters.iter_mut().enumerate() {
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
                }
            }
        }
        self.waiters.drain(..ready.len());
        self.granted = 0;
        for h in ready {
            self.acquired(h, None);
        }
    }
}

/// The part of [`Op::SendToThread`] that runs on the other thread: checks
/// the handle's bytes, maybe appends, then drops it there or sends it back,
/// with the model's view of its slot either way.
fn on_thread<H>(
    mut b: H,
    mut slot: Vec<u8>,
    mut len: usize,
    cap: usize,
    write: Option<(u16, u8)>,
    back: bool,
) -> (Option<H>, Vec<u8>, usize)
where
    H: std::ops::DerefMut<Target = [u8]> + Write + Send,
{
    assert!(
        b[..] == slot[..len],
        "bytes changed on the way to another thread"
    );
    if let Some((n, seed)) = write {
        let data = pattern(seed, usize::from(n) % (cap + 1));
        let n = b.write(&data).unwrap();
        assert_eq!(n, data.len().min(cap - len));
        slot[len..len + n].copy_from_slice(&data[..n]);
        len += n;
        assert!(b[..] == slot[..len]);
    }
    if back {
        (Some(b), slot, len)
    } else {
        drop(b);
        (None, slot, len)
    }
}

fuzz_target!(|input: Input| {
    let cfg = input.settings.resolve();
    let errors = cfg.errors();
    let pool = match cfg.build() {
        Ok(pool) => {
            assert!(
                errors.is_empty(),
                "build accepted {cfg:?}; expected one of {errors:?}"
            );
            Arc::new(pool)
        }
        Err(e) => {
            assert!(
                errors.contains(&e),
                "build of {cfg:?} failed with {e:?}; expected one of {errors:?}"
            );
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert_eq!(pool.buffer_size(), cfg.buffer_size);
    assert_eq!(pool.alignment(), cfg.alignment);
    assert_eq!(pool.cache_size(), cfg.cache_size);
    let limit = cfg.grow_to.unwrap_or(cfg.capacity);
    let mut st = State {
        pool: &pool,
        cfg,
        cap: cfg.buffer_size,
        held: Vec::new(),
        groups: Vec::new(),
        waiters: Vec::new(),
        granted: 0,
        free_slots: HashMap::new(),
        capacity: cfg.capacity,
        limit,
        segments: 1,
        failed: 0,
        waits: 0,
        most_out: 0,
        tick: 0,
        threads: 0,
    };
    st.check();
    for op in input.ops.iter().take(MAX_OPS) {
        st.op(op);
        st.check();
    }

    // Serve and then cancel the waiters.
    st.poll_waiters();
    st.check();
    st.waiters.clear();
    st.check();

    if input.outlive_pool {
        // Borrowed handles go now; owned handles and `Bytes` outlive the
        // pool's `Arc` and keep the pool alive.
        let mut i = 0;
        while i < st.held.len() {
            if matches!(st.held[i].h, Handle::B(_)) {
                st.release(i);
            } else {
                i += 1;
            }
        }
        st.check();
        let cap = st.cap;
        let owned: Vec<(OwnedBuf, Vec<u8>, usize)> = std::mem::take(&mut st.held)
            .into_iter()
            .map(|h| match h.h {
                Handle::O(b) => (b, h.slot, h.len),
                Handle::B(_) => unreachable!(),
            })
            .collect();
        let groups = std::mem::take(&mut st.groups);
        let kept = owned.len() + groups.len();
        drop(st);
        let weak = Arc::downgrade(&pool);
        drop(pool);
        assert_eq!(
            weak.upgrade().is_some(),
            kept > 0,
            "handles keep the pool alive"
        );
        for (b, slot, len) in &owned {
            assert_eq!(b.len(), *len);
            assert_eq!(b.capacity(), cap);
            assert!(b.as_full() == &slot[..]);
            assert_eq!(b.pool().stats().in_use, kept);
        }
        drop(owned);
        for g in groups {
            for (bytes, a, b) in &g.views {
                assert!(bytes[..] == g.slot[*a..*b], "Bytes outliving the pool");
            }
        }
        assert!(
            weak.upgrade().is_none(),
            "the pool outlived its last handle"
        );
        return;
    }

    // Give everything back: nothing may be left in use.
    while !st.held.is_empty() {
        st.release(st.held.len() - 1);
    }
    while let Some(mut g) = st.groups.pop() {
        for (bytes, a, b) in g.views.drain(..) {
            assert!(bytes[..] == g.slot[a..b]);
        }
        st.released(g.idx, g.slot);
    }
    st.check();
    assert_eq!(pool.stats().in_use, 0);

    // Every buffer up to the limit can be taken at once, each with the
    // bytes it was left with, and then no more.
    for _ in 0..limit {
        assert!(st.expect_take());
        let h = pool.try_acquire().expect("a free buffer");
        st.acquired(Handle::B(h), None);
    }
    assert!(!st.expect_take());
    assert!(pool.try_acquire().is_none(), "more buffers than the limit");
    st.failed += 1;
    st.check();
    assert_eq!(pool.stats().capacity, limit);
});
