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
//! `grow_to`, `freeze` into `SharedBuf` views with clones, slices, splits,
//! truncation and `try_into_mut`, `split_to` / `split_off` of an owned
//! handle that keeps writing in what is left of its slot (`split`), and
//! hand-offs of
//! handles and views to a worker thread (dropped there, into its cache,
//! or sent back), which lives across runs and may be told to exit (its
//! cache then goes back to the pool) and be replaced.
//!
//! With `Settings::upper`, the pool is built with size classes: its own
//! settings as the smallest class and a class of twice the size above it
//! (falling up or not). Sized acquires (`try_*_with_capacity`) take from
//! either, or fail with `TooLarge`; everything else, waiters included,
//! uses the smallest class, and the larger class's buffers are modelled
//! apart (`model::Upper`): the checks below are the smallest class's
//! (`class_stats()[0]`), the larger class's counters and bytes are checked
//! against its own model, and `stats()` must be the sum of both.
//!
//! The model keeps the bytes of every slot (a handle's and a free slot's,
//! which persist unless `zero_on_release` clears them), each handle's
//! length, the waiters in arrival order and how many of them were handed a
//! buffer. After every operation the pool's `stats()` must match it
//! (`in_use` is exactly the held handles plus the frozen buffers plus the
//! buffers handed to waiters, and `capacity`, `waiting`, `segments`,
//! `failed_acquires`, `waits` are exact), no two live handles may share an
//! index, and every byte a handle or view shows is checked against the
//! model when it is touched and when it is released.
//!
//! Queued futures are polled with wakers that may panic or call back into
//! the pool (`wakers`), and may be forgotten (never polled or cancelled
//! again, as after `mem::forget`): the model knows which waiter each
//! release hands its buffer to, so it checks that a panicking waker's
//! panic reaches exactly that releaser, that a forgotten waiter costs
//! exactly the buffer handed to it, and what a re-entering waker's
//! acquire gets.
//!
//! The module is split by concept: `settings` (the fuzzed builder settings
//! and the errors they must give), `model` (the handles, the model's state
//! and the check after every operation), `ops` (the operations: to add one,
//! add a variant to [`ops::Op`] and its arm in `State::op`, updating the
//! model), `split` (the operations on views, and the splits of a writer),
//! `thread` (the worker thread, and what runs on it in a hand-off), `trim`
//! (`Pool::trim`: which segments it must free, and what that does to the
//! model).

use std::sync::Arc;

use arbitrary::Arbitrary;
use arenapool::OwnedBuf;

/// Runs `$e` with `$b` bound to the `Buf` or `OwnedBuf` inside a handle.
macro_rules! with {
    ($h:expr, $b:ident => $e:expr) => {
        match $h {
            Handle::B($b) => $e,
            Handle::O($b) => $e,
        }
    };
}

mod classes;
mod model;
mod ops;
mod settings;
mod split;
mod thread;
mod trim;
mod wakers;

use model::{Handle, State, Upper};
use ops::Op;
use settings::Settings;
use thread::Worker;

/// Bounds each run: programs of at most this many operations...
const MAX_OPS: usize = 64;
/// ...on pools of at most this many buffers...
const MAX_BUFFERS: usize = 64;
/// ...of at most this many bytes.
const MAX_BUFFER_SIZE: usize = 4096;
/// Hand-offs per run that go to the worker thread (each costs two thread
/// wake-ups); later ones run on the fuzzing thread.
const MAX_HANDOFFS: usize = 8;
/// How many times a run may end the worker thread and start another (see
/// [`thread::Worker`]); each costs about 150 us under AddressSanitizer.
const MAX_EXITS: usize = 1;

/// One fuzz input: the pool's settings and a program.
#[derive(Arbitrary, Debug)]
pub struct Input {
    settings: Settings,
    /// At the end, drop the pool's handle first and the owned handles and
    /// `Bytes` after it (they keep the pool alive).
    outlive_pool: bool,
    ops: Vec<Op>,
}

