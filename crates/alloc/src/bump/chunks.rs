//! Getting a chunk: its size under the allocation limit, the chunk itself
//! from the global allocator, and its place in the arena's chunk list,
//! shared by [`Bump`](crate::Bump) and [`SyncBump`](crate::SyncBump).
//!
//! The global allocator is user code (a `#[global_allocator]` may read, or
//! allocate from, the very arena that is asking it for a chunk), so these
//! are split so that the arenas call it with nothing of theirs locked or
//! borrowed: the size is decided and counted first, then the chunk is
//! allocated, then [`record_chunk`] adds it to the list without allocating
//! under the list's lock.

use std::mem;
use std::ops::DerefMut;

use crate::error::BumpError;
use crate::raw::{CHUNK_ALIGN, RawChunk};

/// The size of a chunk for a request of `need` bytes: `(need, size)`, with
/// `need` rounded up to [`CHUNK_ALIGN`] and `size` the `preferred` size if
/// that is larger and fits under `limit` (with `allocated` bytes already
/// held), else `need`.
pub(crate) fn chunk_size(
    need: usize,
    preferred: usize,
    allocated: usize,
    limit: Option<usize>,
) -> Result<(usize, usize), BumpError> {
    const MAX: usize = isize::MAX as usize - (CHUNK_ALIGN - 1);
    if need > MAX {
        return Err(BumpError::SizeOverflow);
    }
    let need = need.max(1).next_multiple_of(CHUNK_ALIGN);
    // No chunk above `MAX` can be allocated, so none is asked for.
    let mut size = preferred.clamp(need, MAX);
    if let Some(limit) = limit {
        let room = limit.saturating_sub(allocated);
        if need > room {
            return Err(BumpError::LimitExceeded {
                requested: need,
                limit,
                allocated,
            });
        }
        size = size.min(room);
    }
    Ok((need, size))
}

/// Allocates a chunk of `size` bytes, or of `need` bytes (`need <= size`)
/// if the allocator cannot give `size`.
pub(crate) fn alloc_chunk(need: usize, size: usize) -> Result<RawChunk, BumpError> {
    // Try the geometric size, then settle for what the request needs.
    match RawChunk::try_new(size) {
        Some(c) => Ok(c),
        None if size > need => {
            RawChunk::try_new(need).ok_or(BumpError::OutOfMemory { bytes: need })
        }
        None => Err(BumpError::OutOfMemory { bytes: size }),
    }
}

/// Appends `chunk` to the chunk list that `lock` locks (a `Mutex`) or
/// borrows (a `RefCell`), without calling the global allocator while the
/// list is locked: the global allocator is user code (a `#[global_allocator]`
/// may itself allocate from, or read, this arena), and it must not find the
/// list locked. When the list is full, a bigger one is allocated with the
/// list released, then the chunks are moved into it under the lock (which
/// allocates nothing) and the old buffer is freed after the lock is
/// released. Returns the chunk if no bigger list can be allocated.
pub(crate) fn record_chunk<L: DerefMut<Target = Vec<RawChunk>>>(
    lock: impl Fn() -> L,
    chunk: RawChunk,
) -> Result<(), RawChunk> {
    let mut bigger: Vec<RawChunk> = Vec::new();
    loop {
        let mut list = lock();
        if list.len() < list.capacity() {
            list.push(chunk);
            drop(list);
            // `bigger`, if allocated but not needed after all, is freed
            // here, with the list released.
            return Ok(());
        }
        if bigger.capacity() > list.len() {
            // Within `bigger`'s capacity: these move chunks, they do not
            // allocate.
            bigger.append(&mut list);
            bigger.push(chunk);
            mem::swap(&mut *list, &mut bigger);
            drop(list);
            // The old buffer, now in `bigger`, is freed here.
            return Ok(());
        }
        let want = list.len().saturating_mul(2).max(4);
        drop(list);
        drop(mem::take(&mut bigger));
        if bigger.try_reserve_exact(want).is_err() {
            return Err(chunk);
        }
    }
}
