//! The line-up: every candidate of the shoot-out, in table order, as
//! factories so that each is built only when its turn comes (and a child
//! process measuring one candidate's memory builds only that one).
//!
//! Adding a configuration of arenapool is one line in [`roster`]: a name and
//! a [`PoolBuilder`].

use std::fmt;

use arenapool::{Pool, PoolBuilder};
use mimalloc::MiMalloc;
use serde::Serialize;
use tikv_jemallocator::Jemalloc;

use crate::alloc::{Allocator, Raw, WithCapacity, Written, Zeroed};
use crate::arenapool::{ArenaPool, ArenaPoolError, StaticArenaPool};
use crate::candidate::{Contender, POOL_CAPACITY, SIZE};
use crate::pools::{
    LockfreeLinear, LockfreeSpinLock, MutexPool, OPool, ObjectPool, QueuePool, ShardedSlab,
};

/// What kind of thing a candidate is; the chart colours by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Group {
    /// A general-purpose allocator, no pool.
    Allocator,
    /// A pool from another crate, or a hand-rolled one.
    PoolCrate,
    /// arenapool.
    Arenapool,
    /// A reference row that is no candidate (the channel floor).
    Reference,
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allocator => "allocator",
            Self::PoolCrate => "pool crate",
            Self::Arenapool => "arenapool",
            Self::Reference => "reference",
        })
    }
}

/// A candidate that failed to build.
pub type BuildFailure = Box<dyn std::error::Error + Send + Sync>;

type Factory = Box<dyn Fn() -> Result<Box<dyn Contender>, BuildFailure> + Send + Sync>;

/// One line of the line-up: its group and how to build it.
pub struct Entry {
    /// What kind of candidate it is.
    pub group: Group,
    make: Factory,
}

impl Entry {
    fn new<F, C>(group: Group, make: F) -> Self
    where
        F: Fn() -> Result<C, BuildFailure> + Send + Sync + 'static,
        C: Contender + 'static,
    {
        Self {
            group,
            make: Box::new(move || make().map(|c| Box::new(c) as Box<dyn Contender>)),
        }
    }

    /// Builds the candidate (allocating its pool, if it has one).
    ///
    /// # Errors
    ///
    /// If its pool cannot be built.
    pub fn build(&self) -> Result<Box<dyn Contender>, BuildFailure> {
        (self.make)()
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// The three shapes of one allocator.
fn allocator<A: Allocator>() -> [Entry; 3] {
    [
        Entry::new(Group::Allocator, || Ok(Raw::<A, WithCapacity>::new())),
        Entry::new(Group::Allocator, || Ok(Raw::<A, Zeroed>::new())),
        Entry::new(Group::Allocator, || Ok(Raw::<A, Written>::new())),
    ]
}

/// A pool crate's candidate, built by `Default`.
fn pool<C: Contender + Default + 'static>() -> Entry {
    Entry::new(Group::PoolCrate, || Ok(C::default()))
}

/// An arenapool configuration with owned handles: a name and a builder.
fn arena(name: &'static str, builder: PoolBuilder) -> Entry {
    Entry::new(Group::Arenapool, move || {
        ArenaPool::new(name, builder.clone()).map_err(|e: ArenaPoolError| e.into())
    })
}

/// An arenapool configuration with borrowed handles from a static pool;
/// with `SIZED`, taken with `try_acquire_with_capacity(SIZE)`.
fn arena_static<const SIZED: bool>(name: &'static str, builder: PoolBuilder) -> Entry {
    Entry::new(Group::Arenapool, move || {
        StaticArenaPool::<SIZED>::new(name, builder.clone()).map_err(|e: ArenaPoolError| e.into())
    })
}

/// Every candidate, in the order of the table.
pub fn roster() -> Vec<Entry> {
    let arenapool = || Pool::builder().buffer_size(SIZE).capacity(POOL_CAPACITY);
    let mut entries = Vec::new();
    entries.extend(allocator::<std::alloc::System>());
    entries.extend(allocator::<MiMalloc>());
    entries.extend(allocator::<Jemalloc>());
    entries.extend([
        pool::<LockfreeLinear>(),
        pool::<LockfreeSpinLock>(),
        pool::<ObjectPool>(),
        pool::<ShardedSlab>(),
        pool::<OPool>(),
        pool::<QueuePool>(),
        pool::<MutexPool>(),
        arena_static::<false>("arenapool PoolBuf, cache 128", arenapool()),
        arena("arenapool OwnedBuf, cache 128", arenapool()),
        // Leak tracking on, one acquisition in 128 recorded: what finding
        // a leak in production costs.
        arena_static::<false>(
            "arenapool PoolBuf, cache 128, track_leaks(128)",
            arenapool().track_leaks(128),
        ),
        // The same buffers as the middle of three size classes, asked for
        // by size: what picking the class costs.
        arena_static::<true>(
            "arenapool PoolBuf, 3 classes, by size",
            Pool::builder()
                .class(256, 64)
                .class(SIZE, POOL_CAPACITY)
                .class(16 * SIZE, 4),
        ),
        arena_static::<false>("arenapool PoolBuf, no cache", arenapool().cache_size(0)),
        arena("arenapool OwnedBuf, no cache", arenapool().cache_size(0)),
    ]);
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every adapter hands out a whole, writable 4096-byte buffer, takes it
    /// back, and can do so again; also across threads.
    #[test]
    fn every_candidate_round_trips_a_whole_buffer() {
        let mut names = Vec::new();
        for entry in roster() {
            let c = entry.build().expect("builds");
            for byte in [0x00, 0x5A, 0xFF] {
                c.check(byte)
                    .unwrap_or_else(|e| panic!("{}: {e}", c.name()));
            }
            // A few of each scenario, so every loop runs once under test.
            c.round_trip(100);
            c.window(100);
            assert_eq!(c.parallel(2, 100, 2).len(), 2);
            assert_eq!(c.handoff(100, 2).len(), 2);
            c.check(0x11)
                .unwrap_or_else(|e| panic!("{} after: {e}", c.name()));
            names.push(c.name());
        }
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "names must be unique: {names:?}");
        assert_eq!(names.len(), 22);
    }

    #[test]
    fn an_undersized_arenapool_is_refused() {
        let err = ArenaPool::new("small", Pool::builder().buffer_size(100).capacity(4))
            .expect_err("refused");
        assert!(err.to_string().contains("100 bytes"), "{err}");
    }

    #[test]
    #[should_panic(expected = "pool exhausted")]
    fn an_exhausted_arenapool_says_so() {
        use crate::candidate::Candidate;
        let c = ArenaPool::new("tiny", Pool::builder().buffer_size(SIZE).capacity(1)).unwrap();
        let _held = c.acquire();
        let _ = c.acquire();
    }
}
