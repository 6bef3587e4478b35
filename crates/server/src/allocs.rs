//! Heap allocations per packet, counted on the server's worker threads.
//!
//! Each worker samples its own thread's allocation counters twice: when it
//! has handled its warm-up datagrams, and when it is told to stop. The
//! difference, divided by the datagrams handled in between, is the
//! allocations per packet of the steady state. Only the worker's thread is
//! counted, so a load generator running in the same process (as in the
//! demo) is not.
//!
//! The counters are those of `arenapool_alloc::Counting`, which the
//! executable must install as its global allocator; without it every count
//! reads zero and [`AllocWindow::counted`] is `false`.

use serde::{Deserialize, Serialize};

use arenapool_alloc::AllocStats;

/// A thread's allocation counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sample(AllocStats);

impl Sample {
    /// The calling thread's counters now (reading them never allocates).
    #[inline]
    pub(crate) fn now() -> Sample {
        Sample(arenapool_alloc::thread_stats())
    }
}

/// Whether `arenapool_alloc::Counting` is this process's global allocator
/// (and has counted something), so "0 allocations" means none happened.
pub fn counting_installed() -> bool {
    arenapool_alloc::is_counting()
}

/// Heap activity of the server's workers over their steady state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocWindow {
    /// Whether the counts are real (a counting allocator is installed and
    /// at least one worker reached its steady state).
    pub counted: bool,
    /// Datagrams handled (replied or dropped) in the window.
    pub packets: u64,
    /// Allocations on the worker threads in the window.
    pub allocations: u64,
    /// Deallocations on the worker threads in the window.
    pub deallocations: u64,
    /// Reallocations on the worker threads in the window.
    pub reallocations: u64,
    /// Bytes allocated on the worker threads in the window.
    pub bytes_allocated: u64,
}

impl AllocWindow {
    /// The window between two samples of one thread, over `packets`.
    pub(crate) fn between(start: Sample, end: Sample, packets: u64) -> AllocWindow {
        let d = end.0.since(&start.0);
        AllocWindow {
            counted: counting_installed(),
            packets,
            allocations: d.allocations,
            deallocations: d.deallocations,
            reallocations: d.reallocations,
            bytes_allocated: d.bytes_allocated,
        }
    }

    /// Allocations per packet; `None` if nothing was counted.
    ///
    /// ```
    /// let w = arenapool_server::AllocWindow { counted: true, packets: 4, allocations: 2, ..Default::default() };
    /// assert_eq!(w.allocations_per_packet(), Some(0.5));
    /// assert_eq!(arenapool_server::AllocWindow::default().allocations_per_packet(), None);
    /// ```
    pub fn allocations_per_packet(&self) -> Option<f64> {
        (self.counted && self.packets > 0).then(|| self.allocations as f64 / self.packets as f64)
    }

    /// Sums two workers' windows.
    pub fn add(&mut self, other: &AllocWindow) {
        self.counted |= other.counted;
        self.packets += other.packets;
        self.allocations += other.allocations;
        self.deallocations += other.deallocations;
        self.reallocations += other.reallocations;
        self.bytes_allocated += other.bytes_allocated;
    }
}
