//! `Bump` against a plain model.
//!
//! Random programs allocate blocks of varied sizes (up to 4096 bytes) and
//! alignments (up to 4096), typed values, slices and strings, values with
//! destructors, `allocator_api2` vectors in the arena, and raw blocks that
//! are grown, shrunk and freed through `Allocator for &Bump`; with or
//! without an allocation limit (the `try_*` methods must then fail with
//! `LimitExceeded`, never abort), and `reset` between epochs.
//!
//! The model keeps a copy of every live allocation. After every operation
//! each one must still hold its bytes (nothing handed out twice, nothing
//! overwritten by a later allocation, a free or a resize), no two live
//! blocks may overlap, every pointer must be aligned as asked, and the
//! arena's byte count must respect the limit. `reset` must run the
//! destructors of the values placed with `alloc_with_drop`, newest first,
//! exactly once.
//!
//! User code runs inside the arena: some of those destructors panic (the
//! first one to run in a `reset`, a drop of the arena or a failed
//! `try_alloc_with_drop`; see [`crate::expect_panic`]), and so do some
//! `alloc_slice_fill_with` fillers. The panic must reach the caller
//! exactly when the model says, every other value must still be dropped
//! exactly once, in the same order, and the arena must go on working: a
//! `reset` that panicked keeps its chunks and bytes (the next one
//! completes), a filler that panicked leaves every live block intact.
//!
//! `epoch` holds the model and its check, `ops` the operations (to add one,
//! add a variant to `Op` and its arm in `Epoch::op`).

use std::sync::{Arc, Mutex};

use arbitrary::Arbitrary;
use arenapool_alloc::{Bump, BumpError};

mod epoch;
mod ops;

use epoch::Epoch;
use ops::Op;

/// Bounds each run: programs of at most this many operations.
const MAX_OPS: usize = 64;
/// Largest block, in bytes, and largest alignment.
const MAX_SIZE: usize = 4096;

/// One fuzz input: how the arena starts, its limit and a program.
#[derive(Arbitrary, Debug)]
pub struct Input {
    start: Start,
    /// Initial allocation limit, in units of 64 bytes.
    limit: Option<u16>,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Start {
    New,
    WithCapacity(u16),
    TryWithCapacity(u16),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Elem {
    U8,
    U64,
}

/// A value with a destructor, placed with `alloc_with_drop`: logs its id
/// when dropped, then panics if `panics` (and a panic is expected there:
/// [`crate::user_panic`]).
struct Tracked {
    id: u64,
    log: Arc<Mutex<Vec<u64>>>,
    panics: bool,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.log.lock().unwrap().push(self.id);
        if self.panics {
            crate::user_panic();
        }
    }
}

fn align_from(a: u8) -> usize {
    1 << (a % 13)
}

fn limit_of(units: Option<u16>) -> Option<usize> {
    units.map(|u| usize::from(u) * 64)
}

/// Checks a `try_*` result: with no limit it must succeed; with a limit it
/// may fail only with `LimitExceeded`, and then allocates nothing.
fn expect_ok<T>(bump: &Bump, r: Result<T, BumpError>, before: usize) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            let limit = bump.allocation_limit();
            match e {
                BumpError::LimitExceeded {
                    requested,
                    limit: l,
                    allocated,
                } => {
                    assert_eq!(Some(l), limit, "error names the limit");
                    assert_eq!(allocated, before, "error names the bytes held");
                    assert!(
                        requested > l.saturating_sub(allocated),
                        "{e}: the request would have fit"
                    );
                }
                other => panic!("a small request failed with {other:?}"),
            }
            assert!(limit.is_some(), "{e} without a limit");
            assert_eq!(bump.allocated_bytes(), before, "a failed try_* allocated");
            None
        }
    }
}
/// Runs one input; panics if the arena and the model disagree.
pub fn run(input: Input) {
    let mut bump = match input.start {
        Start::New => Bump::new(),
        Start::WithCapacity(n) => {
            let b = Bump::with_capacity(n.into());
            assert!(b.allocated_bytes() >= usize::from(n));
            b
        }
        Start::TryWithCapacity(n) => Bump::try_with_capacity(n.into()).expect("a small chunk"),
    };
    let limit = limit_of(input.limit);
    bump.set_allocation_limit(limit);
    let mut ceiling = limit.map(|l| l.max(bump.allocated_bytes()));
    let log = Arc::new(Mutex::new(Vec::new()));
    let ops = &input.ops[..input.ops.len().min(MAX_OPS)];
    let mut next = 0;
    loop {
        // One epoch: the operations up to the next reset (or the end).
        let (tracked, panics): (Vec<u64>, bool) = {
            let mut epoch = Epoch {
                bump: &bump,
                blocks: Vec::new(),
                vecs: Vec::new(),
                tracked: Vec::new(),
                panics: false,
                ceiling,
                last_allocated: bump.allocated_bytes(),
                spans: Vec::new(),
            };
            while next < ops.len() && !matches!(ops[next], Op::Reset) {
                epoch.op(&ops[next], &log);
                epoch.check();
                next += 1;
            }
            ceiling = epoch.ceiling;
            (
                epoch.tracked.iter().map(|&(_, id)| id).collect(),
                epoch.panics,
            )
        };
        assert!(
            log.lock().unwrap().is_empty(),
            "a destructor ran before reset"
        );
        if next == ops.len() {
            // Dropping the arena runs the remaining destructors, newest first,
            // all of them even if one panics.
            let returned = crate::expect_panic(move || drop(bump)).is_some();
            assert_eq!(!returned, panics, "a destructor's panic reaches the drop");
            let got = std::mem::take(&mut *log.lock().unwrap());
            let want: Vec<u64> = tracked.iter().rev().copied().collect();
            assert_eq!(got, want, "drop runs each destructor once, newest first");
            break;
        }
        next += 1; // the reset
        let held = bump.allocated_bytes();
        let chunks = bump.chunk_count();
        let returned = crate::expect_panic(|| bump.reset()).is_some();
        assert_eq!(!returned, panics, "a destructor's panic reaches reset");
        let got = std::mem::take(&mut *log.lock().unwrap());
        let want: Vec<u64> = tracked.iter().rev().copied().collect();
        assert_eq!(got, want, "reset runs each destructor once, newest first");
        if !returned {
            // It left by the panic before freeing or rewinding any chunk;
            // the arena goes on from there.
            assert_eq!(
                bump.chunk_count(),
                chunks,
                "a reset that panicked freed chunks"
            );
            assert_eq!(
                bump.allocated_bytes(),
                held,
                "a reset that panicked freed bytes"
            );
            continue;
        }
        assert!(bump.chunk_count() <= 1, "reset keeps at most one chunk");
        assert!(bump.allocated_bytes() <= held, "reset grew the arena");
        if let Some(c) = ceiling.as_mut() {
            // Chunks freed by the reset make room again.
            *c = bump.allocation_limit().unwrap().max(bump.allocated_bytes());
        }
    }
}
