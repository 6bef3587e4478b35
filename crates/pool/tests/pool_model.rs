//! Model-based property test: random programs of pool operations run
//! against the real pool and against a plain model (a counter of slots,
//! the doubling growth rule, and a `Vec<u8>` per held handle), and every
//! observable thing is compared after every operation.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::sync::Arc;

use arenapool::{CapacityError, OwnedBuf, Pool, PoolBuf};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// A pool configuration the builder accepts.
#[derive(Debug, Clone, Copy)]
struct Cfg {
    buffer_size: usize,
    capacity: usize,
    alignment: usize,
    grow_to: Option<usize>,
    zero_on_release: bool,
    /// Per-thread cache size; 0 turns caches off.
    cache_size: usize,
}

impl Cfg {
    /// The most slots the pool may ever have.
    fn limit(&self) -> usize {
        self.grow_to.unwrap_or(self.capacity)
    }

    fn build(&self) -> Pool {
        let mut b = Pool::builder()
            .buffer_size(self.buffer_size)
            .capacity(self.capacity)
            .alignment(self.alignment)
            .zero_on_release(self.zero_on_release)
            .cache_size(self.cache_size);
        if let Some(limit) = self.grow_to {
            b = b.grow_to(limit);
        }
        b.build()
            .expect("the strategy only makes valid configurations")
    }
}

fn cfg() -> impl Strategy<Value = Cfg> {
    (
        1usize..=300,
        1usize..=16,
        0u32..=12,
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![0usize, 1, 4, 32]),
    )
        .prop_flat_map(
            |(buffer_size, capacity, align_log, grows, zero_on_release, cache_size)| {
                let grow_to = if grows {
                    (capacity..=64).prop_map(Some).boxed()
                } else {
                    Just(None).boxed()
                };
                grow_to.prop_map(move |grow_to| Cfg {
                    buffer_size,
                    capacity,
                    alignment: 1 << align_log,
                    grow_to,
                    zero_on_release,
                    cache_size,
                })
            },
        )
}

#[derive(Debug, Clone)]
enum Op {
    /// `try_acquire` (a borrowed `Buf`).
    Acquire,
    /// `try_acquire_owned` (an `OwnedBuf`).
    AcquireOwned,
    /// Drop the i-th held handle (modulo the number held).
    Release(usize),
    /// `extend_from_slice` into the i-th held handle.
    Write(usize, Vec<u8>),
    /// `io::Write::write` (a partial write when it does not fit).
    IoWrite(usize, Vec<u8>),
    /// `set_len` on the i-th held handle (may be past the capacity).
    SetLen(usize, usize),
    /// Fill the whole slot through `as_full_mut`.
    FillFull(usize, u8),
    /// `clear`: `len = 0`, bytes kept.
    Clear(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Acquire),
        2 => Just(Op::AcquireOwned),
        3 => any::<usize>().prop_map(Op::Release),
        4 => (any::<usize>(), vec(any::<u8>(), 0..=80)).prop_map(|(i, b)| Op::Write(i, b)),
        1 => (any::<usize>(), vec(any::<u8>(), 0..=80)).prop_map(|(i, b)| Op::IoWrite(i, b)),
        2 => (any::<usize>(), 0usize..=320).prop_map(|(i, n)| Op::SetLen(i, n)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Op::FillFull(i, b)),
        1 => any::<usize>().prop_map(Op::Clear),
    ]
}

/// Either kind of handle, so one program can mix them.
enum Handle<'a> {
    Borrowed(PoolBuf<'a>),
    Owned(OwnedBuf),
}

/// Forwards a method call to whichever handle this is.
macro_rules! each {
    ($h:expr, $b:ident => $e:expr) => {
        match $h {
            Handle::Borrowed($b) => $e,
            Handle::Owned($b) => $e,
        }
    };
}

impl Handle<'_> {
    fn len(&self) -> usize {
        each!(self, b => b.len())
    }
    fn is_empty(&self) -> bool {
        each!(self, b => b.is_empty())
    }
    fn capacity(&self) -> usize {
        each!(self, b => b.capacity())
    }
    fn remaining(&self) -> usize {
        each!(self, b => b.remaining())
    }
    fn index(&self) -> u32 {
        each!(self, b => b.index())
    }
    fn filled(&self) -> &[u8] {
        each!(self, b => &b[..])
    }
    fn as_full(&self) -> &[u8] {
        each!(self, b => b.as_full())
    }
    fn as_full_mut(&mut self) -> &mut [u8] {
        each!(self, b => b.as_full_mut())
    }
    fn set_len(&mut self, n: usize) -> Result<(), CapacityError> {
        each!(self, b => b.set_len(n))
    }
    fn extend_from_slice(&mut self, data: &[u8]) -> Result<(), CapacityError> {
        each!(self, b => b.extend_from_slice(data))
    }
    fn io_write(&mut self, data: &[u8]) -> usize {
        each!(self, b => b.write(data).expect("writing to a buffer never fails"))
    }
    fn clear(&mut self) {
        each!(self, b => b.clear())
    }
}

