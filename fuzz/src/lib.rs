//! The bodies of the fuzz targets in `fuzz_targets/`, as a library.
//!
//! Each module holds one target: its input type (decoded by `arbitrary`
//! from libFuzzer's bytes) and a `run` function that executes the program
//! against a plain model and panics on any disagreement. The `fuzz_target!`
//! binaries are one line each; the library builds on stable without
//! libFuzzer, so `cargo test` here replays every committed corpus input and
//! every recorded crash through the same code (`tests/replay.rs`).

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Once, OnceLock};

use arbitrary::{Arbitrary, Unstructured};

pub mod bump_ops;
pub mod pool_ops;
pub mod slab_ops;

/// Decodes an input the way `libfuzzer_sys::fuzz_target!` does for a typed
/// target; `None` where the target would reject the bytes (too short for
/// the type, or `arbitrary` fails), so they never reach the body.
pub fn decode<T: for<'a> Arbitrary<'a>>(data: &[u8]) -> Option<T> {
    if data.len() < T::size_hint(0).0 {
        return None;
    }
    T::arbitrary_take_rest(Unstructured::new(data)).ok()
}

/// Bytes of the table [`pattern`] takes its slices from.
const TABLE_LEN: usize = 3 << 13;
/// Where the slice for seed `s` starts: `s * SEED_STRIDE`.
const SEED_STRIDE: usize = 61;
/// The longest pattern there is.
pub(crate) const MAX_PATTERN: usize = TABLE_LEN - 255 * SEED_STRIDE;

/// `len` bytes (at most [`MAX_PATTERN`]) that depend on `seed` and on their
/// position, to fill a buffer with: a slice of one table of pseudo-random
/// bytes, made once (a loop that computed each byte was instrumented, a
/// comparison traced per byte, and cost more than the checks).
pub(crate) fn pattern(seed: u8, len: usize) -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        // xorshift64: no period within the table.
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        (0..TABLE_LEN)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    });
    assert!(len <= MAX_PATTERN, "a pattern of {len} bytes");
    let start = usize::from(seed) * SEED_STRIDE;
    &table[start..start + len]
}

/// The payload of the panics that the targets' user code (wakers,
/// destructors, closures) raises on purpose, through [`user_panic`].
pub(crate) const PANIC: &str = "fuzz: user code that panics";

thread_local! {
    /// Inside [`expect_panic`], until [`user_panic`] fires.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    /// [`user_panic`] fired and its panic has not been caught yet.
    static FIRING: Cell<bool> = const { Cell::new(false) };
}

/// User code that may panic calls this: inside [`expect_panic`] it panics
/// with [`PANIC`], once (it disarms first, so the destructors that the
/// unwind runs do not panic again, which would abort); elsewhere it does
/// nothing.
pub(crate) fn user_panic() {
    if ARMED.replace(false) {
        FIRING.set(true);
        std::panic::panic_any(PANIC);
    }
}

/// Lets the panics of [`user_panic`] unwind: libFuzzer's panic hook
/// aborts on every panic (so that a failed check is a crash), which would
/// turn an expected one into a crash too. Every other panic still goes to
/// the previous hook.
fn quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = FIRING.get() && info.payload().downcast_ref::<&str>() == Some(&PANIC);
            if !ours {
                previous(info);
            }
        }));
    });
}

/// Runs `f` with [`user_panic`] armed: `Some` of what it returned, or
/// `None` if a user panic unwound out of it. Any other panic goes on
/// (a failed check stays a crash); a user panic that fired but did not
/// reach this caller (swallowed on the way) fails.
pub(crate) fn expect_panic<R>(f: impl FnOnce() -> R) -> Option<R> {
    quiet_hook();
    ARMED.set(true);
    let r = catch_unwind(AssertUnwindSafe(f));
    ARMED.set(false);
    let fired = FIRING.replace(false);
    match r {
        Ok(v) => {
            assert!(
                !fired,
                "a user panic was swallowed before it reached the caller"
            );
            Some(v)
        }
        Err(p) => {
            if !fired || p.downcast_ref::<&str>() != Some(&PANIC) {
                resume_unwind(p);
            }
            None
        }
    }
}
