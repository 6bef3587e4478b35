//! RAII handles: [`PoolBuf`] (borrows the pool) and [`OwnedBuf`]
//! (`'static`: holds a reference to the pool's memory, `shared.rs`).
//!
//! Both behave like a `Vec<u8>` whose capacity is fixed at the buffer size:
//! `len` bytes are "filled" and visible through `Deref<Target = [u8]>`, and
//! the whole buffer is reachable through [`as_full_mut`](PoolBuf::as_full_mut).
//! The buffer is the handle's *region* of its slot: the whole slot, less
//! what `io::Read` consumed or (`views.rs`) what an owned buffer froze into
//! [`SharedBuf`] views.
//! Every byte of a slot is always initialised (the arena is zeroed when it is
//! made), so growing the length with `set_len` is safe: it exposes old bytes,
//! never uninitialised memory.
//!
//! The two types share one implementation, [`Slot`], and one macro that
//! writes their identical public methods; they differ only in how they hold
//! the pool. Their standard traits (comparison and hashing by content,
//! `Borrow`, `Extend`, `fmt::Write`) are in `traits.rs`.

use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use crate::error::CapacityError;
use crate::shared::{Pool, Shared};

mod traits;
mod views;

pub use views::SharedBuf;

/// The part of a handle that does not depend on how the pool is held.
///
/// A handle sees a *region* of its slot: the whole slot when acquired, less
/// once [`OwnedBuf::split_to`] froze a front part into [`SharedBuf`] views
/// or `io::Read` consumed one. Invariants: the handle owns the region
/// exclusively until drop (frozen views only ever cover bytes outside it);
/// `ptr` is the region's first byte, derived from the arena allocation, and
/// lies `off` bytes into slot `idx`; `off + cap` is at most the pool's
/// buffer size; `len <= cap`; `dirty >= len` bounds the bytes from `ptr`
/// that this holder or a frozen view of the slot may have written (what
/// `zero_on_release` clears), with `off + dirty` at most the buffer size.
/// `shared` is set once views of the slot exist: the slot's link word then
/// counts them and this handle (`views.rs`).
struct Slot {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
    dirty: usize,
    off: usize,
    idx: u32,
    shared: bool,
}

impl Slot {
    #[inline]
    fn new(pool: &Shared, idx: u32) -> Self {
        Self {
            ptr: pool.slot_ptr(idx),
            len: 0,
            cap: pool.config.buffer_size,
            dirty: 0,
            off: 0,
            idx,
            shared: false,
        }
    }

