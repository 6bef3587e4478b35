//! The size-class operation of a program: an acquire by size
//! ([`Op::SizedAcquire`](super::ops::Op::SizedAcquire)), served by the
//! smallest class or, falling up, by the larger one.

use arenapool::TooLarge;

use super::model::{Handle, State};

/// Which class an acquire of a given size must be served from.
enum Served {
    /// The smallest: the rest of the model's.
    Small,
    /// The larger one ([`Upper`](super::model::Upper)).
    Upper,
    /// None: a failed acquire counted in the smallest class...
    FailedSmall,
    /// ...or in the larger one.
    FailedUpper,
}

impl State<'_> {
    /// [`Op::SizedAcquire`]. A size the smallest class holds is served as
    /// `try_acquire` is (the same growth, and a buffer in a thread cache
    /// or handed to no waiter is free), else, falling up, by the larger
    /// class if it has a free buffer; a larger size only by the larger
    /// class. A failure counts in the class for the size.
    pub(super) fn sized_acquire(&mut self, n: u16, owned: bool, stamp: Option<u8>) {
        let pool = self.pool;
        let cap = self.cap;
        let largest = self.upper.as_ref().map_or(cap, |u| u.cap);
        let n = match n >> 14 {
            3 => usize::MAX - usize::from(n & 0xff),
            _ => usize::from(n) % (2 * largest + 2),
        };
        let expected = if n > largest {
            None
        } else if n <= cap {
            Some(if self.expect_take() {
                Served::Small
            } else if self
                .upper
                .as_ref()
                .is_some_and(|u| u.fall_up && u.has_free())
            {
                Served::Upper
            } else {
                Served::FailedSmall
            })
        } else {
            let u = self
                .upper
                .as_ref()
                .expect("n is at most the larger class's size");
            Some(if u.has_free() {
                Served::Upper
            } else {
                Served::FailedUpper
            })
        };
        let r = if owned {
            pool.try_acquire_owned_with_capacity(n)
                .map(|h| h.map(Handle::O))
        } else {
            pool.try_acquire_with_capacity(n).map(|h| h.map(Handle::B))
        };
        let what = || {
            format!(
                "try_acquire_with_capacity({n}) with {} out of the smallest class, {:?} of the larger",
                self.out(),
                self.upper.as_ref().map(|u| u.held.len())
            )
        };
        match (expected, r) {
            (None, Err(e)) => {
                assert_eq!(
                    e,
                    TooLarge {
                        requested: n,
                        largest
                    }
                );
                assert!(!e.to_string().is_empty());
            }
            (Some(Served::Small), Ok(Some(h))) => {
                assert_eq!(h.capacity(), cap, "{}: not the smallest class", what());
                assert_eq!(h.class_size(), cap);
                self.acquired(h, stamp);
            }
            (Some(Served::Upper), Ok(Some(h))) => {
                let u = self.upper.as_mut().expect("served by the larger class");
                assert_eq!(h.capacity(), u.cap, "not the larger class");
                u.acquired(self.cfg.zero_on_release, h, stamp, n);
            }
            (Some(Served::FailedSmall), Ok(None)) => self.failed += 1,
            (Some(Served::FailedUpper), Ok(None)) => {
                self.upper.as_mut().expect("a larger class").failed += 1;
            }
            (expected, r) => panic!(
                "{}: expected {}, got {}",
                what(),
                match expected {
                    None => "TooLarge",
                    Some(Served::Small) => "a buffer of the smallest class",
                    Some(Served::Upper) => "a buffer of the larger class",
                    Some(Served::FailedSmall | Served::FailedUpper) => "no buffer",
                },
                match r {
                    Err(_) => "TooLarge".to_owned(),
                    Ok(None) => "no buffer".to_owned(),
                    Ok(Some(h)) => format!("a buffer of {} bytes", h.capacity()),
                }
            ),
        }
    }
}
