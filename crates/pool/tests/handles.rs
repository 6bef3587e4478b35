//! Unit-level tests of every public method of both buffer handles: the
//! borrowed [`PoolBuf`] (from `Pool::try_acquire` / `acquire_blocking`) and the
//! owned [`OwnedBuf`] (from `Pool::try_acquire_owned` /
//! `acquire_owned_blocking`).
//!
//! The method tests are written once, in `handle_tests!`, and generated for
//! each handle type: `borrowed::*` and `owned::*`. Tests that only make sense
//! for one type live in `borrowed_only` and `owned_only`: a `Buf` crossing
//! scoped threads; an `OwnedBuf` outliving every user-held `Pool`,
//! moving into another thread, and freeing the pool when it is the last
//! reference.

use std::io::{self, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use arenapool::{CapacityError, Exhausted, OwnedBuf, Pool, PoolBuf};

const SIZE: usize = 16;

fn build_pool(capacity: usize) -> Pool {
    Pool::builder()
        .buffer_size(SIZE)
        .capacity(capacity)
        .build()
        .expect("a small pool builds")
}

fn build_zeroing_pool(on: bool) -> Pool {
    Pool::builder()
        .buffer_size(SIZE)
        .capacity(1)
        .zero_on_release(on)
        .build()
        .expect("a small pool builds")
}

/// Generates `mod $name` with the method tests shared by both handle types.
///
/// - `pool`: the type the tests hold the pool as, and the function that
///   turns a freshly built `Pool` into it.
/// - `handle`: the handle type that `try_acquire` and `acquire_blocking` give.
/// - `try_acquire` / `acquire_blocking`: how to get a handle from `&pool`.
/// - `same_pool`: compares `buf.pool()` with `&pool` by address.
/// - `debug_name`: the type name the handle's `Debug` output must show.
///
/// The module also defines `pool(capacity)` and `take(&pool)` for the
/// type-specific test modules.
macro_rules! handle_tests {
    (
        mod $name:ident {
            pool: $Pool:ty = $wrap:path,
            handle: $Handle:ty,
            try_acquire: |$p:ident| $try_acquire:expr,
            acquire_blocking: |$tp:ident, $timeout:ident| $acquire_blocking:expr,
            same_pool: $same_pool:path,
            debug_name: $debug_name:literal $(,)?
        }
    ) => {
        mod $name {
            use super::*;

            pub(super) fn pool(capacity: usize) -> $Pool {
                $wrap(build_pool(capacity))
            }

            fn zeroing_pool(on: bool) -> $Pool {
                $wrap(build_zeroing_pool(on))
            }

            fn try_acquire($p: &$Pool) -> Option<$Handle> {
                $try_acquire
            }

            fn acquire_blocking($tp: &$Pool, $timeout: Duration) -> Result<$Handle, Exhausted> {
                $acquire_blocking
            }

            pub(super) fn take(pool: &$Pool) -> $Handle {
                try_acquire(pool).expect("the pool has a free buffer")
            }

            #[test]
            fn fresh_buffer_is_empty_with_full_capacity() {
                let pool = pool(2);
                let buf = take(&pool);
                assert_eq!(buf.len(), 0);
                assert!(buf.is_empty());
                assert_eq!(buf.capacity(), SIZE);
                assert_eq!(buf.capacity(), pool.buffer_size());
                assert_eq!(buf.remaining(), SIZE);
                assert_eq!(&buf[..], b"");
                assert_eq!(buf.as_full().len(), SIZE);
                assert!(
                    buf.as_full().iter().all(|&b| b == 0),
                    "a new arena is zeroed"
                );
            }

            #[test]
            fn len_capacity_remaining_track_writes() {
                let pool = pool(1);
                let mut buf = take(&pool);
                buf.extend_from_slice(b"abc").unwrap();
                assert_eq!((buf.len(), buf.capacity(), buf.remaining()), (3, SIZE, 13));
                assert!(!buf.is_empty());
                buf.extend_from_slice(b"defgh").unwrap();
                assert_eq!((buf.len(), buf.capacity(), buf.remaining()), (8, SIZE, 8));
                assert_eq!(&buf[..], b"abcdefgh");
                buf.write_all(b"ij").unwrap();
                assert_eq!((buf.len(), buf.remaining()), (10, 6));
                buf.set_len(SIZE).unwrap();
                assert_eq!((buf.len(), buf.remaining()), (SIZE, 0));
            }

            #[test]
            fn extend_exactly_fills_then_overflow_is_an_error_and_writes_nothing() {
                let pool = pool(1);
                let mut buf = take(&pool);
                buf.extend_from_slice(b"0123456789").unwrap();
                // Too long by one from a partly filled buffer: nothing is written.
                assert_eq!(
                    buf.extend_from_slice(b"ABCDEFG"),
                    Err(CapacityError {
                        requested: 17,
                        capacity: SIZE
                    })
                );
                assert_eq!(buf.len(), 10);
                assert_eq!(&buf[..], b"0123456789");
                assert!(
                    buf.as_full()[10..].iter().all(|&b| b == 0),
                    "a failed extend must not copy a prefix into the tail"
                );

                // Exactly the remaining room fits.
                buf.extend_from_slice(b"ABCDEF").unwrap();
                assert_eq!(buf.len(), SIZE);
                assert_eq!(buf.remaining(), 0);
                assert_eq!(&buf[..], b"0123456789ABCDEF");

                // Full: one more byte is an error, an empty slice is fine.
                assert_eq!(
                    buf.extend_from_slice(b"x"),
                    Err(CapacityError {
                        requested: SIZE + 1,
                        capacity: SIZE
                    })
                );
                buf.extend_from_slice(b"").unwrap();
                assert_eq!(&buf[..], b"0123456789ABCDEF");
            }

            #[test]
            fn extend_longer_than_capacity_on_empty_buffer() {
                let pool = pool(1);
                let mut buf = take(&pool);
                let err = buf.extend_from_slice(&[7u8; SIZE * 3]).unwrap_err();
                assert_eq!(err.requested, SIZE * 3);
                assert_eq!(err.capacity, SIZE);
                assert!(buf.is_empty());
                assert!(buf.as_full().iter().all(|&b| b == 0));
            }

            #[test]
            fn set_len_within_and_beyond_capacity() {
                let pool = pool(1);
                let mut buf = take(&pool);
                buf.extend_from_slice(b"hello").unwrap();
                buf.set_len(2).unwrap();
                assert_eq!(&buf[..], b"he");
                // Growing the length again exposes the bytes already there.
                buf.set_len(5).unwrap();
                assert_eq!(&buf[..], b"hello");
                buf.set_len(SIZE).unwrap();
                assert_eq!(buf.len(), SIZE);
                assert_eq!(&buf[..5], b"hello");
                buf.set_len(0).unwrap();
                assert!(buf.is_empty());

                buf.set_len(3).unwrap();
                assert_eq!(
                    buf.set_len(SIZE + 1),
                    Err(CapacityError {
                        requested: SIZE + 1,
                        capacity: SIZE
                    })
                );
                assert_eq!(buf.len(), 3, "a failed set_len leaves the length alone");
                assert_eq!(
                    buf.set_len(usize::MAX).unwrap_err(),
                    CapacityError {
                        requested: usize::MAX,
                        capacity: SIZE
                    }
                );
                assert_eq!(buf.len(), 3);
            }

            #[test]
            fn truncate_shortens_and_never_grows() {
                let pool = pool(1);
                let mut buf = take(&pool);
                buf.extend_from_slice(b"abcdef").unwrap();
                buf.truncate(10);
                assert_eq!(
                    &buf[..],
                    b"abcdef",
                    "truncate to a longer length is a no-op"
                );
                buf.truncate(6);
                assert_eq!(&buf[..], b"abcdef");
                buf.truncate(2);
                assert_eq!(&buf[..], b"ab");
                assert_eq!(buf.remaining(), SIZE - 2);
                assert_eq!(&buf.as_full()[..6], b"abcdef", "the bytes stay in the slot");
                buf.extend_from_slice(b"XY").unwrap();
                assert_eq!(&buf[..], b"abXY");
                buf.truncate(0);
                assert!(buf.is_empty());
            }

            #[test]
            fn clear_empties_but_keeps_bytes() {
                let pool = pool(1);
                let mut buf = take(&pool);
                buf.extend_from_slice(b"abcdef").unwrap();
                buf.clear();
                assert_eq!(buf.len(), 0);
                assert!(buf.is_empty());
                assert_eq!(buf.remaining(), SIZE);
                assert_eq!(&buf[..], b"");
                assert_eq!(&buf.as_full()[..6], b"abcdef");
                buf.extend_from_slice(b"Z").unwrap();
                assert_eq!(&buf[..], b"Z");
            }

            #[test]
            fn as_full_mut_writes_become_visible_after_set_len() {
                let pool = pool(1);
                let mut buf = take(&pool);
                let full = buf.as_full_mut();
                assert_eq!(full.len(), SIZE);
                full[..4].copy_from_slice(b"read");
                full[SIZE - 1] = b'!';
                assert!(buf.is_empty(), "as_full_mut does not change the length");
                assert_eq!(&buf[..], b"");
                assert_eq!(&buf.as_full()[..4], b"read");
                buf.set_len(4).unwrap();
                assert_eq!(&buf[..], b"read");
                buf.set_len(SIZE).unwrap();
                assert_eq!(buf[SIZE - 1], b'!');
            }

            #[test]
            fn spare_mut_is_the_unfilled_tail() {
                let pool = pool(1);
                let mut buf = take(&pool);
                buf.extend_from_slice(b"head").unwrap();
                let full_tail = buf.as_full()[4..].as_ptr();
                let spare = buf.spare_mut();
                assert_eq!(spare.len(), SIZE - 4);
                assert_eq!(spare.as_ptr(), full_tail, "spare_mut starts at len()");
                spare[..4].copy_from_slice(b"tail");
                assert_eq!(buf.len(), 4, "spare_mut does not change the length");
                buf.set_len(8).unwrap();
                assert_eq!(&buf[..], b"headtail");

                buf.set_len(SIZE).unwrap();
                assert!(buf.spare_mut().is_empty());
                buf.clear();
                assert_eq!(buf.spare_mut().len(), SIZE);
            }

            #[test]
            fn io_write_returns_partial_counts_at_the_end() {
                let pool = pool(1);
                let mut buf = take(&pool);
                assert_eq!(buf.write(b"0123456789").unwrap(), 10);
                assert_eq!(buf.write(b"abcdefghij").unwrap(), 6, "only 6 bytes fit");
                assert_eq!(&buf[..], b"0123456789abcdef");
                assert_eq!(buf.write(b"more").unwrap(), 0, "a full buffer takes 0");
                assert_eq!(buf.write(b"").unwrap(), 0);
                buf.flush().unwrap();
                assert_eq!(buf.len(), SIZE);
            }

            #[test]
            fn io_write_all_on_full_buffer_is_write_zero() {
                let pool = pool(1);
                let mut buf = take(&pool);
                buf.write_all(&[1u8; SIZE]).unwrap();
                let err = buf.write_all(b"x").unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::WriteZero);
                assert_eq!(buf.len(), SIZE);
                assert_eq!(&buf[..], &[1u8; SIZE]);

                // A write_all that does not fit fills what it can, then fails.
                buf.clear();
                buf.write_all(b"0123456789").unwrap();
                let err = buf.write_all(b"abcdefghij").unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::WriteZero);
                assert_eq!(&buf[..], b"0123456789abcdef");
            }

            #[test]
            fn write_macro_formats_into_the_buffer() {
                let pool = pool(1);
                let mut buf = take(&pool);
                let (name, n) = ("id", 7);
                write!(buf, "{name}-{n:03}").unwrap();
                assert_eq!(&buf[..], b"id-007");
                write!(buf, "{:x}", 255).unwrap();
                assert_eq!(&buf[..], b"id-007ff");
                // Formatting past the end reports an error instead of panicking.
                let long = "this does not fit";
                let err = write!(buf, "{long}").unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::WriteZero);
                assert_eq!(buf.len(), SIZE);
                assert_eq!(&buf[..], b"id-007ffthis doe");
            }

            #[test]
            fn deref_and_as_ref_show_only_the_filled_part() {
                let pool = pool(1);
                let mut buf = take(&pool);
                buf.as_full_mut().fill(b'#');
                buf.set_len(0).unwrap();
                buf.extend_from_slice(b"abc").unwrap();

                let by_deref: &[u8] = &buf;
                assert_eq!(by_deref, b"abc");
                assert_eq!(buf.as_ref(), b"abc");
                assert_eq!(AsRef::<[u8]>::as_ref(&buf).len(), 3);
                assert_eq!(buf.iter().count(), 3);
                assert_eq!(buf.to_vec(), b"abc".to_vec());
                assert_eq!(buf.first(), Some(&b'a'));
                assert_eq!(buf.last(), Some(&b'c'));
                assert!(buf.get(3).is_none(), "index len() is out of bounds");

                // Mutable views are limited to the filled part too.
                buf.make_ascii_uppercase();
                assert_eq!(&buf[..], b"ABC");
                buf[0] = b'x';
                assert_eq!(&buf[..], b"xBC");
                let m: &mut [u8] = buf.as_mut();
                assert_eq!(m.len(), 3);
                m.copy_from_slice(b"123");
                assert_eq!(&buf[..], b"123");
                assert_eq!(&buf.as_full()[3..], &[b'#'; SIZE - 3], "tail untouched");
            }

            #[test]
            fn index_out_of_filled_range_panics() {
                let pool = pool(1);
                let mut buf = take(&pool);
                buf.extend_from_slice(b"ab").unwrap();
                let r = catch_unwind(AssertUnwindSafe(|| buf[2]));
                assert!(r.is_err(), "Deref must not expose bytes past len()");
            }

            #[test]
            fn index_is_stable_distinct_and_in_range() {
                let pool = pool(4);
                let max = pool.stats().max_capacity;
                let mut bufs: Vec<$Handle> = (0..4).map(|_| take(&pool)).collect();
                let mut idx: Vec<u32> = bufs.iter().map(<$Handle>::index).collect();
                for &i in &idx {
                    assert!((i as usize) < max, "index {i} out of 0..{max}");
                }
                // Writing does not move a buffer.
                for (b, &i) in bufs.iter_mut().zip(&idx) {
                    b.extend_from_slice(b"data").unwrap();
                    b.as_full_mut()[0] = 1;
                    b.clear();
                    assert_eq!(b.index(), i);
                }
                idx.sort_unstable();
                idx.dedup();
                assert_eq!(idx.len(), 4, "each live buffer has its own index");

                // Distinct slots are distinct memory.
                let mut ptrs: Vec<usize> = bufs
                    .iter()
                    .map(|b| b.as_full().as_ptr() as usize)
                    .collect();
                ptrs.sort_unstable();
                ptrs.dedup();
                assert_eq!(ptrs.len(), 4);
            }

            #[test]
            fn index_and_memory_of_the_single_slot_are_reused() {
                let pool = pool(1);
                let buf = take(&pool);
                let (i, p) = (buf.index(), buf.as_full().as_ptr());
                assert!((i as usize) < pool.stats().max_capacity);
                drop(buf);
                let again = take(&pool);
                assert_eq!(again.index(), i);
                assert_eq!(again.as_full().as_ptr(), p);
            }

            #[test]
            fn pool_returns_the_owning_pool() {
                let a = pool(1);
                let b = pool(1);
                let buf = take(&a);
                assert!($same_pool(buf.pool(), &a));
                assert!(!$same_pool(buf.pool(), &b));
                assert_eq!(buf.pool().stats().in_use, 1);
            }

            #[test]
            fn debug_shows_len_and_capacity_but_not_contents() {
                let pool = pool(1);
                let mut buf = take(&pool);
                buf.extend_from_slice(b"SECRETSECRET").unwrap();
                let secret_bytes = format!("{:?}", &b"SECRET"[..]); // "[83, 69, 67, ..."
                let secret_bytes = secret_bytes.trim_start_matches('[').trim_end_matches(']');
                for s in [format!("{buf:?}"), format!("{buf:#?}")] {
                    assert!(s.starts_with(concat!($debug_name, " {")), "{s}");
                    assert!(s.contains("len"), "{s}");
                    assert!(s.contains("12"), "{s}");
                    assert!(s.contains("capacity"), "{s}");
                    assert!(s.contains(&SIZE.to_string()), "{s}");
                    assert!(!s.contains("SECRET"), "Debug leaks the contents: {s}");
                    assert!(!s.contains("secret"), "{s}");
                    assert!(!s.contains(secret_bytes), "Debug leaks the bytes: {s}");
                    assert!(!s.contains("83"), "Debug leaks a byte value: {s}");
                }
                let compact = format!("{buf:?}");
                assert!(compact.contains("len: 12"), "{compact}");
                assert!(compact.contains(&format!("capacity: {SIZE}")), "{compact}");
            }

            #[test]
            fn drop_returns_the_buffer() {
                let pool = pool(2);
                assert_eq!(pool.stats().in_use, 0);
                let a = take(&pool);
                let b = take(&pool);
                assert_eq!(pool.stats().in_use, 2);
                assert!(try_acquire(&pool).is_none());
                drop(a);
                assert_eq!(pool.stats().in_use, 1);
                let c = take(&pool);
                drop((b, c));
                assert_eq!(pool.stats().in_use, 0);
            }

            #[test]
            fn drop_during_panic_unwind_returns_the_buffer() {
                let pool = pool(2);
                let r = catch_unwind(AssertUnwindSafe(|| {
                    let mut a = take(&pool);
                    let _b = take(&pool);
                    a.extend_from_slice(b"partial").unwrap();
                    assert_eq!(pool.stats().in_use, 2);
                    panic!("unwinding with two buffers held");
                }));
                assert!(r.is_err());
                assert_eq!(pool.stats().in_use, 0);
                // Both slots are usable again.
                let a = take(&pool);
                let b = take(&pool);
                assert_ne!(a.index(), b.index());
            }

            #[test]
            fn zero_on_release_clears_writes_through_as_full_mut() {
                let pool = zeroing_pool(true);
                let mut buf = take(&pool);
                let i = buf.index();
                buf.as_full_mut().fill(0xAB);
                // Only part is marked filled, but the whole slot was writable.
                buf.set_len(1).unwrap();
                drop(buf);
                let buf = take(&pool);
                assert_eq!(buf.index(), i, "capacity-1 pool hands back the same slot");
                assert!(buf.is_empty());
                assert_eq!(buf.as_full(), &[0u8; SIZE][..]);
            }

            #[test]
            fn zero_on_release_clears_writes_through_spare_mut() {
                let pool = zeroing_pool(true);
                let mut buf = take(&pool);
                buf.spare_mut().fill(0x5A);
                drop(buf);
                assert_eq!(take(&pool).as_full(), &[0u8; SIZE][..]);
            }

            #[test]
            fn zero_on_release_clears_extend_write_and_set_len() {
                let pool = zeroing_pool(true);
                let mut buf = take(&pool);
                buf.extend_from_slice(b"SECRET").unwrap();
                write!(buf, "{}", 123_456).unwrap();
                drop(buf);
                assert_eq!(take(&pool).as_full(), &[0u8; SIZE][..]);

                // Written while filled, then hidden again by clear/truncate: still zeroed.
                let mut buf = take(&pool);
                buf.extend_from_slice(b"0123456789").unwrap();
                buf.truncate(2);
                buf.clear();
                drop(buf);
                assert_eq!(take(&pool).as_full(), &[0u8; SIZE][..]);

                // Written through DerefMut after set_len.
                let mut buf = take(&pool);
                buf.set_len(SIZE).unwrap();
                buf.fill(0xFF);
                buf.set_len(0).unwrap();
                drop(buf);
                assert_eq!(take(&pool).as_full(), &[0u8; SIZE][..]);
            }

            #[test]
            fn zero_on_release_during_unwind() {
                let pool = zeroing_pool(true);
                let r = catch_unwind(AssertUnwindSafe(|| {
                    let mut buf = take(&pool);
                    buf.as_full_mut().fill(9);
                    panic!("drop while unwinding");
                }));
                assert!(r.is_err());
                assert_eq!(take(&pool).as_full(), &[0u8; SIZE][..]);
            }

            #[test]
            fn without_zero_on_release_old_bytes_stay() {
                let pool = zeroing_pool(false);
                let mut buf = take(&pool);
                let i = buf.index();
                buf.extend_from_slice(b"old bytes").unwrap();
                buf.as_full_mut()[SIZE - 1] = b'$';
                drop(buf);
                let buf = take(&pool);
                assert_eq!(buf.index(), i);
                assert!(buf.is_empty(), "a re-acquired buffer starts empty");
                assert_eq!(&buf.as_full()[..9], b"old bytes");
                assert_eq!(buf.as_full()[SIZE - 1], b'$');
            }

            #[test]
            fn handles_from_acquire_blocking_behave_the_same() {
                let pool = pool(1);
                let mut buf =
                    acquire_blocking(&pool, Duration::from_secs(5)).expect("a free buffer is there");
                assert_eq!((buf.len(), buf.capacity()), (0, SIZE));
                buf.extend_from_slice(b"timeout").unwrap();
                assert_eq!(&buf[..], b"timeout");
                assert_eq!(pool.stats().in_use, 1);
                drop(buf);
                assert_eq!(pool.stats().in_use, 0);
            }
        }
    };
}

