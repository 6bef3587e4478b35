//! What runs on the other thread of a hand-off.

use std::io::Write;

use super::model::pattern;

/// The part of [`Op::SendToThread`] that runs on the other thread: checks
/// the handle's bytes, maybe appends, then drops it there or sends it back,
/// with the model's view of its slot either way.
pub(super) fn on_thread<H>(
    mut b: H,
    mut slot: Vec<u8>,
    mut len: usize,
    cap: usize,
    write: Option<(u16, u8)>,
    back: bool,
) -> (Option<H>, Vec<u8>, usize)
where
    H: std::ops::DerefMut<Target = [u8]> + Write + Send,
{
    assert!(
        b[..] == slot[..len],
        "bytes changed on the way to another thread"
    );
    if let Some((n, seed)) = write {
        let data = pattern(seed, usize::from(n) % (cap + 1));
        let n = b.write(&data).unwrap();
        assert_eq!(n, data.len().min(cap - len));
        slot[len..len + n].copy_from_slice(&data[..n]);
        len += n;
        assert!(b[..] == slot[..len]);
    }
    if back {
        (Some(b), slot, len)
    } else {
        drop(b);
        (None, slot, len)
    }
}
