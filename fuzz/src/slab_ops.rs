//! `Slab<u64>` against a plain model.
//!
//! The model keeps every key the slab ever issued and the live entries by
//! index (generation and value): a key names a value iff its index holds
//! an entry of its generation. After every operation:
//!
//! * `len`, `is_empty` and `iter` agree with the live part of the model
//!   (same keys, same values, index order, exact `size_hint`);
//! * every key ever issued finds exactly what the model says, so a stale
//!   key finds `None` even after its slot was reused (all of them while
//!   there are few, else a moving window of them, and all at the end);
//! * arbitrary key bits the input names find what the model says too.
//!
//! Every new key must differ from every key issued before (the generation
//! makes reuse of an index visible), and `next_key` must predict it.

use arbitrary::Arbitrary;
use arenapool_alloc::{Key, Slab};

/// Bounds each run: programs of at most this many operations.
const MAX_OPS: usize = 64;

/// One fuzz input: how the slab starts, and a program.
#[derive(Arbitrary, Debug)]
pub struct Input {
    /// `Slab::with_capacity(n % 65)` instead of `Slab::new()`.
    with_capacity: Option<u8>,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Insert(u64),
    TryInsert(u64),
    /// Several inserts in a row (`n % 16`), values `base + i`.
    InsertMany {
        n: u8,
        base: u64,
    },
    /// Remove the key at this position among every key ever issued
    /// (live or stale).
    Remove(u16),
    Get(u16),
    Contains(u16),
    GetMut(u16, u64),
    /// Look up a key made from raw bits: finds what the model says.
    GetBits(u64),
    /// A key issued before, with its generation moved by `delta`.
    GetShifted(u16, i8),
    /// Keeps values not divisible by `2 + d % 5`.
    Retain(u8),
    /// Adds `delta` to every value through `iter_mut`.
    IterMut(u64),
    /// Drains, consuming only `n` values before dropping the iterator.
    Drain(u8),
    /// As `Drain`, but leaks the iterator (`mem::forget`): the slab must
    /// stay consistent (`fuzz/artifacts-found/slab_ops-leaked-drain.md`
    /// was found this way, and fixed).
    LeakDrain(u8),
    Clear,
    ShrinkToFit,
    NextKey,
}

#[derive(Default)]
struct Model {
    /// The bits of every key issued.
    issued: KeySet,
    /// The same keys in the order they were issued, to pick from.
    order: Vec<u64>,
    /// Live entries by index (at most one per index): generation, value.
    /// A key finds a value iff its index and generation are here.
    live: Live,
}

/// A set of key bits: a sorted vector (the model's maps are plain vectors,
/// not hash or B-tree maps: their code is instrumented along with the
/// target's, and was most of the time of a run).
#[derive(Default)]
struct KeySet(Vec<u64>);

impl KeySet {
    /// Adds `bits`; `false` if it was there.
    fn insert(&mut self, bits: u64) -> bool {
        match self.0.binary_search(&bits) {
            Ok(_) => false,
            Err(i) => {
                self.0.insert(i, bits);
                true
            }
        }
    }

    fn contains(&self, bits: &u64) -> bool {
        self.0.binary_search(bits).is_ok()
    }
}

/// Live entries by slot index: `(generation, value)`.
#[derive(Default)]
struct Live {
    slots: Vec<Option<(u32, u64)>>,
    len: usize,
}

impl Live {
    fn get(&self, index: &u32) -> Option<&(u32, u64)> {
        self.slots.get(*index as usize)?.as_ref()
    }

    fn contains_key(&self, index: &u32) -> bool {
        self.get(index).is_some()
    }

    fn insert(&mut self, index: u32, entry: (u32, u64)) {
        let i = index as usize;
        if i >= self.slots.len() {
            self.slots.resize(i + 1, None);
        }
        if self.slots[i].replace(entry).is_none() {
            self.len += 1;
        }
    }

    fn remove(&mut self, index: &u32) {
        if let Some(slot) = self.slots.get_mut(*index as usize)
            && slot.take().is_some()
        {
            self.len -= 1;
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn clear(&mut self) {
        self.slots.clear();
        self.len = 0;
    }

    /// The entries in index order.
    fn iter(&self) -> impl Iterator<Item = (u32, (u32, u64))> + '_ {
        (0u32..)
            .zip(&self.slots)
            .filter_map(|(i, e)| e.map(|e| (i, e)))
    }

    fn values(&self) -> impl Iterator<Item = &(u32, u64)> + '_ {
        self.slots.iter().flatten()
    }
}

