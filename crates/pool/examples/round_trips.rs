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
//! Sized acquires: `sized` (`try_acquire_with_capacity(64)` on the same
//! one-size pool as `borrowed`) and `classes` (`try_acquire_with_capacity(1000)`
//! on a pool of classes 64, 1500 and 65536 bytes, served by the second).
//!
//! Frozen views: `freeze` (write 64 bytes into an owned buffer, freeze,
//! clone, slice, drop all three) and `split` (write 64 bytes, `split_to`
//! four 16-byte frames, drop them and the writer).
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
        "sized" => {
            for _ in 0..n {
                let mut buf = pool
                    .try_acquire_with_capacity(black_box(64))
                    .expect("a size the pool has")
                    .expect("a free buffer");
                buf.extend_from_slice(black_box(&data)).expect("fits");
                black_box(&buf);
            }
        }
        "classes" => {
            let pool = arenapool::Pool::builder()
                .class(64, 1024)
                .class(1500, 1024)
                .class(65536, 4)
                .build()
                .expect("pool");
            for _ in 0..n {
                let mut buf = pool
                    .try_acquire_with_capacity(black_box(1000))
                    .expect("a size the pool has")
                    .expect("a free buffer");
                buf.extend_from_slice(black_box(&data)).expect("fits");
                black_box(&buf);
            }
        }
        "freeze" => {
            for _ in 0..n {
                let mut buf = pool.try_acquire_owned().expect("a free buffer");
                buf.extend_from_slice(black_box(&data)).expect("fits");
                let frozen = buf.freeze();
                let clone = frozen.clone();
                black_box((frozen.slice(8..), clone));
            }
        }
        "split" => {
            for _ in 0..n {
                let mut buf = pool.try_acquire_owned().expect("a free buffer");
                buf.extend_from_slice(black_box(&data)).expect("fits");
                let frames: [_; 4] = std::array::from_fn(|_| buf.split_to(16));
                black_box((frames, buf));
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
            eprintln!(
                "unknown loop {other:?}: borrowed, owned, sized, classes, freeze, split, zeroing-extend or zeroing-put"
            );
            std::process::exit(2);
        }
    }
}
