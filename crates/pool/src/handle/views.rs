//! Frozen views of a slot: [`SharedBuf`], and how [`OwnedBuf`] freezes and
//! splits into them without allocating.
//!
//! # The view count lives in the slot's link word
//!
//! While a slot is held, the free list does not use its link word
//! (`freelist.rs`): only a stale `pop` may still read it, and the tag makes
//! that pop's compare-and-swap fail whatever it read. So a shared slot
//! keeps its count there, and a clone is one atomic increment on memory of
//! that slot alone, with no pool-wide counter and no heap allocation. The
//! word is `pack(dirty, views)`:
//!
//! * `views`: the [`SharedBuf`]s of the slot, plus one while an
//!   [`OwnedBuf`] still writes into it (its *writer*). It is set when a
//!   slot is first shared (`freeze`, `split_to`, `split_off`), by the
//!   writer, which owns the slot then; every later change is a
//!   read-modify-write.
//! * `dirty`: zero while a writer of the shared slot lives (the first
//!   share sets the word). When the writer ends (it drops or freezes), it
//!   adds how far into the slot bytes may have been written, in the same
//!   read-modify-write, so that the last view knows
//!   what `zero_on_release` must clear. `u32::MAX` stands for "the whole
//!   slot", for buffers of 4 GiB and more.
//!
//! The orderings are `Arc`'s: increments `Relaxed` (the new view comes from
//! one the caller already holds), decrements `Release`, and whoever takes
//! `views` to zero loads the word with `Acquire` before it gives the slot
//! back, so that every view's reads of the bytes happen before the next
//! owner's writes. A drop that finds (with an `Acquire` load) its own
//! count the only one skips the decrement: nothing can add a view then. A load rather than a fence, as in `shared.rs`, because
//! ThreadSanitizer does not model fences. [`SharedBuf::try_into_mut`] and
//! the writer's `clear` reclaim the slot when an `Acquire` load finds their
//! own count the only one left; no other view can appear then, since views
//! are made only from views (or the writer), and the caller holds the only
//! one.
//!
//! Views never overlap the writer's region: `split_to` moves the writer's
//! start past the frozen front, `split_off` ends it before the frozen tail.
//! The slot, with the buffer's reference to the pool, goes back when the
//! last of the writer and the views is gone.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Bound, Deref, RangeBounds};
use std::ptr::NonNull;

use super::{OwnedBuf, Slot, release_owned};
use crate::freelist::{Links, pack, unpack};
use crate::shared::Pool;
use crate::sync::AtomicU64;
use crate::sync::Ordering::{Acquire, Relaxed, Release};

/// More views than this of one slot at once (reachable only by leaking
/// them) make `clone` panic instead of risking the count's overflow.
const MAX_VIEWS: u32 = 1 << 31;

/// The view count of slot `idx`, which the caller holds (so its segment is
/// published).
#[inline]
fn views(pool: &Pool, idx: u32) -> &AtomicU64 {
    pool.shared().segments.link(idx)
}

/// `dirty` bytes from the slot's start, as the word's upper half records
/// them.
#[inline]
fn record(dirty: usize) -> u64 {
    pack(u32::try_from(dirty).unwrap_or(u32::MAX), 0)
}

/// The bytes from the slot's start that may have been written, from a
/// word whose writer has ended.
#[inline]
fn recorded(word: u64, buffer_size: usize) -> usize {
    match unpack(word).0 {
        u32::MAX => buffer_size,
        d => d as usize,
    }
}

/// An immutable, shared view of bytes in a pool buffer: what
/// [`OwnedBuf::freeze`], [`OwnedBuf::split_to`] and
/// [`OwnedBuf::split_off`] return.
///
/// Like [`bytes::Bytes`](https://docs.rs/bytes), cloning and slicing share
/// the buffer instead of copying, but with no heap allocation ever: a
/// clone is one atomic increment on the buffer's own metadata, and the
/// buffer goes back to its pool (cleared first, with `zero_on_release`)
/// when the last view of it is dropped. [`try_into_mut`](Self::try_into_mut)
/// makes the only view of a buffer writable again. With the `bytes`
/// feature it converts into `Bytes` without copying (`Bytes::from`) and
/// reads as a [`bytes::Buf`] cursor.
///
/// It compares, orders and hashes by content, like `Bytes`. `Debug` shows
/// the slot index and length, never the contents.
///
/// ```
/// let pool = arenapool::Pool::new(64, 1)?;
/// let mut buf = pool.try_acquire_owned().unwrap();
/// buf.extend_from_slice(b"GET / HTTP/1.1\r\n")?;
/// let line = buf.split_to(buf.len()); // frozen; `buf` writes on after it
/// buf.extend_from_slice(b"Host: x\r\n")?;
///
/// let method = line.slice(..3);
/// assert_eq!(method, b"GET");
/// drop((line, buf));
/// assert_eq!(pool.stats().in_use, 1, "the view keeps the buffer");
/// drop(method);
/// assert_eq!(pool.stats().in_use, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedBuf {
    /// The view's first byte, derived from the arena allocation.
    ptr: NonNull<u8>,
    len: usize,
    idx: u32,
    /// Not counted as a handle: the slot's views hold, together, the
    /// buffer's one reference to the pool.
    pool: ManuallyDrop<Pool>,
}

