//! General-purpose allocators as candidates: glibc (`std::alloc::System`),
//! mimalloc and jemalloc, called through their [`GlobalAlloc`] methods
//! directly, so all three run in one process and none of them has to be the
//! global allocator.
//!
//! Each allocator runs in three shapes, the ones a server written without a
//! pool would use:
//!
//! * [`WithCapacity`]: `Vec::<u8>::with_capacity(4096)` and drop, touching
//!   nothing: the seed article's baseline (and the easiest for malloc, since
//!   no page is ever written);
//! * [`Zeroed`]: `vec![0u8; 4096]` (`alloc_zeroed`), then write 64 bytes;
//! * [`Written`]: `with_capacity(4096)`, then write 64 bytes.
//!
//! This is the one module of the crate that holds `unsafe` code: a buffer is
//! a raw `(pointer, layout)` pair, [`RawBuf`], that frees itself through the
//! allocator that made it.

use std::alloc::{GlobalAlloc, Layout, System, handle_alloc_error};
use std::fmt;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use mimalloc::MiMalloc;
use tikv_jemallocator::Jemalloc;

use crate::candidate::{Candidate, SIZE, TOUCH};

/// The layout of every buffer: [`SIZE`] bytes, alignment 1, as `Vec<u8>`.
const LAYOUT: Layout = match Layout::from_size_align(SIZE, 1) {
    Ok(layout) => layout,
    Err(_) => panic!("SIZE is a valid layout"),
};

// `touch` writes TOUCH into the first bytes of a buffer.
const _: () = assert!(TOUCH.len() <= SIZE && SIZE > 0);

/// A [`GlobalAlloc`] that can be named as a type and conjured as a value.
pub trait Allocator: GlobalAlloc + Send + Sync + 'static {
    /// Its name in the tables: `glibc`, `mimalloc`, `jemalloc`.
    const NAME: &'static str;
    /// The allocator itself (all three are unit structs).
    const INSTANCE: Self;
}

impl Allocator for System {
    const NAME: &'static str = "glibc";
    const INSTANCE: Self = System;
}

impl Allocator for MiMalloc {
    const NAME: &'static str = "mimalloc";
    const INSTANCE: Self = MiMalloc;
}

impl Allocator for Jemalloc {
    const NAME: &'static str = "jemalloc";
    const INSTANCE: Self = Jemalloc;
}

/// How a buffer is obtained and what a touch writes; see the module docs.
pub trait Shape: Send + Sync + 'static {
    /// Its label in the tables.
    const LABEL: &'static str;
    /// Whether the buffer comes from `alloc_zeroed` rather than `alloc`.
    const ZEROED: bool;
    /// Whether a touch writes [`TOUCH`] (or nothing).
    const WRITES: bool;
}

/// `Vec::with_capacity(4096)` + drop: nothing written.
#[derive(Debug, Clone, Copy, Default)]
pub struct WithCapacity;

/// `vec![0u8; 4096]`, then 64 bytes written.
#[derive(Debug, Clone, Copy, Default)]
pub struct Zeroed;

/// `Vec::with_capacity(4096)`, then 64 bytes written.
#[derive(Debug, Clone, Copy, Default)]
pub struct Written;

impl Shape for WithCapacity {
    const LABEL: &'static str = "with_capacity";
    const ZEROED: bool = false;
    const WRITES: bool = false;
}

impl Shape for Zeroed {
    const LABEL: &'static str = "vec![0u8; 4096]";
    const ZEROED: bool = true;
    const WRITES: bool = true;
}

impl Shape for Written {
    const LABEL: &'static str = "with_capacity+write";
    const ZEROED: bool = false;
    const WRITES: bool = true;
}

/// One allocator in one shape, as a [`Candidate`].
pub struct Raw<A, S> {
    _marker: PhantomData<(A, S)>,
}

impl<A: Allocator, S: Shape> Raw<A, S> {
    /// The candidate; it holds no state (the allocators are global).
    pub fn new() -> Self {
        Self {
            _marker: PhantomData,
        }
    }
}

