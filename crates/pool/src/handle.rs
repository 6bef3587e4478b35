//! RAII handles: [`PoolBuf`] (borrows the pool) and [`OwnedBuf`]
//! (`'static`: holds a reference to the pool's memory, `shared.rs`).
//!
//! Both behave like a `Vec<u8>` whose capacity is fixed at the buffer size:
//! `len` bytes are "filled" and visible through `Deref<Target = [u8]>`, and
//! the whole slot is reachable through [`as_full_mut`](PoolBuf::as_full_mut).
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

/// The part of a handle that does not depend on how the pool is held.
///
/// Invariants: the handle owns slot `idx` exclusively until drop; `ptr` is
/// that slot's first byte, derived from the arena allocation; `cap` is the
/// pool's buffer size, so `ptr .. ptr + cap` is inside the slot;
/// `len <= dirty <= cap`, where `dirty` bounds the bytes this holder may have
/// written (what `zero_on_release` clears).
struct Slot {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
    dirty: usize,
    idx: u32,
}

impl Slot {
    #[inline]
    fn new(pool: &Shared, idx: u32) -> Self {
        Self {
            ptr: pool.slot_ptr(idx),
            len: 0,
            cap: pool.config.buffer_size,
            dirty: 0,
            idx,
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
        // SAFETY: the whole slot (`cap` bytes) is ours and initialised.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.cap) }
    }

    #[inline]
    fn full_mut(&mut self) -> &mut [u8] {
        self.dirty = self.cap;
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
        // SAFETY: we own slot `idx` and `ptr` is its address (type
        // invariant); `dirty <= cap == buffer_size`; the caller promises
        // this is the last use.
        unsafe { pool.release::<OWNED>(self.idx, self.ptr, self.dirty, owed) }
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
    #[inline]
    pub(crate) fn new(pool: &'pool Pool, idx: u32) -> Self {
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
    #[inline]
    pub(crate) fn new(pool: &Pool, idx: u32) -> Self {
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

    /// The slot's first byte, for the kernel to write into (io_uring).
    ///
    /// Derived from the arena allocation, not from a `&[u8]`, so the
    /// pointer carries the provenance of the whole slot. Marks the whole
    /// slot dirty first: once the kernel has the pointer, any byte of it
    /// may have been written, and `zero_on_release` must clear them all.
    #[cfg(all(feature = "io-uring", target_os = "linux"))]
    #[inline]
    pub(crate) fn slot_mut_ptr(&mut self) -> NonNull<u8> {
        self.slot.dirty = self.slot.cap;
        self.slot.ptr
    }

    /// The slot's first byte, for the kernel to read from (io_uring sends
    /// and writes); derived from the arena allocation like
    /// [`slot_mut_ptr`](Self::slot_mut_ptr).
    #[cfg(all(feature = "io-uring", target_os = "linux"))]
    #[inline]
    pub(crate) fn slot_ptr(&self) -> NonNull<u8> {
        self.slot.ptr
    }

    /// Turns the filled part into [`bytes::Bytes`] without copying. Clones
    /// and slices of the `Bytes` share the buffer; it goes back to the pool
    /// when the last of them is dropped.
    ///
    /// `Bytes` keeps its owner behind one small heap allocation (its
    /// reference count), made here.
    ///
    /// ```
    /// let pool = arenapool::Pool::new(64, 1)?;
    /// let mut buf = pool.try_acquire_owned().unwrap();
    /// buf.extend_from_slice(b"hello, world")?;
    /// let bytes = buf.freeze();
    /// let hello = bytes.slice(..5);
    /// drop(bytes);
    /// assert_eq!(&hello[..], b"hello");
    /// assert_eq!(pool.stats().in_use, 1, "the slice keeps the buffer");
    /// drop(hello);
    /// assert_eq!(pool.stats().in_use, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "bytes")]
    pub fn freeze(self) -> bytes::Bytes {
        bytes::Bytes::from_owner(self)
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

            /// Size of the buffer: the pool's buffer size. Never changes.
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
            #[inline]
            pub fn clear(&mut self) {
                self.slot.len = 0;
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

impl Drop for OwnedBuf {
    #[inline]
    fn drop(&mut self) {
        let mut reference = Owed {
            shared: self.pool.shared_ptr(),
            owed: true,
        };
        // SAFETY: the slot and its reference came from this pool, and this
        // is the handle's last use of them.
        unsafe {
            self.slot
                .release::<true>(self.pool.shared(), &mut reference.owed)
        };
    }
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