impl OwnedBuf {
    /// Freezes the filled part into a [`SharedBuf`], without copying or
    /// allocating: the buffer becomes shared and immutable, and goes back
    /// to the pool when the last view of it drops.
    ///
    /// ```
    /// let pool = arenapool::Pool::new(64, 1)?;
    /// let mut buf = pool.try_acquire_owned().unwrap();
    /// buf.extend_from_slice(b"hello, world")?;
    /// let frozen = buf.freeze();
    /// let hello = frozen.slice(..5);
    /// drop(frozen);
    /// assert_eq!(hello, b"hello");
    /// assert_eq!(pool.stats().in_use, 1, "the slice keeps the buffer");
    /// drop(hello);
    /// assert_eq!(pool.stats().in_use, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn freeze(self) -> SharedBuf {
        let this = ManuallyDrop::new(self);
        let s = &this.slot;
        let word = views(&this.pool, s.idx);
        let dirty = record(s.off + s.dirty);
        if s.shared {
            // The writer's count becomes the view's; it ends, so it
            // records what it wrote (the upper half was zero).
            word.fetch_add(dirty, Relaxed);
        } else {
            // We own the slot and no view of it exists, so nothing else
            // changes this word now: a plain store will do.
            word.store(dirty | 1, Relaxed);
        }
        SharedBuf {
            ptr: s.ptr,
            len: s.len,
            idx: s.idx,
            pool: this.pool.uncounted(),
        }
    }

    /// Freezes the first `at` filled bytes into a [`SharedBuf`] and keeps
    /// writing after them, in the same buffer: the `BytesMut::split_to`
    /// workflow, where a frame is cut off the front of what was read.
    /// [`capacity`](Self::capacity) shrinks by `at`; [`clear`](Self::clear)
    /// gets the whole buffer back once no view of it is left.
    ///
    /// # Panics
    ///
    /// If `at > len()`, as `BytesMut::split_to` does.
    ///
    /// ```
    /// let pool = arenapool::Pool::new(16, 1)?;
    /// let mut buf = pool.try_acquire_owned().unwrap();
    /// buf.extend_from_slice(b"one;two")?;
    /// let one = buf.split_to(4);
    /// assert_eq!(one, b"one;");
    /// assert_eq!(buf, b"two");
    /// assert_eq!(buf.capacity(), 12);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn split_to(&mut self, at: usize) -> SharedBuf {
        let len = self.slot.len;
        assert!(at <= len, "split_to({at}) past the filled length {len}");
        let view = self.share(self.slot.ptr, at);
        self.slot.advance_front(at);
        view
    }

    /// Freezes the filled bytes from `at` on into a [`SharedBuf`] and keeps
    /// the first `at` writable. The buffer ends at `at` from then on
    /// ([`capacity`](Self::capacity) becomes `at`), as with
    /// `BytesMut::split_off`; the slot's bytes after the frozen part stay
    /// unused until it goes back to the pool.
    ///
    /// # Panics
    ///
    /// If `at > len()`.
    ///
    /// ```
    /// let pool = arenapool::Pool::new(16, 1)?;
    /// let mut buf = pool.try_acquire_owned().unwrap();
    /// buf.extend_from_slice(b"head|body")?;
    /// let body = buf.split_off(5);
    /// assert_eq!(buf, b"head|");
    /// assert_eq!(body, b"body");
    /// assert_eq!(buf.capacity(), 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn split_off(&mut self, at: usize) -> SharedBuf {
        let len = self.slot.len;
        assert!(at <= len, "split_off({at}) past the filled length {len}");
        // SAFETY: `at <= len`, so the pointer stays inside the region.
        let start = unsafe { self.slot.ptr.add(at) };
        let view = self.share(start, len - at);
        // `dirty` stays: it still covers the frozen tail.
        self.slot.len = at;
        self.slot.cap = at;
        view
    }

    /// Freezes everything filled so far and keeps writing after it:
    /// `split_to(len())`, as `BytesMut::split` is.
    pub fn split(&mut self) -> SharedBuf {
        self.split_to(self.slot.len)
    }

    /// A new view of `len` bytes from `ptr` (inside our region), counted.
    fn share(&mut self, ptr: NonNull<u8>, len: usize) -> SharedBuf {
        let word = views(&self.pool, self.slot.idx);
        if self.slot.shared {
            add_view(word);
        } else {
            // We own the slot and no view of it exists: the writer and
            // the new view.
            word.store(2, Relaxed);
            self.slot.shared = true;
        }
        SharedBuf {
            ptr,
            len,
            idx: self.slot.idx,
            pool: self.pool.uncounted(),
        }
    }

    /// The writer of a shared slot ends: gives up its count and records
    /// what it wrote. `true` if no view was left, so that the caller
    /// releases the slot.
    #[cold]
    #[inline(never)]
    pub(super) fn leave_views(&mut self) -> bool {
        let word = views(&self.pool, self.slot.idx);
        if unpack(word.load(Acquire)).1 == 1 {
            // No view is left, and none can appear: the slot is ours.
            self.slot.shared = false;
            return true;
        }
        let s = &self.slot;
        // Adds the record to the upper half (zero until now) and takes one
        // from `views`, which holds ours, so nothing borrows across.
        let old = word.fetch_add(record(s.off + s.dirty).wrapping_sub(1), Release);
        if unpack(old).1 != 1 {
            return false;
        }
        word.load(Acquire);
        self.slot.shared = false;
        true
    }

    /// `true` (and the slot unshared) if no view of this writer's slot is
    /// left; for `clear`, which can then take the whole slot back.
    #[cold]
    #[inline(never)]
    pub(super) fn views_gone(&mut self) -> bool {
        if !self.slot.shared {
            return true;
        }
        if unpack(views(&self.pool, self.slot.idx).load(Acquire)).1 != 1 {
            return false;
        }
        self.slot.shared = false;
        true
    }
}

