//! The AVX2 kernel: 32-byte unaligned loads; each register's eight 32-bit
//! words are widened into four 64-bit lanes (interleaving with zero within
//! each 128-bit half) and added to 64-bit accumulators. Four registers per
//! step, two accumulators.

use std::arch::x86_64::{
    __m128i, __m256i, _mm_add_epi64, _mm_storeu_si128, _mm256_add_epi64, _mm256_castsi256_si128,
    _mm256_extracti128_si256, _mm256_loadu_si256, _mm256_setzero_si256, _mm256_unpackhi_epi32,
    _mm256_unpacklo_epi32,
};

/// The unfolded sum of `data` as native-order 32-bit words (zero-padded at
/// the end), which folds to the same 16-bit one's complement sum as the
/// scalar kernel's.
///
/// # Safety
///
/// The CPU must support AVX2 (the caller checks, through
/// `Kernel::is_available`).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn sum(data: &[u8]) -> u64 {
    let zero = _mm256_setzero_si256();
    let mut acc0 = _mm256_setzero_si256();
    let mut acc1 = _mm256_setzero_si256();
    let mut blocks = data.chunks_exact(128);
    for b in &mut blocks {
        let p = b.as_ptr().cast::<__m256i>();
        // SAFETY: `b` is 128 readable bytes, so `p .. p + 4` lies inside
        // it; `loadu` has no alignment requirement.
        let (v0, v1, v2, v3) = unsafe {
            (
                _mm256_loadu_si256(p),
                _mm256_loadu_si256(p.add(1)),
                _mm256_loadu_si256(p.add(2)),
                _mm256_loadu_si256(p.add(3)),
            )
        };
        acc0 = _mm256_add_epi64(acc0, _mm256_unpacklo_epi32(v0, zero));
        acc1 = _mm256_add_epi64(acc1, _mm256_unpackhi_epi32(v0, zero));
        acc0 = _mm256_add_epi64(acc0, _mm256_unpacklo_epi32(v1, zero));
        acc1 = _mm256_add_epi64(acc1, _mm256_unpackhi_epi32(v1, zero));
        acc0 = _mm256_add_epi64(acc0, _mm256_unpacklo_epi32(v2, zero));
        acc1 = _mm256_add_epi64(acc1, _mm256_unpackhi_epi32(v2, zero));
        acc0 = _mm256_add_epi64(acc0, _mm256_unpacklo_epi32(v3, zero));
        acc1 = _mm256_add_epi64(acc1, _mm256_unpackhi_epi32(v3, zero));
    }
    let mut rest = blocks.remainder().chunks_exact(32);
    for r in &mut rest {
        // SAFETY: `r` is 32 readable bytes; `loadu` is unaligned.
        let v = unsafe { _mm256_loadu_si256(r.as_ptr().cast::<__m256i>()) };
        acc0 = _mm256_add_epi64(acc0, _mm256_unpacklo_epi32(v, zero));
        acc1 = _mm256_add_epi64(acc1, _mm256_unpackhi_epi32(v, zero));
    }
    let acc = _mm256_add_epi64(acc0, acc1);
    let half = _mm_add_epi64(
        _mm256_castsi256_si128(acc),
        _mm256_extracti128_si256::<1>(acc),
    );
    let mut lanes = [0u64; 2];
    // SAFETY: `lanes` is 16 writable bytes; `storeu` is unaligned.
    unsafe { _mm_storeu_si128(lanes.as_mut_ptr().cast::<__m128i>(), half) };
    // The last up to 31 bytes: whole 16-byte pieces were not taken above,
    // so the tail may be longer than 16; `tail_sum` takes any length.
    lanes[0] + lanes[1] + super::tail_sum(rest.remainder())
}
