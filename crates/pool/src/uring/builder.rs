//! [`RingBuilder`]: the settings of a [`Ring`].

use crate::pool::Pool;

use super::{Ring, UringError};

/// Settings for a [`Ring`]; see [`Ring::builder`].
#[derive(Debug)]
pub struct RingBuilder {
    pub(super) pool: Pool,
    pub(super) entries: u32,
    pub(super) fixed: bool,
    pub(super) single_thread: bool,
}

impl RingBuilder {
    /// Submission queue entries (the kernel rounds up to a power of two;
    /// the completion queue gets twice as many). Default 256.
    ///
    /// See [`Ring::builder`].
    pub fn entries(mut self, entries: u32) -> Self {
        self.entries = entries;
        self
    }

    /// Whether to register the pool's arenas as fixed buffers (for
    /// [`Ring::read_fixed`] and [`Ring::write_fixed`]; pins the arenas'
    /// pages). Default `true`.
    ///
    /// See [`Ring::builder`].
    pub fn fixed_buffers(mut self, yes: bool) -> Self {
        self.fixed = yes;
        self
    }

    /// Ask the kernel to run completions only when this thread waits for
    /// them (`IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN`,
    /// Linux 6.1; ignored before): fewer interruptions of the thread, for
    /// a ring that one thread drives. The ring must then stay on the
    /// thread that built it: from another thread, submitting fails
    /// (`EEXIST`), and dropping it there cannot wait for the operations in
    /// flight, so it leaks their buffers and the pool instead (never
    /// unsound). Default `false`.
    ///
    /// See [`Ring::builder`].
    pub fn single_thread(mut self, yes: bool) -> Self {
        self.single_thread = yes;
        self
    }

    /// Builds the ring.
    ///
    /// # Errors
    ///
    /// As [`Ring::new`].
    ///
    /// See [`Ring::builder`].
    pub fn build(self) -> Result<Ring, UringError> {
        Ring::from_builder(self)
    }
}
