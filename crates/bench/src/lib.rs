//! The arenapool shoot-out: `arenapool` against general-purpose allocators
//! and pool crates, on 4096-byte buffers, in four scenarios:
//!
//! * **a**: one thread: acquire, write 64 bytes, release (ns);
//! * **b**: one thread holding 64 buffers, releasing the oldest (ns);
//! * **c**: 1, 2, ... N threads each doing a, started together (Mops/s);
//! * **d**: acquire and write on one thread, send over a bounded channel,
//!   release on another (Mops/s), next to the channel alone as the floor;
//!
//! plus each candidate's peak RSS, measured in a child process.
//!
//! `arenapool bench` runs it ([`run`], then [`Report::table`],
//! [`write_files`]); `cargo bench -p arenapool-bench` runs scenarios a and
//! d under criterion. The crate README has the figures and how to
//! reproduce them.
//!
//! # Layout
//!
//! * `candidate.rs`: the [`Candidate`] trait and its object-safe face
//!   [`Contender`];
//! * `alloc.rs`: glibc, mimalloc and jemalloc through their `GlobalAlloc`,
//!   and [`Chosen`], a global allocator that is one of them, picked when
//!   the process starts (the crate's `unsafe` code, with one `getrusage`
//!   call in `faults.rs`);
//! * `pools.rs`: the pool crates; `arenapool.rs`: arenapool;
//! * `roster.rs`: the line-up, in table order;
//! * `runner.rs`: the scenarios, calibration and the median;
//! * `rss.rs`: peak memory in a child process;
//! * `report.rs`, `chart.rs`: the table, JSON and SVG;
//! * `shootout.rs`: the run, with its progress bar;
//! * `faults.rs`: `arenapool faults`, page faults and time of the first
//!   touch of a large pool per arena backing (not part of the shoot-out);
//! * `fragmentation/`: `arenapool fragmentation`, memory over time under
//!   each global allocator against the pool (a child process per run);
//! * `stress.rs`: the soak behind `arenapool stress` (not a benchmark: a
//!   long randomised run that checks ownership on every release).

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod alloc;
mod arenapool;
mod candidate;
mod chart;
mod faults;
pub mod fragmentation;
mod pools;
mod report;
mod roster;
pub mod rss;
mod runner;
mod shootout;
mod stress;

pub use crate::alloc::{
    ALLOCATOR_VAR, Allocator, CHOICES, Chosen, Raw, RawBuf, Shape, WithCapacity, Written, Zeroed,
};
pub use crate::arenapool::{ArenaPool, ArenaPoolError, StaticArenaPool};
pub use crate::candidate::{Candidate, Contender, POOL_CAPACITY, SIZE, TOUCH};
pub use crate::chart::write_svg;
pub use crate::faults::{FAULT_BACKINGS, FaultOptions, FaultRow, fault_table, faults};
pub use crate::pools::{
    BlockAllocator, LockfreeLinear, LockfreeSpinLock, MutexPool, OPool, ObjectPool, QueuePool,
    ShardedSlab, SlabBlock,
};
pub use crate::report::{LeftOut, Machine, Parallel, Report, Row};
pub use crate::roster::{BuildFailure, Entry, Group, roster};
pub use crate::runner::{
    CHANNEL_BOUND, CHANNEL_NAME, Plan, WINDOW, calibrate, channel_floor, handoff, median, parallel,
    round_trip, window,
};
pub use crate::shootout::{Options, run, write_files};
pub use crate::stress::{STRESS_BUFFER, STRESS_CAPACITY, STRESS_LIMIT, StressReport, stress};
