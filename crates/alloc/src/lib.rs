//! Allocators around the arenapool buffer pool.
//!
//! * [`Counting`]: a `GlobalAlloc` wrapper that counts allocations per
//!   thread and per process; [`measure`] counts what one closure allocated
//!   on the calling thread, so allocation budgets can be asserted in tests
//!   without flakiness from other threads.
//!
//! ```
//! use std::alloc::System;
//! use arenapool_alloc::{Counting, measure};
//!
//! #[global_allocator]
//! static ALLOC: Counting<System> = Counting::new(System);
//!
//! let (s, stats) = measure(|| "arena".repeat(4));
//! assert_eq!(s.len(), 20);
//! assert_eq!((stats.allocations, stats.bytes_allocated), (1, 20));
//! ```

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![deny(unsafe_op_in_unsafe_fn)]

mod counting;

pub use counting::{AllocStats, Counting, global_stats, is_counting, measure, thread_stats};
