//! Loops for instruction counting under callgrind, which gives repeatable
//! numbers on a loaded machine where wall-clock benchmarks do not.
//!
//! ```text
//! cargo build --release -p arenapool-alloc --example instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/instructions <case> <n>
//! ```
//!
//! Run each case at `n` and `2n`; `(count(2n) - count(n)) / n` is the
//! instructions per operation, with start-up and set-up cancelled out.
//! Cases: `nop` and `counting_nop` (one allocate-and-free pair, bare and
//! through `Counting`), `slab_get` and `slab_crate_get` (one lookup among
//! 10,000 entries), `slab_insert` and `slab_crate_insert` (one insert, the
//! slab cleared every 10,000), `bump_u64` and `bumpalo_u64` (one `u64` placed in the
//! arena, which is reset every 10,000).

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;

use arenapool_alloc::{Bump, Counting, Slab};

/// An allocator that hands out one static block and frees nothing, so
/// wrapping it measures `Counting`'s own bookkeeping.
struct Nop;

static BLOCK: [u64; 32] = [0; 32];

// SAFETY: the block is never written: the loop only passes the pointer back
// to `dealloc`, which does nothing.
unsafe impl GlobalAlloc for Nop {
    unsafe fn alloc(&self, _: Layout) -> *mut u8 {
        BLOCK.as_ptr().cast::<u8>().cast_mut()
    }
    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
}

#[inline(never)]
fn pairs<A: GlobalAlloc>(a: &A, n: u64) {
    let layout = Layout::from_size_align(16, 8).unwrap();
    for _ in 0..n {
        // SAFETY: non-zero size; freed right away with the same layout by
        // the allocator that made it.
        unsafe {
            let p = a.alloc(black_box(layout));
            assert!(!p.is_null());
            a.dealloc(black_box(p), layout);
        }
    }
}

const ENTRIES: usize = 10_000;

#[inline(never)]
fn slab_get(n: u64) -> u64 {
    let mut slab = Slab::with_capacity(ENTRIES);
    let keys: Vec<_> = (0..ENTRIES as u64).map(|i| slab.insert(i)).collect();
    let mut sum = 0;
    for k in keys.iter().cycle().take(n as usize) {
        sum += *slab.get(black_box(*k)).unwrap();
    }
    sum
}

#[inline(never)]
fn slab_insert(n: u64) {
    let mut slab = Slab::with_capacity(ENTRIES);
    for i in 0..n {
        if i % ENTRIES as u64 == 0 {
            slab.clear();
        }
        black_box(slab.insert(black_box(i)));
    }
}

#[inline(never)]
fn slab_crate_insert(n: u64) {
    let mut slab = slab::Slab::with_capacity(ENTRIES);
    for i in 0..n {
        if i % ENTRIES as u64 == 0 {
            slab.clear();
        }
        black_box(slab.insert(black_box(i)));
    }
}

#[inline(never)]
fn slab_crate_get(n: u64) -> u64 {
    let mut slab = slab::Slab::with_capacity(ENTRIES);
    let keys: Vec<_> = (0..ENTRIES as u64).map(|i| slab.insert(i)).collect();
    let mut sum = 0;
    for k in keys.iter().cycle().take(n as usize) {
        sum += *slab.get(black_box(*k)).unwrap();
    }
    sum
}

#[inline(never)]
fn bump_u64(n: u64) {
    let mut bump = Bump::new();
    for i in 0..n {
        if i % ENTRIES as u64 == 0 {
            bump.reset();
        }
        black_box(bump.alloc(black_box(i)));
    }
}

#[inline(never)]
fn bumpalo_u64(n: u64) {
    let mut bump = bumpalo::Bump::new();
    for i in 0..n {
        if i % ENTRIES as u64 == 0 {
            bump.reset();
        }
        black_box(bump.alloc(black_box(i)));
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    match case.as_str() {
        "nop" => pairs(&Nop, n),
        "counting_nop" => pairs(&Counting::new(Nop), n),
        "slab_get" => drop(black_box(slab_get(n))),
        "slab_insert" => slab_insert(n),
        "slab_crate_insert" => slab_crate_insert(n),
        "slab_crate_get" => drop(black_box(slab_crate_get(n))),
        "bump_u64" => bump_u64(n),
        "bumpalo_u64" => bumpalo_u64(n),
        _ => {
            eprintln!("usage: instructions <case> <n>; see the source for the cases");
            std::process::exit(2);
        }
    }
}
