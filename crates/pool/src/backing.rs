//! Where arenas come from: [`Backing`], [`Fallback`] and the
//! [`BackingReport`] of what a pool obtained.
//!
//! The mapping itself lives in `arena.rs`; this module holds only the
//! public, plain-data types that describe a request and its outcome.
//!
//! The policy (what each backing needs, root and non-root limits, how
//! requests degrade) is documented on [`Backing`], where users see it.

use std::fmt;

/// Where a pool's arenas come from, set with
/// [`PoolBuilder::backing`](crate::PoolBuilder::backing).
///
/// # The backings
///
/// * [`Backing::Heap`] (the default): the global allocator, through
///   `alloc_zeroed`. Large arenas come from `calloc`, which maps fresh zero
///   pages lazily. Works everywhere, under Miri too.
/// * [`Backing::Mmap`]: an anonymous private mapping of 4 KiB pages
///   (`mmap(MAP_PRIVATE | MAP_ANONYMOUS)`), unmapped when the pool drops.
///   The kernel fills it with zeros, which the handles' invariant ("every
///   byte of every slot is initialised") needs; pages are committed when
///   first touched.
/// * [`Backing::TransparentHugePages`]: the same mapping, 2 MiB-aligned and
///   rounded up to 2 MiB, plus `madvise(MADV_HUGEPAGE)`. The kernel then
///   backs it with 2 MiB pages when it can, one fault per 2 MiB instead of
///   512. Whether it does is decided per page at fault time, so the report
///   says "advised", not "obtained". In the `never` mode of
///   `/sys/kernel/mm/transparent_hugepage/enabled` the advice is ignored,
///   and the report says huge pages were not obtained. `madvise` and
///   `always` both honour the advice.
/// * [`Backing::HugeTlb`]: `mmap(MAP_HUGETLB)`, 2 MiB pages reserved at
///   mapping time from the pool the administrator set aside in
///   `vm.nr_hugepages` (`HugePages_Total` / `HugePages_Free` in
///   `/proc/meminfo`). With no free huge pages the mapping fails
///   (`ENOMEM`); it never fails later, at fault time.
///
/// # Locking
///
/// [`PoolBuilder::lock_memory`](crate::PoolBuilder::lock_memory) `mlock`s
/// each mapped arena (which also faults every page in, so it takes as long
/// as touching the whole arena) and `munlock`s it on drop. A process with
/// `CAP_IPC_LOCK` (root, usually) may lock any amount; others may lock up
/// to `RLIMIT_MEMLOCK` bytes in all (`ulimit -l`, often 8 MiB), beyond which
/// `mlock` fails with `ENOMEM` (or `EPERM` when the limit is 0). Heap
/// memory cannot be locked: pages are shared with neighbouring allocations
/// and `munlock` would unlock those too, so `lock_memory(true)` with
/// [`Backing::Heap`] is a configuration error
/// ([`BuildError::LockHeap`](crate::BuildError::LockHeap)).
///
/// # Fallback
///
/// With [`Fallback::Degrade`] (the default) a request the system cannot
/// meet is met as well as it can be, and the pool builds:
///
/// * huge pages (`MAP_HUGETLB`) fall back to 4 KiB pages;
/// * transparent huge pages whose advice fails (or that are off) stay
///   4 KiB pages;
/// * a failed 4 KiB mapping, or any mapping on a system without `mmap`
///   support in this crate (anything but Linux), falls back to the heap;
/// * a failed `mlock` leaves the arena unlocked.
///
/// [`Pool::backing`](crate::Pool::backing) says what was obtained and why
/// each fallback happened. With [`Fallback::Fail`] the first shortfall is a
/// [`BuildError::BackingUnavailable`](crate::BuildError::BackingUnavailable)
/// instead; when a *growing* pool meets one, that growth step fails and the
/// pool keeps serving the buffers it has, as when the allocator fails.
///
/// Every segment a pool grows is mapped with the same request, so a report
/// covers all of them: the weakest outcome, and each distinct reason once.
///
/// # Example
///
/// ```
/// use arenapool::{Backing, Pool};
///
/// let pool = Pool::builder().capacity(16).backing(Backing::Mmap).build()?;
/// let report = pool.backing();
/// assert_eq!(report.requested, Backing::Mmap);
/// println!("{report}"); // "4 KiB pages (mmap), not locked" on Linux
/// # Ok::<(), arenapool::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Backing {
    /// The global allocator (`alloc_zeroed`). The default.
    #[default]
    Heap,
    /// An anonymous private `mmap` of 4 KiB pages.
    Mmap,
    /// An anonymous `mmap` of a 2 MiB-aligned, 2 MiB-rounded region, with
    /// `madvise(MADV_HUGEPAGE)`.
    TransparentHugePages,
    /// `mmap(MAP_HUGETLB)`: 2 MiB pages reserved in `vm.nr_hugepages`.
    HugeTlb,
}

