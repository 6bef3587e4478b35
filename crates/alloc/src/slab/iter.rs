//! The iterators of a [`Slab`]: [`Iter`], [`IterMut`] and [`Drain`].

use std::fmt;
use std::iter::{Enumerate, FusedIterator};

use super::{Key, Slab, Slot};

/// Iterator over `(Key, &T)`; see [`Slab::iter`].
#[derive(Debug)]
pub struct Iter<'a, T> {
    pub(super) slots: Enumerate<std::slice::Iter<'a, Slot<T>>>,
    pub(super) remaining: usize,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = (Key, &'a T);

    fn next(&mut self) -> Option<Self::Item> {
        for (index, slot) in self.slots.by_ref() {
            if let Slot::Occupied { stamp, value, .. } = slot {
                self.remaining -= 1;
                let key = Key {
                    index: index as u32,
                    stamp: *stamp,
                };
                return Some((key, value));
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T> ExactSizeIterator for Iter<'_, T> {}
impl<T> FusedIterator for Iter<'_, T> {}

/// Iterator over `(Key, &mut T)`; see [`Slab::iter_mut`].
#[derive(Debug)]
pub struct IterMut<'a, T> {
    pub(super) slots: Enumerate<std::slice::IterMut<'a, Slot<T>>>,
    pub(super) remaining: usize,
}

impl<'a, T> Iterator for IterMut<'a, T> {
    type Item = (Key, &'a mut T);

    fn next(&mut self) -> Option<Self::Item> {
        for (index, slot) in self.slots.by_ref() {
            if let Slot::Occupied { stamp, value, .. } = slot {
                self.remaining -= 1;
                let key = Key {
                    index: index as u32,
                    stamp: *stamp,
                };
                return Some((key, value));
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T> ExactSizeIterator for IterMut<'_, T> {}
impl<T> FusedIterator for IterMut<'_, T> {}

/// The values of a slab, removed in index order; see [`Slab::drain`].
pub struct Drain<'a, T> {
    pub(super) slab: &'a mut Slab<T>,
    pub(super) next: usize,
    pub(super) remaining: usize,
}

impl<T> fmt::Debug for Drain<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl<T> Iterator for Drain<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        while self.next < self.slab.slots.len() {
            let index = self.next;
            self.next += 1;
            if let Slot::Occupied { stamp, .. } = self.slab.slots[index] {
                self.remaining -= 1;
                // `vacate` links the slot and counts it out of `len`; the
                // list is put in index order when the drain ends.
                return Some(self.slab.vacate(index, stamp.get() - 1));
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T> ExactSizeIterator for Drain<'_, T> {}
impl<T> FusedIterator for Drain<'_, T> {}

impl<T> Drop for Drain<'_, T> {
    fn drop(&mut self) {
        /// Finishes the drain when dropped: drops what is left and relinks
        /// the free list. Dropped at the end of `Drain::drop`, or while a
        /// panic in a value's destructor unwinds out of it, so every other
        /// value is still dropped (once: each leaves the slab before its
        /// destructor runs) and the slab ends empty and relinked, as after
        /// `Vec::drain`. A second panic during that unwind aborts, as for
        /// a `Vec`.
        struct Finish<'d, 'a, T>(&'d mut Drain<'a, T>);

        impl<T> Drop for Finish<'_, '_, T> {
            fn drop(&mut self) {
                self.0.by_ref().for_each(drop);
                self.0.slab.relink();
            }
        }

        let finish = Finish(self);
        finish.0.by_ref().for_each(drop);
    }
}
