//! The workload: a server's buffers, sizes heavy-tailed from 64 B to
//! 256 KiB, most released at once and some held for a while, on several
//! threads at a fixed request rate; and the sampler that reads RSS and the
//! bytes held every 100 ms.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use arenapool::{OwnedBuf, Pool};
use serde::{Deserialize, Serialize};

/// Smallest and largest buffer.
pub(super) const MIN_SIZE: usize = 64;
pub(super) const MAX_SIZE: usize = 256 * 1024;

/// Pareto tail index of the sizes: `P(size > s) = (64 / s)^0.6`, cut at
/// 256 KiB. About 8 % of requests are over 4 KiB, 1.6 % over 64 KiB; the
/// mean is about 4.4 KiB.
const TAIL: f64 = 0.6;

/// Requests per thread per second, in ticks of [`TICK`].
pub(super) const RATE: u64 = 20_000;
const TICK: Duration = Duration::from_millis(10);

/// A request's buffer: released at once (90 %), held 50 to 500 ms (8 %:
/// slow clients), or held 1 to 5 s (2 %: a cache of responses).
fn lifetime(rng: &mut Rng) -> Option<Duration> {
    let r = rng.below(100);
    let ms = match r {
        0..90 => return None,
        90..98 => 50 + rng.below(451),
        _ => 1000 + rng.below(4001),
    };
    Some(Duration::from_millis(ms))
}

/// splitmix64: a small, fast, seeded generator (quality is plenty for
/// picking sizes and lifetimes).
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `(0, 1]`.
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// A buffer size from the heavy-tailed mix.
    pub(super) fn size(&mut self) -> usize {
        let s = MIN_SIZE as f64 * self.unit().powf(-1.0 / TAIL);
        (s as usize).clamp(MIN_SIZE, MAX_SIZE)
    }
}

/// Where buffers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FragMode {
    /// `Vec::with_capacity(n)`, from the global allocator.
    Vec,
    /// A pool of size classes from 64 B to 256 KiB, doubling, with the
    /// default per-thread caches (128 buffers a class).
    Pool,
    /// The same pool without per-thread caches.
    PoolUncached,
}

impl FragMode {
    pub(super) fn name(self) -> &'static str {
        match self {
            FragMode::Vec => "vec",
            FragMode::Pool => "pool",
            FragMode::PoolUncached => "pool-uncached",
        }
    }
}

impl std::str::FromStr for FragMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "vec" => Ok(FragMode::Vec),
            "pool" => Ok(FragMode::Pool),
            "pool-uncached" => Ok(FragMode::PoolUncached),
            _ => Err(format!("unknown mode {s:?}: vec, pool or pool-uncached")),
        }
    }
}

/// The pool of the pool modes: one class per power of two from 64 B to
/// 256 KiB, each starting with 16 buffers and growing as the load needs
/// (to at most 1 GiB of buffers a class); per-thread caches of
/// `cache_size` buffers a class (0: none).
pub(super) fn pool(cache_size: usize) -> Result<Pool, arenapool::BuildError> {
    let mut b = Pool::builder().cache_size(cache_size);
    let mut size = MIN_SIZE;
    while size <= MAX_SIZE {
        b = b.growing_class(size, 16, (1 << 30) / size);
        size *= 2;
    }
    b.build()
}

/// A buffer the workload holds.
enum Held {
    Vec(Vec<u8>),
    Pool(OwnedBuf),
}

impl Held {
    fn len(&self) -> usize {
        match self {
            Held::Vec(v) => v.len(),
            Held::Pool(b) => b.len(),
        }
    }
}

/// What the threads share: the bytes they hold now, the requests done,
/// the requests a full pool refused, and the stop flag.
#[derive(Default)]
pub(super) struct Shared {
    pub(super) live: AtomicU64,
    pub(super) ops: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) stop: AtomicBool,
}

/// Takes a buffer of `n` bytes and fills it, as a read would.
fn take(pool: Option<&Pool>, n: usize, byte: u8) -> Option<Held> {
    match pool {
        None => {
            let mut v = Vec::with_capacity(n);
            v.resize(n, byte);
            Some(Held::Vec(v))
        }
        Some(p) => {
            let mut b = p.try_acquire_owned_with_capacity(n).ok()??;
            b.spare_mut()[..n].fill(byte);
            b.set_len(n).ok()?;
            Some(Held::Pool(b))
        }
    }
}

/// Slots of the wheel of held buffers: one per [`WHEEL_SLOT`], enough
/// for the longest lifetime.
const WHEEL: usize = 64;
const WHEEL_SLOT: Duration = Duration::from_millis(100);

