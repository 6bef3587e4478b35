//! `Slab` of values with destructors (a `u64`, an id, maybe a panic)
//! against a plain model.
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
//!
//! User code runs inside the slab: values are dropped by `retain`, `clear`,
//! a dropped `Drain` and the slab's own drop, some of them panic when
//! dropped (the first one to run in each of those calls), and some `retain`
//! predicates panic (see [`crate::expect_panic`]). The panic must reach the
//! caller exactly when the model says, and afterwards the slab must match
//! the model as after any operation. Each value counts its drops (by the id
//! it was issued with): after every operation each value the model says is
//! gone was dropped exactly once, and each live one never.

use std::cell::Cell;

use arbitrary::Arbitrary;
use arenapool_alloc::{Key, Slab};

/// Bounds each run: programs of at most this many operations.
const MAX_OPS: usize = 64;
/// The most values a run inserts (at most 15 per operation).
const MAX_VALUES: usize = MAX_OPS * 16;

thread_local! {
    /// How many times the value of each id was dropped (saturating);
    /// const, so it costs no allocation.
    static DROPS: [Cell<u8>; MAX_VALUES] = const { [const { Cell::new(0) }; MAX_VALUES] };
}

/// The slab's value: counts its drops in [`DROPS`], then panics if
/// `panics` (and a panic is expected there: [`crate::user_panic`]).
#[derive(Debug)]
struct Val {
    value: u64,
    id: u16,
    panics: bool,
}

impl Drop for Val {
    fn drop(&mut self) {
        DROPS.with(|d| {
            let c = &d[usize::from(self.id)];
            c.set(c.get().saturating_add(1));
        });
        if self.panics {
            crate::user_panic();
        }
    }
}