    #[inline]
    fn filled(&self) -> &[u8] {
        // SAFETY: `len <= cap` bytes from `ptr` lie in our slot, are
        // initialised (the arena is zeroed), and we own the slot.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    #[inline]
    fn filled_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `filled`; `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    #[inline]
    fn full(&self) -> &[u8] {
        // SAFETY: the whole region (`cap` bytes from `ptr`) is ours and
        // initialised.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.cap) }
    }

    #[inline]
    fn full_mut(&mut self) -> &mut [u8] {
        self.dirty = self.dirty.max(self.cap);
        // SAFETY: the whole slot is ours and initialised; `&mut self`
        // makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.cap) }
    }

    #[inline]
    fn set_len(&mut self, len: usize) -> Result<(), CapacityError> {
        if len > self.cap {
            return Err(CapacityError {
                requested: len,
                capacity: self.cap,
            });
        }
        self.len = len;
        self.dirty = self.dirty.max(len);
        Ok(())
    }

    #[inline]
    fn extend_from_slice(&mut self, data: &[u8]) -> Result<(), CapacityError> {
        let end = self.len.checked_add(data.len()).filter(|&e| e <= self.cap);
        let Some(end) = end else {
            return Err(CapacityError {
                requested: self.len.saturating_add(data.len()),
                capacity: self.cap,
            });
        };
        let start = self.len;
        self.full_mut_unmarked()[start..end].copy_from_slice(data);
        self.set_len(end)
    }

    /// Copies as much of `data` as fits; returns how much that was.
    #[inline]
    fn write_some(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.cap - self.len);
        let start = self.len;
        self.full_mut_unmarked()[start..start + n].copy_from_slice(&data[..n]);
        self.len += n;
        self.dirty = self.dirty.max(self.len);
        n
    }

    /// Appends `cnt` copies of `val`; `false` (and nothing written) if
    /// they do not fit.
    #[cfg(feature = "bytes")]
    #[inline]
    fn fill(&mut self, val: u8, cnt: usize) -> bool {
        if cnt > self.cap - self.len {
            return false;
        }
        let start = self.len;
        self.full_mut_unmarked()[start..start + cnt].fill(val);
        self.len += cnt;
        self.dirty = self.dirty.max(self.len);
        true
    }

    /// The whole slot, without marking it all dirty: for writers that
    /// update `len` (and so `dirty`) themselves.
    #[inline]
    fn full_mut_unmarked(&mut self) -> &mut [u8] {
        // SAFETY: as in `full_mut`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.cap) }
    }

    /// Gives the slot back; `owed` as for `Shared::release`.
    ///
    /// # Safety
    ///
    /// `pool` is the pool this slot came from (with its reference, if
    /// `*owed`), and `self` is not used afterwards (called once, from the
    /// handle's `Drop`).
    #[inline]
    unsafe fn release<const OWNED: bool>(&mut self, pool: &Shared, owed: &mut bool) {
        // SAFETY: we own slot `idx` (a borrowed buffer has no views) and
        // `start()` is its address; `off + dirty <= buffer_size`; the
        // caller promises this is the last use.
        unsafe { pool.release::<OWNED>(self.idx, self.start(), self.off + self.dirty, owed) }
    }

    /// The slot's first byte.
    #[inline]
    fn start(&self) -> NonNull<u8> {
        // SAFETY: `ptr` lies `off` bytes into the slot (type invariant), so
        // stepping back stays inside the allocation.
        unsafe { self.ptr.sub(self.off) }
    }

    /// Makes the whole slot (of `size` bytes, the buffer size) the region
    /// again. Only when no view of the slot exists, and so no byte of it is
    /// frozen.
    #[cold]
    fn rewind(&mut self, size: usize) {
        debug_assert!(!self.shared);
        self.ptr = self.start();
        self.cap = size;
        self.dirty += self.off;
        self.off = 0;
    }

    /// Moves the region's start `n <= len` bytes forward: the first `n`
    /// filled bytes leave the region (frozen into a view, or consumed).
    #[inline]
    fn advance_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        // SAFETY: `n <= len <= cap`, so the new start is inside the region.
        self.ptr = unsafe { self.ptr.add(n) };
        self.off += n;
        self.cap -= n;
        self.len -= n;
        self.dirty -= n;
    }
}

/// A buffer borrowed from a [`Pool`]; returns to it on drop.
///
/// Works like a `Vec<u8>` with a fixed capacity: see the
/// [module docs](crate#handles) and the methods below. `Debug` shows the
/// index, length and capacity, never the contents. Like `Vec<u8>`, it
/// compares, orders and hashes by its filled bytes (a map keyed by buffers
/// is searched with a `&[u8]`), and takes bytes through `Extend` and text
/// through `write!`.
///
/// The name sits beside `bytes::Buf`: `use arenapool::*` and
/// `use bytes::Buf` do not collide.
///
/// ```
/// let pool = arenapool::Pool::new(8, 1)?;
/// let mut buf = pool.try_acquire().unwrap();
/// buf.extend_from_slice(b"abc")?;
/// assert_eq!((buf.len(), buf.capacity()), (3, 8));
/// assert!(buf.extend_from_slice(b"too long").is_err());
/// assert_eq!(buf, b"abc", "a failed extend writes nothing");
///
/// use std::fmt::Write as _;
/// write!(buf, "-{}", 42)?;
/// assert_eq!(buf, "abc-42");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PoolBuf<'pool> {
    slot: Slot,
    pool: &'pool Pool,
}

/// A buffer that keeps its [`Pool`]'s memory alive: `'static` and `Send`,
/// for moving into threads and tasks. Returns to the pool on drop; the
/// memory is freed when the last `OwnedBuf`, frozen `Bytes` and `Pool`
/// handle are gone.
///
/// Holding one costs no shared reference count in steady state: the
/// thread cache that serves it hands out the buffer's reference to the
/// pool from a batch it holds, and the cache it is released into takes
/// the reference back.
///
/// Has the same methods as [`PoolBuf`].
///
/// ```
/// let pool = arenapool::Pool::new(64, 4)?;
/// let mut buf = pool.try_acquire_owned().unwrap();
/// drop(pool); // the buffer keeps the pool's memory
/// buf.extend_from_slice(b"still here")?;
/// assert_eq!(buf.pool().stats().in_use, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct OwnedBuf {
    slot: Slot,
    /// A copy of the handle that is not counted as one: the buffer's own
    /// reference (taken by the acquire) keeps the memory.
    pool: ManuallyDrop<Pool>,
}