handle_tests! {
    mod borrowed {
        pool: Pool = std::convert::identity,
        handle: PoolBuf<'_>,
        try_acquire: |pool| pool.try_acquire(),
        acquire_blocking: |pool, timeout| pool.acquire_blocking(timeout),
        same_pool: std::ptr::eq,
        debug_name: "PoolBuf",
    }
}

handle_tests! {
    mod owned {
        pool: Pool = std::convert::identity,
        handle: OwnedBuf,
        try_acquire: |pool| pool.try_acquire_owned(),
        acquire_blocking: |pool, timeout| pool.acquire_owned_blocking(timeout),
        same_pool: Pool::ptr_eq,
        debug_name: "OwnedBuf",
    }
}

/// Tests that only make sense for the borrowed `Buf`: it borrows the pool, so
/// it crosses threads only through scoped threads.
mod borrowed_only {
    use super::borrowed::{pool, take};

    #[test]
    fn buf_can_cross_scoped_threads() {
        let pool = pool(2);
        let mut buf = take(&pool);
        buf.extend_from_slice(b"main").unwrap();
        let buf = std::thread::scope(|s| {
            s.spawn(move || {
                buf.extend_from_slice(b"+thread").unwrap();
                buf
            })
            .join()
            .unwrap()
        });
        assert_eq!(&buf[..], b"main+thread");
        std::thread::scope(|s| {
            s.spawn(move || drop(buf));
        });
        assert_eq!(pool.stats().in_use, 0);
    }
}

