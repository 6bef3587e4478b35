//! User code that runs inside arenapool-alloc: destructors of values the
//! crate drops (`Bump::alloc_with_drop` values on reset and drop, `Slab`
//! values on `retain`, `clear`, `drain` and drop), closures it calls
//! (`retain`'s predicate, `alloc_slice_fill_with`'s filler, `measure`'s
//! closure, an `Extend` iterator, `T::clone`), and the global allocator it
//! calls while it takes a chunk. Each test makes that code panic or call
//! back into the structure, then checks the structure: its length, its
//! keys, and that every value was dropped exactly once. One module per
//! part of the crate; the list of places, and why each is safe, is in the
//! crate docs ("User code inside the crate").
//!
//! The global allocator of this binary is `Counting` over [`Hooked`], which
//! forwards to `System` and, while a test has set a hook on its thread,
//! runs the hook before each allocation: the way a user's allocator that
//! logs, or that allocates from one of our arenas itself, calls back in.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arenapool_alloc::Counting;

mod bump;
mod counting;
mod global;
mod slab;

#[global_allocator]
static ALLOC: Counting<Hooked> = Counting::new(Hooked);

// ---------------------------------------------------------------------------
// A global allocator that calls back in.

/// `System`, plus a per-thread hook run before each `alloc`,
/// `alloc_zeroed` and `realloc`, and a per-thread switch that makes the
/// next one fail.
struct Hooked;

thread_local! {
    /// The hook; taken while it runs, so what it allocates itself goes
    /// straight to `System` (the guard every allocator that allocates
    /// from an arena needs). It returns whether to stay set.
    static HOOK: Cell<Option<fn() -> bool>> = const { Cell::new(None) };
    /// How many times the hook ran on this thread.
    static HOOK_RUNS: Cell<usize> = const { Cell::new(0) };
    /// Whether the next allocation of this thread fails (returns null).
    static REFUSE_NEXT: Cell<bool> = const { Cell::new(false) };
}

/// Runs the hook, if one is set; returns whether to refuse the allocation.
fn before_alloc() -> bool {
    if REFUSE_NEXT.try_with(|r| r.replace(false)) == Ok(true) {
        return true;
    }
    let Ok(Some(hook)) = HOOK.try_with(Cell::take) else {
        return false;
    };
    let _ = HOOK_RUNS.try_with(|n| n.set(n.get() + 1));
    if hook() {
        let _ = HOOK.try_with(|h| h.set(Some(hook)));
    }
    false
}

/// Runs `f` with `hook` set on this thread; returns `f`'s value and how
/// many times the hook ran.
fn with_hook<R>(hook: fn() -> bool, f: impl FnOnce() -> R) -> (R, usize) {
    HOOK_RUNS.with(|n| n.set(0));
    HOOK.with(|h| h.set(Some(hook)));
    let r = f();
    HOOK.with(|h| h.set(None));
    (r, HOOK_RUNS.with(Cell::get))
}

// SAFETY: every method forwards to `System` with the caller's arguments and
// returns its result, or returns null (always allowed); the hook runs
// before, on memory of its own.
unsafe impl GlobalAlloc for Hooked {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if before_alloc() {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if before_alloc() {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if before_alloc() {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

// ---------------------------------------------------------------------------
// Values that count their drops, and may panic in them.

/// Drop counts of `n` probes.
struct Log(Vec<AtomicUsize>);

impl Log {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Self((0..n).map(|_| AtomicUsize::new(0)).collect()))
    }

    fn counts(&self) -> Vec<usize> {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }
}

/// Counts its drop in `log[id]`, then panics if `panics`.
struct Probe {
    id: usize,
    log: Arc<Log>,
    panics: bool,
}

fn probe(log: &Arc<Log>, id: usize, panics: bool) -> Probe {
    Probe {
        id,
        log: log.clone(),
        panics,
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.log.0[self.id].fetch_add(1, Ordering::Relaxed);
        if self.panics {
            panic!("probe {} panics in its destructor", self.id);
        }
    }
}

impl Clone for Probe {
    /// Panics when cloning a probe that panics on drop (and is then not
    /// dropped, so it does not count).
    fn clone(&self) -> Self {
        assert!(!self.panics, "probe {} panics when cloned", self.id);
        probe(&self.log, self.id, false)
    }
}

fn panics(f: impl FnOnce()) -> bool {
    catch_unwind(AssertUnwindSafe(f)).is_err()
}
