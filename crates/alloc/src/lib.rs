//! Allocators around the arenapool buffer pool.
//!
//! * [`Bump`]: a chunked bump arena; `&Bump` is an
//!   [`Allocator`](allocator_api2::alloc::Allocator), the most recent
//!   allocation grows in place, and [`Bump::alloc_with_drop`] runs
//!   destructors on reset.
//! * [`SyncBump`]: one arena filled by many threads, each through its own
//!   [`BumpHandle`].
//! * [`Slab`]: O(1) insert, remove and get with generational [`Key`]s, so a
//!   key whose value was removed finds nothing, even after its slot is
//!   reused.
//! * [`Region`]: a thread-safe bump `GlobalAlloc` over a fixed region that
//!   falls back to another allocator when full, for short-lived tools and
//!   tests.
//! * [`Counting`]: a `GlobalAlloc` wrapper that counts allocations per
//!   thread and per process; [`measure`] counts what one closure allocated
//!   on the calling thread, so allocation budgets can be asserted in tests
//!   without flakiness from other threads.
//!
//! ```
//! use std::alloc::System;
//! use arenapool_alloc::{Bump, Counting, measure};
//!
//! #[global_allocator]
//! static ALLOC: Counting<System> = Counting::new(System);
//!
//! let bump = Bump::with_capacity(4096); // one allocation...
//! let ((), stats) = measure(|| {
//!     for i in 0..100u32 {
//!         bump.alloc(i); // ...and none here
//!     }
//! });
//! assert_eq!(stats.allocations, 0);
//! ```
//!
//! # Soundness
//!
//! Unsafe code lives in `raw.rs` (the only calls to the global allocator),
//! `bump/cursor.rs` and `bump/drop_list.rs` (pointer arithmetic in a
//! chunk), the `Allocator` impls and typed writes in `bump.rs` and
//! `bump/sync.rs`, `region.rs` (a `GlobalAlloc` over its region) and `counting.rs`
//! (forwarding `GlobalAlloc`). `slab.rs` has none. The unit and
//! integration tests run under Miri with strict provenance, and the
//! region's offset protocol is model-checked with loom.
//!
//! ## User code inside the crate
//!
//! Code of the crate's users runs inside it in three ways: destructors of
//! values the crate drops, closures (and trait impls) it calls, and the
//! global allocator. The rule everywhere: the structure is consistent
//! before user code is called (a value leaves its slot or list *before*
//! its destructor runs), no lock or `RefCell` borrow of ours is held while
//! it runs, and where a panic would stop a loop of destructors half way, a
//! guard finishes the loop while the panic unwinds. `tests/user_code/`
//! (and `slab/tests.rs`, for `clear` once a slot is retired) tests the
//! places below with destructors and closures that panic and a global
//! allocator that calls back in; only `insert`'s panic on a full slab
//! (2^32 - 2 slots) is not tested.
//!
//! **Destructors of values.**
//!
//! * [`Bump::reset`] and dropping a [`Bump`] run the destructors of the
//!   values placed with [`Bump::alloc_with_drop`] (`DropList::run`, newest
//!   first). The list head is taken before the first destructor runs and
//!   each entry is unlinked before its own does, so none runs twice; if one
//!   panics, a guard drops the remaining entries while the panic unwinds,
//!   so none is leaked, and the panic then goes on. In `reset` it leaves
//!   before any chunk is freed or the arena rewound, so the arena is as it
//!   was, less its drop list; in `drop` the chunks are freed after every
//!   destructor has run (also when unwinding), so no destructor runs on
//!   freed memory. Both take `&mut Bump` and the values are `'static`, so
//!   no destructor can reach the arena it is in; it may use any other
//!   arena or slab, including one that is itself on this drop list.
//! * [`Slab`] drops values in [`Slab::retain`] (the removed ones),
//!   [`Slab::clear`], a dropped [`Drain`] (which `clear` also uses once a
//!   slot is retired) and when the slab is dropped; [`Slab::remove`] and
//!   [`Drain`]'s `next` hand the value to the caller, and
//!   [`Slab::shrink_to_fit`] drops only vacant slots. `retain` and `Drain`
//!   take a value out of its slot (`vacate`: the slot is vacant, on the
//!   free list, with its generation moved on, and `len` counts it out)
//!   before its destructor runs, so after a panic the slab is consistent
//!   and the value's key is stale: `retain` keeps the values it had not
//!   reached (as `Vec::retain` does), and `Drain`'s drop finishes through a
//!   guard that drops the rest and relinks the free list, so the slab ends
//!   empty. `clear` sets `len`, the free list and the generation of new
//!   slots before `Vec::clear` drops the slots, which drops the rest after
//!   a panic. [`Slab::insert`] drops the value before it panics (slab full)
//!   or aborts (out of memory), so that destructor never runs inside the
//!   crate's own unwind. All of these take `&mut Slab` or the slab itself:
//!   a destructor cannot reach the same slab in safe code.
//! * In each of these loops (and in `Vec`'s, which they follow), a second
//!   destructor that panics while the first panic unwinds aborts the
//!   process.
//!
//! **Closures and trait impls.**
//!
//! * [`Slab::retain`]'s predicate gets `(Key, &mut T)` between two slots;
//!   if it panics, the values already removed stay removed and the rest
//!   stay. `Extend` and `FromIterator` insert each value before asking the
//!   iterator for the next, so a panicking iterator leaves what was
//!   inserted. The derived `Clone` calls `T::clone` into a new slab; a
//!   panic drops the partial copy and leaves the original untouched.
//! * `alloc_slice_fill_with` and `try_alloc_slice_fill_with` ([`Bump`] and
//!   [`BumpHandle`]) reserve the block for all `len` values before `f`
//!   first runs, so `f` may allocate from the same arena or handle (those
//!   blocks come after it). If `f` panics, the values made so far are
//!   leaked (never dropped) and their block stays used until the next
//!   reset; the arena stays consistent.
//! * [`measure`] lowers the thread's high-water mark while its closure
//!   runs; a guard puts it back when the closure returns or panics.
//!
//! **The global allocator.** A `#[global_allocator]` is user code too, and
//! it may call back in: a [`Counting`] or [`Region`] wraps the user's
//! allocator, and an allocator may serve blocks from a `static` [`SyncBump`]
//! or a thread-local [`Bump`], or read one.
//!
//! * [`Bump`] and [`SyncBump`] call it for a new chunk (`alloc_chunk`) and
//!   to grow their chunk list (`record_chunk`), never while the list is
//!   borrowed or locked: a new chunk is counted against the allocation
//!   limit *before* it is allocated (a compare-and-swap in `SyncBump`, so
//!   concurrent or nested requests cannot pass the limit together), the
//!   chunk list is grown with the list released and refilled under the
//!   lock without allocating, and `SyncBump`'s spare chunk is taken under
//!   its own lock, released before anything is allocated. A call back into
//!   the same arena from the global allocator therefore finds it
//!   consistent (its current chunk still held, the limit counting the chunk
//!   being made), cannot deadlock on its mutexes or fail a `RefCell`
//!   borrow. A chunk that holds blocks is freed only by `reset` and
//!   `drop`, which take `&mut`. An allocator that serves blocks from an arena must still stop
//!   the arena's own chunk request from coming back to the arena (a
//!   thread-local "inside" flag), or that request recurses without end.
//! * [`Counting`] calls the wrapped allocator first and counts after it
//!   returns, in the thread's own counters (no lock): an allocation the
//!   wrapped allocator makes through the global allocator is counted as
//!   one more event.
//! * [`Region`] takes no lock: each allocation or free of a region block
//!   is one compare-and-swap on the offset. The fallback allocator runs for
//!   the blocks that are not the region's (`alloc` and `alloc_zeroed` after
//!   a bump failed, `dealloc` and `realloc` of its own blocks), and, in a
//!   `realloc` that moves a region block, between taking the new block and
//!   freeing the old one. A fallback that calls back into the region sees
//!   a consistent offset, and a block is handed out again only after it
//!   was freed.
//!
//! Allocators must not unwind (`GlobalAlloc`'s contract), so no panic is
//! considered there.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![deny(unsafe_op_in_unsafe_fn)]

mod bump;
mod counting;
mod error;
mod raw;
mod region;
mod slab;

pub use bump::Bump;
pub use bump::sync::{BumpHandle, SyncBump};
pub use counting::{AllocStats, Counting, global_stats, is_counting, measure, thread_stats};
pub use error::{BumpError, SlabError};
pub use region::{ExternalRegion, Region};
pub use slab::{Drain, Iter, IterMut, Key, Slab};

/// The README's examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
