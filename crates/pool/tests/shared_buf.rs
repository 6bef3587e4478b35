//! Frozen views ([`SharedBuf`]): freezing and splitting an [`OwnedBuf`]
//! without copying, sharing by clone and slice, the reclaim paths
//! (`try_into_mut`, `clear`), `zero_on_release` once the last view goes,
//! and consuming reads (`io::Read`) on both handles.

use std::collections::HashSet;
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};

use arenapool::{OwnedBuf, Pool, SharedBuf};

fn pool(buffer_size: usize, capacity: usize) -> Pool {
    Pool::builder()
        .buffer_size(buffer_size)
        .capacity(capacity)
        .build()
        .expect("a small pool builds")
}

fn filled(pool: &Pool, bytes: &[u8]) -> OwnedBuf {
    let mut buf = pool.try_acquire_owned().expect("a free buffer");
    buf.extend_from_slice(bytes).expect("fits");
    buf
}

#[test]
fn freeze_clone_and_slice_share_one_slot_and_return_it_once() {
    let p = pool(32, 2);
    let buf = filled(&p, b"hello, world");
    let (addr, idx) = (buf.as_ptr(), buf.index());
    let all = buf.freeze();
    assert_eq!((all.as_ptr(), all.index(), all.len()), (addr, idx, 12));
    let copy = all.clone();
    let world = all.slice(7..);
    assert_eq!(world, b"world");
    assert_eq!(
        world.as_ptr(),
        addr.wrapping_add(7),
        "a slice copies nothing"
    );
    assert_eq!(p.stats().in_use, 1, "views share one buffer");
    drop((all, copy));
    assert_eq!(p.stats().in_use, 1, "the slice keeps it");
    drop(world);
    assert_eq!(p.stats().in_use, 0);
    let again: Vec<_> = std::iter::from_fn(|| p.try_acquire()).collect();
    let indices: HashSet<_> = again.iter().map(|b| b.index()).collect();
    assert_eq!(indices.len(), 2, "the slot came back once, not twice");
}

#[test]
fn split_to_freezes_frames_and_writing_goes_on_after_them() {
    let p = pool(16, 1);
    let mut buf = filled(&p, b"ab;cde;");
    let start = buf.as_ptr();
    let ab = buf.split_to(3);
    let cde = buf.split_to(4);
    assert_eq!(ab, b"ab;");
    assert_eq!(cde, b"cde;");
    assert_eq!(cde.as_ptr(), start.wrapping_add(3));
    assert!(buf.is_empty());
    assert_eq!(buf.capacity(), 16 - 7);
    buf.extend_from_slice(b"fg").unwrap();
    assert_eq!(
        buf.as_ptr(),
        start.wrapping_add(7),
        "writes go after the frames"
    );
    assert_eq!(cde, b"cde;", "frozen bytes stay as they were");
    assert!(
        buf.extend_from_slice(&[0; 8]).is_err(),
        "the region ends at the slot's end"
    );

    // While a view is alive, `clear` keeps the region; once none is, it
    // takes the whole slot back.
    buf.clear();
    assert_eq!(buf.capacity(), 9, "the frames still share the slot");
    drop(cde);
    buf.clear();
    assert_eq!(buf.capacity(), 9, "`ab` still shares the slot");
    drop(ab);
    buf.clear();
    assert_eq!(buf.capacity(), 16);
    assert_eq!(buf.as_ptr(), start);
    drop(buf);
    assert_eq!(p.stats().in_use, 0);
}

#[test]
fn split_off_freezes_the_tail_and_the_writer_ends_before_it() {
    let p = pool(16, 1);
    let mut buf = filled(&p, b"head|body");
    let body = buf.split_off(5);
    assert_eq!((&buf[..], &body[..]), (&b"head|"[..], &b"body"[..]));
    assert_eq!((buf.capacity(), buf.remaining()), (5, 0));
    assert!(
        buf.extend_from_slice(b"x").is_err(),
        "would overwrite the tail"
    );
    assert_eq!(buf.spare_mut().len(), 0);
    assert_eq!(buf.as_full_mut().len(), 5);
    let split = buf.split();
    assert_eq!(split, b"head|");
    drop(buf);
    assert_eq!(p.stats().in_use, 1);
    drop((body, split));
    assert_eq!(p.stats().in_use, 0);
}