/// What to do when the system cannot provide the requested [`Backing`] or
/// lock.
///
/// ```
/// use arenapool::{Backing, BuildError, Fallback, Pool};
///
/// let strict = Pool::builder()
///     .backing(Backing::HugeTlb)
///     .on_backing_unavailable(Fallback::Fail)
///     .build();
/// match strict {
///     Ok(pool) => println!("{}", pool.backing()),
///     Err(BuildError::BackingUnavailable(why)) => println!("no huge pages: {why}"),
///     Err(e) => return Err(e),
/// }
/// # Ok::<(), arenapool::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Fallback {
    /// Take the next best thing and say so in [`BackingReport`]. The
    /// default.
    #[default]
    Degrade,
    /// Refuse: [`BuildError::BackingUnavailable`](crate::BuildError::BackingUnavailable)
    /// at build time, a failed growth step later.
    Fail,
}

/// The pages an arena actually got, weakest first (the order of `Ord`).
///
/// ```
/// use arenapool::{Backing, Pages, Pool};
///
/// assert!(Pages::Heap < Pages::Small && Pages::HugeAdvised < Pages::Huge);
/// let pool = Pool::builder().capacity(4).backing(Backing::HugeTlb).build()?;
/// // Huge pages, or 4 KiB pages with the reason in `shortfalls`.
/// let got = pool.backing().obtained;
/// # #[cfg(target_os = "linux")]
/// assert!(got == Pages::Huge || got == Pages::Small);
/// # Ok::<(), arenapool::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Pages {
    /// Memory from the global allocator.
    Heap,
    /// An anonymous mapping of base (4 KiB) pages.
    Small,
    /// An anonymous mapping advised with `MADV_HUGEPAGE`; the kernel backs
    /// it with 2 MiB pages where it can, decided per page.
    HugeAdvised,
    /// A `MAP_HUGETLB` mapping of reserved 2 MiB pages.
    Huge,
}

impl fmt::Display for Pages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pages::Heap => "the heap (global allocator)",
            Pages::Small => "4 KiB pages (mmap)",
            Pages::HugeAdvised => "transparent huge pages advised (the kernel decides per page)",
            Pages::Huge => "2 MiB huge pages (MAP_HUGETLB)",
        })
    }
}

/// The system call (or check) that could not do what was asked.
///
/// ```
/// use arenapool::{Backing, BuildError, Fallback, Pool, Step};
///
/// let strict = Pool::builder()
///     .backing(Backing::HugeTlb)
///     .on_backing_unavailable(Fallback::Fail)
///     .build();
/// if let Err(BuildError::BackingUnavailable(why)) = strict {
///     assert!(matches!(why.step, Step::MmapHugeTlb | Step::Unsupported));
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// `mmap(MAP_HUGETLB)`: usually `ENOMEM`, no free reserved huge pages.
    MmapHugeTlb,
    /// An anonymous `mmap` of base pages.
    Mmap,
    /// `madvise(MADV_HUGEPAGE)`.
    MadviseHugePage,
    /// `/sys/kernel/mm/transparent_hugepage/enabled` is `never`.
    ThpDisabled,
    /// `mlock` of the arena (or, with no errno, the arena fell back to the
    /// heap, which is never locked).
    Mlock,
    /// This platform has no support for the request in this crate (only
    /// Linux maps arenas).
    Unsupported,
}

/// One reason a request was not met: the step and, when a system call
/// failed, its errno (`raw_os_error`). Plain `Copy` data, so that
/// [`BuildError`](crate::BuildError) stays `Clone + Eq`.
///
/// ```
/// use arenapool::{Shortfall, Step};
///
/// let s = Shortfall { step: Step::MmapHugeTlb, errno: Some(12) };
/// # #[cfg(target_os = "linux")]
/// assert_eq!(s.to_string(), "mmap MAP_HUGETLB: ENOMEM");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shortfall {
    /// What failed.
    pub step: Step,
    /// The OS error number, if a system call failed.
    pub errno: Option<i32>,
}

impl Shortfall {
    pub(crate) fn new(step: Step, errno: Option<i32>) -> Self {
        Self { step, errno }
    }

    /// What the request was degraded from, in words, for the report.
    fn wanted(&self) -> &'static str {
        match self.step {
            Step::MmapHugeTlb => "huge pages requested, not available",
            Step::Mmap => "mmap failed",
            Step::MadviseHugePage | Step::ThpDisabled => {
                "transparent huge pages requested, not available"
            }
            Step::Mlock => "mlock failed",
            Step::Unsupported => "mapping not supported on this platform",
        }
    }
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let step = match self.step {
            Step::MmapHugeTlb => "mmap MAP_HUGETLB",
            Step::Mmap => "mmap",
            Step::MadviseHugePage => "madvise MADV_HUGEPAGE",
            Step::ThpDisabled => "transparent_hugepage/enabled is never",
            Step::Mlock => "mlock",
            Step::Unsupported => "not Linux",
        };
        match (self.step, self.errno) {
            (_, Some(e)) => write!(f, "{step}: {}", ErrnoName(e)),
            (Step::Mlock, None) => f.write_str("arena is on the heap"),
            (_, None) => f.write_str(step),
        }
    }
}

