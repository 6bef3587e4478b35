//! The portable kernel: the sum by its definition, one 16-bit word at a
//! time (in native byte order; see the module docs on byte order).

/// The unfolded one's complement sum of `data` as native-order 16-bit
/// words, an odd last byte padded with zero.
pub(super) fn sum(data: &[u8]) -> u64 {
    let mut sum = 0u64;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_ne_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    sum
}