impl<'pool> PoolBuf<'pool> {
    /// Slot `idx` of `pool`, just acquired by the caller's caller (the
    /// location leak tracking records).
    #[inline(always)]
    #[track_caller]
    pub(crate) fn new(pool: &'pool Pool, idx: u32) -> Self {
        Self::new_at(pool, idx, std::panic::Location::caller())
    }

    /// [`new`](Self::new), acquired at `at` (an async acquire, which
    /// learned its caller when the future was made).
    #[inline(always)]
    pub(crate) fn new_at(
        pool: &'pool Pool,
        idx: u32,
        at: &'static std::panic::Location<'static>,
    ) -> Self {
        if pool.shared().config.track_every != 0 {
            pool.shared().track(idx, at);
        }
        Self {
            slot: Slot::new(pool.shared(), idx),
            pool,
        }
    }

    /// The pool this buffer belongs to.
    pub fn pool(&self) -> &'pool Pool {
        self.pool
    }
}

impl OwnedBuf {
    /// Slot `idx` of `pool`, whose reference to the pool the caller took
    /// (`Shared::take` with `owned`, or `Shared::add_ref`) and hands over.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn new(pool: &Pool, idx: u32) -> Self {
        Self::new_at(pool, idx, std::panic::Location::caller())
    }

    /// [`new`](Self::new), acquired at `at`.
    #[inline(always)]
    pub(crate) fn new_at(
        pool: &Pool,
        idx: u32,
        at: &'static std::panic::Location<'static>,
    ) -> Self {
        if pool.shared().config.track_every != 0 {
            pool.shared().track(idx, at);
        }
        Self {
            slot: Slot::new(pool.shared(), idx),
            pool: pool.uncounted(),
        }
    }

    /// The pool this buffer belongs to. Cloning it gives a new handle,
    /// even after every other handle was dropped.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The buffer's first byte (its region's, `capacity()` bytes long),
    /// for the kernel to write into (io_uring).
    ///
    /// Derived from the arena allocation, not from a `&[u8]`, so the
    /// pointer carries the provenance of the whole slot. Marks the whole
    /// buffer dirty first: once the kernel has the pointer, any byte of it
    /// may have been written, and `zero_on_release` must clear them all.
    #[cfg(all(feature = "io-uring", target_os = "linux"))]
    #[inline]
    pub(crate) fn slot_mut_ptr(&mut self) -> NonNull<u8> {
        self.slot.dirty = self.slot.dirty.max(self.slot.cap);
        self.slot.ptr
    }

    /// The buffer's first byte, for the kernel to read from (io_uring sends
    /// and writes); derived from the arena allocation like
    /// [`slot_mut_ptr`](Self::slot_mut_ptr).
    #[cfg(all(feature = "io-uring", target_os = "linux"))]
    #[inline]
    pub(crate) fn slot_ptr(&self) -> NonNull<u8> {
        self.slot.ptr
    }
}

