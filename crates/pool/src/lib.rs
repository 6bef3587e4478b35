//! A fast, sound buffer pool for Rust servers and data planes.
//!
//! `arenapool` carves fixed-size byte buffers out of one zeroed arena and
//! hands them out through RAII handles. Getting and returning a buffer is a
//! pop and a push on a lock-free, ABA-safe stack of slot indices: no
//! allocation, no lock, no syscall.
//!
//! ```
//! use std::io::Write;
//! use std::time::Duration;
//! use arenapool::Pool;
//!
//! // 256 buffers of 1500 bytes, allowed to grow to 1024 buffers.
//! let pool = Pool::builder().buffer_size(1500).capacity(256).grow_to(1024).build()?;
//!
//! // Borrowed handle: returns to the pool when dropped.
//! let mut buf = pool.try_acquire().expect("pool has free buffers");
//! buf.extend_from_slice(b"GET / HTTP/1.1\r\n")?;
//! assert_eq!(buf.len(), 16);
//!
//! // Owned handle: 'static, can move to another thread. `Pool` itself is a
//! // cheap handle: clone it into threads and tasks, no `Arc` needed.
//! let mut owned = pool.acquire_owned_blocking(Duration::from_millis(10))?;
//! std::thread::spawn(move || {
//!     let n = owned.as_full_mut().len();      // read into the whole slot...
//!     owned.set_len(n).unwrap();              // ...then say how much is filled
//! })
//! .join()
//! .unwrap();
//!
//! drop(buf);
//! assert_eq!(pool.stats().in_use, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layers
//!
//! * **Arena** (`arena.rs`): one zeroed, aligned allocation (or anonymous
//!   mapping) of `capacity x stride` bytes, the only place that calls the
//!   allocator or `mmap` for buffers (with feature `io-uring`,
//!   `uring/buf_ring.rs` also allocates the page-aligned memory of provided
//!   buffer rings); `backing.rs` holds the [`Backing`] request and the
//!   [`BackingReport`] of what it got.
//!   Slot `i` is at `base + i * stride`; pointers derive from the
//!   allocation, never from a shared reference.
//! * **Segments** (`segments.rs`, `grow.rs`): growth adds arenas that
//!   double the capacity, up to a limit; slots never move.
//! * **Trim** (`trim.rs`, `arena/pages.rs`): gives back grown segments
//!   whose slots are all free, and the pages of free slots of mapped
//!   arenas, under the growth lock; no handle is invalidated.
//! * **Free list** (`freelist.rs`): a Treiber stack of `u32` indices whose
//!   head packs `(tag, index)` in one `AtomicU64`, with the links in their
//!   own array. The tag defeats ABA; bulk push and pop move a chain with
//!   one CAS. Its module docs explain the memory orderings.
//! * **Shared state** (`shared.rs`): what the handles, buffers, caches and
//!   wait queue share, the [`Pool`] handle, and the reference counting
//!   that frees the memory when the last handle, owned buffer and `Bytes`
//!   are gone. Every module above imports from it; it imports none of them.
//! * **Thread caches** (`cache.rs`, `barrier.rs`): each thread keeps a few
//!   free slot indices per pool, so acquire and release usually touch only
//!   thread-local memory; batches move to and from the free list with one
//!   CAS, and an empty pool steals back what idle threads' caches hold. A
//!   cache also holds a batch of references to the pool, which it hands to
//!   the owned buffers it serves, so an owned buffer costs no shared
//!   reference count either.
//! * **Pool** (`pool.rs`): acquire (non-blocking, blocking with a timeout),
//!   release, statistics.
//! * **Wait queue** (`wait.rs`, `future.rs`): one FIFO queue for blocking
//!   and async waiters; a release hands its buffer straight to the longest
//!   waiter.
//! * **Handles** (`handle.rs`): [`PoolBuf`] (borrows a `Pool`) and
//!   [`OwnedBuf`] (`'static`, for tasks and threads), named so that
//!   `use arenapool::*` sits beside `use bytes::Buf`.
//!
//! # Handles
//!
//! A handle is a `Vec<u8>` with a fixed capacity: `len()` bytes are filled
//! and visible through `Deref<Target = [u8]>`; [`PoolBuf::as_full_mut`] exposes
//! the whole slot for reading into, and [`PoolBuf::set_len`] records how much
//! was read (safely: every byte of the arena is always initialised).
//! Appending past the capacity with `extend_from_slice` or `set_len`
//! returns a [`CapacityError`], `io::Write` and `write!` report a short
//! write or an error; only `Extend` and `bytes::BufMut`'s `put_*` methods,
//! whose signatures cannot report it, panic. Like `Vec<u8>`, handles
//! compare, order and hash by their filled bytes and `Borrow<[u8]>`.
//!
//! [`OwnedBuf::split_to`], [`split_off`](OwnedBuf::split_off) and
//! [`freeze`](OwnedBuf::freeze) turn filled bytes into [`SharedBuf`]s:
//! immutable views that clone and slice without copying or allocating
//! (their count lives in the buffer's own metadata), while the owned
//! buffer keeps writing after what it froze. The buffer goes back when the
//! last view and the writer are gone; [`SharedBuf::try_into_mut`] makes
//! the last view writable again.
//!
//! # Size classes
//!
//! [`PoolBuilder::class`] gives one pool several buffer sizes, each class
//! with its own arena, growth limit, thread caches, wait queue and
//! counters ([`Pool::class_stats`]). [`Pool::try_acquire_with_capacity`]
//! and its owned, async and blocking forms take from the smallest class
//! that holds the size asked for, falling up to a larger class when that
//! one is empty ([`PoolBuilder::fall_up`]); a size above the largest class
//! is a [`TooLarge`] error. One handle type serves every class:
//! `capacity()` tells the size.
//!
//! # Exhaustion
//!
//! [`Pool::try_acquire`] returns `None` when the pool is empty and cannot
//! grow; [`Pool::acquire_blocking`] sleeps until a buffer is released or the
//! timeout passes; `pool.acquire().await` waits without blocking a thread;
//! [`PoolBuilder::grow_to`] lets the pool add arenas up to a limit before
//! any of those happens. Waiters are served in arrival order: a release
//! hands its buffer to the longest waiter, and a caller that arrives while
//! others wait queues behind them. Dropping an [`Acquire`] future at any
//! point loses no buffer and no wake-up.
//!
//! # Backing
//!
//! Arenas come from the global allocator by default. On Linux,
//! [`PoolBuilder::backing`] can map them instead: [`Backing::Mmap`] (4 KiB
//! pages), [`Backing::TransparentHugePages`] (2 MiB-aligned, advised with
//! `MADV_HUGEPAGE`: up to 512 times fewer page faults when first touched)
//! or [`Backing::HugeTlb`] (pages reserved in `vm.nr_hugepages`).
//! [`PoolBuilder::lock_memory`] `mlock`s mapped arenas (root, or up to
//! `RLIMIT_MEMLOCK` bytes otherwise). When the system cannot oblige, the
//! pool degrades to the next best thing ([`Fallback::Degrade`], the
//! default) or refuses to build ([`Fallback::Fail`]); [`Pool::backing`]
//! reports what every segment got and why.
//!
//! ```
//! use arenapool::{Backing, Pool};
//!
//! let pool = Pool::builder()
//!     .buffer_size(4096)
//!     .capacity(1024)
//!     .backing(Backing::TransparentHugePages)
//!     .build()?;
//! // e.g. "transparent huge pages advised (the kernel decides per page), not locked"
//! println!("{}", pool.backing());
//! # Ok::<(), arenapool::BuildError>(())
//! ```
//!
//! # Async and `bytes` (features `async` and `bytes`, on by default)
//!
//! The futures run on any executor. Handles implement [`bytes::BufMut`],
//! so tokio reads straight into them (`stream.read_buf(&mut buf)`,
//! `socket.recv_buf_from(&mut buf)`). [`OwnedBuf::freeze`] and
//! [`OwnedBuf::split_to`] turn what was written into a [`SharedBuf`]
//! without copying or allocating: clones and slices share the buffer,
//! which returns to the pool when the last of them is dropped. A
//! `SharedBuf` reads as a [`bytes::Buf`] and becomes [`bytes::Bytes`] with
//! `into()`, still without copying.
//!
//! ```
//! # #[cfg(all(feature = "async", feature = "bytes"))]
//! # futures::executor::block_on(async {
//! use bytes::BufMut;
//!
//! let pool = arenapool::Pool::new(1500, 64)?;
//! let mut buf = pool.acquire_owned().await;
//! buf.put_u16(0xCAFE);              // bytes::BufMut
//! buf.put_slice(b" payload");
//! let frame = buf.freeze();         // an arenapool::SharedBuf
//! let header = frame.slice(..2);    // shares the pooled buffer
//! let frame: bytes::Bytes = frame.into(); // for APIs that take Bytes
//! drop(frame);
//! assert_eq!(&header[..], &[0xCA, 0xFE]);
//! assert_eq!(pool.stats().in_use, 1);
//! drop(header);
//! assert_eq!(pool.stats().in_use, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! `examples/tcp_echo.rs` is a tokio echo server that reads every chunk
//! into a pooled buffer.
//!
//! # io_uring (feature `io-uring`, Linux)
//!
//! [`uring::Ring`] makes the pool the buffers an io_uring uses: it
//! registers the pool's arenas as fixed buffers (`READ_FIXED`,
//! `WRITE_FIXED`), lends pool buffers to the kernel through provided buffer
//! rings (`recv`, multishot `recv` and `recvmsg` with buffer select), and
//! sends from a pooled buffer with `sendmsg`. Submitting an operation moves
//! its [`OwnedBuf`] into the ring, and the completion gives it back, so safe
//! code cannot touch, release or unregister a buffer while the kernel may
//! still use it; dropping the ring cancels and waits for everything in
//! flight. The module docs give the design and the soundness argument.
//!
//! # Soundness
//!
//! Unsafe code lives in `arena.rs` (and `arena/pages.rs`), `segments.rs`
//! (and its callers under the growth lock in `pool.rs` and `trim.rs`),
//! `handle.rs`, `uring/`
//! (with the io-uring feature), `shared.rs` (the handle's pointer and the
//! release of the lease), one function of `pool.rs` and the thread-local
//! lookup and exit of `cache.rs`, each with its reason. The free list, the
//! cache steal handshake, the wait queue, trimming and the release of the
//! pool's memory are model-checked with loom, the unit and
//! integration tests run under Miri with strict provenance, and stress
//! tests check that no buffer ever has two owners.
//!
//! ## User code inside the pool
//!
//! The pool runs code it did not write at these points, and each may panic
//! or call back into the same pool (acquire, release, `stats()`):
//!
//! * **A waiter's [`Waker`](std::task::Waker)** (`wait.rs`). It is *called*
//!   when a slot is handed to a waiting task: by any release (dropping a
//!   [`PoolBuf`], an [`OwnedBuf`], the last [`SharedBuf`] view of a frozen
//!   buffer or the last `bytes::Bytes` made from one), by an acquire that takes slots back from idle threads'
//!   caches or grows the pool and frees the surplus, by a thread's exit
//!   (its cache goes back), by a cancelled waiter passing on a slot granted
//!   to it, and by a [`uring::Ring`] stocking its provided rings or being
//!   dropped. It is *cloned* when a future is polled and *dropped* when it
//!   is replaced or its future leaves the queue. None of these happens
//!   while a lock of the pool is held or an invariant is half-done: the
//!   hand-off completes under the queue's lock, the waker is taken out and
//!   called after the lock is released, and growth, stealing and a
//!   thread's exit push their slots under their locks but serve waiters
//!   only after releasing them; a full thread cache flushes, ends its
//!   operation, and only then serves. A waker that panics is caught, the
//!   remaining waiters are still served, and the panic is resumed at the
//!   end of the pool call that ran it, with the pool consistent (the
//!   waiter it belongs to has its slot). When that call already runs
//!   during a panic (a buffer dropped while unwinding), the waker's panic
//!   is dropped instead of aborting the process.
//! * **A future that is never polled again, or leaked** (`mem::forget` of
//!   an [`Acquire`] or [`AcquireOwned`] at its await point). A waiter stops
//!   counting as one when a slot is granted to it, not when it collects
//!   it, so such a future costs at most the one buffer granted to it and
//!   its queue node: the thread caches, which are off while anyone waits,
//!   come back on, and later waiters are served.
//! * **Destructors.** The pool drops no user value: buffers hold bytes.
//!   [`uring::Ring`]'s drop returns buffers (running wakers) only after
//!   every operation ended and every provided ring was unregistered, so a
//!   panic there cannot free memory the kernel may still write.
//! * **The global allocator.** The pool allocates from it at build and
//!   growth time (arenas, on the heap backing), when a thread first uses a
//!   pool (its cache), and when the wait queue grows, sometimes with one of
//!   its locks held. A `#[global_allocator]` must not itself use the pool
//!   it serves; `arenapool-alloc`'s allocators do not.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![deny(unsafe_op_in_unsafe_fn)]

mod arena;
mod backing;
mod barrier;
mod builder;
mod cache;
mod classes;
mod error;
mod freelist;
#[cfg(feature = "async")]
mod future;
mod grow;
mod handle;
mod leaks;
mod pool;
mod segments;
mod shared;
mod stats;
mod sync;
mod trim;
#[cfg(all(feature = "io-uring", target_os = "linux"))]
pub mod uring;
mod wait;

pub use backing::{Backing, BackingReport, Fallback, Pages, Shortfall, Step};
pub use builder::{MAX_ALIGNMENT, MAX_CACHE_SIZE, MAX_CAPACITY, PoolBuilder};
pub use classes::ClassStats;
pub use error::{AcquireError, BuildError, CapacityError, Exhausted, TooLarge};
#[cfg(feature = "async")]
pub use future::{Acquire, AcquireOwned};
pub use handle::{OwnedBuf, PoolBuf, SharedBuf};
pub use leaks::Outstanding;
pub use pool::Pool;
pub use stats::Stats;
pub use trim::Trimmed;

/// The README's examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