/// One thread: [`RATE`] requests a second until `shared.stop`.
pub(super) fn worker(pool: Option<Pool>, shared: Arc<Shared>, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut wheel: Vec<Vec<Held>> = (0..WHEEL).map(|_| Vec::new()).collect();
    let start = Instant::now();
    let mut slot_done = 0usize;
    let per_tick = RATE * TICK.as_millis() as u64 / 1000;
    let mut ticks = 0u64;
    while !shared.stop.load(Relaxed) {
        ticks += 1;
        let due = start + TICK * ticks as u32;
        // Release what expired, slot by slot.
        let now_slot = (start.elapsed().as_millis() / WHEEL_SLOT.as_millis()) as usize;
        while slot_done < now_slot {
            let expired = std::mem::take(&mut wheel[slot_done % WHEEL]);
            let bytes: usize = expired.iter().map(Held::len).sum();
            drop(expired);
            shared.live.fetch_sub(bytes as u64, Relaxed);
            slot_done += 1;
        }
        for _ in 0..per_tick {
            let n = rng.size();
            let Some(buf) = take(pool.as_ref(), n, rng.next() as u8) else {
                shared.refused.fetch_add(1, Relaxed);
                continue;
            };
            if let Some(life) = lifetime(&mut rng) {
                let at = (start.elapsed() + life).as_millis() / WHEEL_SLOT.as_millis();
                let at = (at as usize).max(slot_done);
                shared.live.fetch_add(n as u64, Relaxed);
                wheel[at % WHEEL].push(buf);
            }
        }
        shared.ops.fetch_add(per_tick, Relaxed);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let held: usize = wheel.iter().flatten().map(Held::len).sum();
    shared.live.fetch_sub(held as u64, Relaxed);
}

/// One sample: seconds since the start, resident KiB, KiB the workload
/// holds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FragSample {
    /// Seconds since the start.
    pub t: f64,
    /// `RssAnon` of the process (its heap, arenas and stacks), KiB.
    pub rss_kib: u64,
    /// `VmRSS` of the process (also the executable's pages), KiB.
    pub vm_rss_kib: u64,
    /// Bytes the workload holds (requested sizes), KiB.
    pub live_kib: u64,
}

/// Resident anonymous KiB of this process (`RssAnon` in
/// `/proc/self/status`: the heap, the pool's arenas and the stacks, not
/// the executable's pages), and its whole `VmRSS`; zeros where there is
/// no `/proc`.
pub(super) fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("RssAnon:"), field("VmRSS:"))
}

/// CPU seconds this process used (user + system), from `/proc/self/stat`.
pub(super) fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is
    // field 14, stime 15; counted from the ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks as f64 / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_heavy_tailed_within_bounds() {
        let mut rng = Rng::new(7);
        let n = 200_000;
        let sizes: Vec<usize> = (0..n).map(|_| rng.size()).collect();
        assert!(sizes.iter().all(|&s| (MIN_SIZE..=MAX_SIZE).contains(&s)));
        let over = |k: usize| sizes.iter().filter(|&&s| s > k).count() as f64 / n as f64;
        // (64 / s)^0.6: 8.2 % over 4 KiB, 1.6 % over 64 KiB.
        assert!((0.07..0.095).contains(&over(4096)), "{}", over(4096));
        assert!((0.012..0.02).contains(&over(65536)), "{}", over(65536));
        assert!(sizes.contains(&MAX_SIZE), "the cut is reached");
    }

    #[test]
    fn lifetimes_follow_the_mix() {
        let mut rng = Rng::new(9);
        let n = 100_000;
        let lives: Vec<Option<Duration>> = (0..n).map(|_| lifetime(&mut rng)).collect();
        let at_once = lives.iter().filter(|l| l.is_none()).count() as f64 / n as f64;
        let long = lives
            .iter()
            .filter(|l| l.is_some_and(|d| d >= Duration::from_secs(1)))
            .count() as f64
            / n as f64;
        assert!((0.89..0.91).contains(&at_once), "{at_once}");
        assert!((0.015..0.025).contains(&long), "{long}");
        assert!(lives.iter().flatten().all(|d| *d <= Duration::from_secs(5)));
    }

    #[test]
    fn a_worker_gives_back_all_it_held() {
        for pool in [None, Some(pool(128).unwrap()), Some(pool(0).unwrap())] {
            let shared = Arc::new(Shared::default());
            let s = Arc::clone(&shared);
            let p = pool.clone();
            let t = std::thread::spawn(move || worker(p, s, 1));
            std::thread::sleep(Duration::from_millis(300));
            assert!(shared.live.load(Relaxed) > 0, "some buffers are held");
            shared.stop.store(true, Relaxed);
            t.join().unwrap();
            assert_eq!(shared.live.load(Relaxed), 0);
            assert!(shared.ops.load(Relaxed) >= 1000);
            if let Some(p) = pool {
                let in_use: usize = p.class_stats().iter().map(|c| c.stats.in_use).sum();
                assert_eq!(in_use, 0);
            }
        }
    }
}