/// The public surface shared by `PoolBuf` and `OwnedBuf`, written once.
macro_rules! handle_methods {
    ($ty:ty, $name:literal) => {
        impl $ty {
            /// Bytes filled so far (what `Deref` shows).
            #[inline]
            pub fn len(&self) -> usize {
                self.slot.len
            }

            /// `true` if no bytes are filled.
            #[inline]
            pub fn is_empty(&self) -> bool {
                self.slot.len == 0
            }

            /// Size of the buffer: the pool's buffer size, less what
            /// `io::Read` consumed or (for an [`OwnedBuf`]) `split_to` and
            /// `split_off` froze; [`clear`](Self::clear) restores it.
            #[inline]
            pub fn capacity(&self) -> usize {
                self.slot.cap
            }

            /// Bytes that can still be appended: `capacity() - len()`.
            #[inline]
            pub fn remaining(&self) -> usize {
                self.slot.cap - self.slot.len
            }

            /// The whole buffer, filled or not. Every byte is initialised
            /// (zero, or whatever a holder wrote before), so this is safe.
            #[inline]
            pub fn as_full(&self) -> &[u8] {
                self.slot.full()
            }

            /// The whole buffer, mutably: read into it (a socket, a file),
            /// then call [`set_len`](Self::set_len) with the byte count.
            #[inline]
            pub fn as_full_mut(&mut self) -> &mut [u8] {
                self.slot.full_mut()
            }

            /// The unfilled tail, `as_full_mut()[len()..]`, for reading into.
            #[inline]
            pub fn spare_mut(&mut self) -> &mut [u8] {
                let len = self.slot.len;
                &mut self.slot.full_mut()[len..]
            }

            /// Sets the filled length. Safe, unlike `Vec::set_len`, because
            /// every byte of the buffer is initialised.
            ///
            /// # Errors
            ///
            /// [`CapacityError`] if `len > capacity()`; nothing changes.
            #[inline]
            pub fn set_len(&mut self, len: usize) -> Result<(), CapacityError> {
                self.slot.set_len(len)
            }

            /// Shortens to `len` bytes; does nothing if already shorter.
            #[inline]
            pub fn truncate(&mut self, len: usize) {
                self.slot.len = self.slot.len.min(len);
            }

            /// Empties the buffer (`len = 0`). The bytes stay as they are.
            /// The capacity goes back to the whole buffer, unless frozen
            /// views of an [`OwnedBuf`]'s buffer are still alive.
            #[inline]
            pub fn clear(&mut self) {
                self.slot.len = 0;
                // A region smaller than the slot starts late (`off`), or
                // (after `split_off`) ends early; then the slot is shared.
                if (self.slot.off > 0 || self.slot.shared) && self.views_gone() {
                    self.slot.rewind(self.pool.buffer_size());
                }
            }

            /// Appends `data`.
            ///
            /// # Errors
            ///
            /// [`CapacityError`] if it does not fit; nothing is written.
            #[inline]
            pub fn extend_from_slice(&mut self, data: &[u8]) -> Result<(), CapacityError> {
                self.slot.extend_from_slice(data)
            }

            /// The slot's index in the pool: stable for the pool's life, in
            /// `0..stats().max_capacity`. Useful as an id, for example to
            /// name the buffer to the kernel (io_uring registered buffers).
            #[inline]
            pub fn index(&self) -> u32 {
                self.slot.idx
            }
        }

        impl std::ops::Deref for $ty {
            type Target = [u8];
            #[inline]
            fn deref(&self) -> &[u8] {
                self.slot.filled()
            }
        }

        impl std::ops::DerefMut for $ty {
            #[inline]
            fn deref_mut(&mut self) -> &mut [u8] {
                self.slot.filled_mut()
            }
        }

        impl AsRef<[u8]> for $ty {
            #[inline]
            fn as_ref(&self) -> &[u8] {
                self.slot.filled()
            }
        }

        impl AsMut<[u8]> for $ty {
            #[inline]
            fn as_mut(&mut self) -> &mut [u8] {
                self.slot.filled_mut()
            }
        }

        /// Appends at the end; a full buffer accepts 0 bytes, so
        /// `write_all` reports [`io::ErrorKind::WriteZero`].
        impl io::Write for $ty {
            #[inline]
            fn write(&mut self, data: &[u8]) -> io::Result<usize> {
                Ok(self.slot.write_some(data))
            }

            #[inline]
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }

        /// Reads (and consumes) the filled bytes from the front, as
        /// `&[u8]` does: the buffer's start moves past what was read, so
        /// its capacity shrinks by as much until [`clear`](Self::clear).
        impl io::Read for $ty {
            #[inline]
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = out.len().min(self.slot.len);
                out[..n].copy_from_slice(&self.slot.filled()[..n]);
                self.slot.advance_front(n);
                Ok(n)
            }
        }

        /// Writes append after the filled part; `remaining_mut` is exactly
        /// `capacity() - len()`. As `BufMut`'s contract allows, `put_*`
        /// panics when the data does not fit: check `remaining_mut()` first,
        /// or use [`extend_from_slice`](Self::extend_from_slice), which
        /// returns an error instead. With tokio, `read_buf(&mut buf)` and
        /// `UdpSocket::recv_buf(&mut buf)` read straight into the buffer.
        #[cfg(feature = "bytes")]
        // SAFETY: `chunk_mut` is the unfilled tail of our slot (initialised
        // bytes, so the `UninitSlice` over it is valid), `remaining_mut` is
        // its exact length, and `advance_mut` only moves `len` within the
        // slot (checked; it panics instead of going past the end).
        unsafe impl bytes::BufMut for $ty {
            #[inline]
            fn remaining_mut(&self) -> usize {
                self.slot.cap - self.slot.len
            }

            #[inline]
            unsafe fn advance_mut(&mut self, cnt: usize) {
                let remaining = self.slot.cap - self.slot.len;
                assert!(
                    cnt <= remaining,
                    "advance_mut({cnt}) past the end of the buffer ({remaining} bytes left)"
                );
                self.slot.len += cnt;
                self.slot.dirty = self.slot.dirty.max(self.slot.len);
            }

            /// The unfilled tail. Writes through it are not tracked, so it
            /// marks the whole buffer as written: with `zero_on_release`
            /// the release clears all of it. `put_slice`, `put_bytes`,
            /// `put`, and the `put_u8`..`put_f64` family (which go through
            /// `put_slice`) write without it and mark only what they wrote.
            #[inline]
            fn chunk_mut(&mut self) -> &mut bytes::buf::UninitSlice {
                bytes::buf::UninitSlice::new(self.spare_mut())
            }

            #[inline]
            fn put_slice(&mut self, src: &[u8]) {
                if self.slot.extend_from_slice(src).is_err() {
                    put_overflow(src.len(), self.remaining());
                }
            }

            #[inline]
            fn put_bytes(&mut self, val: u8, cnt: usize) {
                if !self.slot.fill(val, cnt) {
                    put_overflow(cnt, self.remaining());
                }
            }

            #[inline]
            fn put<T: bytes::Buf>(&mut self, mut src: T)
            where
                Self: Sized,
            {
                if src.remaining() > self.remaining() {
                    put_overflow(src.remaining(), self.remaining());
                }
                while src.has_remaining() {
                    let chunk = src.chunk();
                    let n = chunk.len();
                    self.put_slice(chunk);
                    src.advance(n);
                }
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct($name)
                    .field("index", &self.slot.idx)
                    .field("len", &self.slot.len)
                    .field("capacity", &self.slot.cap)
                    .finish()
            }
        }
    };
}

