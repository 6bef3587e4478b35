//! The one place that chooses between `std` and `loom` primitives.
//!
//! Everything in this crate that is shared between threads imports its
//! atomics from here, so that `RUSTFLAGS="--cfg loom"` swaps every one of
//! them for loom's model-checked versions (see `bin/loom.sh` at the
//! repository root). The layout follows sharded-slab's `src/sync.rs`.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

#[cfg(all(test, loom))]
pub(crate) use loom::{model, thread};
