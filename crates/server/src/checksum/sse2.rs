//! The SSE2 kernel: 16-byte unaligned loads; each register's four 32-bit
//! words are widened into two 64-bit lanes (interleaving with zero) and
//! added to 64-bit accumulators. Four registers per step, two
//! accumulators, to keep the adds independent.

use std::arch::x86_64::{
    __m128i, _mm_add_epi64, _mm_loadu_si128, _mm_setzero_si128, _mm_storeu_si128,
    _mm_unpackhi_epi32, _mm_unpacklo_epi32,
};

/// The unfolded sum of `data` as native-order 32-bit words (zero-padded at
/// the end), which folds to the same 16-bit one's complement sum as the
/// scalar kernel's.
///
/// # Safety
///
/// The CPU must support SSE2 (every x86_64 CPU does; the caller checks
/// anyway, through `Kernel::is_available`).
#[target_feature(enable = "sse2")]
pub(super) unsafe fn sum(data: &[u8]) -> u64 {
    let zero = _mm_setzero_si128();
    let mut acc0 = _mm_setzero_si128();
    let mut acc1 = _mm_setzero_si128();
    let mut blocks = data.chunks_exact(64);
    for b in &mut blocks {
        let p = b.as_ptr().cast::<__m128i>();
        // SAFETY: `b` is 64 readable bytes, so `p .. p + 4` lies inside it;
        // `loadu` has no alignment requirement.
        let (v0, v1, v2, v3) = unsafe {
            (
                _mm_loadu_si128(p),
                _mm_loadu_si128(p.add(1)),
                _mm_loadu_si128(p.add(2)),
                _mm_loadu_si128(p.add(3)),
            )
        };
        acc0 = _mm_add_epi64(acc0, _mm_unpacklo_epi32(v0, zero));
        acc1 = _mm_add_epi64(acc1, _mm_unpackhi_epi32(v0, zero));
        acc0 = _mm_add_epi64(acc0, _mm_unpacklo_epi32(v1, zero));
        acc1 = _mm_add_epi64(acc1, _mm_unpackhi_epi32(v1, zero));
        acc0 = _mm_add_epi64(acc0, _mm_unpacklo_epi32(v2, zero));
        acc1 = _mm_add_epi64(acc1, _mm_unpackhi_epi32(v2, zero));
        acc0 = _mm_add_epi64(acc0, _mm_unpacklo_epi32(v3, zero));
        acc1 = _mm_add_epi64(acc1, _mm_unpackhi_epi32(v3, zero));
    }
    let mut rest = blocks.remainder().chunks_exact(16);
    for r in &mut rest {
        // SAFETY: `r` is 16 readable bytes; `loadu` is unaligned.
        let v = unsafe { _mm_loadu_si128(r.as_ptr().cast::<__m128i>()) };
        acc0 = _mm_add_epi64(acc0, _mm_unpacklo_epi32(v, zero));
        acc1 = _mm_add_epi64(acc1, _mm_unpackhi_epi32(v, zero));
    }
    let acc = _mm_add_epi64(acc0, acc1);
    let mut lanes = [0u64; 2];
    // SAFETY: `lanes` is 16 writable bytes; `storeu` is unaligned.
    unsafe { _mm_storeu_si128(lanes.as_mut_ptr().cast::<__m128i>(), acc) };
    // Each lane holds at most len/16 words below 2^32: no overflow for any
    // slice that fits in memory; the tail adds fewer than four more.
    lanes[0] + lanes[1] + super::tail_sum(rest.remainder())
}