/// One more view of a slot whose count the caller holds part of.
#[inline]
fn add_view(word: &AtomicU64) {
    let old = word.fetch_add(1, Relaxed);
    if unpack(old).1 >= MAX_VIEWS {
        word.fetch_sub(1, Relaxed);
        too_many_views();
    }
}

#[cold]
#[inline(never)]
fn too_many_views() -> ! {
    panic!("more than {MAX_VIEWS} views of one pool buffer at once")
}

impl SharedBuf {
    /// The number of bytes in the view.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` if the view is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pool the buffer belongs to.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The index of the buffer's slot in its pool, as
    /// [`OwnedBuf::index`].
    #[inline]
    pub fn index(&self) -> u32 {
        self.idx
    }

    /// A view of `range` of this one, sharing the buffer: one atomic
    /// increment, no copy.
    ///
    /// # Panics
    ///
    /// If the range is out of bounds or decreasing, as slicing a `[u8]`
    /// (or a `Bytes`) does.
    ///
    /// ```
    /// let pool = arenapool::Pool::new(16, 1)?;
    /// let mut buf = pool.try_acquire_owned().unwrap();
    /// buf.extend_from_slice(b"abcdef")?;
    /// let all = buf.freeze();
    /// assert_eq!(all.slice(2..4), b"cd");
    /// assert_eq!(all.slice(4..), b"ef");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn slice(&self, range: impl RangeBounds<usize>) -> SharedBuf {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.checked_add(1).expect("range start overflows"),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.checked_add(1).expect("range end overflows"),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => self.len,
        };
        assert!(
            start <= end && end <= self.len,
            "slice {start}..{end} out of bounds of a view of {} bytes",
            self.len
        );
        let mut view = self.clone();
        // SAFETY: `start <= len`, so the pointer stays inside the view.
        view.ptr = unsafe { view.ptr.add(start) };
        view.len = end - start;
        view
    }

    /// Splits off the first `at` bytes into a new view; this one keeps the
    /// rest. No copy.
    ///
    /// # Panics
    ///
    /// If `at > len()`.
    #[track_caller]
    pub fn split_to(&mut self, at: usize) -> SharedBuf {
        assert!(
            at <= self.len,
            "split_to({at}) past the end of {} bytes",
            self.len
        );
        let mut front = self.clone();
        front.len = at;
        self.advance_by(at);
        front
    }

    /// Splits off the bytes from `at` on into a new view; this one keeps
    /// the first `at`. No copy.
    ///
    /// # Panics
    ///
    /// If `at > len()`.
    #[track_caller]
    pub fn split_off(&mut self, at: usize) -> SharedBuf {
        assert!(
            at <= self.len,
            "split_off({at}) past the end of {} bytes",
            self.len
        );
        let tail = self.slice(at..);
        self.len = at;
        tail
    }

    /// Shortens the view to `len` bytes; does nothing if it is shorter.
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Drops the first `n <= len` bytes from the view.
    #[inline]
    fn advance_by(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        // SAFETY: `n <= len`, so the pointer stays inside the view.
        self.ptr = unsafe { self.ptr.add(n) };
        self.len -= n;
    }

    /// The buffer back as a writable [`OwnedBuf`] holding this view's
    /// bytes, if this is the only view of it (no clone, slice or writer
    /// is left); otherwise the view itself, unchanged. Its
    /// [`capacity`](OwnedBuf::capacity) runs from the view's start to the
    /// end of the slot, and [`clear`](OwnedBuf::clear) gives back the whole
    /// slot.
    ///
    /// The reclaim path of `Bytes::try_into_mut`, without copying.
    ///
    /// # Errors
    ///
    /// `Err(self)` while another view or the writer still shares the
    /// buffer.
    ///
    /// ```
    /// let pool = arenapool::Pool::new(16, 1)?;
    /// let mut buf = pool.try_acquire_owned().unwrap();
    /// buf.extend_from_slice(b"reuse me")?;
    /// let frozen = buf.freeze();
    /// let other = frozen.clone();
    /// let frozen = frozen.try_into_mut().unwrap_err(); // `other` shares it
    /// drop(other);
    /// let mut buf = frozen.try_into_mut().unwrap();
    /// buf.clear();
    /// assert_eq!(buf.capacity(), 16);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_into_mut(self) -> Result<OwnedBuf, SharedBuf> {
        let word = views(&self.pool, self.idx).load(Acquire);
        if unpack(word).1 != 1 {
            return Err(self);
        }
        let this = ManuallyDrop::new(self);
        let shared = this.pool.shared();
        let size = shared.config.buffer_size;
        let start = shared.slot_ptr(this.idx);
        let off = this.ptr.as_ptr().addr() - start.as_ptr().addr();
        let slot = Slot {
            ptr: this.ptr,
            len: this.len,
            cap: size - off,
            dirty: recorded(word, size).saturating_sub(off).max(this.len),
            off,
            idx: this.idx,
            shared: false,
        };
        Ok(OwnedBuf {
            slot,
            pool: this.pool.uncounted(),
        })
    }
}

