//! `arenapool`: the project's command line.
//!
//! `arenapool` (or `arenapool demo`) prints the seed article's comparison,
//! reproduced honestly: a pooled 4096-byte buffer against
//! `Vec::with_capacity(4096)`, in the tight loop the article measured and in
//! the shape that changes the verdict for malloc (64 buffers held at once).
//!
//! `arenapool bench` runs the shoot-out against allocators and pool crates;
//! the work lives in the `arenapool-bench` library.

use std::collections::VecDeque;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use arenapool::Pool;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(version, about = "A fast, sound buffer pool: demo and measurements")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print acquire/release timings of the pool against Vec (the default).
    Demo {
        /// Fewer repetitions: a smoke test that finishes in about a second.
        #[arg(long)]
        quick: bool,
    },
    /// The shoot-out: allocators and pool crates against arenapool, in four
    /// scenarios, with peak memory; prints a table.
    Bench {
        /// Fewer, shorter repetitions (all candidates): under 30 s on 2 cores.
        #[arg(long)]
        quick: bool,
        /// Most threads for the scaling scenario (default: available CPUs).
        #[arg(long, value_name = "N", value_parser = at_least_one)]
        threads: Option<usize>,
        /// Also write the results as JSON here, and a chart next to it
        /// (same name, .svg).
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
        /// Run only candidates whose name contains this (repeatable).
        #[arg(long, value_name = "SUBSTRING")]
        only: Vec<String>,
    },
    /// Internal: one candidate's peak-RSS run, started by `bench`.
    #[command(name = arenapool_bench::rss::CHILD_COMMAND, hide = true)]
    BenchRssChild {
        /// Index in the roster; none for the channel floor.
        index: Option<usize>,
        #[arg(long)]
        quick: bool,
        #[arg(long)]
        threads: Option<usize>,
    },
}

const SIZE: usize = 4096;
const TOUCH: [u8; 64] = [0xA5; 64];
const WINDOW: usize = 64;

fn main() {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Demo { quick: false }) {
        Command::Demo { quick } => demo(quick),
        Command::Bench {
            quick,
            threads,
            json,
            only,
        } => bench(quick, threads, json, only),
        Command::BenchRssChild {
            index,
            quick,
            threads,
        } => {
            let plan = arenapool_bench::Options {
                quick,
                threads,
                rss: false,
                only: Vec::new(),
            }
            .plan();
            if let Err(e) = arenapool_bench::rss::child_main(index, &plan) {
                eprintln!("arenapool: {e}");
                std::process::exit(1);
            }
        }
    }
}

fn at_least_one(arg: &str) -> Result<usize, String> {
    match arg.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn bench(quick: bool, threads: Option<usize>, json: Option<PathBuf>, only: Vec<String>) {
    let opts = arenapool_bench::Options {
        quick,
        threads,
        rss: true,
        only,
    };
    let report = arenapool_bench::run(&opts);
    println!("{}\n{}", report.table(), report.legend());
    if let Some(path) = json {
        match arenapool_bench::write_files(&report, &path) {
            Ok(svg) => println!("wrote {} and {}", path.display(), svg.display()),
            Err(e) => {
                eprintln!("arenapool: {e}");
                std::process::exit(1);
            }
        }
    }
}

/// Median nanoseconds per call of `op`, over `reps` timed batches.
fn median_ns(reps: usize, batch: usize, mut op: impl FnMut()) -> f64 {
    for _ in 0..batch {
        op(); // warm-up
    }
    let mut samples: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..batch {
                op();
            }
            t.elapsed().as_nanos() as f64 / batch as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn demo(quick: bool) {
    let (reps, batch) = if quick { (5, 20_000) } else { (41, 200_000) };
    let pool = match Pool::builder()
        .buffer_size(SIZE)
        .capacity(WINDOW + 1)
        .build()
    {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("arenapool: cannot build the pool: {e}");
            std::process::exit(1);
        }
    };

    println!("arenapool demo: get a {SIZE}-byte buffer, write 64 bytes, give it back");
    println!("median of {reps} batches of {batch}, one thread, system allocator for Vec\n");

    let round_trip = [
        (
            "Vec::with_capacity(4096)",
            median_ns(reps, batch, || {
                let mut v = Vec::<u8>::with_capacity(black_box(SIZE));
                v.extend_from_slice(black_box(&TOUCH));
                black_box(&mut v);
            }),
        ),
        (
            "vec![0u8; 4096]",
            median_ns(reps, batch, || {
                let mut v = vec![0u8; black_box(SIZE)];
                v[..64].copy_from_slice(black_box(&TOUCH));
                black_box(&mut v);
            }),
        ),
        (
            "pool.try_acquire() + drop",
            median_ns(reps, batch, || {
                if let Some(mut buf) = pool.try_acquire() {
                    let _ = buf.extend_from_slice(black_box(&TOUCH));
                    black_box(&mut buf);
                }
            }),
        ),
    ];

    let mut held_vecs = VecDeque::with_capacity(WINDOW + 1);
    let vec_window = median_ns(reps, batch, || {
        let mut v = Vec::<u8>::with_capacity(black_box(SIZE));
        v.extend_from_slice(black_box(&TOUCH));
        held_vecs.push_back(v);
        if held_vecs.len() > WINDOW {
            held_vecs.pop_front();
        }
    });
    drop(held_vecs);
    let mut held_bufs = VecDeque::with_capacity(WINDOW + 1);
    let pool_window = median_ns(reps, batch, || {
        if let Some(mut buf) = pool.try_acquire() {
            let _ = buf.extend_from_slice(black_box(&TOUCH));
            held_bufs.push_back(buf);
        }
        if held_bufs.len() >= WINDOW {
            held_bufs.pop_front();
        }
    });
    drop(held_bufs);

    let base = round_trip[0].1;
    println!("{:<28} {:>10} {:>12}", "round trip", "ns/op", "vs Vec");
    for (name, ns) in &round_trip {
        println!("{name:<28} {ns:>10.1} {:>11.1}x", base / ns);
    }
    println!(
        "\n{:<28} {:>10} {:>12}",
        "64 held, oldest released", "ns/op", "vs Vec"
    );
    println!(
        "{:<28} {vec_window:>10.1} {:>11.1}x",
        "Vec::with_capacity(4096)", 1.0
    );
    println!(
        "{:<28} {pool_window:>10.1} {:>11.1}x",
        "pool.try_acquire() + drop",
        vec_window / pool_window
    );
    let stats = pool.stats();
    println!(
        "\npool: {} buffers, high water {}, failed acquires {}",
        stats.capacity, stats.high_water, stats.failed_acquires
    );
}
