//! A slab with generational keys.
//!
//! [`Slab<T>`] stores values in a `Vec` of slots and hands out a [`Key`]
//! per value. Free slots form a linked list through their indices, so
//! insert, remove and get are O(1) and freed slots are reused.
//!
//! The `slab` crate's keys are bare indices: remove an entry, insert
//! another, and the old key now reads the new entry. Here every slot has a
//! generation that moves on each time its value is removed, and a key
//! carries the generation it was issued with, so a stale key returns `None`
//! instead of somebody else's value. A slot whose generation would pass
//! the last one (after 2^32 - 2 reuses) is retired instead of reused, so a
//! key can never alias. [`Slab::shrink_to_fit`] drops trailing free slots but
//! remembers the highest generation it dropped, and slots made later start
//! above it.
//!
//! A slot stores generation + 1 (its *stamp*, never 0) where an enum would
//! store its tag, so "occupied, and by this key's generation" is one
//! compare, as cheap as the `slab` crate's occupied check (see `Slot`); the
//! crate README has the benchmark against `slab`.
//!
//! This module has no `unsafe` code.

mod iter;

use std::alloc::{Layout, handle_alloc_error};
use std::fmt;
use std::mem;
use std::num::NonZeroU32;

use crate::error::SlabError;

pub use iter::{Drain, Iter, IterMut};

/// End of the free list.
const NONE: u32 = u32::MAX;
/// `next` of a slot that will never be reused.
const RETIRED: u32 = u32::MAX - 1;
/// Indices are below this, so they never collide with the two markers.
const MAX_SLOTS: usize = (u32::MAX - 1) as usize;
/// The last generation a key is issued with: its stamp (generation + 1) is
/// `u32::MAX - 1`. The stamp `u32::MAX` is what keys of the two generations
/// above map to (see [`stamp`]), so it must never be issued.
const LAST_GENERATION: u32 = u32::MAX - 2;

/// The stamp of `generation`: `generation + 1`, never 0 (the two highest
/// generations, never issued, both map to `u32::MAX`).
#[inline(always)]
const fn stamp(generation: u32) -> NonZeroU32 {
    match NonZeroU32::new(generation.wrapping_add(1)) {
        Some(s) => s,
        None => NonZeroU32::MAX,
    }
}

/// `insert`'s failure path, for a slab of `slots` slots: a full slab
/// panics, and running out of memory aborts through [`handle_alloc_error`]
/// (as `Vec::push` does). The value is dropped first, before anything
/// unwinds: its destructor is user code, and one that panicked while our
/// panic unwinds would abort the process.
#[cold]
#[inline(never)]
fn insert_failed<T>(e: SlabError<T>, slots: usize) -> ! {
    let full = matches!(e, SlabError::Full(_));
    drop(e.into_inner());
    if full {
        panic!("{}", SlabError::Full(()));
    }
    let layout =
        Layout::array::<Slot<T>>(slots.saturating_add(1)).unwrap_or(Layout::new::<Slot<T>>());
    handle_alloc_error(layout)
}

/// The handle to a value in a [`Slab`]: its slot index and the slot's
/// generation when the value was inserted.
///
/// ```
/// use arenapool_alloc::{Key, Slab};
///
/// let mut slab = Slab::new();
/// let k = slab.insert("a");
/// assert_eq!(Key::from_bits(k.to_bits()), k); // e.g. as an epoll token
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    index: u32,
    /// The generation + 1, as stored in the slot ([`stamp`]).
    stamp: NonZeroU32,
}

impl Key {
    /// The slot index.
    pub const fn index(self) -> u32 {
        self.index
    }

    /// The slot's generation when this key was issued.
    pub const fn generation(self) -> u32 {
        self.stamp.get() - 1
    }

    /// Packs the key in a `u64` (generation in the high half).
    pub const fn to_bits(self) -> u64 {
        (self.generation() as u64) << 32 | self.index as u64
    }

    /// Unpacks a key packed by [`Key::to_bits`]. Any `u64` gives a key;
    /// one that was never issued just finds nothing. (The two highest
    /// generations are never issued, and unpack to the same key.)
    pub const fn from_bits(bits: u64) -> Self {
        Self::new(bits as u32, (bits >> 32) as u32)
    }

