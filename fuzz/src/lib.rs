//! The bodies of the fuzz targets in `fuzz_targets/`, as a library.
//!
//! Each module holds one target: its input type (decoded by `arbitrary`
//! from libFuzzer's bytes) and a `run` function that executes the program
//! against a plain model and panics on any disagreement. The `fuzz_target!`
//! binaries are one line each; the library builds on stable without
//! libFuzzer, so `cargo test` here replays every committed corpus input and
//! every recorded crash through the same code (`tests/replay.rs`).

use std::sync::OnceLock;

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
