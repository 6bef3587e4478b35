//! The RFC 1071 Internet checksum, with SIMD.
//!
//! The checksum is the 16-bit one's complement of the one's complement sum
//! of the data taken as big-endian 16-bit words (an odd last byte is padded
//! with a zero byte). Three properties of that sum make it fast to compute
//! (RFC 1071, section 2):
//!
//! * **Byte-order independence**: summing the words in the machine's own
//!   byte order and swapping the bytes of the folded result gives the same
//!   checksum, so little-endian loads need no per-word swap.
//! * **Deferred carries**: the sum can be accumulated in wider integers and
//!   the carries folded back in at the end (`2^16 ≡ 1 mod 0xFFFF`), so
//!   32-bit words summed into 64-bit lanes give the same result as 16-bit
//!   words with end-around carry. Each 64-bit lane can take 2^32 such words
//!   without overflowing: no overflow check in the loop.
//! * **Parallel summation**: lanes are summed independently and added
//!   together at the end.
//!
//! The implementations ([`Kernel`]):
//!
//! * [`Kernel::Scalar`]: the definition, word by word; the reference the
//!   others are property-tested against (for every length up to a few
//!   hundred bytes and every start alignment, and for random inputs). It is
//!   plain Rust, so LLVM may auto-vectorise it with the target's baseline
//!   features (SSE2 on x86_64).
//! * [`Kernel::Sse2`]: 128-bit loads (unaligned), 32-bit words widened into
//!   two 64-bit lanes per register, four registers per 64-byte step.
//! * [`Kernel::Avx2`]: the same with 256-bit registers, 128 bytes a step.
//!
//! [`checksum`] picks the best kernel the CPU has, detected once with
//! `is_x86_feature_detected!` and cached. Non-x86_64 targets compile the
//! scalar kernel only.
//!
//! ```
//! use arenapool_server::checksum::{checksum, Kernel};
//!
//! // RFC 1071's worked example: words 0001 f203 f4f5 f6f7 sum to ddf2.
//! let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
//! assert_eq!(checksum(&data), !0xddf2);
//! for kernel in Kernel::available() {
//!     assert_eq!(kernel.checksum(&data), Some(!0xddf2));
//! }
//! ```
//!
//! This module holds all of the crate's `unsafe` code: the SIMD kernels are
//! `#[target_feature]` functions, callable only once the feature is known
//! to be present.

mod scalar;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod sse2;

use std::fmt;
use std::sync::OnceLock;

/// One implementation of the checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Kernel {
    /// Portable Rust, 16-bit word at a time: the reference.
    Scalar,
    /// x86_64 SSE2 (always present on x86_64).
    Sse2,
    /// x86_64 AVX2, when the CPU has it.
    Avx2,
}

impl Kernel {
    /// Every kernel, fastest last.
    pub const ALL: [Kernel; 3] = [Kernel::Scalar, Kernel::Sse2, Kernel::Avx2];

    /// Whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Sse2 => std::arch::is_x86_feature_detected!("sse2"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Sse2 | Kernel::Avx2 => false,
        }
    }

    /// The kernels this CPU can run, fastest last.
    pub fn available() -> impl Iterator<Item = Kernel> {
        Self::ALL.into_iter().filter(|k| k.is_available())
    }

    /// The fastest kernel this CPU can run (detected once, then cached).
    pub fn best() -> Kernel {
        static BEST: OnceLock<Kernel> = OnceLock::new();
        *BEST.get_or_init(|| Self::available().last().unwrap_or(Kernel::Scalar))
    }

    /// The checksum of `data` computed by this kernel, or `None` if the CPU
    /// cannot run it.
    pub fn checksum(self, data: &[u8]) -> Option<u16> {
        if !self.is_available() {
            return None;
        }
        Some(finish(self.sum_unchecked(data)))
    }

    /// The kernel's unfolded sum, in native byte order.
    ///
    /// Callers have checked [`is_available`](Self::is_available).
    #[inline]
    fn sum_unchecked(self, data: &[u8]) -> u64 {
        match self {
            Kernel::Scalar => scalar::sum(data),
            // SAFETY: the caller checked that the CPU has SSE2.
            #[cfg(target_arch = "x86_64")]
            Kernel::Sse2 => unsafe { sse2::sum(data) },
            // SAFETY: the caller checked that the CPU has AVX2.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { avx2::sum(data) },
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Sse2 | Kernel::Avx2 => scalar::sum(data),
        }
    }

    /// Its name, as in tables: `scalar`, `sse2`, `avx2`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Sse2 => "sse2",
            Kernel::Avx2 => "avx2",
        }
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The RFC 1071 checksum of `data`, with the best kernel this CPU has.
///
/// ```
/// use arenapool_server::checksum::checksum;
/// assert_eq!(checksum(&[]), 0xffff);
/// assert_eq!(checksum(&[0xff, 0xff]), 0x0000);
/// assert_eq!(checksum(&[0x12]), !0x1200);
/// ```
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    // `best()` returns only an available kernel.
    finish(Kernel::best().sum_unchecked(data))
}

