//! The drop list behind [`Bump::alloc_with_drop`](crate::Bump::alloc_with_drop).
//!
//! Each value is placed in the arena behind a small header (`#[repr(C)]`,
//! header first) that links to the previous entry and knows how to drop
//! the value. The list head is a `Cell`; running the list takes the head
//! first, and each entry is unlinked before its destructor runs, so no
//! destructor runs twice. If one panics, the rest are still dropped while
//! the panic unwinds (a guard walks on), then the panic goes on: like
//! dropping a `Vec`, every other value is dropped once and none is leaked.
//! A second panic during that unwind aborts the process, as it does for a
//! `Vec`.

use std::alloc::Layout;
use std::cell::Cell;
use std::ptr::NonNull;

/// The part of an entry the list walks.
struct Header {
    next: Option<NonNull<Header>>,
    drop_entry: unsafe fn(NonNull<Header>),
}

/// One entry: the header, then the value.
#[repr(C)]
struct Entry<T> {
    header: Header,
    value: T,
}

/// Drops the value of the `Entry<T>` that starts at `header`.
///
/// # Safety
///
/// `header` must point to a live `Entry<T>` (with provenance over all of
/// it) whose value has not been dropped, and the value must not be used
/// again.
unsafe fn drop_entry<T>(header: NonNull<Header>) {
    let entry = header.cast::<Entry<T>>();
    // SAFETY: `Entry<T>` is `repr(C)` with the header first, so `header` is
    // the entry's address, derived from the entry's allocation (caller);
    // its value is initialised and dropped only here.
    unsafe { std::ptr::drop_in_place(&raw mut (*entry.as_ptr()).value) };
}

/// The newest entry, or `None`.
#[derive(Debug)]
pub(crate) struct DropList {
    head: Cell<Option<NonNull<Header>>>,
}

impl DropList {
    pub(crate) const fn new() -> Self {
        Self {
            head: Cell::new(None),
        }
    }

    /// The layout to allocate for one `T` on the list.
    pub(crate) fn layout<T>() -> Layout {
        Layout::new::<Entry<T>>()
    }

    /// Writes `value` (with its header) at `ptr`, links it in, and returns
    /// the value.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for writes of `Self::layout::<T>()`, aligned for
    /// it, derived from the arena's chunk, and stay allocated and otherwise
    /// unused until [`DropList::run`] (and for `'a`).
    pub(crate) unsafe fn push<'a, T>(&self, ptr: NonNull<u8>, value: T) -> &'a mut T {
        let entry = ptr.cast::<Entry<T>>();
        // SAFETY: valid and aligned for an `Entry<T>` (caller).
        unsafe {
            entry.write(Entry {
                header: Header {
                    next: self.head.get(),
                    drop_entry: drop_entry::<T>,
                },
                value,
            });
        }
        self.head.set(Some(entry.cast::<Header>()));
        // SAFETY: the value was just initialised; the list touches it again
        // only in `run`, which the caller orders after `'a`.
        unsafe { &mut (*entry.as_ptr()).value }
    }

    /// Drops every value on the list, newest first, and empties it. If a
    /// destructor panics, the others are still dropped before the panic
    /// leaves this function.
    ///
    /// # Safety
    ///
    /// Every entry's memory must still be allocated, and no reference to
    /// any of the values may be used afterwards.
    pub(crate) unsafe fn run(&self) {
        // The head is taken first: whatever happens below, no entry stays
        // on the list to be run again.
        let mut rest = Rest(self.head.take());
        // SAFETY: the entries are live and unreferenced (caller).
        unsafe { rest.drop_all() };
    }
}

/// The entries of a list being run that are still to be dropped.
///
/// If a destructor panics, the unwind drops this guard, which drops the
/// remaining entries: none is leaked.
struct Rest(Option<NonNull<Header>>);

impl Rest {
    /// Drops the entries from `self.0` on, unlinking each before its
    /// destructor runs.
    ///
    /// # Safety
    ///
    /// As for [`DropList::run`], for the entries from `self.0` on.
    unsafe fn drop_all(&mut self) {
        while let Some(header) = self.0 {
            // SAFETY: entries are live (caller) and were written by `push`.
            let h = unsafe { header.as_ptr().read() };
            // Unlinked before its destructor runs, so a panic in it leaves
            // the guard at the next entry, never at this one again.
            self.0 = h.next;
            // SAFETY: `drop_entry` is the function for this entry's `T`; the
            // entry was unlinked above, so it is dropped once.
            unsafe { (h.drop_entry)(header) };
        }
    }
}

impl Drop for Rest {
    fn drop(&mut self) {
        // Empty unless a destructor panicked in `drop_all`.
        // SAFETY: a `Rest` is only made by `DropList::run`, whose caller
        // vouches for every entry of the list until it returns; the entries
        // left here were not dropped yet.
        unsafe { self.drop_all() };
    }
}