/// A held handle and what the model says it contains.
struct Held<'a> {
    handle: Handle<'a>,
    /// The whole slot, byte for byte.
    full: Vec<u8>,
    len: usize,
}

/// Everything the pool should report, computed independently.
struct Model {
    cfg: Cfg,
    capacity: usize,
    segments: usize,
    high_water: usize,
    failed: u64,
}

impl Model {
    fn new(cfg: Cfg) -> Self {
        Self {
            cfg,
            capacity: cfg.capacity,
            segments: 1,
            high_water: 0,
            failed: 0,
        }
    }

    /// An acquire while `held` buffers are out: `true` if it must succeed,
    /// applying any growth it causes.
    fn acquire(&mut self, held: usize) -> bool {
        if held == self.capacity {
            let room = self.cfg.limit() - self.capacity;
            if room == 0 {
                self.failed += 1;
                return false;
            }
            // Segment k >= 1 doubles the capacity, cut at the limit.
            self.capacity += self.capacity.min(room);
            self.segments += 1;
        }
        self.high_water = self.high_water.max(held + 1);
        true
    }
}

fn check_all(
    pool: &Pool,
    model: &Model,
    held: &[Held<'_>],
    addr_of: &mut HashMap<u32, usize>,
) -> Result<(), TestCaseError> {
    let cfg = model.cfg;
    let s = pool.stats();
    prop_assert_eq!(s.in_use, held.len(), "in_use");
    prop_assert_eq!(s.capacity, model.capacity, "capacity");
    prop_assert_eq!(s.max_capacity, cfg.limit(), "max_capacity");
    prop_assert_eq!(s.segments, model.segments, "segments");
    if cfg.cache_size == 0 {
        prop_assert_eq!(s.high_water, model.high_water, "high_water");
    } else {
        // With caches, buffers parked in this thread's cache count as out
        // of the shared list too: an upper bound on the most ever held.
        prop_assert!(
            s.high_water >= model.high_water,
            "high_water below the most held"
        );
        prop_assert!(s.high_water <= s.capacity, "high_water above capacity");
    }
    prop_assert!(
        s.in_use + s.cached <= s.capacity,
        "cached + in_use <= capacity"
    );
    prop_assert!(
        s.cached <= cfg.cache_size,
        "one thread caches at most cache_size"
    );
    prop_assert_eq!(s.failed_acquires, model.failed, "failed_acquires");
    prop_assert_eq!(s.waits, 0, "no blocking acquire was made");
    prop_assert!(s.capacity <= s.max_capacity);

    let mut indices = HashSet::new();
    let mut ranges = Vec::with_capacity(held.len());
    for (i, h) in held.iter().enumerate() {
        let b = &h.handle;
        prop_assert_eq!(b.capacity(), cfg.buffer_size, "handle {} capacity", i);
        prop_assert_eq!(b.len(), h.len, "handle {} len", i);
        prop_assert_eq!(b.is_empty(), h.len == 0);
        prop_assert_eq!(b.remaining(), cfg.buffer_size - h.len);
        prop_assert_eq!(b.filled(), &h.full[..h.len], "handle {} filled bytes", i);
        prop_assert_eq!(b.as_full(), &h.full[..], "handle {} whole slot", i);

        let idx = b.index();
        prop_assert!((idx as usize) < s.capacity, "index {} >= capacity", idx);
        prop_assert!(indices.insert(idx), "index {} held twice", idx);

        let full = b.as_full();
        prop_assert_eq!(full.len(), cfg.buffer_size);
        let start = full.as_ptr() as usize;
        prop_assert_eq!(start % cfg.alignment, 0, "slot {} misaligned", idx);
        // Slots never move: an index always names the same memory.
        let first = *addr_of.entry(idx).or_insert(start);
        prop_assert_eq!(first, start, "slot {} moved", idx);
        ranges.push((start, start + cfg.buffer_size, idx));
    }
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        prop_assert!(
            w[0].1 <= w[1].0,
            "slots {} and {} overlap: {:?} {:?}",
            w[0].2,
            w[1].2,
            w[0],
            w[1]
        );
    }
    Ok(())
}

