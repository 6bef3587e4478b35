//! The standard traits of both handles ([`PoolBuf`] and [`OwnedBuf`]):
//! comparison and hashing by content, `Borrow<[u8]>`, `Extend` and
//! `fmt::Write`. Written once in `trait_tests!` and generated per type.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};

use arenapool::{OwnedBuf, Pool, PoolBuf};

fn pool() -> Pool {
    Pool::builder()
        .buffer_size(8)
        .capacity(4)
        .build()
        .expect("a small pool builds")
}

macro_rules! trait_tests {
    (mod $name:ident { $($Handle:tt)* } |$p:ident| $acquire:expr) => {
        mod $name {
            use super::*;

            /// The handle, with the lifetime of the pool it borrows (if it
            /// borrows it).
            type Handle<'p> = $($Handle)*;

            fn take($p: &Pool) -> Handle<'_> {
                $acquire
            }

            fn filled<'p>($p: &'p Pool, bytes: &[u8]) -> Handle<'p> {
                let mut buf = take($p);
                buf.extend_from_slice(bytes).unwrap();
                buf
            }

            #[test]
            fn compares_by_content_with_slices_arrays_vecs_and_strings() {
                let p = pool();
                let buf = filled(&p, b"abc");
                assert_eq!(buf, b"abc");
                assert_eq!(buf, *b"abc");
                assert_eq!(buf, &b"abc"[..]);
                assert_eq!(buf, b"abc".to_vec());
                assert_eq!(buf, "abc");
                assert_eq!(b"abc"[..], buf);
                assert_eq!(b"abc".to_vec(), buf);
                assert_ne!(buf, b"abd");
                assert_ne!(buf, b"ab");
                assert_ne!(buf, "abcd");
            }

            #[test]
            fn two_buffers_compare_and_order_by_filled_bytes_only() {
                let p = pool();
                let a = filled(&p, b"abc");
                let mut b = filled(&p, b"abcdef");
                assert_ne!(a.index(), b.index());
                assert_ne!(a, b);
                assert!(a < b);
                b.truncate(3);
                assert_eq!(a, b, "the bytes past len do not count");
                assert_eq!(a.cmp(&b), std::cmp::Ordering::Equal);
                let c = filled(&p, b"b");
                let order: Vec<_> = [&c, &a]
                    .into_iter()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                assert_eq!(order, [&a, &c]);
            }

            #[test]
            fn a_map_keyed_by_buffers_is_searched_with_a_slice() {
                let p = pool();
                let mut map = HashMap::new();
                map.insert(filled(&p, b"key"), 1);
                map.insert(filled(&p, b"other"), 2);
                assert_eq!(map.get(&b"key"[..]), Some(&1));
                assert_eq!(map.get(&b"other"[..]), Some(&2));
                assert_eq!(map.get(&b"ke"[..]), None);
                let found: &[u8] = std::borrow::Borrow::borrow(map.keys().next().unwrap());
                assert!(found == b"key" || found == b"other");
            }

            #[test]
            fn extend_appends_bytes_and_byte_references() {
                let p = pool();
                let mut buf = take(&p);
                buf.extend([b'a', b'b']);
                buf.extend(b"cd".iter());
                assert_eq!(buf, b"abcd");
                buf.extend(std::iter::empty::<u8>());
                buf.extend(*b"efgh");
                assert_eq!((buf.len(), buf.remaining()), (8, 0));
                buf.extend(std::iter::empty::<u8>());
                assert_eq!(buf, b"abcdefgh", "an empty extend of a full buffer is fine");
            }

            #[test]
            fn extend_past_the_capacity_panics_and_keeps_what_fit() {
                let p = pool();
                let mut buf = filled(&p, b"abcdef");
                let err = catch_unwind(AssertUnwindSafe(|| buf.extend(*b"xyz"))).unwrap_err();
                let msg = err.downcast_ref::<String>().unwrap();
                assert!(msg.contains("capacity 8"), "{msg}");
                assert_eq!(buf, b"abcdefxy");
                drop(buf);
                assert_eq!(p.stats().in_use, 0, "the buffer still goes back");
            }

            #[test]
            fn write_formats_into_the_buffer_and_fails_when_full() {
                let p = pool();
                let mut buf = take(&p);
                write!(buf, "{}-{}", 12, "ab").unwrap();
                assert_eq!(buf, "12-ab");
                assert!(write!(buf, "long").is_err(), "4 bytes do not fit in 3");
                assert_eq!(buf, "12-ab", "the piece that did not fit was not written");
                write!(buf, "xyz").unwrap();
                assert_eq!(buf, "12-abxyz");
            }
        }
    };
}

trait_tests!(mod borrowed { PoolBuf<'p> } |p| p.try_acquire().unwrap());
trait_tests!(mod owned { OwnedBuf } |p| p.try_acquire_owned().unwrap());