impl Clone for SharedBuf {
    /// Another view of the same bytes: one atomic increment on the
    /// buffer's own metadata.
    ///
    /// # Panics
    ///
    /// If 2^31 views of the buffer exist already (reachable only by
    /// leaking them), rather than let the count overflow.
    #[inline]
    fn clone(&self) -> Self {
        add_view(views(&self.pool, self.idx));
        Self {
            ptr: self.ptr,
            len: self.len,
            idx: self.idx,
            pool: self.pool.uncounted(),
        }
    }
}

impl Drop for SharedBuf {
    #[inline]
    fn drop(&mut self) {
        let word = views(&self.pool, self.idx);
        // The last view alone: no other can appear (views come only from
        // views), so it skips the read-modify-write.
        let now = word.load(Acquire);
        if unpack(now).1 == 1 {
            self.release(now);
            return;
        }
        let old = word.fetch_sub(1, Release);
        if unpack(old).1 == 1 {
            word.load(Acquire);
            self.release(old);
        }
    }
}

impl SharedBuf {
    /// The last view is gone: the slot goes back with its reference.
    #[cold]
    #[inline(never)]
    fn release(&mut self, word: u64) {
        let shared = self.pool.shared();
        let dirty = recorded(word, shared.config.buffer_size);
        let start = shared.slot_ptr(self.idx);
        // SAFETY: no view or writer of the slot is left, so we own it, with
        // the buffer's reference to the pool; `start` is its first byte;
        // `dirty` bounds what was written; this is our last use of both.
        unsafe { release_owned(&self.pool, self.idx, start, dirty) };
    }
}

impl Deref for SharedBuf {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: the view's `len` bytes from `ptr` lie in a slot that its
        // views keep; they are initialised and nothing writes them while
        // a view exists (the writer's region is elsewhere).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl AsRef<[u8]> for SharedBuf {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for SharedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBuf")
            .field("index", &self.idx)
            .field("len", &self.len)
            .finish()
    }
}

