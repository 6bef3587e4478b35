//! The bodies of the fuzz targets in `fuzz_targets/`, as a library.
//!
//! Each module holds one target: its input type (decoded by `arbitrary`
//! from libFuzzer's bytes) and a `run` function that executes the program
//! against a plain model and panics on any disagreement. The `fuzz_target!`
//! binaries are one line each; the library builds on stable without
//! libFuzzer, so `cargo test` here replays every committed corpus input and
//! every recorded crash through the same code (`tests/replay.rs`).

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