/// What only an owned handle can do: outlive every `Pool` handle, move
/// into another thread, and hand out more buffers through its own copy of
/// the handle. (That the memory is freed exactly when the last of them
/// goes is measured with a counting allocator in `pool_lifetime.rs`.)
mod owned_only {
    use super::owned::{pool, take};
    use super::*;

    #[test]
    fn outlives_every_handle() {
        let pool = pool(2);
        let clone = pool.clone();
        let mut buf = take(&pool);
        assert!(Pool::ptr_eq(buf.pool(), &pool));
        drop((pool, clone));

        // The buffer alone keeps the pool's memory, fully usable.
        buf.extend_from_slice(b"still here").unwrap();
        write!(buf, "!").unwrap();
        assert_eq!(&buf[..], b"still here!");
        assert_eq!(buf.pool().stats().in_use, 1);
        assert_eq!(buf.pool().buffer_size(), SIZE);

        // It can even hand out more buffers through its copy of the handle.
        let other = buf.pool().try_acquire_owned().expect("one slot left");
        assert_eq!(buf.pool().stats().in_use, 2);
        drop(other);
        assert_eq!(buf.pool().stats().in_use, 1);
        drop(buf);
    }

    #[test]
    fn a_clone_taken_from_an_owned_buffer_reopens_the_pool() {
        let pool = pool(2);
        let buf = take(&pool);
        drop(pool);
        let reopened = buf.pool().clone();
        drop(buf);
        // The reopened handle works like any other, caches off or not.
        let a = reopened.try_acquire_owned().expect("a free buffer");
        let b = reopened.try_acquire().expect("a free buffer");
        assert!(reopened.try_acquire().is_none());
        assert_eq!(reopened.stats().in_use, 2);
        drop((a, b));
        assert_eq!(reopened.stats().in_use, 0);
    }

