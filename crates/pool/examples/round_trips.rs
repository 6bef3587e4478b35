//! A fixed number of round trips (acquire a buffer, write 64 bytes,
//! release), for counting instructions with callgrind:
//!
//! ```text
//! cargo build --release -p arenapool --example round_trips
//! valgrind --tool=callgrind target/release/examples/round_trips borrowed 100000
//! ```
//!
//! Run it twice with different counts and divide the difference by the
//! difference in counts: that removes the start-up cost.
//! Handles: `borrowed` (`PoolBuf`) or `owned` (`OwnedBuf`).

use std::hint::black_box;

fn main() {
    let mut args = std::env::args().skip(1);
    let handle = args.next().unwrap_or_else(|| "borrowed".into());
    let n: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let pool = std::sync::Arc::new(arenapool::Pool::new(4096, 1024).expect("pool"));
    let data = [7u8; 64];
    match handle.as_str() {
        "borrowed" => {
            for _ in 0..n {
                let mut buf = pool.try_acquire().expect("a free buffer");
                buf.extend_from_slice(black_box(&data)).expect("fits");
                black_box(&buf);
            }
        }
        "owned" => {
            for _ in 0..n {
                let mut buf = pool.try_acquire_owned().expect("a free buffer");
                buf.extend_from_slice(black_box(&data)).expect("fits");
                black_box(&buf);
            }
        }
        other => {
            eprintln!("unknown handle {other:?}: borrowed or owned");
            std::process::exit(2);
        }
    }
}