impl Model {
    fn pick(&self, n: u16) -> Option<Key> {
        if self.order.is_empty() {
            return None;
        }
        Some(Key::from_bits(self.order[n as usize % self.order.len()]))
    }

    fn issued(&mut self, key: Key, value: u64) {
        let bits = key.to_bits();
        assert!(
            self.issued.insert(bits),
            "key {key:?} was issued twice: a stale key would alias a new value"
        );
        assert!(
            !self.live.contains_key(&key.index()),
            "new key {key:?} shares an index with a live key"
        );
        self.order.push(bits);
        self.live.insert(key.index(), (key.generation(), value));
    }

    fn lookup(&self, key: Key) -> Option<u64> {
        match self.live.get(&key.index()) {
            Some(&(generation, value)) if generation == key.generation() => Some(value),
            _ => None,
        }
    }

    fn kill(&mut self, key: Key) -> Option<u64> {
        let v = self.lookup(key)?;
        self.live.remove(&key.index());
        Some(v)
    }

    fn set(&mut self, key: Key, value: u64) {
        if self.lookup(key).is_some() {
            self.live.insert(key.index(), (key.generation(), value));
        }
    }

    fn kill_all(&mut self) -> Vec<u64> {
        let values = self.live.values().map(|&(_, v)| v).collect();
        self.live.clear();
        values
    }
}

/// Keys swept per operation once more keys than this were issued (the
/// sweep is the costly part of a run); every key is swept at the end.
const SWEEP: usize = 64;

/// Checks every issued key (`all`), or a window of [`SWEEP`] of them that
/// moves with `tick`.
fn sweep(slab: &Slab<u64>, model: &Model, tick: usize, all: bool) {
    let n = model.order.len();
    let (start, len) = if all || n <= SWEEP {
        (0, n)
    } else {
        (tick * SWEEP % n, SWEEP)
    };
    for i in start..start + len {
        let key = Key::from_bits(model.order[i % n]);
        assert_eq!(slab.get(key).copied(), model.lookup(key), "get({key:?})");
    }
}

fn check(slab: &Slab<u64>, model: &Model) {
    assert_eq!(slab.len(), model.live.len(), "len");
    assert_eq!(slab.is_empty(), model.live.is_empty(), "is_empty");
    assert!(slab.capacity() >= slab.len(), "capacity below len");
    let mut it = slab.iter();
    assert_eq!(it.size_hint(), (model.live.len(), Some(model.live.len())));
    // Keys and values in index order, compared as they come.
    for (n, (i, (g, v))) in model.live.iter().enumerate() {
        let got = it.next().map(|(k, v)| ((k.index(), k.generation()), *v));
        assert_eq!(got, Some(((i, g), v)), "iter: entry {n} in index order");
    }
    let extra = it.next().map(|(k, v)| (k, *v));
    assert_eq!(extra, None, "iter: more entries than live ones");
}

fn insert(slab: &mut Slab<u64>, model: &mut Model, value: u64, try_: bool) {
    let predicted = slab.next_key();
    let key = if try_ {
        slab.try_insert(value).expect("a small slab is never full")
    } else {
        slab.insert(value)
    };
    assert_eq!(key, predicted, "next_key predicted the insert");
    assert_eq!(Key::from_bits(key.to_bits()), key, "to_bits round trip");
    model.issued(key, value);
}

