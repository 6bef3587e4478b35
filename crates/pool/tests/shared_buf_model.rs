//! Model-based property test of frozen views: random programs of writes,
//! `split_to`, `split_off`, `split`, `freeze`, reads, `clear`, and on the
//! views `clone`, `slice`, `split_to`, `split_off`, `truncate`, `advance`
//! and `try_into_mut`, run against the pool and against `bytes::BytesMut`
//! and `Bytes` (plus a count of what shares each slot). After every
//! operation each handle's bytes and capacity must match the model and
//! the pool's in-use count must be the number of slots still shared; at
//! the end every slot is back, cleared if the pool zeroes on release.

#![cfg(feature = "bytes")]

use std::collections::HashSet;
use std::io::Read as _;

use arenapool::{OwnedBuf, Pool, SharedBuf};
use bytes::{Buf as _, Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const SLOTS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Write(usize, Vec<u8>),
    SplitTo(usize, usize),
    SplitOff(usize, usize),
    Split(usize),
    Freeze(usize),
    Read(usize, usize),
    Clear(usize),
    DropWriter(usize),
    Clone(usize),
    Slice(usize, usize, usize),
    ViewSplitTo(usize, usize),
    ViewSplitOff(usize, usize),
    Truncate(usize, usize),
    Advance(usize, usize),
    TryIntoMut(usize),
    DropView(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let i = || 0usize..8;
    let n = || 0usize..80;
    prop_oneof![
        2 => Just(Op::Acquire),
        4 => (i(), vec(any::<u8>(), 0..40)).prop_map(|(w, d)| Op::Write(w, d)),
        2 => (i(), n()).prop_map(|(w, at)| Op::SplitTo(w, at)),
        1 => (i(), n()).prop_map(|(w, at)| Op::SplitOff(w, at)),
        1 => i().prop_map(Op::Split),
        1 => i().prop_map(Op::Freeze),
        1 => (i(), n()).prop_map(|(w, k)| Op::Read(w, k)),
        1 => i().prop_map(Op::Clear),
        1 => i().prop_map(Op::DropWriter),
        2 => i().prop_map(Op::Clone),
        2 => (i(), n(), n()).prop_map(|(v, a, b)| Op::Slice(v, a, b)),
        1 => (i(), n()).prop_map(|(v, at)| Op::ViewSplitTo(v, at)),
        1 => (i(), n()).prop_map(|(v, at)| Op::ViewSplitOff(v, at)),
        1 => (i(), n()).prop_map(|(v, k)| Op::Truncate(v, k)),
        1 => (i(), n()).prop_map(|(v, k)| Op::Advance(v, k)),
        2 => i().prop_map(Op::TryIntoMut),
        2 => i().prop_map(Op::DropView),
    ]
}

/// A writer and its model: the bytes (a `BytesMut`), and where its region
/// starts in the slot and how long it is.
struct Writer {
    buf: OwnedBuf,
    model: BytesMut,
    off: usize,
    cap: usize,
}

/// A view and its model: the bytes (a `Bytes`) and where they start.
struct View {
    buf: SharedBuf,
    model: Bytes,
    off: usize,
}

struct State {
    size: usize,
    writers: Vec<Writer>,
    views: Vec<View>,
}

impl State {
    /// How many handles share slot `idx`.
    fn sharing(&self, idx: u32) -> usize {
        self.writers.iter().filter(|w| w.buf.index() == idx).count()
            + self.views.iter().filter(|v| v.buf.index() == idx).count()
    }

    fn slots(&self) -> usize {
        let w = self.writers.iter().map(|w| w.buf.index());
        let v = self.views.iter().map(|v| v.buf.index());
        w.chain(v).collect::<HashSet<_>>().len()
    }

    fn check(&self, pool: &Pool) -> Result<(), TestCaseError> {
        for (i, w) in self.writers.iter().enumerate() {
            prop_assert_eq!(&w.buf[..], &w.model[..], "writer {} bytes", i);
            prop_assert_eq!(w.buf.capacity(), w.cap, "writer {} capacity", i);
        }
        for (i, v) in self.views.iter().enumerate() {
            prop_assert_eq!(&v.buf[..], &v.model[..], "view {} bytes", i);
        }
        prop_assert_eq!(pool.stats().in_use, self.slots(), "slots in use");
        Ok(())
    }
}

/// Runs `f` on handle `i % len` of `list`, if there is one.
fn pick<T>(list: &mut [T], i: usize) -> Option<&mut T> {
    let len = list.len();
    (len > 0).then(|| &mut list[i % len])
}

fn apply(s: &mut State, pool: &Pool, op: &Op) {
    let size = s.size;
    match *op {
        Op::Acquire => {
            if let Some(buf) = pool.try_acquire_owned() {
                s.writers.push(Writer {
                    buf,
                    model: BytesMut::new(),
                    off: 0,
                    cap: size,
                });
            } else {
                assert_eq!(s.slots(), SLOTS, "a free slot was refused");
            }
        }
        Op::Write(i, ref data) => {
            if let Some(w) = pick(&mut s.writers, i) {
                let fits = w.model.len() + data.len() <= w.cap;
                assert_eq!(w.buf.extend_from_slice(data).is_ok(), fits);
                if fits {
                    w.model.extend_from_slice(data);
                }
            }
        }
        Op::SplitTo(i, at) | Op::SplitOff(i, at) => {
            if let Some(w) = pick(&mut s.writers, i) {
                let at = at % (w.model.len() + 1);
                let view = if matches!(op, Op::SplitTo(..)) {
                    let v = View {
                        buf: w.buf.split_to(at),
                        model: w.model.split_to(at).freeze(),
                        off: w.off,
                    };
                    w.off += at;
                    w.cap -= at;
                    v
                } else {
                    w.cap = at;
                    View {
                        buf: w.buf.split_off(at),
                        model: w.model.split_off(at).freeze(),
                        off: w.off + at,
                    }
                };
                s.views.push(view);
            }
        }
        Op::Split(i) => {
            if let Some(w) = pick(&mut s.writers, i) {
                let n = w.model.len();
                s.views.push(View {
                    buf: w.buf.split(),
                    model: w.model.split().freeze(),
                    off: w.off,
                });
                w.off += n;
                w.cap -= n;
            }
        }
        Op::Freeze(i) => {
            if !s.writers.is_empty() {
                let w = s.writers.swap_remove(i % s.writers.len());
                s.views.push(View {
                    buf: w.buf.freeze(),
                    model: w.model.freeze(),
                    off: w.off,
                });
            }
        }
        Op::Read(i, k) => {
            if let Some(w) = pick(&mut s.writers, i) {
                let mut out = vec![0; k];
                let n = w.buf.read(&mut out).unwrap();
                assert_eq!(n, k.min(w.model.len()));
                assert_eq!(&out[..n], &w.model.split_to(n)[..]);
                w.off += n;
                w.cap -= n;
            }
        }
        Op::Clear(i) => {
            if !s.writers.is_empty() {
                let i = i % s.writers.len();
                let alone = s.sharing(s.writers[i].buf.index()) == 1;
                let w = &mut s.writers[i];
                w.buf.clear();
                w.model.clear();
                if alone {
                    w.cap = size;
                    w.off = 0;
                }
            }
        }
        Op::DropWriter(i) => {
            if !s.writers.is_empty() {
                s.writers.swap_remove(i % s.writers.len());
            }
        }
        Op::Clone(i) => {
            if let Some(v) = pick(&mut s.views, i) {
                let copy = View {
                    buf: v.buf.clone(),
                    model: v.model.clone(),
                    off: v.off,
                };
                s.views.push(copy);
            }
        }
        Op::Slice(i, a, b) => {
            if let Some(v) = pick(&mut s.views, i) {
                let len = v.model.len();
                let (a, b) = (a % (len + 1), b % (len + 1));
                let (a, b) = (a.min(b), a.max(b));
                let part = View {
                    buf: v.buf.slice(a..b),
                    model: v.model.slice(a..b),
                    off: v.off + a,
                };
                s.views.push(part);
            }
        }
        Op::ViewSplitTo(i, at) | Op::ViewSplitOff(i, at) => {
            if let Some(v) = pick(&mut s.views, i) {
                let at = at % (v.model.len() + 1);
                let part = if matches!(op, Op::ViewSplitTo(..)) {
                    let p = View {
                        buf: v.buf.split_to(at),
                        model: v.model.split_to(at),
                        off: v.off,
                    };
                    v.off += at;
                    p
                } else {
                    View {
                        buf: v.buf.split_off(at),
                        model: v.model.split_off(at),
                        off: v.off + at,
                    }
                };
                s.views.push(part);
            }
        }
        Op::Truncate(i, k) => {
            if let Some(v) = pick(&mut s.views, i) {
                v.buf.truncate(k);
                v.model.truncate(k);
            }
        }
        Op::Advance(i, k) => {
            if let Some(v) = pick(&mut s.views, i) {
                let k = k % (v.model.len() + 1);
                bytes::Buf::advance(&mut v.buf, k);
                v.model.advance(k);
                v.off += k;
            }
        }
        Op::TryIntoMut(i) => {
            if !s.views.is_empty() {
                let i = i % s.views.len();
                let alone = s.sharing(s.views[i].buf.index()) == 1;
                let v = s.views.swap_remove(i);
                match v.buf.try_into_mut() {
                    Ok(buf) => {
                        assert!(alone, "try_into_mut succeeded on a shared buffer");
                        s.writers.push(Writer {
                            buf,
                            model: BytesMut::from(&v.model[..]),
                            off: v.off,
                            cap: size - v.off,
                        });
                    }
                    Err(buf) => {
                        assert!(!alone, "try_into_mut failed on the only view");
                        s.views.push(View { buf, ..v });
                    }
                }
            }
        }
        Op::DropView(i) => {
            if !s.views.is_empty() {
                s.views.swap_remove(i % s.views.len());
            }
        }
    }
}

fn run(size: usize, zero: bool, ops: &[Op]) -> Result<(), TestCaseError> {
    let pool = Pool::builder()
        .buffer_size(size)
        .capacity(SLOTS)
        .zero_on_release(zero)
        .build()
        .unwrap();
    let mut s = State {
        size,
        writers: Vec::new(),
        views: Vec::new(),
    };
    for op in ops {
        apply(&mut s, &pool, op);
        s.check(&pool)?;
    }
    drop(s);
    prop_assert_eq!(pool.stats().in_use, 0, "a slot was not given back");
    let all: Vec<_> = std::iter::from_fn(|| pool.try_acquire()).collect();
    prop_assert_eq!(all.len(), SLOTS, "a slot was lost or given back twice");
    if zero {
        for buf in &all {
            prop_assert!(
                buf.as_full().iter().all(|&b| b == 0),
                "slot {} not cleared",
                buf.index()
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 256 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn views_match_bytes(
        size in 1usize..=96,
        zero in any::<bool>(),
        ops in vec(op(), 1..if cfg!(miri) { 40 } else { 120 }),
    ) {
        run(size, zero, &ops)?;
    }
}