fn run(cfg: Cfg, ops: &[Op]) -> Result<(), TestCaseError> {
    let pool = Arc::new(cfg.build());
    let mut model = Model::new(cfg);
    let mut held: Vec<Held<'_>> = Vec::new();
    // Every address each index was seen at.
    let mut addr_of = HashMap::new();
    check_all(&pool, &model, &held, &mut addr_of)?;

    for op in ops {
        let n = held.len();
        match op {
            Op::Acquire | Op::AcquireOwned => {
                let handle = match op {
                    Op::Acquire => pool.try_acquire().map(Handle::Borrowed),
                    _ => pool.try_acquire_owned().map(Handle::Owned),
                };
                let expect = model.acquire(n);
                prop_assert_eq!(
                    handle.is_some(),
                    expect,
                    "acquire with {} held of {} (limit {})",
                    n,
                    model.capacity,
                    cfg.limit()
                );
                if let Some(handle) = handle {
                    prop_assert_eq!(handle.len(), 0, "a fresh buffer is empty");
                    let full = handle.as_full().to_vec();
                    if cfg.zero_on_release {
                        prop_assert!(
                            full.iter().all(|&b| b == 0),
                            "zero_on_release: slot {} came back dirty: {:?}",
                            handle.index(),
                            full
                        );
                    }
                    held.push(Held {
                        handle,
                        full,
                        len: 0,
                    });
                }
            }
            Op::Release(i) => {
                if n > 0 {
                    drop(held.remove(i % n));
                }
            }
            Op::Write(i, data) => {
                if n > 0 {
                    let h = &mut held[i % n];
                    let r = h.handle.extend_from_slice(data);
                    let end = h.len + data.len();
                    if end <= cfg.buffer_size {
                        prop_assert_eq!(r, Ok(()));
                        h.full[h.len..end].copy_from_slice(data);
                        h.len = end;
                    } else {
                        prop_assert_eq!(
                            r,
                            Err(CapacityError {
                                requested: end,
                                capacity: cfg.buffer_size
                            })
                        );
                    }
                }
            }
            Op::IoWrite(i, data) => {
                if n > 0 {
                    let h = &mut held[i % n];
                    let wrote = h.handle.io_write(data);
                    let fits = data.len().min(cfg.buffer_size - h.len);
                    prop_assert_eq!(wrote, fits, "io::Write writes what fits");
                    h.full[h.len..h.len + fits].copy_from_slice(&data[..fits]);
                    h.len += fits;
                }
            }
            Op::SetLen(i, len) => {
                if n > 0 {
                    let h = &mut held[i % n];
                    let r = h.handle.set_len(*len);
                    if *len <= cfg.buffer_size {
                        prop_assert_eq!(r, Ok(()));
                        h.len = *len;
                    } else {
                        prop_assert_eq!(
                            r,
                            Err(CapacityError {
                                requested: *len,
                                capacity: cfg.buffer_size
                            })
                        );
                    }
                }
            }
            Op::FillFull(i, byte) => {
                if n > 0 {
                    let h = &mut held[i % n];
                    h.handle.as_full_mut().fill(*byte);
                    h.full.fill(*byte);
                }
            }
            Op::Clear(i) => {
                if n > 0 {
                    let h = &mut held[i % n];
                    h.handle.clear();
                    h.len = 0;
                }
            }
        }
        check_all(&pool, &model, &held, &mut addr_of)?;
    }

    // Everything comes back.
    held.clear();
    let s = pool.stats();
    prop_assert_eq!(s.in_use, 0);
    prop_assert_eq!(s.capacity, model.capacity);
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 8 } else { 256 },
        failure_persistence: if cfg!(miri) {
            None
        } else {
            ProptestConfig::default().failure_persistence
        },
        ..ProptestConfig::default()
    }
}

const MAX_OPS: usize = if cfg!(miri) { 24 } else { 120 };

proptest! {
    #![proptest_config(config())]

    #[test]
    fn pool_matches_model(cfg in cfg(), ops in vec(op(), 1..MAX_OPS)) {
        run(cfg, &ops)?;
    }
}

/// A fixed program that exercises growth, reuse and zeroing, so the
/// interesting paths run even if the random cases happen to miss them.
#[test]
fn fixed_program_with_growth_and_zeroing() {
    let cfg = Cfg {
        buffer_size: 37,
        capacity: 3,
        alignment: 64,
        grow_to: Some(10),
        zero_on_release: true,
        cache_size: 0,
    };
    let mut ops = Vec::new();
    for i in 0..12 {
        ops.push(if i % 2 == 0 {
            Op::Acquire
        } else {
            Op::AcquireOwned
        });
        ops.push(Op::Write(i, vec![i as u8 + 1; 5]));
        ops.push(Op::SetLen(i, 37));
        ops.push(Op::Clear(i));
    }
    ops.push(Op::FillFull(0, 0xAB));
    for i in 0..12 {
        ops.push(Op::Release(i));
        ops.push(Op::Acquire);
    }
    ops.push(Op::SetLen(0, 38));
    ops.push(Op::Write(1, vec![7; 38]));
    run(cfg, &ops).unwrap();

    // Fresh-contents assumptions are not made with zeroing off.
    run(
        Cfg {
            zero_on_release: false,
            ..cfg
        },
        &ops,
    )
    .unwrap();

    // The same with per-thread caches, small and larger than the pool.
    for cache_size in [1, 2, 32] {
        run(Cfg { cache_size, ..cfg }, &ops).unwrap();
    }
}