/// `BufMut::put_*` past the end: panics, as `BufMut`'s contract says.
#[cfg(feature = "bytes")]
#[cold]
#[inline(never)]
#[track_caller]
fn put_overflow(requested: usize, remaining: usize) -> ! {
    panic!("put of {requested} bytes past the end of the buffer ({remaining} bytes left)")
}

handle_methods!(PoolBuf<'_>, "PoolBuf");
handle_methods!(OwnedBuf, "OwnedBuf");

impl Drop for PoolBuf<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the slot came from `self.pool`, and this is the handle's
        // last use of it.
        unsafe { self.slot.release::<false>(self.pool.shared(), &mut false) };
    }
}

impl PoolBuf<'_> {
    /// `clear`'s question for a borrowed buffer, which has no views.
    #[inline]
    fn views_gone(&mut self) -> bool {
        true
    }
}

impl Drop for OwnedBuf {
    #[inline]
    fn drop(&mut self) {
        if self.slot.shared && !self.leave_views() {
            return; // a frozen view keeps the slot
        }
        let s = &self.slot;
        // SAFETY: the slot (no view of it is left) and its reference came
        // from this pool; `off + dirty` bytes from the slot's start may be
        // written; this is the handle's last use of them.
        unsafe { release_owned(&self.pool, s.idx, s.start(), s.off + s.dirty) };
    }
}

/// Gives back slot `idx`, whose first byte is `start`, with the reference
/// to `pool` that an owned buffer (or the last view of one) held.
///
/// # Safety
///
/// The caller owns the slot and that reference, `dirty` bytes from `start`
/// lie in the slot, and neither is used afterwards.
#[inline(always)]
unsafe fn release_owned(pool: &Pool, idx: u32, start: NonNull<u8>, dirty: usize) {
    let mut reference = Owed {
        shared: pool.shared_ptr(),
        owed: true,
    };
    // SAFETY: as the caller promises.
    unsafe {
        pool.shared()
            .release::<true>(idx, start, dirty, &mut reference.owed)
    };
}

/// An owned buffer's reference to its pool while the buffer is released:
/// given back when this drops unless a thread cache took it, also when a
/// waker run by the release panics.
struct Owed {
    shared: NonNull<Shared>,
    owed: bool,
}

impl Drop for Owed {
    #[inline]
    fn drop(&mut self) {
        if self.owed {
            // SAFETY: the reference is ours (a cache did not take it), and
            // the release that used the pool has returned or unwound.
            unsafe { Shared::unref(self.shared, 1) };
        }
    }
}

// SAFETY: a handle owns its slot exclusively (no other handle can reach
// those bytes), and the pool it refers to is `Sync`. Moving the handle to
// another thread moves that exclusive ownership, like `Box<[u8]>`.
unsafe impl Send for PoolBuf<'_> {}
// SAFETY: `&PoolBuf` only gives `&[u8]` access to the slot and `&Pool`;
// both are fine to share between threads.
unsafe impl Sync for PoolBuf<'_> {}
// SAFETY: as for `PoolBuf`; the buffer's reference to the pool may be
// given back on any thread.
unsafe impl Send for OwnedBuf {}
// SAFETY: as for `PoolBuf`.
unsafe impl Sync for OwnedBuf {}
