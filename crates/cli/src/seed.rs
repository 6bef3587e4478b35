//! Part 1 of the demo: the seed article's table, reproduced honestly.
//!
//! The article compares `Vec::with_capacity(4096)` with a pool acquire and
//! drop in a tight loop on one thread. That shape is the one most
//! favourable to malloc (the same block comes back every time), so the
//! table adds the shapes that change the verdict: 64 buffers held at once,
//! two threads at the same time, and a buffer taken on one thread and
//! released on another (what a server hands off).
//!
//! The loops are `arenapool_bench`'s scenarios. The `Vec` columns call the
//! system allocator (glibc) directly, as `Vec` does under the default
//! global allocator: this executable's global allocator is the counting
//! wrapper, which would add its own cost to every `Vec`.

use std::alloc::System;
use std::sync::OnceLock;
use std::time::Duration;

use arenapool::{Pool, PoolBuf};
use arenapool_bench::{
    Candidate, Contender, POOL_CAPACITY, Raw, SIZE, TOUCH, WithCapacity, Written, Zeroed,
    calibrate, median,
};
use indicatif::ProgressBar;
use serde::Serialize;

/// One shape's figures, one per column.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Shape {
    pub(crate) name: &'static str,
    pub(crate) unit: &'static str,
    /// Whether higher is better (Mops/s) or lower (ns).
    pub(crate) higher_is_better: bool,
    pub(crate) values: Vec<f64>,
}

/// Part 1's results.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SeedTable {
    pub(crate) columns: Vec<String>,
    pub(crate) shapes: Vec<Shape>,
    pub(crate) reps: usize,
    pub(crate) sample_ms: u64,
}

/// The pool of the `pool` column: a `static`, as a server's pool would be,
/// handing out borrowed `PoolBuf<'static>` handles (no reference count per
/// buffer). A static rather than a leaked box, so that valgrind sees it as
/// reachable at exit.
static POOL: OnceLock<Pool> = OnceLock::new();

/// The `pool` column as a shoot-out candidate.
struct StaticPool(&'static Pool);

impl Candidate for StaticPool {
    type Buf = PoolBuf<'static>;

    fn name(&self) -> String {
        "pool".into()
    }

    #[inline]
    fn acquire(&self) -> PoolBuf<'static> {
        match self.0.try_acquire() {
            Some(buf) => buf,
            // The trait's contract: panic, naming the candidate. The pool
            // holds more buffers than any shape keeps out at once.
            None => panic!("pool exhausted: {:?}", self.0.stats()),
        }
    }

    #[inline]
    fn touch(buf: &mut PoolBuf<'static>) {
        // Cannot fail: buffers hold SIZE >= 64 bytes, a fresh one is empty.
        let _ = buf.extend_from_slice(&TOUCH);
    }

    #[inline]
    fn release(&self, buf: PoolBuf<'static>) {
        drop(buf);
    }

    fn fill<'a>(buf: &'a mut PoolBuf<'static>, byte: u8) -> &'a [u8] {
        buf.as_full_mut().fill(byte);
        buf.as_full()
    }
}

fn candidates() -> Result<Vec<Box<dyn Contender>>, String> {
    let pool = match POOL.get() {
        Some(pool) => pool,
        None => {
            let built = Pool::builder()
                .buffer_size(SIZE)
                .capacity(POOL_CAPACITY)
                .build()
                .map_err(|e| format!("cannot build the pool: {e}"))?;
            POOL.get_or_init(|| built)
        }
    };
    Ok(vec![
        Box::new(Raw::<System, WithCapacity>::new()),
        Box::new(Raw::<System, Written>::new()),
        Box::new(Raw::<System, Zeroed>::new()),
        Box::new(StaticPool(pool)),
    ])
}

/// Column labels, in `candidates` order.
const COLUMNS: [&str; 4] = ["Vec (seed)", "Vec + write", "vec![0; 4096]", "pool"];

/// What each column does, printed under the table.
pub(crate) const LEGEND: &str = "\
Vec (seed):     Vec::with_capacity(4096) + drop, nothing written (the seed's baseline)
Vec + write:    Vec::with_capacity(4096), write 64 bytes, drop
vec![0; 4096]:  zeroed allocation, write 64 bytes, drop
pool:           pool.try_acquire(), write 64 bytes, drop (arenapool, 4096-byte buffers)";

/// Steps the progress bar advances by in [`run`].
pub(crate) const STEPS: u64 = 16;