/// A cursor over the view: `advance` drops bytes from the front, and
/// `copy_to_bytes` splits them off without copying.
#[cfg(feature = "bytes")]
impl bytes::Buf for SharedBuf {
    #[inline]
    fn remaining(&self) -> usize {
        self.len
    }

    #[inline]
    fn chunk(&self) -> &[u8] {
        self
    }

    #[inline]
    #[track_caller]
    fn advance(&mut self, cnt: usize) {
        assert!(
            cnt <= self.len,
            "advance({cnt}) past the end of {} bytes",
            self.len
        );
        self.advance_by(cnt);
    }

    fn copy_to_bytes(&mut self, len: usize) -> bytes::Bytes {
        self.split_to(len).into()
    }
}

/// Without copying: the `Bytes` owns the view and gives it back when its
/// last clone drops. `Bytes` keeps an owner behind one small heap
/// allocation (its reference count), made here unless the view is empty.
#[cfg(feature = "bytes")]
impl From<SharedBuf> for bytes::Bytes {
    fn from(view: SharedBuf) -> Self {
        if view.is_empty() {
            return bytes::Bytes::new();
        }
        bytes::Bytes::from_owner(view)
    }
}

// SAFETY: a view only reads bytes that no one writes while it exists, its
// count is atomic, and the reference to the pool it shares may be given
// back on any thread (as for `OwnedBuf`).
unsafe impl Send for SharedBuf {}
// SAFETY: `&SharedBuf` gives `&[u8]` access and clones (atomic counts).
unsafe impl Sync for SharedBuf {}

#[cfg(all(test, loom))]
mod loom_tests {
    use crate::cache::loom_tests::pool;
    use crate::sync::{model, thread};

    /// The slot went back exactly once: the one-buffer pool has it free
    /// again, once.
    fn returned_once(p: &crate::Pool) {
        assert_eq!(p.stats().in_use, 0, "the slot was not given back");
        let a = p.try_acquire().expect("the slot is free");
        assert!(p.try_acquire().is_none(), "the slot was given back twice");
        drop(a);
    }

    /// Two views of "ab" in the one-buffer pool.
    fn frozen_pair(p: &crate::Pool) -> (super::SharedBuf, super::SharedBuf) {
        let mut buf = p.try_acquire_owned().unwrap();
        buf.extend_from_slice(b"ab").unwrap();
        let v = buf.freeze();
        let w = v.clone();
        (v, w)
    }

    /// The last two views drop on two threads while one of them clones:
    /// whichever drop comes last gives the slot back, once.
    #[test]
    fn last_drop_races_a_clone() {
        model(|| {
            let p = pool(1, 0);
            let (v, w) = frozen_pair(&p);
            let t = thread::spawn(move || {
                let x = w.clone();
                drop(w);
                assert_eq!(x, b"ab");
            });
            drop(v);
            t.join().unwrap();
            returned_once(&p);
        });
    }

    /// `try_into_mut` on one thread while another clones and drops its
    /// views: it succeeds only when no other view is left, and the slot
    /// goes back once either way.
    #[test]
    fn try_into_mut_races_a_clone() {
        model(|| {
            let p = pool(1, 0);
            let (v, w) = frozen_pair(&p);
            let t = thread::spawn(move || {
                let x = w.clone();
                drop(w);
                assert_eq!(x, b"ab", "a view saw a write");
                drop(x);
            });
            match v.try_into_mut() {
                Ok(mut owned) => {
                    // No view is left, so the thread is past its reads:
                    // writing is allowed.
                    owned[0] = b'z';
                    t.join().unwrap();
                }
                Err(v) => {
                    t.join().unwrap();
                    let owned = v.try_into_mut().expect("the last view now");
                    drop(owned);
                }
            }
            returned_once(&p);
        });
    }

    /// The writer drops on one thread while the frame it split off drops
    /// on another: the slot goes back once, after both.
    #[test]
    fn writer_and_frame_drop_on_two_threads() {
        model(|| {
            let p = pool(1, 0);
            let mut buf = p.try_acquire_owned().unwrap();
            buf.extend_from_slice(b"frame|").unwrap();
            let frame = buf.split_to(6);
            let t = thread::spawn(move || drop(frame));
            buf.extend_from_slice(b"x").unwrap();
            drop(buf);
            t.join().unwrap();
            returned_once(&p);
        });
    }
}
