//! `arenapool faults`: what each arena [`Backing`] costs on first touch.
//!
//! For each backing, build a pool of `mib` MiB (4096-byte buffers by
//! default; no thread cache, so buffers come straight off the free list),
//! then take every buffer once and write one byte in each 4 KiB page of
//! it. The first write to a page is a page fault: one per 4 KiB page for
//! the heap and `Backing::Mmap`, one per 2 MiB for huge pages (when the
//! kernel grants them). The figures are `getrusage(RUSAGE_SELF)` deltas
//! around the touch (minor and major faults), its wall time, the growth
//! of `AnonHugePages` in `/proc/self/smaps_rollup` (transparent huge pages
//! actually in use), and the pool's own [`Pool::backing`] line.
//!
//! The handles are kept until the touch ends (so each buffer is a distinct
//! slot) in a vector whose memory is faulted in before the first reading.

use std::fmt::Write as _;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use arenapool::{Backing, BuildError, Pool};

/// What to measure.
#[derive(Debug, Clone, Copy)]
pub struct FaultOptions {
    /// Pool size in MiB.
    pub mib: usize,
    /// Bytes per buffer.
    pub buffer_size: usize,
}

impl Default for FaultOptions {
    fn default() -> Self {
        Self {
            mib: 1024,
            buffer_size: 4096,
        }
    }
}

/// One backing's figures.
#[derive(Debug, Clone)]
pub struct FaultRow {
    /// The backing asked for.
    pub backing: Backing,
    /// Time to build the pool (map or allocate the arena).
    pub build: Duration,
    /// Time to touch every page of every buffer once.
    pub touch: Duration,
    /// Minor page faults during the touch (`ru_minflt` delta).
    pub minor: u64,
    /// Major page faults during the touch (`ru_majflt` delta).
    pub major: u64,
    /// Growth of `AnonHugePages` during the touch, in KiB.
    pub anon_huge_kib: u64,
    /// [`Pool::backing`], as text: what was obtained and why.
    pub obtained: String,
}

/// The backings measured, in table order.
pub const FAULT_BACKINGS: [Backing; 4] = [
    Backing::Heap,
    Backing::Mmap,
    Backing::TransparentHugePages,
    Backing::HugeTlb,
];

/// Runs the measurement for each of [`FAULT_BACKINGS`] in turn.
///
/// # Errors
///
/// A [`BuildError`] if a pool cannot be built (a bad size, or the memory
/// is not there); an unavailable backing degrades and is reported in
/// [`FaultRow::obtained`] instead.
pub fn faults(opts: FaultOptions) -> Result<Vec<FaultRow>, BuildError> {
    FAULT_BACKINGS
        .iter()
        .map(|&backing| measure(opts, backing))
        .collect()
}

fn measure(opts: FaultOptions, backing: Backing) -> Result<FaultRow, BuildError> {
    let size = opts.buffer_size.max(1);
    let bytes = opts.mib.saturating_mul(1 << 20);
    let buffers = bytes.div_ceil(size).max(1);
    let start = Instant::now();
    let pool = Pool::builder()
        .buffer_size(size)
        .capacity(buffers)
        .cache_size(0)
        .backing(backing)
        .build()?;
    let build = start.elapsed();
    // Fault the vector in first, so that only arena pages are counted.
    let mut held = Vec::with_capacity(buffers);
    for slot in held.spare_capacity_mut() {
        *slot = MaybeUninit::zeroed();
    }
    let huge_before = anon_huge_kib();
    let before = rusage();
    let start = Instant::now();
    for _ in 0..buffers {
        let Some(mut buf) = pool.try_acquire() else {
            break;
        };
        let full = buf.as_full_mut();
        for i in (0..full.len()).step_by(4096) {
            full[i] = 1;
        }
        held.push(buf);
    }
    let touch = start.elapsed();
    let after = rusage();
    let anon_huge = anon_huge_kib().saturating_sub(huge_before);
    let obtained = pool.backing().to_string();
    drop(held);
    Ok(FaultRow {
        backing,
        build,
        touch,
        minor: after.0.saturating_sub(before.0),
        major: after.1.saturating_sub(before.1),
        anon_huge_kib: anon_huge,
        obtained,
    })
}

/// The rows as a text table, with the settings in its first line.
pub fn fault_table(opts: FaultOptions, rows: &[FaultRow]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "first touch of a {} MiB pool of {}-byte buffers (one write per 4 KiB page)",
        opts.mib, opts.buffer_size
    );
    let _ = writeln!(
        t,
        "{:<22} {:>9} {:>9} {:>12} {:>6} {:>9}  obtained",
        "backing", "build ms", "touch ms", "minor flt", "major", "THP MiB"
    );
    for r in rows {
        let _ = writeln!(
            t,
            "{:<22} {:>9.1} {:>9.1} {:>12} {:>6} {:>9}  {}",
            format!("{:?}", r.backing),
            r.build.as_secs_f64() * 1e3,
            r.touch.as_secs_f64() * 1e3,
            r.minor,
            r.major,
            r.anon_huge_kib / 1024,
            r.obtained
        );
    }
    t
}

/// `(ru_minflt, ru_majflt)` of this process; zeros where `getrusage` is
/// not available.
#[cfg(unix)]
fn rusage() -> (u64, u64) {
    let mut usage = MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` writes one `rusage` through the pointer, which
    // points to a zeroed (so initialised) `rusage` we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return (0, 0);
    }
    // SAFETY: zero-initialised above (all-zero is a valid `rusage`: plain
    // integers) and, on success, filled by the kernel.
    let usage = unsafe { usage.assume_init() };
    (usage.ru_minflt as u64, usage.ru_majflt as u64)
}

#[cfg(not(unix))]
fn rusage() -> (u64, u64) {
    (0, 0)
}

/// `AnonHugePages` in `/proc/self/smaps_rollup`, in KiB (0 elsewhere).
fn anon_huge_kib() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("AnonHugePages:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_run_touches_every_page() {
        let opts = FaultOptions {
            mib: 4,
            buffer_size: 8192,
        };
        let rows = faults(opts).unwrap();
        assert_eq!(rows.len(), FAULT_BACKINGS.len());
        for r in &rows {
            assert!(!r.obtained.is_empty());
            if cfg!(target_os = "linux") && r.obtained.starts_with("4 KiB pages") {
                // 1024 pages, each faulted on its first write (at least).
                assert!(r.minor >= 1024, "{r:?}");
            }
        }
        let table = fault_table(opts, &rows);
        assert_eq!(table.lines().count(), 2 + rows.len(), "{table}");
        assert!(table.contains("TransparentHugePages"), "{table}");
    }
}
