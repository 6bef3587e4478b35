//! `arenapool` itself as a candidate, with either kind of handle:
//!
//! * [`ArenaPool`]: an `Pool` handing out [`OwnedBuf`]s through
//!   `try_acquire_owned` (each handle clones and drops the `Arc`);
//! * [`StaticArenaPool`]: a pool that lives for the whole process (as a
//!   server's `static` pool would), handing out borrowed [`PoolBuf<'static>`]s
//!   through `try_acquire`, which are `Send` and `'static` too; with
//!   `SIZED`, through `try_acquire_with_capacity(SIZE)` on a pool of
//!   several size classes, to show what picking the class costs.
//!
//! The pool comes from a [`PoolBuilder`] the caller passes in, so each
//! configuration worth comparing is one line in the roster
//! ([`crate::roster`]).

use std::fmt;

use arenapool::{OwnedBuf, Pool, PoolBuf, PoolBuilder};

use crate::candidate::{Candidate, SIZE, TOUCH};

/// An arenapool [`Pool`] configured by a builder, under a name.
pub struct ArenaPool {
    name: String,
    pool: Pool,
}

/// Why an [`ArenaPool`] could not be made.
#[derive(Debug)]
pub enum ArenaPoolError {
    /// The builder rejected its settings or the arena could not be allocated.
    Build(arenapool::BuildError),
    /// The builder's buffers are smaller than the shoot-out's [`SIZE`].
    TooSmall(usize),
}

impl fmt::Display for ArenaPoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Build(e) => write!(f, "cannot build the pool: {e}"),
            Self::TooSmall(n) => write!(f, "buffers of {n} bytes; the shoot-out needs {SIZE}"),
        }
    }
}

impl std::error::Error for ArenaPoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Build(e) => Some(e),
            Self::TooSmall(_) => None,
        }
    }
}

impl ArenaPool {
    /// Builds the pool. Size it so no scenario exhausts it (the roster uses
    /// [`POOL_CAPACITY`](crate::POOL_CAPACITY) buffers); an exhausted pool
    /// makes [`acquire`](Candidate::acquire) panic with a message that says
    /// so.
    ///
    /// # Errors
    ///
    /// If the builder fails, or its buffers are smaller than [`SIZE`].
    pub fn new(name: impl Into<String>, builder: PoolBuilder) -> Result<Self, ArenaPoolError> {
        Ok(Self {
            name: name.into(),
            pool: build(builder)?,
        })
    }

    /// The pool, for its statistics.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    #[cold]
    #[inline(never)]
    fn exhausted(&self) -> ! {
        exhausted(&self.name, &self.pool)
    }
}

fn build(builder: PoolBuilder) -> Result<Pool, ArenaPoolError> {
    let pool = builder.build().map_err(ArenaPoolError::Build)?;
    // With size classes, a sized acquire is served by the largest class.
    let largest = pool.buffer_sizes().last().unwrap_or(0);
    if largest < SIZE {
        return Err(ArenaPoolError::TooSmall(largest));
    }
    Ok(pool)
}

#[cold]
#[inline(never)]
fn exhausted(name: &str, pool: &Pool) -> ! {
    let stats = pool.stats();
    panic!(
        "{name}: pool exhausted ({} of {} buffers in use): size it for the scenario",
        stats.in_use, stats.max_capacity
    )
}

/// An arenapool [`Pool`] that lives until the process exits, handing out
/// borrowed `PoolBuf<'static>` handles: no reference count per buffer.
/// With `SIZED`, it asks for [`SIZE`] bytes
/// (`try_acquire_with_capacity`), for a pool of several size classes.
pub struct StaticArenaPool<const SIZED: bool = false> {
    name: String,
    pool: &'static Pool,
}

impl<const SIZED: bool> StaticArenaPool<SIZED> {
    /// Builds the pool and leaks it (a benchmark candidate lives for the
    /// run anyway; the RSS column runs each candidate in its own process).
    ///
    /// # Errors
    ///
    /// If the builder fails, or its buffers are smaller than [`SIZE`].
    pub fn new(name: impl Into<String>, builder: PoolBuilder) -> Result<Self, ArenaPoolError> {
        Ok(Self {
            name: name.into(),
            pool: Box::leak(Box::new(build(builder)?)),
        })
    }
}

impl<const SIZED: bool> fmt::Debug for StaticArenaPool<SIZED> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticArenaPool")
            .field("name", &self.name)
            .field("stats", &self.pool.stats())
            .finish()
    }
}

impl<const SIZED: bool> Candidate for StaticArenaPool<SIZED> {
    type Buf = PoolBuf<'static>;

    fn name(&self) -> String {
        self.name.clone()
    }

    #[inline]
    fn acquire(&self) -> PoolBuf<'static> {
        let buf = if SIZED {
            self.pool.try_acquire_with_capacity(SIZE).ok().flatten()
        } else {
            self.pool.try_acquire()
        };
        match buf {
            Some(buf) => buf,
            None => exhausted(&self.name, self.pool),
        }
    }

    #[inline]
    fn touch(buf: &mut PoolBuf<'static>) {
        // Cannot fail: buffers hold SIZE >= 64 bytes, a fresh one is empty.
        let _ = buf.extend_from_slice(&TOUCH);
    }

    #[inline]
    fn release(&self, buf: PoolBuf<'static>) {
        drop(buf);
    }

    fn fill<'a>(buf: &'a mut PoolBuf<'static>, byte: u8) -> &'a [u8] {
        buf.as_full_mut().fill(byte);
        buf.as_full()
    }
}

impl fmt::Debug for ArenaPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArenaPool")
            .field("name", &self.name)
            .field("stats", &self.pool.stats())
            .finish()
    }
}

impl Candidate for ArenaPool {
    type Buf = OwnedBuf;

    fn name(&self) -> String {
        self.name.clone()
    }

    #[inline]
    fn acquire(&self) -> OwnedBuf {
        match self.pool.try_acquire_owned() {
            Some(buf) => buf,
            None => self.exhausted(),
        }
    }

    #[inline]
    fn touch(buf: &mut OwnedBuf) {
        // Cannot fail: `new` checked that buffers hold SIZE >= 64 bytes, and
        // a fresh handle is empty.
        let _ = buf.extend_from_slice(&TOUCH);
    }

    #[inline]
    fn release(&self, buf: OwnedBuf) {
        drop(buf);
    }

    fn fill(buf: &mut OwnedBuf, byte: u8) -> &[u8] {
        buf.as_full_mut().fill(byte);
        buf.as_full()
    }
}