/// Folds a native-order 64-bit sum to 16 bits with end-around carries,
/// converts it to network order and complements it.
#[inline]
fn finish(sum: u64) -> u16 {
    let mut s = sum;
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    // The folded value fits in 16 bits; the cast only drops zeros.
    let folded = s as u16;
    !u16::from_be(folded)
}

/// Sums the bytes of `tail` (fewer than 32) as native-order 32-bit words,
/// zero-padded at the end: the part of the data that the SIMD loops leave.
///
/// `tail` must start at an even offset of the data, which holds because
/// the loops consume whole registers.
#[inline]
fn tail_sum(tail: &[u8]) -> u64 {
    let mut sum = 0u64;
    let mut chunks = tail.chunks_exact(4);
    for c in &mut chunks {
        sum += u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 4];
        last[..rest.len()].copy_from_slice(rest);
        sum += u64::from(u32::from_ne_bytes(last));
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, literally: big-endian words, end-around carry at
    /// every step.
    fn definition(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in data.chunks(2) {
            let word = u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
            sum += word;
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
            .collect()
    }

    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(definition(&data), !0xddf2);
        for k in Kernel::available() {
            assert_eq!(k.checksum(&data), Some(!0xddf2), "{k}");
        }
    }

    #[test]
    fn scalar_matches_the_definition() {
        for len in 0..if cfg!(miri) { 200 } else { 600 } {
            let data = pattern(len, 7);
            assert_eq!(
                Kernel::Scalar.checksum(&data),
                Some(definition(&data)),
                "len {len}"
            );
        }
    }

    #[test]
    fn every_kernel_matches_scalar_at_every_length_and_alignment() {
        // Under Miri (slow), still past two AVX2 blocks and every tail.
        let (total, starts) = if cfg!(miri) { (300, 4) } else { (700, 64) };
        let data = pattern(total, 3);
        for k in Kernel::available() {
            for start in 0..starts {
                for len in 0..=(data.len() - 64) {
                    let s = &data[start..start + len];
                    assert_eq!(
                        k.checksum(s),
                        Kernel::Scalar.checksum(s),
                        "{k} start {start} len {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn all_ones_and_all_zeros() {
        let lens: &[usize] = if cfg!(miri) {
            &[0, 1, 2, 3, 31, 32, 33, 64, 127, 128, 129, 300]
        } else {
            &[0, 1, 2, 3, 31, 32, 33, 64, 127, 128, 129, 4096, 65537]
        };
        for &len in lens {
            let zeros = vec![0u8; len];
            let ones = vec![0xffu8; len];
            for k in Kernel::available() {
                assert_eq!(k.checksum(&zeros), Some(definition(&zeros)), "{k} {len}");
                assert_eq!(k.checksum(&ones), Some(definition(&ones)), "{k} {len}");
            }
        }
    }

    #[test]
    fn best_is_available_and_dispatch_agrees() {
        assert!(Kernel::best().is_available());
        let data = pattern(1500, 9);
        assert_eq!(Some(checksum(&data)), Kernel::Scalar.checksum(&data));
    }

    #[test]
    fn unavailable_kernels_say_so() {
        for k in Kernel::ALL {
            assert_eq!(k.checksum(b"abc").is_some(), k.is_available());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 }))]
        #[test]
        fn kernels_agree_on_random_data(
            data in proptest::collection::vec(any::<u8>(), 0..if cfg!(miri) { 600 } else { 9000 }),
            start in 0usize..64,
        ) {
            let s = &data[start.min(data.len())..];
            let want = definition(s);
            for k in Kernel::available() {
                prop_assert_eq!(k.checksum(s), Some(want), "{}", k);
            }
        }
    }
}
