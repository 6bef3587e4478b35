//! The pool's fuzzed settings, and the errors `build` must give for them.

use arbitrary::Arbitrary;
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
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Resolved {
    pub(super) buffer_size: usize,
    pub(super) capacity: usize,
    pub(super) grow_to: Option<usize>,
    pub(super) cache_size: usize,
    pub(super) alignment: usize,
    pub(super) zero_on_release: bool,
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
        };
        let big = self.big as usize;
        match self.oversize % 16 {
            1 => r.buffer_size = isize::MAX as usize + 1 + big,
            2 => r.buffer_size = usize::MAX - big,
            3 => r.capacity = MAX_CAPACITY + 1 + big,
            4 => r.grow_to = Some(MAX_CAPACITY + 1 + big),
            _ => {}
        }
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

    pub(super) fn build(&self) -> Result<Pool, BuildError> {
        let mut b = Pool::builder()
            .buffer_size(self.buffer_size)
            .capacity(self.capacity)
            .cache_size(self.cache_size)
            .alignment(self.alignment)
            .zero_on_release(self.zero_on_release);
        if let Some(g) = self.grow_to {
            b = b.grow_to(g);
        }
        b.build()
    }
}