impl<A: Allocator, S: Shape> Default for Raw<A, S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Allocator, S: Shape> fmt::Debug for Raw<A, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Candidate::name(self))
    }
}

/// A buffer from allocator `A`: a raw `(pointer, layout)` pair that owns its
/// allocation and frees it through `A` when dropped.
pub struct RawBuf<A: Allocator> {
    /// Always the start of a live allocation made by `A::INSTANCE` with
    /// `layout`, owned by this value alone (no other `RawBuf` or pointer
    /// refers to it). Only [`Raw::acquire`] creates one.
    ptr: NonNull<u8>,
    /// Always [`LAYOUT`]; kept so `dealloc` gets the layout it must.
    layout: Layout,
    _alloc: PhantomData<A>,
}

// SAFETY: a `RawBuf` is the sole owner of its allocation, like a
// `Box<[u8]>`: nothing else points into it, so moving it to another thread
// moves the only access. All three allocators accept `dealloc` from any
// thread (the `GlobalAlloc` contract has no thread affinity; mimalloc and
// jemalloc hand such frees back to the owning heap or arena themselves).
unsafe impl<A: Allocator> Send for RawBuf<A> {}

impl<A: Allocator> RawBuf<A> {
    fn new(zeroed: bool) -> Self {
        debug_assert!(LAYOUT.size() > 0);
        // SAFETY: LAYOUT has a non-zero size (checked at compile time above),
        // the one requirement of `GlobalAlloc::alloc` and `alloc_zeroed`.
        let raw = unsafe {
            if zeroed {
                A::INSTANCE.alloc_zeroed(LAYOUT)
            } else {
                A::INSTANCE.alloc(LAYOUT)
            }
        };
        let Some(ptr) = NonNull::new(raw) else {
            handle_alloc_error(LAYOUT)
        };
        Self {
            ptr,
            layout: LAYOUT,
            _alloc: PhantomData,
        }
    }
}

impl<A: Allocator> Drop for RawBuf<A> {
    fn drop(&mut self) {
        // SAFETY: by the field invariant, `ptr` is a live allocation of
        // `A::INSTANCE` made with `layout`, owned by this value alone; it is
        // freed once, here, and never used again.
        unsafe { A::INSTANCE.dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

impl<A: Allocator> fmt::Debug for RawBuf<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawBuf")
            .field("allocator", &A::NAME)
            .field("ptr", &self.ptr)
            .field("size", &self.layout.size())
            .finish()
    }
}

impl<A: Allocator, S: Shape> Candidate for Raw<A, S> {
    type Buf = RawBuf<A>;

    fn name(&self) -> String {
        format!("{} {}", A::NAME, S::LABEL)
    }

    #[inline]
    fn acquire(&self) -> RawBuf<A> {
        RawBuf::new(S::ZEROED)
    }

    #[inline]
    fn touch(buf: &mut RawBuf<A>) {
        if S::WRITES {
            // SAFETY: `buf.ptr` is a live allocation of `layout.size()`
            // (SIZE >= 64) bytes owned by `buf`, which we borrow mutably, so
            // nothing else reads or writes it; `TOUCH` is a separate constant.
            unsafe { ptr::copy_nonoverlapping(TOUCH.as_ptr(), buf.ptr.as_ptr(), TOUCH.len()) }
        }
    }

    #[inline]
    fn release(&self, buf: RawBuf<A>) {
        drop(buf);
    }

