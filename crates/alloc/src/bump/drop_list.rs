//! The drop list behind [`Bump::alloc_with_drop`](crate::Bump::alloc_with_drop).
//!
//! Each value is placed in the arena behind a small header (`#[repr(C)]`,
//! header first) that links to the previous entry and knows how to drop
//! the value. The list head is a `Cell`; running the list takes the head
//! first, so a destructor that panics leaks the rest instead of dropping
//! anything twice.

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

    /// Drops every value on the list, newest first, and empties it.
    ///
    /// # Safety
    ///
    /// Every entry's memory must still be allocated, and no reference to
    /// any of the values may be used afterwards.
    pub(crate) unsafe fn run(&self) {
        let mut next = self.head.take();
        while let Some(header) = next {
            // SAFETY: entries are live (caller) and were written by `push`.
            let h = unsafe { header.as_ptr().read() };
            next = h.next;
            // SAFETY: `drop_entry` is the function for this entry's `T`; the
            // entry was unlinked above (the head was taken), so it is
            // dropped once.
            unsafe { (h.drop_entry)(header) };
        }
    }
}
