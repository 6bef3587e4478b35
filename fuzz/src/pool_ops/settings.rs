//! The pool's fuzzed settings, and the errors `build` must give for them.

use arbitrary::{Arbitrary, Unstructured};
use arenapool::{BuildError, MAX_ALIGNMENT, MAX_CACHE_SIZE, MAX_CAPACITY, Pool};

use super::{MAX_BUFFER_SIZE, MAX_BUFFERS};

/// Raw settings, mapped onto bounded values by [`Settings::resolve`].
#[derive(Arbitrary, Debug)]
pub(super) struct Settings {
    pub(super) buffer_size: u16,
    pub(super) capacity: u8,
    pub(super) grow_to: Option<u8>,
    pub(super) cache_size: u16,
    pub(super) alignment: u16,
    pub(super) zero_on_release: bool,
    /// Picks one setting to push far out of range.
    pub(super) oversize: u8,
    pub(super) big: u32,
    /// Size classes: see [`Upper`].
    pub(super) upper: Upper,
}

/// With `Some((capacity, fall_up))`, the pool is built with size classes
/// (`PoolBuilder::class`): its own settings as the smallest class, and a
/// class of `2 * buffer_size` bytes and `1 + capacity % 8` buffers above it
/// (added first when `capacity`'s top bit is set: the builder sorts them).
///
/// `Option<(u8, bool)>`, but it asks for no bytes (`size_hint` 0): an
/// input that ends before it decodes as `None`, as `Option` does, so the
/// shortest inputs of the corpus still reach the target.
#[derive(Debug, Clone, Copy)]
pub(super) struct Upper(pub(super) Option<(u8, bool)>);

impl<'a> Arbitrary<'a> for Upper {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Option::arbitrary(u).map(Upper)
    }

    fn size_hint(depth: usize) -> (usize, Option<usize>) {
        (0, <Option<(u8, bool)>>::size_hint(depth).1)
    }
}

/// The resolved size classes: the larger class's buffer size and capacity,
/// whether the pool falls up, and whether that class was added first.
#[derive(Debug, Clone, Copy)]
pub(super) struct Classes {
    pub(super) buffer_size: usize,
    pub(super) capacity: usize,
    pub(super) fall_up: bool,
    pub(super) upper_first: bool,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Resolved {
    pub(super) buffer_size: usize,
    pub(super) capacity: usize,
    pub(super) grow_to: Option<usize>,
    pub(super) cache_size: usize,
    pub(super) alignment: usize,
    pub(super) zero_on_release: bool,
    /// Size classes, if any: see [`Upper`].
    pub(super) classes: Option<Classes>,
}

impl Settings {
    pub(super) fn resolve(&self) -> Resolved {
        let mut r = Resolved {
            // 0 is out of range.
            buffer_size: usize::from(self.buffer_size) % (MAX_BUFFER_SIZE + 1),
            capacity: usize::from(self.capacity) % (MAX_BUFFERS + 1),
            grow_to: self.grow_to.map(|g| usize::from(g) % (MAX_BUFFERS + 1)),
            cache_size: match self.cache_size >> 14 {
                0 | 1 => usize::from(self.cache_size) % 9,
                2 => usize::from(self.cache_size) % 70,
                // Around the maximum, on both sides.
                _ => MAX_CACHE_SIZE - 4 + usize::from(self.cache_size) % 8,
            },
            alignment: if self.alignment & 0x8000 != 0 {
                // Mostly not a power of two, or too large.
                usize::from(self.alignment & 0x7fff)
            } else {
                1 << (self.alignment % 13)
            },
            zero_on_release: self.zero_on_release,
            classes: None,
        };
        let big = self.big as usize;
        match self.oversize % 16 {
            1 => r.buffer_size = isize::MAX as usize + 1 + big,
            2 => r.buffer_size = usize::MAX - big,
            3 => r.capacity = MAX_CAPACITY + 1 + big,
            4 => r.grow_to = Some(MAX_CAPACITY + 1 + big),
            _ => {}
        }
        r.classes = self.upper.0.map(|(c, fall_up)| Classes {
            // Twice the smallest class: above it and at most 8 KiB when
            // the settings are valid. Out of range, any other size (so
            // that no `DuplicateClass` comes instead of the setting's
            // error), valid itself except where the smallest is not.
            buffer_size: match r.buffer_size {
                0 => 1,
                n => n.checked_mul(2).unwrap_or(n - 1),
            },
            capacity: 1 + usize::from(c) % 8,
            fall_up,
            upper_first: c & 0x80 != 0,
        });
        r
    }
}

impl Resolved {
    /// Every error `build` may report for these settings (each names one
    /// setting that is out of range); empty if they are all valid.
    pub(super) fn errors(&self) -> Vec<BuildError> {
        let mut v = Vec::new();
        let too_large = |n: usize| BuildError::CapacityTooLarge {
            requested: n as u64,
            max: MAX_CAPACITY as u64,
        };
        if self.buffer_size == 0 {
            v.push(BuildError::ZeroSize);
        }
        if self.capacity == 0 {
            v.push(BuildError::ZeroCapacity);
        }
        if self.capacity > MAX_CAPACITY {
            v.push(too_large(self.capacity));
        }
        if !self.alignment.is_power_of_two() || self.alignment > MAX_ALIGNMENT {
            v.push(BuildError::BadAlignment(self.alignment));
        }
        if self.cache_size > MAX_CACHE_SIZE {
            v.push(BuildError::CacheTooLarge(self.cache_size));
        }
        if let Some(g) = self.grow_to {
            if g > MAX_CAPACITY {
                v.push(too_large(g));
            } else if self.capacity <= MAX_CAPACITY && g < self.capacity {
                v.push(BuildError::GrowLimitBelowCapacity {
                    capacity: self.capacity as u32,
                    limit: g as u32,
                });
            }
        }
        if self.buffer_size > isize::MAX as usize {
            v.push(BuildError::TooLarge);
        }
        v
    }

    /// Builds the pool: of one size, or with [`Classes`], whose builder
    /// must report one of the same [`errors`](Self::errors) (the larger
    /// class differs only in its size and a valid capacity; each class is
    /// checked as a pool of one size is).
    pub(super) fn build(&self) -> Result<Pool, BuildError> {
        let mut b = Pool::builder()
            .cache_size(self.cache_size)
            .alignment(self.alignment)
            .zero_on_release(self.zero_on_release);
        let Some(c) = self.classes else {
            b = b.buffer_size(self.buffer_size).capacity(self.capacity);
            if let Some(g) = self.grow_to {
                b = b.grow_to(g);
            }
            return b.build();
        };
        if c.upper_first {
            b = b.class(c.buffer_size, c.capacity);
        }
        b = match self.grow_to {
            Some(g) => b.growing_class(self.buffer_size, self.capacity, g),
            None => b.class(self.buffer_size, self.capacity),
        };
        if !c.upper_first {
            b = b.class(c.buffer_size, c.capacity);
        }
        b.fall_up(c.fall_up).build()
    }
}
