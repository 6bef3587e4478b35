//! libFuzzer counts the allocations and frees of each run; when a run
//! allocates more than it frees, it runs the input again, and if that run
//! does too, it asks LeakSanitizer for a leak check, and turns leak checks
//! off for good after 1000 such checks. So a target whose runs leave
//! allocations behind, even ones a later run frees (a thread-local entry,
//! a lazily grown buffer), makes fuzzing slow and then blind to leaks.
//!
//! This test runs every committed input twice in a row, as libFuzzer does,
//! under an allocator that counts, and fails if the second run allocates
//! more than it frees.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use arbitrary::Arbitrary;
use arenapool_fuzz::{bump_ops, decode, pool_ops, slab_ops};

/// The system allocator, counting allocations and frees (on every thread;
/// a reallocation is neither).
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static FREES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to `System` unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        FREES.fetch_add(1, Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v: Vec<PathBuf> = fs::read_dir(root.join("corpus").join(target))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for e in fs::read_dir(root.join("artifacts-found")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        if name.starts_with(&format!("{target}-")) && !name.ends_with(".md") {
            v.push(p);
        }
    }
    v.sort();
    assert!(!v.is_empty(), "no inputs for {target}");
    v
}

/// Allocations minus frees of one run of `data`.
fn surplus<T: for<'a> Arbitrary<'a>>(data: &[u8], run: fn(T)) -> i64 {
    let input = decode::<T>(data).expect("a committed input decodes");
    let (a, f) = (ALLOCS.load(Relaxed), FREES.load(Relaxed));
    run(input);
    let (a2, f2) = (ALLOCS.load(Relaxed), FREES.load(Relaxed));
    (a2 - a) as i64 - (f2 - f) as i64
}

fn check<T: for<'a> Arbitrary<'a>>(target: &str, run: fn(T)) {
    let mut unbalanced = Vec::new();
    let files = inputs(target);
    for path in &files {
        let data = fs::read(path).unwrap();
        let first = surplus(&data, run);
        let second = surplus(&data, run);
        if second > 0 {
            unbalanced.push(format!(
                "{}: {first} then {second} more allocations than frees",
                path.display()
            ));
        }
    }
    assert!(
        unbalanced.is_empty(),
        "{} of {} inputs allocate more than they free when run twice:\n{}",
        unbalanced.len(),
        files.len(),
        unbalanced.join("\n")
    );
}

// One test, so that the targets do not run at once (the counts are global).
#[test]
fn a_second_run_frees_what_it_allocates() {
    check("pool_ops", pool_ops::run);
    check("bump_ops", bump_ops::run);
    check("slab_ops", slab_ops::run);
}