pub(crate) fn run(quick: bool, bar: &ProgressBar) -> Result<SeedTable, String> {
    let (reps, sample) = if quick {
        (5, Duration::from_millis(2))
    } else {
        (21, Duration::from_millis(10))
    };
    let cands = candidates()?;
    let ns = |took: Duration, iters: u64| took.as_nanos() as f64 / iters as f64;
    let mops = |took: Duration, ops: u64| ops as f64 / took.as_secs_f64().max(1e-12) / 1e6;
    let mut shapes = vec![
        Shape {
            name: "1 thread, round trip",
            unit: "ns",
            higher_is_better: false,
            values: vec![],
        },
        Shape {
            name: "1 thread, 64 held, oldest released",
            unit: "ns",
            higher_is_better: false,
            values: vec![],
        },
        Shape {
            name: "2 threads, each round trips (total)",
            unit: "Mops/s",
            higher_is_better: true,
            values: vec![],
        },
        Shape {
            name: "acquire on A, release on B",
            unit: "Mops/s",
            higher_is_better: true,
            values: vec![],
        },
    ];
    for c in &cands {
        bar.set_message(format!("part 1: {}", c.name()));
        let batch = calibrate(sample, |n| c.round_trip(n));
        c.round_trip(batch);
        let mut s: Vec<f64> = (0..reps).map(|_| ns(c.round_trip(batch), batch)).collect();
        shapes[0].values.push(median(&mut s).unwrap_or(f64::NAN));
        bar.inc(1);

        let wbatch = calibrate(sample, |n| c.window(n));
        c.window(wbatch);
        let mut s: Vec<f64> = (0..reps).map(|_| ns(c.window(wbatch), wbatch)).collect();
        shapes[1].values.push(median(&mut s).unwrap_or(f64::NAN));
        bar.inc(1);

        let mut s: Vec<f64> = c
            .parallel(2, batch, reps)
            .into_iter()
            .map(|t| mops(t, 2 * batch))
            .collect();
        shapes[2].values.push(median(&mut s).unwrap_or(f64::NAN));
        bar.inc(1);

        let hbatch = calibrate(sample, |n| c.handoff(n, 1)[0]);
        let mut s: Vec<f64> = c
            .handoff(hbatch, reps)
            .into_iter()
            .map(|t| mops(t, hbatch))
            .collect();
        shapes[3].values.push(median(&mut s).unwrap_or(f64::NAN));
        bar.inc(1);
    }
    Ok(SeedTable {
        columns: COLUMNS.iter().map(|s| (*s).to_owned()).collect(),
        shapes,
        reps,
        sample_ms: sample.as_millis() as u64,
    })
}

impl SeedTable {
    /// The table, one row per shape, with the pool's advantage over the
    /// seed's `Vec::with_capacity` in the last column.
    pub(crate) fn text(&self) -> String {
        let w0 = self
            .shapes
            .iter()
            .map(|s| s.name.len() + s.unit.len() + 3)
            .max()
            .unwrap_or(10);
        let mut out = format!("{:<w0$}", "");
        for c in &self.columns {
            out += &format!(" {c:>w$}", w = c.len().max(12));
        }
        out += "  pool vs seed Vec\n";
        for s in &self.shapes {
            out += &format!("{:<w0$}", format!("{} ({})", s.name, s.unit));
            for (c, v) in self.columns.iter().zip(&s.values) {
                let cell = format!("{v:.1}");
                out += &format!(" {cell:>w$}", w = c.len().max(12));
            }
            let (first, last) = (s.values[0], s.values[s.values.len() - 1]);
            let ratio = if s.higher_is_better {
                last / first
            } else {
                first / last
            };
            out += &format!("  {ratio:>10.1}x\n");
        }
        out
    }

    /// The same table in markdown.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::from("| shape |");
        for c in &self.columns {
            out += &format!(" {c} |");
        }
        out += " pool vs seed Vec |\n|---|";
        for _ in &self.columns {
            out += "---:|";
        }
        out += "---:|\n";
        for s in &self.shapes {
            out += &format!("| {} ({}) |", s.name, s.unit);
            for v in &s.values {
                out += &format!(" {v:.1} |");
            }
            let (first, last) = (s.values[0], s.values[s.values.len() - 1]);
            let ratio = if s.higher_is_better {
                last / first
            } else {
                first / last
            };
            out += &format!(" {ratio:.1}x |\n");
        }
        out
    }
}
