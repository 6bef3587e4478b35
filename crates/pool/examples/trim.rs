//! Grows a pool far past its configured capacity, empties it, and trims it:
//! the process's resident memory (from `/proc/self/statm`) before, at the
//! peak and after, and how long `trim()` took, for each backing.
//!
//! ```text
//! cargo run --release -p arenapool --example trim [CONFIGURED_MIB [GROWN_MIB]]
//! ```
//!
//! The defaults are 64 MiB configured, grown to 1024 MiB, in 4 KiB buffers.
//! It fails if a trim leaves the process more than 10% above the start
//! plus the configured capacity (CI runs it so).

use std::time::Instant;

use arenapool::{Backing, Pool};

const MIB: usize = 1 << 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let configured = args.next().transpose()?.unwrap_or(64) * MIB;
    let grown = args.next().transpose()?.unwrap_or(1024) * MIB;
    if configured == 0 || grown < configured {
        return Err("want 0 < CONFIGURED_MIB <= GROWN_MIB".into());
    }
    for backing in [Backing::Heap, Backing::Mmap] {
        let pool = Pool::builder()
            .buffer_size(4096)
            .alignment(4096)
            .capacity(configured / 4096)
            .grow_to(grown / 4096)
            .backing(backing)
            .build()?;
        let base = rss()?;
        let held: Vec<_> = (0..grown / 4096)
            .map(|i| {
                let mut b = pool.try_acquire().expect("the pool may grow this far");
                b.as_full_mut().fill(i as u8 | 1);
                b
            })
            .collect();
        let peak = rss()?;
        drop(held);
        let start = Instant::now();
        let trimmed = pool.trim();
        let took = start.elapsed();
        let after = rss()?;
        let kept = after.saturating_sub(base);
        println!(
            "{backing:?}: resident {} MiB before, {} MiB at {} MiB grown, {} MiB after trim() \
             ({:.1}% of the {} MiB configured above the start); trim() took {took:.2?}: {trimmed}",
            base / MIB,
            peak / MIB,
            grown / MIB,
            after / MIB,
            100.0 * kept as f64 / configured as f64,
            configured / MIB,
        );
        println!("  stats: {}", pool.stats());
        if kept > configured + configured / 10 {
            return Err(format!("{backing:?}: {kept} bytes kept after the trim").into());
        }
    }
    Ok(())
}

/// Resident bytes of this process (Linux).
fn rss() -> std::io::Result<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| std::io::Error::other("unexpected /proc/self/statm"))?;
    Ok(pages * 4096)
}