    #[test]
    fn clones_are_the_same_pool() {
        let pool = pool(3);
        let clones: Vec<Pool> = (0..3).map(|_| pool.clone()).collect();
        let bufs: Vec<OwnedBuf> = clones.iter().map(take).collect();
        for b in &bufs {
            assert!(Pool::ptr_eq(b.pool(), &pool));
        }
        assert_eq!(pool.stats().in_use, 3);
        assert!(clones[0].try_acquire().is_none());
        drop(bufs);
        assert_eq!(clones[2].stats().in_use, 0);
    }

    #[test]
    fn failed_acquire_leaves_the_pool_usable() {
        let pool = pool(1);
        let held = take(&pool);
        assert!(pool.try_acquire_owned().is_none());
        assert_eq!(pool.stats().failed_acquires, 1);
        drop(held);
        assert!(pool.try_acquire_owned().is_some());
    }

    #[test]
    fn moves_into_another_thread_and_back() {
        let pool = pool(2);
        let mut buf = take(&pool);
        let i = buf.index();
        buf.extend_from_slice(b"main").unwrap();
        let buf = std::thread::spawn(move || {
            buf.extend_from_slice(b"+thread").unwrap();
            buf
        })
        .join()
        .unwrap();
        assert_eq!(&buf[..], b"main+thread");
        assert_eq!(buf.index(), i);
        assert_eq!(pool.stats().in_use, 1);
    }

    #[test]
    fn dropped_in_another_thread_returns_the_buffer() {
        let pool = pool(1);
        let mut buf = take(&pool);
        buf.extend_from_slice(b"bye").unwrap();
        std::thread::spawn(move || {
            assert_eq!(&buf[..], b"bye");
            drop(buf);
        })
        .join()
        .unwrap();
        assert_eq!(pool.stats().in_use, 0);
        assert!(pool.try_acquire_owned().is_some());
    }

    #[test]
    fn last_reference_can_die_in_another_thread() {
        let pool = pool(1);
        let mut buf = take(&pool);
        drop(pool);
        let t = std::thread::spawn(move || {
            buf.extend_from_slice(b"orphan").unwrap();
            assert_eq!(buf.pool().stats().in_use, 1);
            drop(buf);
        });
        t.join().unwrap();
    }

    #[test]
    fn panic_in_another_thread_returns_the_buffer() {
        let pool = pool(1);
        let buf = take(&pool);
        let r = std::thread::spawn(move || {
            let _buf = buf;
            panic!("thread dies holding an OwnedBuf");
        })
        .join();
        assert!(r.is_err());
        assert_eq!(pool.stats().in_use, 0);
    }
}