/// An errno by its symbolic name where we know it, else its number.
struct ErrnoName(i32);

impl fmt::Display for ErrnoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Linux's numbers (asm-generic), the only platform that reports them.
        let name = match self.0 {
            1 => "EPERM",
            11 => "EAGAIN",
            12 => "ENOMEM",
            13 => "EACCES",
            14 => "EFAULT",
            22 => "EINVAL",
            38 => "ENOSYS",
            95 => "EOPNOTSUPP",
            n => return write!(f, "errno {n}"),
        };
        if cfg!(target_os = "linux") {
            f.write_str(name)
        } else {
            write!(f, "errno {}", self.0)
        }
    }
}

/// What one arena got. Plain data, kept by the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) pages: Pages,
    pub(crate) locked: bool,
    /// Up to two reasons for the pages (huge pages, then 4 KiB pages, then
    /// the heap) and one for the lock.
    pub(crate) shortfalls: [Option<Shortfall>; 3],
}

/// What a pool asks of each of its arenas, from the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Request {
    pub(crate) backing: Backing,
    pub(crate) lock: bool,
    pub(crate) fallback: Fallback,
}

/// What a pool asked for and what its arenas got, from
/// [`Pool::backing`](crate::Pool::backing).
///
/// A grown pool has one arena per segment, each mapped with the same
/// request; the report gives the weakest pages any of them got, whether
/// all are locked, and each distinct reason for a shortfall once.
///
/// ```
/// use arenapool::{Backing, Pages, Pool};
///
/// let pool = Pool::builder().capacity(4).build()?;
/// let r = pool.backing();
/// assert_eq!((r.requested, r.obtained, r.locked), (Backing::Heap, Pages::Heap, false));
/// assert!(r.shortfalls.is_empty());
/// assert_eq!(r.to_string(), "the heap (global allocator), not locked");
/// # Ok::<(), arenapool::BuildError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackingReport {
    /// The backing asked for.
    pub requested: Backing,
    /// Whether locking was asked for.
    pub lock_requested: bool,
    /// The weakest pages any segment got.
    pub obtained: Pages,
    /// Whether every segment is locked.
    pub locked: bool,
    /// Segments (arenas) the report covers.
    pub segments: usize,
    /// Each distinct reason a segment fell short, in the order first met.
    pub shortfalls: Vec<Shortfall>,
}

impl BackingReport {
    pub(crate) fn new<'a>(
        requested: Backing,
        lock_requested: bool,
        outcomes: impl IntoIterator<Item = &'a Outcome>,
    ) -> Self {
        let mut r = Self {
            requested,
            lock_requested,
            obtained: Pages::Huge,
            locked: true,
            segments: 0,
            shortfalls: Vec::new(),
        };
        for o in outcomes {
            r.segments += 1;
            r.obtained = r.obtained.min(o.pages);
            r.locked &= o.locked;
            for s in o.shortfalls.iter().flatten() {
                if !r.shortfalls.contains(s) {
                    r.shortfalls.push(*s);
                }
            }
        }
        if r.segments == 0 {
            r.obtained = Pages::Heap;
            r.locked = false;
        }
        r
    }

    /// Whether everything asked for was obtained, in every segment.
    ///
    /// ```
    /// let pool = arenapool::Pool::new(64, 4)?;
    /// assert!(pool.backing().is_complete());
    /// # Ok::<(), arenapool::BuildError>(())
    /// ```
    pub fn is_complete(&self) -> bool {
        self.shortfalls.is_empty()
    }
}

impl fmt::Display for BackingReport {
    /// One line: for each shortfall "what was asked, not available (why)",
    /// then what was obtained and whether it is locked, e.g. "huge pages
    /// requested, not available (mmap MAP_HUGETLB: ENOMEM): fell back to
    /// 4 KiB pages (mmap), not locked".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lock_reason = None;
        for s in &self.shortfalls {
            if s.step == Step::Mlock {
                lock_reason.get_or_insert(*s);
                continue;
            }
            write!(f, "{} ({s}): ", s.wanted())?;
        }
        if self.shortfalls.iter().any(|s| s.step != Step::Mlock) {
            write!(f, "fell back to {}", self.obtained)?;
        } else {
            write!(f, "{}", self.obtained)?;
        }
        match (self.locked, lock_reason) {
            (true, _) => f.write_str(", locked"),
            (false, Some(s)) => write!(f, "; {} ({s}): not locked", s.wanted()),
            (false, None) => f.write_str(", not locked"),
        }
    }
}