/// Runs one input; panics if the slab and the model disagree.
pub fn run(input: Input) {
    let mut slab: Slab<u64> = match input.with_capacity {
        Some(n) => {
            let s = Slab::with_capacity(usize::from(n % 65));
            assert!(s.capacity() >= usize::from(n % 65));
            s
        }
        None => Slab::new(),
    };
    let mut model = Model::default();
    for (tick, op) in input.ops.iter().take(MAX_OPS).enumerate() {
        match *op {
            Op::Insert(v) => insert(&mut slab, &mut model, v, false),
            Op::TryInsert(v) => insert(&mut slab, &mut model, v, true),
            Op::InsertMany { n, base } => {
                for i in 0..u64::from(n % 16) {
                    insert(&mut slab, &mut model, base.wrapping_add(i), i % 2 == 0);
                }
            }
            Op::Remove(n) => {
                if let Some(key) = model.pick(n) {
                    let want = model.kill(key);
                    assert_eq!(slab.remove(key), want, "remove({key:?})");
                    // A second remove finds nothing.
                    assert_eq!(slab.remove(key), None, "remove({key:?}) twice");
                }
            }
            Op::Get(n) => {
                if let Some(key) = model.pick(n) {
                    assert_eq!(slab.get(key).copied(), model.lookup(key));
                }
            }
            Op::Contains(n) => {
                if let Some(key) = model.pick(n) {
                    assert_eq!(slab.contains(key), model.lookup(key).is_some());
                }
            }
            Op::GetMut(n, v) => {
                if let Some(key) = model.pick(n) {
                    match slab.get_mut(key) {
                        Some(slot) => {
                            assert_eq!(Some(*slot), model.lookup(key), "get_mut({key:?})");
                            *slot = v;
                            model.set(key, v);
                        }
                        None => assert_eq!(model.lookup(key), None, "get_mut({key:?})"),
                    }
                }
            }
            Op::GetBits(bits) => {
                let key = Key::from_bits(bits);
                assert_eq!(slab.get(key).copied(), model.lookup(key), "get({key:?})");
            }
            Op::GetShifted(n, delta) => {
                if let Some(key) = model.pick(n) {
                    let generation = key.generation().wrapping_add_signed(i32::from(delta));
                    let shifted =
                        Key::from_bits(u64::from(generation) << 32 | u64::from(key.index()));
                    assert_eq!(
                        slab.get(shifted).copied(),
                        model.lookup(shifted),
                        "get({shifted:?})"
                    );
                }
            }
            Op::Retain(d) => {
                let d = 2 + u64::from(d % 5);
                let mut seen = Vec::new();
                slab.retain(|k, v| {
                    seen.push((k.index(), k.generation()));
                    *v % d != 0
                });
                let want: Vec<(u32, u32)> = model.live.iter().map(|(i, (g, _))| (i, g)).collect();
                assert_eq!(
                    seen, want,
                    "retain visits every live key once, in index order"
                );
                let doomed: Vec<Key> = model
                    .live
                    .iter()
                    .filter(|(_, (_, v))| *v % d == 0)
                    .map(|(i, (g, _))| Key::from_bits(u64::from(g) << 32 | u64::from(i)))
                    .collect();
                for key in doomed {
                    model.kill(key);
                }
            }
            Op::IterMut(delta) => {
                let mut it = slab.iter_mut();
                assert_eq!(it.size_hint(), (model.live.len(), Some(model.live.len())));
                let mut touched = Vec::new();
                for (k, v) in &mut it {
                    *v = v.wrapping_add(delta);
                    touched.push((k, *v));
                }
                for (k, v) in touched {
                    model.set(k, v);
                }
            }
            Op::LeakDrain(n) => {
                let want = model.kill_all();
                let mut drain = slab.drain();
                let got: Vec<u64> = drain.by_ref().take(usize::from(n)).collect();
                assert_eq!(
                    got[..],
                    want[..got.len()],
                    "drain yields values in index order"
                );
                std::mem::forget(drain);
                // "Wasted, never unsound": the slab must stay consistent,
                // whatever became of the values not drained.
                let reachable = model
                    .order
                    .iter()
                    .filter(|&&bits| slab.get(Key::from_bits(bits)).is_some())
                    .count();
                assert_eq!(
                    slab.len(),
                    reachable,
                    "after a leaked Drain, len() is {} but {reachable} values are still reachable",
                    slab.len()
                );
                assert_eq!(slab.iter().count(), reachable, "iter after a leaked Drain");
                // The model cannot follow the slab from here.
                return;
            }
            Op::Drain(n) => {
                let want = model.kill_all();
                let mut drain = slab.drain();
                assert_eq!(drain.size_hint(), (want.len(), Some(want.len())));
                let got: Vec<u64> = drain.by_ref().take(usize::from(n)).collect();
                assert_eq!(
                    got[..],
                    want[..got.len()],
                    "drain yields values in index order"
                );
                drop(drain);
            }
            Op::Clear => {
                model.kill_all();
                slab.clear();
            }
            Op::ShrinkToFit => {
                slab.shrink_to_fit();
            }
            Op::NextKey => {
                let key = slab.next_key();
                assert!(
                    !model.issued.contains(&key.to_bits()),
                    "next_key {key:?} was issued before"
                );
            }
        }
        check(&slab, &model);
        sweep(&slab, &model, tick, false);
    }
    sweep(&slab, &model, 0, true);
}