    #[inline(always)]
    const fn new(index: u32, generation: u32) -> Self {
        Self {
            index,
            stamp: stamp(generation),
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({}v{})", self.index, self.generation())
    }
}

/// A slot: an enum whose discriminant is the occupied slot's `stamp`.
///
/// `stamp` is a `NonZeroU32`, so the vacant variant is stored as `stamp ==
/// 0` (niche filling) instead of in a separate tag: [`Slab::get`] then
/// checks "occupied and of the key's generation" with one compare of the
/// key's stamp, never 0, with the slot's. The `_spare` word makes the
/// tagged layout bigger than the niche-filled one, so the compiler picks
/// the latter; it takes the place the tag would take (`Slot<u64>` is 16
/// bytes either way). This is layout, not safety: the code is correct with
/// either.
#[derive(Clone)]
enum Slot<T> {
    /// `stamp` is the stamp of the key that reads `value`.
    Occupied {
        stamp: NonZeroU32,
        _spare: u32,
        value: T,
    },
    /// `generation` is the generation the next value here will get; `next`
    /// is the next free slot, [`NONE`], or [`RETIRED`].
    Vacant { generation: u32, next: u32 },
}

/// A slab of `T`s addressed by generational [`Key`]s.
///
/// ```
/// use arenapool_alloc::Slab;
///
/// let mut conns = Slab::with_capacity(16);
/// let a = conns.insert("alice");
/// let b = conns.insert("bob");
/// assert_eq!(conns.remove(a), Some("alice"));
/// let c = conns.insert("carol"); // reuses alice's slot...
/// assert_eq!(c.index(), a.index());
/// assert_eq!(conns.get(a), None); // ...but alice's key does not see carol
/// assert_eq!(conns.get(c), Some(&"carol"));
/// assert_eq!(conns.len(), 2);
/// # let _ = b;
/// ```
#[derive(Clone)]
pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: u32,
    len: usize,
    /// The generation of slots created from now on.
    fresh_generation: u32,
    /// Above every generation a key has been issued with from the free
    /// list (new slots use `fresh_generation`); a `u64`, like a count.
    high: u64,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for Slab<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<T> Slab<T> {
    /// An empty slab; allocates on the first insert.
    pub const fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: NONE,
            len: 0,
            fresh_generation: 0,
            high: 0,
        }
    }

    /// An empty slab with room for `capacity` values before it reallocates.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            slots: Vec::with_capacity(capacity),
            ..Self::new()
        }
    }

    /// How many values the slab holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the slab holds no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many slots the slab can hold without reallocating.
    pub fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// Inserts `value` and returns its key. Panics if the slab is full
    /// (`u32::MAX - 1` slots) and aborts if memory runs out; see
    /// [`Slab::try_insert`]. Either way `value` is dropped first.
    #[inline]
    pub fn insert(&mut self, value: T) -> Key {
        match self.try_insert(value) {
            Ok(k) => k,
            Err(e) => insert_failed(e, self.slots.len()),
        }
    }

    /// Inserts `value` and returns its key, or hands `value` back in an
    /// error if the slab is full or cannot grow.
    #[inline]
    pub fn try_insert(&mut self, value: T) -> Result<Key, SlabError<T>> {
        if self.free != NONE {
            let index = self.free;
            let slot = &mut self.slots[index as usize];
            let Slot::Vacant { generation, next } = *slot else {
                unreachable!("the free list holds only vacant slots")
            };
            let key = Key::new(index, generation);
            *slot = Slot::occupied(key, value);
            self.free = next;
            self.len += 1;
            self.high = self.high.max(u64::from(generation) + 1);
            return Ok(key);
        }
        if self.slots.len() == self.slots.capacity() {
            if self.slots.len() >= MAX_SLOTS {
                return Err(SlabError::Full(value));
            }
            if self.slots.try_reserve(1).is_err() {
                return Err(SlabError::OutOfMemory(value));
            }
        }
        let key = Key::new(self.slots.len() as u32, self.fresh_generation);
        self.slots.push(Slot::occupied(key, value));
        self.len += 1;
        Ok(key)
    }

    /// The key the next [`insert`](Slab::insert) will return, so a value
    /// can hold its own key.
    ///
    /// ```
    /// use arenapool_alloc::Slab;
    ///
    /// let mut slab = Slab::new();
    /// let k = slab.next_key();
    /// assert_eq!(slab.insert(k), k);
    /// ```
    pub fn next_key(&self) -> Key {
        match self.slots.get(self.free as usize) {
            Some(Slot::Vacant { generation, .. }) => Key::new(self.free, *generation),
            _ => Key::new(self.slots.len() as u32, self.fresh_generation),
        }
    }

    /// The value `key` was issued for, or `None` if it was removed.
    #[inline]
    pub fn get(&self, key: Key) -> Option<&T> {
        match self.slots.get(key.index as usize) {
            Some(Slot::Occupied { stamp, value, .. }) if *stamp == key.stamp => Some(value),
            _ => None,
        }
    }

    /// Mutable access to the value `key` was issued for.
    #[inline]
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.slots.get_mut(key.index as usize) {
            Some(Slot::Occupied { stamp, value, .. }) if *stamp == key.stamp => Some(value),
            _ => None,
        }
    }

    /// Whether `key` still names a value.
    pub fn contains(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    /// Removes and returns the value `key` was issued for; `None` (and
    /// nothing changes) if it was already removed.
    #[inline]
    pub fn remove(&mut self, key: Key) -> Option<T> {
        let index = key.index as usize;
        match self.slots.get(index) {
            Some(Slot::Occupied { stamp, .. }) if *stamp == key.stamp => {}
            _ => return None,
        }
        Some(self.vacate(index, key.generation()))
    }

    /// Empties the occupied slot `index` (of generation `generation`) and
    /// links it into the free list, or retires it if its generation is
    /// exhausted.
    #[inline]
    fn vacate(&mut self, index: usize, generation: u32) -> T {
        let (generation, next) = if generation < LAST_GENERATION {
            (generation + 1, self.free)
        } else {
            (generation, RETIRED)
        };
        let old = mem::replace(&mut self.slots[index], Slot::Vacant { generation, next });
        if next != RETIRED {
            self.free = index as u32;
        }
        self.len -= 1;
        match old {
            Slot::Occupied { value, .. } => value,
            Slot::Vacant { .. } => unreachable!("vacate is called on occupied slots"),
        }
    }

    /// Keeps the values for which `keep(key, &mut value)` is true and
    /// removes the others (their keys go stale).
    ///
    /// ```
    /// use arenapool_alloc::Slab;
    ///
    /// let mut slab: Slab<u32> = (0..10).collect();
    /// slab.retain(|_, v| *v % 3 == 0);
    /// assert_eq!(slab.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [0, 3, 6, 9]);
    /// ```
    pub fn retain(&mut self, mut keep: impl FnMut(Key, &mut T) -> bool) {
        for index in 0..self.slots.len() {
            if let Slot::Occupied { stamp, value, .. } = &mut self.slots[index] {
                let key = Key {
                    index: index as u32,
                    stamp: *stamp,
                };
                if !keep(key, value) {
                    drop(self.vacate(index, key.generation()));
                }
            }
        }
    }

    /// Removes every value, returning them in index order; the capacity is
    /// kept and every key goes stale. Values not iterated are dropped when
    /// the iterator is. Each value leaves the slab as it is yielded, so a
    /// leaked (`mem::forget`) `Drain` leaves the rest in the slab, reachable
    /// by their keys and counted by `len`.
    ///
    /// ```
    /// use arenapool_alloc::Slab;
    ///
    /// let mut slab = Slab::new();
    /// let k = slab.insert(1);
    /// slab.insert(2);
    /// assert_eq!(slab.drain().collect::<Vec<_>>(), [1, 2]);
    /// assert!(slab.is_empty() && slab.get(k).is_none());
    /// assert_eq!(slab.insert(3).index(), 0);
    /// ```
    pub fn drain(&mut self) -> Drain<'_, T> {
        // The slab stays consistent after every step: `next` removes the
        // value it yields like `remove` does (fuzzing found that zeroing
        // `len` up front left a leaked `Drain`'s slab inconsistent).
        let remaining = self.len;
        Drain {
            slab: self,
            next: 0,
            remaining,
        }
    }

    /// Removes (and drops) every value, keeping the capacity; every key
    /// goes stale.
    ///
    /// The slots themselves are dropped (like `Vec::clear`), and slots made
    /// afterwards start above the highest generation ever issued, so
    /// clearing a slab of values without destructors is O(1).
    pub fn clear(&mut self) {
        let fresh = if self.slots.is_empty() {
            u64::from(self.fresh_generation)
        } else {
            u64::from(self.fresh_generation) + 1
        };
        match u32::try_from(self.high.max(fresh)) {
            Ok(high) if high <= LAST_GENERATION => {
                self.free = NONE;
                self.len = 0;
                self.fresh_generation = high;
                self.slots.clear();
            }
            // A key was issued with the last generation: keep the slots
            // (and their retirement) by draining instead.
            _ => drop(self.drain()),
        }
    }

    /// Drops the trailing free slots and gives back unused capacity.
    /// Generations are remembered, so keys of dropped slots stay stale.
    ///
    /// ```
    /// use arenapool_alloc::Slab;
    ///
    /// let mut slab = Slab::with_capacity(100);
    /// let a = slab.insert('a');
    /// let b = slab.insert('b');
    /// slab.remove(b);
    /// slab.shrink_to_fit();
    /// assert!(slab.capacity() < 100);
    /// let c = slab.insert('c'); // same index as b, newer generation
    /// assert_eq!((c.index(), slab.get(b), slab.get(a)), (b.index(), None, Some(&'a')));
    /// ```
    pub fn shrink_to_fit(&mut self) {
        // A retired slot keeps the last generation it issued (there is no
        // next one), so dropping it would let a new slot at its index issue
        // that key again: retired slots stay.
        while let Some(Slot::Vacant { generation, next }) = self.slots.last()
            && *next != RETIRED
        {
            self.fresh_generation = self.fresh_generation.max(*generation);
            self.slots.pop();
        }
        self.relink();
        self.slots.shrink_to_fit();
    }

    /// Rebuilds the free list from the vacant, unretired slots, lowest
    /// index first.
    fn relink(&mut self) {
        self.free = NONE;
        for index in (0..self.slots.len()).rev() {
            if let Slot::Vacant { next, .. } = &mut self.slots[index]
                && *next != RETIRED
            {
                *next = self.free;
                self.free = index as u32;
            }
        }
    }

    /// Iterates over `(key, &value)` in index order.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            slots: self.slots.iter().enumerate(),
            remaining: self.len,
        }
    }

    /// Iterates over `(key, &mut value)` in index order.
    pub fn iter_mut(&mut self) -> IterMut<'_, T> {
        IterMut {
            slots: self.slots.iter_mut().enumerate(),
            remaining: self.len,
        }
    }
}

impl<'a, T> IntoIterator for &'a Slab<T> {
    type Item = (Key, &'a T);
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<'a, T> IntoIterator for &'a mut Slab<T> {
    type Item = (Key, &'a mut T);
    type IntoIter = IterMut<'a, T>;

    fn into_iter(self) -> IterMut<'a, T> {
        self.iter_mut()
    }
}

impl<T> FromIterator<T> for Slab<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut slab = Slab::new();
        slab.extend(iter);
        slab
    }
}

impl<T> Extend<T> for Slab<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for v in iter {
            self.insert(v);
        }
    }
}

impl<T> Slot<T> {
    #[inline(always)]
    fn occupied(key: Key, value: T) -> Self {
        Slot::Occupied {
            stamp: key.stamp,
            _spare: 0,
            value,
        }
    }
}

impl<T> fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Slot::Occupied { stamp, .. } => write!(f, "Occupied(v{})", stamp.get() - 1),
            Slot::Vacant { generation, next } => write!(f, "Vacant(v{generation}, next {next})"),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
