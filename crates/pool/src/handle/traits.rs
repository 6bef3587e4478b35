//! The standard traits of a byte buffer: comparison and hashing by content
//! (as `Vec<u8>`, `bytes::BytesMut` and `Bytes` do) and `Borrow<[u8]>` for
//! all three handle types, and `BorrowMut`, `Extend` and `fmt::Write` for
//! the two writable ones. Written once by macros, like the methods in the
//! parent module.

use std::borrow::{Borrow, BorrowMut};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use super::{OwnedBuf, PoolBuf, SharedBuf};

macro_rules! content_traits {
    ($ty:ty) => {
        /// By content: two buffers are equal when their filled bytes are,
        /// whichever slots or pools they are in.
        impl PartialEq for $ty {
            #[inline]
            fn eq(&self, other: &Self) -> bool {
                **self == **other
            }
        }

        impl Eq for $ty {}

        /// By content, as `[u8]` orders.
        impl PartialOrd for $ty {
            #[inline]
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }

        impl Ord for $ty {
            #[inline]
            fn cmp(&self, other: &Self) -> Ordering {
                (**self).cmp(&**other)
            }
        }

        /// Hashes the filled bytes exactly as `[u8]` does, so that a map
        /// keyed by buffers can be searched with a `&[u8]` ([`Borrow`]).
        impl Hash for $ty {
            #[inline]
            fn hash<H: Hasher>(&self, state: &mut H) {
                (**self).hash(state);
            }
        }

        impl PartialEq<[u8]> for $ty {
            #[inline]
            fn eq(&self, other: &[u8]) -> bool {
                **self == *other
            }
        }

        impl<const N: usize> PartialEq<[u8; N]> for $ty {
            #[inline]
            fn eq(&self, other: &[u8; N]) -> bool {
                **self == other[..]
            }
        }

        impl PartialEq<Vec<u8>> for $ty {
            #[inline]
            fn eq(&self, other: &Vec<u8>) -> bool {
                **self == other[..]
            }
        }

        impl PartialEq<str> for $ty {
            #[inline]
            fn eq(&self, other: &str) -> bool {
                **self == *other.as_bytes()
            }
        }

        /// So that `buf == b"abc"` and `assert_eq!(buf, b"abc")` work.
        impl<T: ?Sized> PartialEq<&T> for $ty
        where
            Self: PartialEq<T>,
        {
            #[inline]
            fn eq(&self, other: &&T) -> bool {
                *self == **other
            }
        }

        impl PartialEq<$ty> for [u8] {
            #[inline]
            fn eq(&self, other: &$ty) -> bool {
                *other == *self
            }
        }

        impl PartialEq<$ty> for Vec<u8> {
            #[inline]
            fn eq(&self, other: &$ty) -> bool {
                *other == *self
            }
        }

        impl Borrow<[u8]> for $ty {
            #[inline]
            fn borrow(&self) -> &[u8] {
                self
            }
        }
    };
}

macro_rules! writer_traits {
    ($ty:ty) => {
        impl BorrowMut<[u8]> for $ty {
            #[inline]
            fn borrow_mut(&mut self) -> &mut [u8] {
                self
            }
        }

        /// Appends each byte.
        ///
        /// # Panics
        ///
        /// At the first byte that does not fit, as `bytes::BufMut`'s
        /// `put_*` methods do; the bytes before it stay appended. Check
        /// [`remaining`](Self::remaining) first, or use
        /// [`extend_from_slice`](Self::extend_from_slice), which returns a
        /// [`CapacityError`](crate::CapacityError) and writes nothing
        /// instead.
        impl Extend<u8> for $ty {
            #[inline]
            fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
                for byte in iter {
                    if self.slot.write_some(&[byte]) == 0 {
                        overflow(self.slot.cap);
                    }
                }
            }
        }

        /// As `Extend<u8>`, panics included.
        impl<'a> Extend<&'a u8> for $ty {
            #[inline]
            fn extend<I: IntoIterator<Item = &'a u8>>(&mut self, iter: I) {
                self.extend(iter.into_iter().copied());
            }
        }

        /// `write!` appends text. A piece that does not fit is not written
        /// and the write fails with [`fmt::Error`]; pieces before it stay.
        impl fmt::Write for $ty {
            #[inline]
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.extend_from_slice(s.as_bytes()).map_err(|_| fmt::Error)
            }
        }
    };
}

content_traits!(PoolBuf<'_>);
content_traits!(OwnedBuf);
content_traits!(SharedBuf);
writer_traits!(PoolBuf<'_>);
writer_traits!(OwnedBuf);

#[cold]
#[inline(never)]
#[track_caller]
fn overflow(capacity: usize) -> ! {
    panic!("extend past the end of the buffer (capacity {capacity} bytes)")
}