/// What the model knows of a live value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    generation: u32,
    value: u64,
    id: u16,
    panics: bool,
}

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
    /// An insert of a value that panics when the slab drops it.
    InsertPanicky(u64),
    /// Several inserts in a row (`n % 16`), values `base + i`; value `i`
    /// panics when dropped if bit `i` of `panics` is set.
    InsertMany {
        n: u8,
        base: u64,
        panics: u16,
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
    /// Keeps values not divisible by `2 + d % 5`; the predicate panics
    /// at its call number `panics_at`, if there is one.
    Retain {
        d: u8,
        panics_at: Option<u8>,
    },
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
    /// Live entries by index (at most one per index). A key finds a value
    /// iff its index and generation are here.
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

/// Live entries by slot index.
#[derive(Default)]
struct Live {
    slots: Vec<Option<Entry>>,
    len: usize,
}

impl Live {
    fn get(&self, index: &u32) -> Option<&Entry> {
        self.slots.get(*index as usize)?.as_ref()
    }

    fn contains_key(&self, index: &u32) -> bool {
        self.get(index).is_some()
    }

    fn insert(&mut self, index: u32, entry: Entry) {
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
    fn iter(&self) -> impl Iterator<Item = (u32, Entry)> + '_ {
        (0u32..)
            .zip(&self.slots)
            .filter_map(|(i, e)| e.map(|e| (i, e)))
    }

    fn values(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.slots.iter().flatten()
    }

    /// Whether a live value panics when dropped.
    fn any_panics(&self) -> bool {
        self.values().any(|e| e.panics)
    }
}

impl Model {
    fn pick(&self, n: u16) -> Option<Key> {
        if self.order.is_empty() {
            return None;
        }
        Some(Key::from_bits(self.order[n as usize % self.order.len()]))
    }

    /// Records `key`, issued for `val`; `val.id` must be the key's
    /// position in the order of issue.
    fn issued(&mut self, key: Key, val: &Val) {
        let bits = key.to_bits();
        assert!(
            self.issued.insert(bits),
            "key {key:?} was issued twice: a stale key would alias a new value"
        );
        assert!(
            !self.live.contains_key(&key.index()),
            "new key {key:?} shares an index with a live key"
        );
        assert_eq!(usize::from(val.id), self.order.len());
        self.order.push(bits);
        let entry = Entry {
            generation: key.generation(),
            value: val.value,
            id: val.id,
            panics: val.panics,
        };
        self.live.insert(key.index(), entry);
    }

    fn entry(&self, key: Key) -> Option<Entry> {
        match self.live.get(&key.index()) {
            Some(&e) if e.generation == key.generation() => Some(e),
            _ => None,
        }
    }

    fn lookup(&self, key: Key) -> Option<u64> {
        self.entry(key).map(|e| e.value)
    }

    fn kill(&mut self, key: Key) -> Option<u64> {
        let v = self.lookup(key)?;
        self.live.remove(&key.index());
        Some(v)
    }

    fn set(&mut self, key: Key, value: u64) {
        if let Some(e) = self.entry(key) {
            self.live.insert(key.index(), Entry { value, ..e });
        }
    }

    fn kill_all(&mut self) -> Vec<Entry> {
        let entries = self.live.values().copied().collect();
        self.live.clear();
        entries
    }
}

/// Keys swept per operation once more keys than this were issued (the
/// sweep is the costly part of a run); every key is swept at the end.
const SWEEP: usize = 64;

/// Checks every issued key (`all`), or a window of [`SWEEP`] of them that
/// moves with `tick`: what it finds, and that its value was dropped once
/// if the model says it is gone, else never.
fn sweep(slab: &Slab<Val>, model: &Model, tick: usize, all: bool) {
    let n = model.order.len();
    let (start, len) = if all || n <= SWEEP {
        (0, n)
    } else {
        (tick * SWEEP % n, SWEEP)
    };
    DROPS.with(|drops| {
        for i in start..start + len {
            let key = Key::from_bits(model.order[i % n]);
            let want = model.entry(key);
            assert_eq!(
                slab.get(key).map(|v| v.value),
                want.map(|e| e.value),
                "get({key:?})"
            );
            let dropped = drops[i % n].get();
            assert_eq!(
                dropped,
                u8::from(want.is_none()),
                "value {} (key {key:?}, live: {}) was dropped {dropped} times",
                i % n,
                want.is_some()
            );
        }
    });
}

/// Every value issued was dropped exactly once.
fn all_dropped_once(model: &Model) {
    DROPS.with(|drops| {
        for (i, d) in drops[..model.order.len()].iter().enumerate() {
            assert_eq!(d.get(), 1, "value {i} was dropped {} times", d.get());
        }
    });
}

fn check(slab: &Slab<Val>, model: &Model) {
    assert_eq!(slab.len(), model.live.len(), "len");
    assert_eq!(slab.is_empty(), model.live.is_empty(), "is_empty");
    assert!(slab.capacity() >= slab.len(), "capacity below len");
    let mut it = slab.iter();
    assert_eq!(it.size_hint(), (model.live.len(), Some(model.live.len())));
    // Keys and values in index order, compared as they come.
    for (n, (i, e)) in model.live.iter().enumerate() {
        let got = it
            .next()
            .map(|(k, v)| ((k.index(), k.generation()), v.value, v.id, v.panics));
        let want = ((i, e.generation), e.value, e.id, e.panics);
        assert_eq!(got, Some(want), "iter: entry {n} in index order");
    }
    let extra = it.next().map(|(k, v)| (k, v.value));
    assert_eq!(extra, None, "iter: more entries than live ones");
}

fn insert(slab: &mut Slab<Val>, model: &mut Model, value: u64, try_: bool, panics: bool) {
    let id = model.order.len();
    assert!(id < MAX_VALUES, "more than {MAX_VALUES} values");
    let val = Val {
        value,
        id: id as u16,
        panics,
    };
    let predicted = slab.next_key();
    let key = if try_ {
        slab.try_insert(val)
            .map_err(|_| "full")
            .expect("a small slab is never full")
    } else {
        slab.insert(val)
    };
    assert_eq!(key, predicted, "next_key predicted the insert");
    assert_eq!(Key::from_bits(key.to_bits()), key, "to_bits round trip");
    model.issued(key, slab.get(key).expect("the value just inserted"));
}

/// Runs one input; panics if the slab and the model disagree.
pub fn run(input: Input) {
    DROPS.with(|d| d.iter().for_each(|c| c.set(0)));
    let mut slab: Slab<Val> = match input.with_capacity {
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
            Op::Insert(v) => insert(&mut slab, &mut model, v, false, false),
            Op::TryInsert(v) => insert(&mut slab, &mut model, v, true, false),
            Op::InsertPanicky(v) => insert(&mut slab, &mut model, v, false, true),
            Op::InsertMany { n, base, panics } => {
                for i in 0..u64::from(n % 16) {
                    let p = panics >> i & 1 == 1;
                    insert(&mut slab, &mut model, base.wrapping_add(i), i % 2 == 0, p);
                }
            }
            Op::Remove(n) => {
                if let Some(key) = model.pick(n) {
                    let want = model.kill(key);
                    // The value comes back to us (and we drop it, unarmed).
                    assert_eq!(slab.remove(key).map(|v| v.value), want, "remove({key:?})");
                    // A second remove finds nothing.
                    assert!(slab.remove(key).is_none(), "remove({key:?}) twice");
                }
            }
            Op::Get(n) => {
                if let Some(key) = model.pick(n) {
                    assert_eq!(slab.get(key).map(|v| v.value), model.lookup(key));
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
                            assert_eq!(Some(slot.value), model.lookup(key), "get_mut({key:?})");
                            slot.value = v;
                            model.set(key, v);
                        }
                        None => assert_eq!(model.lookup(key), None, "get_mut({key:?})"),
                    }
                }
            }
            Op::GetBits(bits) => {
                let key = Key::from_bits(bits);
                let got = slab.get(key).map(|v| v.value);
                assert_eq!(got, model.lookup(key), "get({key:?})");
            }
            Op::GetShifted(n, delta) => {
                if let Some(key) = model.pick(n) {
                    let generation = key.generation().wrapping_add_signed(i32::from(delta));
                    let shifted =
                        Key::from_bits(u64::from(generation) << 32 | u64::from(key.index()));
                    assert_eq!(
                        slab.get(shifted).map(|v| v.value),
                        model.lookup(shifted),
                        "get({shifted:?})"
                    );
                }
            }
            Op::Retain { d, panics_at } => {
                let d = 2 + u64::from(d % 5);
                let panics_at = panics_at.map(usize::from);
                let mut seen = Vec::new();
                let returned = crate::expect_panic(|| {
                    slab.retain(|k, v| {
                        if Some(seen.len()) == panics_at {
                            crate::user_panic();
                        }
                        seen.push((k.index(), k.generation()));
                        v.value % d != 0
                    })
                })
                .is_some();
                // The model's retain: it visits the live keys in index
                // order and stops at the first panic, of the predicate or
                // of a removed value's destructor (the value is removed).
                let mut want = Vec::new();
                let mut doomed = Vec::new();
                let mut panicked = false;
                for (i, e) in model.live.iter() {
                    if Some(want.len()) == panics_at {
                        panicked = true;
                        break;
                    }
                    want.push((i, e.generation));
                    if e.value % d == 0 {
                        doomed.push(Key::from_bits(u64::from(e.generation) << 32 | u64::from(i)));
                        if e.panics {
                            panicked = true;
                            break;
                        }
                    }
                }
                assert_eq!(!returned, panicked, "retain: the panic reaches the caller");
                assert_eq!(
                    seen, want,
                    "retain visits every live key once, in index order, up to a panic"
                );
                for key in doomed {
                    model.kill(key);
                }
            }
            Op::IterMut(delta) => {
                let mut it = slab.iter_mut();
                assert_eq!(it.size_hint(), (model.live.len(), Some(model.live.len())));
                let mut touched = Vec::new();
                for (k, v) in &mut it {
                    v.value = v.value.wrapping_add(delta);
                    touched.push((k, v.value));
                }
                for (k, v) in touched {
                    model.set(k, v);
                }
            }
            Op::LeakDrain(n) => {
                let want = model.kill_all();
                let mut drain = slab.drain();
                let got: Vec<u64> = drain
                    .by_ref()
                    .take(usize::from(n))
                    .map(|v| v.value)
                    .collect();
                let want: Vec<u64> = want.iter().map(|e| e.value).collect();
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
                // The model cannot follow the slab from here, but the
                // values not drained are still in it, and dropped with it.
                drop(slab);
                all_dropped_once(&model);
                return;
            }
            Op::Drain(n) => {
                let want = model.kill_all();
                let mut drain = slab.drain();
                assert_eq!(drain.size_hint(), (want.len(), Some(want.len())));
                // Values yielded come to us (dropped here, unarmed).
                let got: Vec<u64> = drain
                    .by_ref()
                    .take(usize::from(n))
                    .map(|v| v.value)
                    .collect();
                let values: Vec<u64> = want.iter().map(|e| e.value).collect();
                assert_eq!(
                    got[..],
                    values[..got.len()],
                    "drain yields values in index order"
                );
                // The rest are dropped by the `Drain`, all of them even if
                // one panics.
                let panics = want[got.len()..].iter().any(|e| e.panics);
                let returned = crate::expect_panic(move || drop(drain)).is_some();
                assert_eq!(
                    !returned, panics,
                    "a dropped Drain: the panic reaches the caller"
                );
            }
            Op::Clear => {
                let panics = model.live.any_panics();
                model.kill_all();
                let returned = crate::expect_panic(|| slab.clear()).is_some();
                assert_eq!(!returned, panics, "clear: the panic reaches the caller");
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
    // Dropping the slab drops every value left, even if one panics.
    let panics = model.live.any_panics();
    let returned = crate::expect_panic(move || drop(slab)).is_some();
    assert_eq!(
        !returned, panics,
        "dropping the slab: the panic reaches the caller"
    );
    all_dropped_once(&model);
}