#[test]
fn clear_takes_the_whole_slot_back_after_split_off_too() {
    let p = pool(16, 1);
    let mut buf = filled(&p, b"head|body");
    drop(buf.split_off(5));
    buf.clear();
    assert_eq!(buf.capacity(), 16, "no view is left");
    buf.extend_from_slice(b"x").unwrap();
    let front = buf.split_to(1);
    drop(buf.split_off(0));
    drop(front);
    buf.clear();
    assert_eq!(buf.capacity(), 16);
    buf.extend_from_slice(&[1; 16]).unwrap();
}

#[test]
fn views_split_and_truncate_like_bytes() {
    let p = pool(16, 1);
    let mut v = filled(&p, b"0123456789").freeze();
    let front = v.split_to(3);
    let back = v.split_off(4);
    assert_eq!(
        (&front[..], &v[..], &back[..]),
        (&b"012"[..], &b"3456"[..], &b"789"[..])
    );
    v.truncate(2);
    assert_eq!(v, b"34");
    v.truncate(10);
    assert_eq!(v.len(), 2, "truncate never lengthens");
    assert_eq!(v.slice(..), b"34");
    assert_eq!(v.slice(1..=1), b"4");
    assert!(v.slice(2..).is_empty());
}

#[test]
fn out_of_bounds_splits_and_slices_panic_and_change_nothing() {
    let p = pool(16, 1);
    let mut buf = filled(&p, b"abc");
    let r = catch_unwind(AssertUnwindSafe(|| buf.split_to(4)));
    assert!(r.is_err());
    let r = catch_unwind(AssertUnwindSafe(|| buf.split_off(4)));
    assert!(r.is_err());
    assert_eq!((buf.len(), buf.capacity()), (3, 16));
    let mut v = buf.freeze();
    #[allow(clippy::reversed_empty_ranges)]
    for bad in [
        catch_unwind(|| v.slice(2..1)),
        catch_unwind(|| v.slice(..4)),
    ] {
        assert!(bad.is_err());
    }
    assert!(catch_unwind(AssertUnwindSafe(|| v.split_to(4))).is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| v.split_off(4))).is_err());
    assert_eq!(v, b"abc");
    drop(v);
    assert_eq!(p.stats().in_use, 0, "no view was leaked by a panic");
}

#[test]
fn try_into_mut_reclaims_only_the_last_view() {
    let p = pool(16, 1);
    let mut buf = filled(&p, b"frame|rest");
    let frame = buf.split_to(6);
    // The writer still shares the slot.
    let frame = frame.try_into_mut().unwrap_err();
    drop(buf);
    let copy = frame.clone();
    let frame = frame.try_into_mut().unwrap_err();
    assert_eq!(
        frame, b"frame|",
        "a failed reclaim gives the view back as it was"
    );
    drop(copy);
    let mut buf = frame.try_into_mut().expect("the only view");
    assert_eq!(buf, b"frame|");
    assert_eq!(
        buf.capacity(),
        16,
        "from the view's start to the slot's end"
    );
    buf.extend_from_slice(b"more").unwrap();
    assert_eq!(buf, b"frame|more");
    drop(buf);
    assert_eq!(p.stats().in_use, 0);

    // A slice that starts later gets the slot from its start on, and
    // `clear` gives back the rest.
    let tail = filled(&p, b"abcdef").freeze().slice(2..4);
    let mut buf = tail.try_into_mut().unwrap();
    assert_eq!((&buf[..], buf.capacity()), (&b"cd"[..], 14));
    buf.clear();
    assert_eq!(buf.capacity(), 16);
}

/// One 16-byte buffer, cleared on release, no thread cache.
fn zeroing_pool() -> Pool {
    Pool::builder()
        .buffer_size(16)
        .capacity(1)
        .cache_size(0)
        .zero_on_release(true)
        .build()
        .unwrap()
}

/// The one buffer of `p` is back, and every byte of it is zero.
fn assert_cleared(p: &Pool) {
    let again = p.try_acquire().expect("the buffer is back");
    let bytes = again.as_full();
    assert!(
        bytes.iter().all(|&b| b == 0),
        "written bytes survived: {bytes:?}"
    );
}

