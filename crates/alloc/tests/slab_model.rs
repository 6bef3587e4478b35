//! `Slab` against a plain model: random programs of inserts, removes,
//! lookups (with live and stale keys), retains, drains and shrinks. The
//! model is a map from every key ever issued to its value, or to nothing
//! once removed; a stale key must never find a value.

use std::collections::BTreeMap;

use arenapool_alloc::{Key, Slab};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Insert(u32),
    /// Remove the key at this position (mod the keys issued so far).
    Remove(usize),
    Get(usize),
    Mutate(usize, u32),
    /// Keep values that are not divisible by this.
    Retain(u32),
    /// Drain, consuming only this many values.
    Drain(usize),
    Clear,
    Shrink,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<u32>().prop_map(Op::Insert),
        4 => any::<usize>().prop_map(Op::Remove),
        4 => any::<usize>().prop_map(Op::Get),
        2 => (any::<usize>(), any::<u32>()).prop_map(|(k, v)| Op::Mutate(k, v)),
        1 => (2u32..5).prop_map(Op::Retain),
        1 => (0usize..4).prop_map(Op::Drain),
        1 => Just(Op::Clear),
        1 => Just(Op::Shrink),
    ]
}

/// Fewer, shorter programs under Miri (each case costs seconds there); no
/// regression file either.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 8 } else { 256 },
        failure_persistence: if cfg!(miri) {
            None
        } else {
            ProptestConfig::default().failure_persistence
        },
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    }
}

const MAX_OPS: usize = if cfg!(miri) { 24 } else { 300 };

proptest! {
    #![proptest_config(config())]

    #[test]
    fn slab_matches_the_model(ops in proptest::collection::vec(op(), 0..MAX_OPS)) {
        let mut slab = Slab::new();
        let mut issued: Vec<Key> = Vec::new();
        let mut model: BTreeMap<Key, u32> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Insert(v) => {
                    let predicted = slab.next_key();
                    let k = slab.insert(v);
                    prop_assert_eq!(k, predicted);
                    prop_assert!(!issued.contains(&k), "key {:?} issued twice", k);
                    issued.push(k);
                    model.insert(k, v);
                }
                Op::Remove(i) if !issued.is_empty() => {
                    let k = issued[i % issued.len()];
                    prop_assert_eq!(slab.remove(k), model.remove(&k));
                }
                Op::Get(i) if !issued.is_empty() => {
                    let k = issued[i % issued.len()];
                    prop_assert_eq!(slab.get(k), model.get(&k));
                    prop_assert_eq!(slab.contains(k), model.contains_key(&k));
                }
                Op::Mutate(i, v) if !issued.is_empty() => {
                    let k = issued[i % issued.len()];
                    if let Some(x) = slab.get_mut(k) {
                        *x = v;
                    }
                    if let Some(x) = model.get_mut(&k) {
                        *x = v;
                    }
                }
                Op::Retain(d) => {
                    let mut seen = Vec::new();
                    slab.retain(|k, v| {
                        seen.push(k);
                        *v % d != 0
                    });
                    prop_assert_eq!(seen, model.keys().copied().collect::<Vec<_>>());
                    model.retain(|_, v| *v % d != 0);
                }
                Op::Drain(n) => {
                    let taken: Vec<u32> = slab.drain().take(n).collect();
                    let want: Vec<u32> = model.values().copied().take(n).collect();
                    prop_assert_eq!(taken, want);
                    model.clear();
                }
                Op::Clear => {
                    slab.clear();
                    model.clear();
                }
                Op::Shrink => {
                    slab.shrink_to_fit();
                    prop_assert!(slab.capacity() >= slab.len());
                }
                _ => {}
            }
            prop_assert_eq!(slab.len(), model.len());
            prop_assert!(slab.capacity() >= slab.len());
            let listed: Vec<(Key, u32)> = slab.iter().map(|(k, v)| (k, *v)).collect();
            let expected: Vec<(Key, u32)> = model.iter().map(|(k, v)| (*k, *v)).collect();
            prop_assert_eq!(listed, expected);
        }
        // Every key ever issued agrees with the model at the end.
        for k in issued {
            prop_assert_eq!(slab.get(k), model.get(&k));
        }
    }
}
