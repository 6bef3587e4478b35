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
//!
//! Two more loops write 2 bytes into a 64 KiB buffer of a pool with
//! `zero_on_release`, so the release clears what was written:
//! `zeroing-extend` (`extend_from_slice`) and `zeroing-put`
//! (`bytes::BufMut::put_slice`).

use std::hint::black_box;

fn main() {
    let mut args = std::env::args().skip(1);
    let handle = args.next().unwrap_or_else(|| "borrowed".into());
    let n: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let pool = arenapool::Pool::new(4096, 1024).expect("pool");
    let data = [7u8; 64];
    let zeroing = || {
        arenapool::Pool::builder()
            .buffer_size(64 * 1024)
            .capacity(4)
            .zero_on_release(true)
            .build()
            .expect("pool")
    };
    match handle.as_str() {
        "zeroing-extend" => {
            let pool = zeroing();
            for _ in 0..n {
                let mut buf = pool.try_acquire().expect("a free buffer");
                buf.extend_from_slice(black_box(&data[..2])).expect("fits");
                black_box(&buf);
            }
        }
        "zeroing-put" => {
            use bytes::BufMut as _;
            let pool = zeroing();
            for _ in 0..n {
                let mut buf = pool.try_acquire().expect("a free buffer");
                buf.put_slice(black_box(&data[..2]));
                black_box(&buf);
            }
        }
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
            eprintln!("unknown loop {other:?}: borrowed, owned, zeroing-extend or zeroing-put");
            std::process::exit(2);
        }
    }
}
