//! Unit tests of `Slab` that need its internals; the random-program model
//! test is `tests/slab_model.rs`, the panic and re-entrancy tests are in
//! `tests/user_code/`.

use std::mem;

use super::*;

#[test]
fn stale_keys_find_nothing_after_reuse() {
    let mut s = Slab::new();
    let a = s.insert(1);
    assert_eq!(s.remove(a), Some(1));
    assert_eq!(s.remove(a), None);
    let b = s.insert(2);
    assert_eq!((b.index(), b.generation()), (a.index(), a.generation() + 1));
    assert_eq!(s.get(a), None);
    assert_eq!(s.get_mut(a), None);
    assert!(!s.contains(a));
    assert_eq!(s.remove(a), None);
    assert_eq!(s.get(b), Some(&2));
}

#[test]
fn exhausted_generation_retires_the_slot() {
    let mut s = Slab::new();
    let k = s.insert('x');
    // Fast-forward the slot to its last generation.
    let last = Key::new(k.index(), LAST_GENERATION);
    s.slots[0] = Slot::occupied(last, 'y');
    s.high = u64::from(LAST_GENERATION) + 1;
    assert_eq!(s.remove(last), Some('y'));
    let fresh = s.insert('z');
    assert_ne!(fresh.index(), 0, "a retired slot is not reused");
    assert_eq!(s.get(last), None);
    assert_eq!(s.get(k), None);
    s.shrink_to_fit();
    assert_eq!(s.len(), 1);
    // `clear` cannot start fresh slots above the last generation, so it
    // drains and the slot stays retired.
    s.clear();
    assert!(s.is_empty());
    assert_ne!(s.insert('w').index(), 0);
    s.retain(|_, _| false);
    assert!(s.is_empty());
}

/// Found by `fuzz/fuzz_targets/slab_ops.rs`: a retired trailing slot
/// dropped by `shrink_to_fit` let the next insert at its index issue
/// the retired key again.
#[test]
fn shrink_keeps_a_retired_slot_so_its_key_stays_stale() {
    let mut s = Slab::new();
    let k = s.insert('x');
    let last = Key::new(k.index(), LAST_GENERATION);
    s.slots[0] = Slot::occupied(last, 'y');
    s.high = u64::from(LAST_GENERATION) + 1;
    assert_eq!(s.remove(last), Some('y'));
    s.shrink_to_fit();
    let fresh = s.insert('z');
    assert_ne!(fresh, last, "the retired key was issued again");
    assert_eq!(s.get(last), None, "the retired key reads the new value");
    assert_eq!(s.get(fresh), Some(&'z'));
}

/// Found by `fuzz/fuzz_targets/slab_ops.rs`: a leaked `Drain` left
/// `len` at 0 while values stayed reachable, and removing them then
/// underflowed `len`.
#[test]
fn a_leaked_drain_leaves_the_slab_consistent() {
    let mut s = Slab::new();
    let keys: Vec<Key> = (0..4).map(|i| s.insert(i)).collect();
    let mut d = s.drain();
    assert_eq!(d.next(), Some(0));
    mem::forget(d);
    assert_eq!(s.len(), 3);
    assert_eq!(s.get(keys[0]), None);
    assert_eq!(s.iter().count(), 3);
    for (i, &k) in keys.iter().enumerate().skip(1) {
        assert_eq!(s.remove(k), Some(i));
    }
    assert!(s.is_empty());
    let k = s.insert(9);
    assert_eq!(s.get(k), Some(&9));
    assert!(keys.iter().all(|&old| s.get(old).is_none()));
}

#[test]
fn shrink_remembers_generations() {
    let mut s = Slab::new();
    let keys: Vec<Key> = (0..4).map(|i| s.insert(i)).collect();
    for &k in &keys[1..] {
        s.remove(k);
    }
    s.shrink_to_fit();
    assert_eq!(s.slots.len(), 1);
    let again: Vec<Key> = (0..3).map(|i| s.insert(10 + i)).collect();
    for (old, new) in keys[1..].iter().zip(&again) {
        assert_eq!(old.index(), new.index());
        assert!(new.generation() > old.generation());
        assert_eq!(s.get(*old), None);
    }
}

#[test]
fn drain_partially_consumed_drops_the_rest_and_relinks() {
    let mut s: Slab<String> = (0..5).map(|i| i.to_string()).collect();
    let k = s.next_key();
    let mut d = s.drain();
    assert_eq!(d.len(), 5);
    assert_eq!(d.next().as_deref(), Some("0"));
    drop(d);
    assert!(s.is_empty());
    assert_eq!(s.iter().count(), 0);
    let idx: Vec<u32> = (0..6).map(|_| s.insert(String::new()).index()).collect();
    assert_eq!(idx, [0, 1, 2, 3, 4, 5]);
    assert_eq!(k.index(), 5);
}

#[test]
fn leaked_drain_is_safe() {
    let mut s: Slab<u8> = (0..3).collect();
    mem::forget(s.drain());
    let k = s.insert(9);
    assert_eq!(s.get(k), Some(&9));
}

#[test]
fn iterators_and_debug() {
    let mut s: Slab<i32> = Slab::default();
    s.extend([1, 2, 3]);
    let k = s.iter().nth(1).unwrap().0;
    s.remove(k);
    for (_, v) in &mut s {
        *v *= 10;
    }
    let seen: Vec<i32> = (&s).into_iter().map(|(_, v)| *v).collect();
    assert_eq!(seen, [10, 30]);
    assert_eq!(s.iter().len(), 2);
    assert_eq!(format!("{k:?}"), "Key(1v0)");
    assert_eq!(format!("{s:?}"), "{Key(0v0): 10, Key(2v0): 30}");
    assert_eq!(Key::from_bits(k.to_bits()), k);
    let c = s.clone();
    assert_eq!(c.len(), 2);
    s.clear();
    assert!(s.is_empty() && s.capacity() >= 3);
    assert_eq!(SlabError::Full(5).into_inner(), 5);
}

/// A value that counts its drop, and panics in it if told to.
struct Loud(std::rc::Rc<std::cell::Cell<u32>>, bool);

impl Drop for Loud {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
        if self.1 {
            panic!("a destructor panics");
        }
    }
}

/// Once a key with the last generation was issued, `clear` drains instead
/// of clearing the `Vec`; a destructor that panics there left the values
/// after it in the slab (and the free list unsorted).
#[test]
fn clear_by_drain_drops_every_other_value_when_a_destructor_panics() {
    let drops = std::rc::Rc::new(std::cell::Cell::new(0));
    let mut s = Slab::new();
    let k = s.insert(Loud(drops.clone(), false));
    let last = Key::new(k.index(), LAST_GENERATION);
    s.slots[0] = Slot::occupied(last, Loud(drops.clone(), false));
    s.high = u64::from(LAST_GENERATION) + 1;
    let keys: Vec<Key> = (0..4)
        .map(|i| s.insert(Loud(drops.clone(), i == 1)))
        .collect();
    let before = drops.get();
    let cleared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.clear()));
    assert!(cleared.is_err());
    assert_eq!(drops.get() - before, 5, "every value dropped once");
    assert_eq!((s.len(), s.iter().count()), (0, 0));
    assert!(keys.iter().chain([&last]).all(|&k| s.get(k).is_none()));
    // Slot 0 is retired; the others are reused lowest index first.
    let idx: Vec<u32> = (0..5)
        .map(|_| s.insert(Loud(drops.clone(), false)).index())
        .collect();
    assert_eq!(idx, [1, 2, 3, 4, 5]);
}