    fn fill(buf: &mut RawBuf<A>, byte: u8) -> &[u8] {
        let len = buf.layout.size();
        // SAFETY: `buf.ptr` is a live allocation of `len` bytes owned by
        // `buf`, borrowed mutably here. After `write_bytes` every one of the
        // `len` bytes is initialised, so the shared slice over them is valid;
        // it borrows `buf`, so the allocation outlives it and nothing writes
        // to it meanwhile.
        unsafe {
            ptr::write_bytes(buf.ptr.as_ptr(), byte, len);
            std::slice::from_raw_parts(buf.ptr.as_ptr(), len)
        }
    }
}

/// The environment variable that picks [`Chosen`]'s allocator: `glibc`
/// (also when unset or unknown), `jemalloc` or `mimalloc`.
pub const ALLOCATOR_VAR: &str = "ARENAPOOL_ALLOCATOR";

/// A global allocator picked when the process starts: glibc, jemalloc or
/// mimalloc, as [`ALLOCATOR_VAR`] says. `#[global_allocator]` is fixed per
/// binary, so this is how one binary measures a workload under each of the
/// three: a child process per allocator, each with the variable set.
///
/// The choice is made at the first allocation (the variable is read with
/// `getenv`, which does not allocate) and never changes: every block is
/// freed by the allocator that made it. Afterwards each call costs one
/// relaxed load and a branch.
///
/// ```no_run
/// use arenapool_bench::Chosen;
///
/// #[global_allocator]
/// static ALLOC: Chosen = Chosen;
///
/// fn main() {
///     println!("allocating with {}", Chosen::name());
/// }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Chosen;

/// 0: not yet chosen; then 1 + the index in [`CHOICES`].
static CHOICE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// The names [`ALLOCATOR_VAR`] takes, in index order.
pub const CHOICES: [&str; 3] = ["glibc", "jemalloc", "mimalloc"];

impl Chosen {
    /// The allocator's index in [`CHOICES`], choosing it now if no
    /// allocation did yet.
    #[inline]
    fn pick() -> u8 {
        use std::sync::atomic::Ordering::Relaxed;
        match CHOICE.load(Relaxed) {
            0 => {
                let chosen = Self::from_env();
                // Two threads racing here read the same variable and
                // store the same value.
                CHOICE.store(chosen + 1, Relaxed);
                chosen
            }
            n => n - 1,
        }
    }

    /// Reads [`ALLOCATOR_VAR`] without allocating (elsewhere than Unix:
    /// glibc's slot, the system allocator).
    #[cfg(not(unix))]
    #[cold]
    fn from_env() -> u8 {
        0
    }

    /// Reads [`ALLOCATOR_VAR`] without allocating.
    #[cfg(unix)]
    #[cold]
    fn from_env() -> u8 {
        // SAFETY: the name is a NUL-terminated constant; `getenv` returns
        // a pointer into the environment or null, and does not allocate.
        // The environment is only read here, at the process's first
        // allocation, before any thread could change it.
        let value = unsafe { libc::getenv(c"ARENAPOOL_ALLOCATOR".as_ptr()) };
        if value.is_null() {
            return 0;
        }
        // SAFETY: a non-null `getenv` result is a NUL-terminated string.
        let value = unsafe { std::ffi::CStr::from_ptr(value) }.to_bytes();
        CHOICES
            .iter()
            .position(|c| c.as_bytes() == value)
            .map_or(0, |i| i as u8)
    }

    /// The allocator in use (choosing it now if nothing allocated yet).
    pub fn name() -> &'static str {
        CHOICES[usize::from(Self::pick())]
    }
}

// SAFETY: every call is forwarded to the one allocator chosen at the first
// call, which never changes, so each block is freed (and reallocated) by
// the allocator that made it, and each of the three upholds `GlobalAlloc`'s
// contract itself.
unsafe impl GlobalAlloc for Chosen {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees, passed on.
        unsafe {
            match Self::pick() {
                1 => Jemalloc.alloc(layout),
                2 => MiMalloc.alloc(layout),
                _ => System.alloc(layout),
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            match Self::pick() {
                1 => Jemalloc.alloc_zeroed(layout),
                2 => MiMalloc.alloc_zeroed(layout),
                _ => System.alloc_zeroed(layout),
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from the same allocator (the choice never
        // changes), with `layout`.
        unsafe {
            match Self::pick() {
                1 => Jemalloc.dealloc(ptr, layout),
                2 => MiMalloc.dealloc(ptr, layout),
                _ => System.dealloc(ptr, layout),
            }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `dealloc`.
        unsafe {
            match Self::pick() {
                1 => Jemalloc.realloc(ptr, layout, new_size),
                2 => MiMalloc.realloc(ptr, layout, new_size),
                _ => System.realloc(ptr, layout, new_size),
            }
        }
    }
}