#[test]
fn zero_on_release_clears_once_the_last_view_drops() {
    let p = zeroing_pool();
    let mut buf = filled(&p, b"secret|");
    let front = buf.split_to(7);
    buf.extend_from_slice(b"more").unwrap();
    let tail = buf.split_off(2);
    buf.as_full_mut()[0] = 0xff;
    drop(buf);
    drop(front);
    assert_eq!(tail, b"re", "a view still sees its bytes");
    drop(tail);
    assert_cleared(&p);
}

#[test]
fn zero_on_release_clears_what_a_reclaimed_view_held() {
    let p = zeroing_pool();
    let view = filled(&p, b"0123456789").freeze().slice(8..);
    let mut buf = view.try_into_mut().unwrap();
    buf.clear();
    drop(buf);
    assert_cleared(&p);
}

#[test]
fn views_of_a_grown_segment_count_in_their_own_slot() {
    let p = Pool::builder()
        .buffer_size(8)
        .capacity(1)
        .grow_to(4)
        .build()
        .unwrap();
    let bufs: Vec<_> = (0..4).map(|i| filled(&p, &[i; 4])).collect();
    let views: Vec<SharedBuf> = bufs.into_iter().map(OwnedBuf::freeze).collect();
    let clones: Vec<_> = views.iter().map(|v| v.slice(1..)).collect();
    drop(views);
    assert_eq!(p.stats().in_use, 4);
    for (i, c) in clones.iter().enumerate() {
        assert_eq!(c, &[i as u8; 3]);
    }
    drop(clones);
    assert_eq!(p.stats().in_use, 0);
}

#[test]
fn views_outlive_the_pool_handle_and_free_it_last() {
    let p = pool(16, 2);
    let v = filled(&p, b"keep").freeze();
    drop(p);
    let w = v.clone();
    assert_eq!(w.pool().stats().in_use, 1);
    drop(v);
    assert_eq!(w, b"keep");
    drop(w); // frees the pool; Miri and the sanitizers check it
}

#[test]
fn clones_travel_across_threads_and_the_slot_returns_once() {
    let p = pool(64, 2);
    let v = filled(&p, b"shared across threads").freeze();
    std::thread::scope(|s| {
        for i in 0..4 {
            let mine = v.slice(i..);
            s.spawn(move || {
                let again = mine.clone();
                assert_eq!(again.len(), 21 - i);
                assert!(again.ends_with(b"threads"));
            });
        }
    });
    drop(v);
    assert_eq!(p.stats().in_use, 0);
}

#[test]
fn reading_consumes_the_front_and_clear_restores_the_capacity() {
    let p = pool(8, 2);
    let mut owned = filled(&p, b"abcdef");
    let mut two = [0; 2];
    owned.read_exact(&mut two).unwrap();
    assert_eq!(
        (&two, &owned[..], owned.capacity()),
        (b"ab", &b"cdef"[..], 6)
    );
    let mut rest = Vec::new();
    owned.read_to_end(&mut rest).unwrap();
    assert_eq!((&rest[..], owned.len()), (&b"cdef"[..], 0));
    owned.clear();
    assert_eq!(owned.capacity(), 8);

    let mut borrowed = p.try_acquire().unwrap();
    borrowed.extend_from_slice(b"xyz").unwrap();
    let mut one = [0; 1];
    assert_eq!(borrowed.read(&mut one).unwrap(), 1);
    assert_eq!((one, &borrowed[..]), ([b'x'], &b"yz"[..]));
    borrowed.clear();
    assert_eq!(borrowed.capacity(), 8);
}

#[test]
fn views_compare_hash_and_debug_like_bytes() {
    let p = pool(16, 3);
    let a = filled(&p, b"same").freeze();
    let b = filled(&p, b"same").freeze();
    assert_eq!(a, b, "by content, whatever the slot");
    assert!(a < filled(&p, b"samf").freeze());
    let set: HashSet<SharedBuf> = [a.clone(), b].into_iter().collect();
    assert_eq!(set.len(), 1);
    assert!(
        set.contains(&b"same"[..]),
        "a set of views is searched by slice"
    );
    let debug = format!("{a:?}");
    assert!(
        debug.contains("len: 4") && !debug.contains("same"),
        "{debug}"
    );
}

#[test]
fn views_are_send_sync_and_static() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<SharedBuf>();
}
