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
//! Unsafe code lives in `raw.rs` (the only calls to the global allocator),
//! `bump/cursor.rs` and `bump/drop_list.rs` (pointer arithmetic in a
//! chunk), the `Allocator` impls and typed writes in `bump.rs` and
//! `bump/sync.rs`, `region.rs` (a `GlobalAlloc` over its region) and `counting.rs`
//! (forwarding `GlobalAlloc`).

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