/// Runs one input; panics if the pool and the model disagree.
pub fn run(input: Input) {
    let cfg = input.settings.resolve();
    let errors = cfg.errors();
    let pool = match cfg.build() {
        Ok(pool) => {
            assert!(
                errors.is_empty(),
                "build accepted {cfg:?}; expected one of {errors:?}"
            );
            pool
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
    let sizes: Vec<usize> = pool.buffer_sizes().collect();
    match cfg.classes {
        None => assert_eq!(sizes, [cfg.buffer_size]),
        Some(c) => assert_eq!(sizes, [cfg.buffer_size, c.buffer_size]),
    }
    let limit = cfg.grow_to.unwrap_or(cfg.capacity);
    let mut st = State {
        pool: &pool,
        cfg,
        cap: cfg.buffer_size,
        held: Vec::new(),
        groups: Vec::new(),
        waiters: Vec::new(),
        granted: 0,
        reentries: Arc::default(),
        reentered: (0, 0),
        free_slots: vec![None; MAX_BUFFERS],
        upper: cfg
            .classes
            .map(|c| Upper::new(c.buffer_size, c.capacity, c.fall_up)),
        capacity: cfg.capacity,
        limit,
        segments: 1,
        growths: 0,
        trims: 0,
        failed: 0,
        waits: 0,
        most_out: 0,
        tick: 0,
    };
    st.check();
    Worker::with(|worker| {
        for op in input.ops.iter().take(MAX_OPS) {
            st.op(op, worker);
            st.check();
        }
    });

    // Serve and then cancel the waiters (the forgotten ones too, whose
    // buffers come back).
    // Newest first: the ones without a buffer leave before those handed
    // one give it back, so no waker runs.
    st.poll_waiters();
    st.check();
    while let Some(w) = st.waiters.pop() {
        drop(w);
    }
    st.granted = 0;
    st.check();

    if input.outlive_pool {
        // Borrowed handles go now; owned handles and `Bytes` outlive the
        // pool's handle and keep the pool alive.
        let mut i = 0;
        while i < st.held.len() {
            if matches!(st.held[i].h, Handle::B(_)) {
                st.release(i);
            } else {
                i += 1;
            }
        }
        let zero = st.cfg.zero_on_release;
        if let Some(u) = &mut st.upper {
            let mut i = 0;
            while i < u.held.len() {
                if matches!(u.held[i].h, Handle::B(_)) {
                    u.release(zero, i);
                } else {
                    i += 1;
                }
            }
        }
        st.check();
        let cap = st.cap;
        // Each with the model's bytes of its region and its length.
        let owned = |held: Vec<model::Held<'_>>| -> Vec<(OwnedBuf, Vec<u8>, usize)> {
            held.into_iter()
                .map(|h| match h.h {
                    Handle::O(b) => (b, h.slot[h.off..h.off + h.rcap].to_vec(), h.len),
                    Handle::B(_) => unreachable!(),
                })
                .collect()
        };
        let small = owned(std::mem::take(&mut st.held));
        let (upper_cap, upper) = match &mut st.upper {
            Some(u) => (u.cap, owned(std::mem::take(&mut u.held))),
            None => (0, Vec::new()),
        };
        let frozen = st.frozen();
        let groups = std::mem::take(&mut st.groups);
        // The smallest class's `stats()` sums the classes; the larger
        // class's counts its own. A split writer's slot counts once.
        let kept = small.len() + frozen + upper.len();
        drop(st);
        // That the memory goes with the last of them is checked by the
        // allocation balance test (`tests/alloc_balance.rs`).
        drop(pool);
        for (b, slot, len) in &small {
            assert_eq!(b.len(), *len);
            assert_eq!(b.capacity(), slot.len());
            assert_eq!(b.pool().buffer_size(), cap);
            assert!(b.as_full() == &slot[..]);
            assert_eq!(b.pool().stats().in_use, kept);
        }
        for (b, slot, len) in &upper {
            assert_eq!(b.len(), *len);
            assert_eq!(b.capacity(), upper_cap);
            assert_eq!(b.pool().buffer_size(), upper_cap);
            assert!(b.as_full() == &slot[..]);
            assert_eq!(b.pool().stats().in_use, upper.len());
        }
        // The smallest class's buffers first: the larger class's keep
        // only their own class alive.
        drop(small);
        drop(upper);
        for g in groups {
            for (bytes, a, b) in &g.views {
                assert!(bytes[..] == g.slot[*a..*b], "Bytes outliving the pool");
            }
        }
        return;
    }

    // Give everything back: nothing may be left in use.
    while !st.held.is_empty() {
        st.release(st.held.len() - 1);
    }
    let zero = st.cfg.zero_on_release;
    if let Some(u) = &mut st.upper {
        while !u.held.is_empty() {
            u.release(zero, u.held.len() - 1);
        }
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
    assert_eq!(pool.class_stats()[0].stats.capacity, limit);
    // And every buffer of the larger class, asked for by size, each with
    // its bytes, and then no more, also falling up from the smallest.
    if let Some(u) = &mut st.upper {
        let size = u.cap;
        for _ in 0..u.capacity {
            let h = pool
                .try_acquire_with_capacity(size)
                .unwrap()
                .expect("a free buffer of the larger class");
            u.acquired(zero, Handle::B(h), None, 0);
        }
        assert!(pool.try_acquire_with_capacity(size).unwrap().is_none());
        u.failed += 1;
        assert!(pool.try_acquire_with_capacity(1).unwrap().is_none());
        st.failed += 1;
        st.check();
    }
    st.recycle_slots();
}
