//! The async acquire and the `bytes` path, single thread, uncontended:
//!
//! * `acquire/try_acquire` vs `acquire/acquire_await`: the cost of the
//!   future over the plain call when a buffer is free (one poll with a
//!   no-op waker, as an executor's first poll of a ready future);
//!   `acquire/owned_*` the same for owned handles.
//! * `freeze/*`: an owned buffer filled with 64 bytes and turned into
//!   `bytes::Bytes` (one small allocation for the owner), a clone and a
//!   slice, then dropped, against copying the same 64 bytes into
//!   `Bytes::copy_from_slice` from a stack array.
//!
//! Run: `cargo bench -p arenapool --bench async_bytes`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll};

use arenapool::Pool;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};

const SIZE: usize = 4096;
const TOUCH: [u8; 64] = [0xA5; 64];

fn ready<F: Future>(fut: F, cx: &mut Context<'_>) -> F::Output {
    match pin!(fut).poll(cx) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("the pool has free buffers"),
    }
}

fn acquire(c: &mut Criterion) {
    let pool = Pool::builder()
        .buffer_size(SIZE)
        .capacity(1024)
        .build()
        .unwrap();
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut g = c.benchmark_group("acquire");
    g.bench_function("try_acquire", |b| {
        b.iter(|| {
            let mut buf = pool.try_acquire().unwrap();
            buf.extend_from_slice(black_box(&TOUCH)).unwrap();
            black_box(&mut buf);
        })
    });
    g.bench_function("acquire_await", |b| {
        b.iter(|| {
            let mut buf = ready(pool.acquire(), &mut cx);
            buf.extend_from_slice(black_box(&TOUCH)).unwrap();
            black_box(&mut buf);
        })
    });
    g.bench_function("owned_try_acquire", |b| {
        b.iter(|| {
            let mut buf = pool.try_acquire_owned().unwrap();
            buf.extend_from_slice(black_box(&TOUCH)).unwrap();
            black_box(&mut buf);
        })
    });
    g.bench_function("owned_acquire_await", |b| {
        b.iter(|| {
            let mut buf = ready(pool.acquire_owned(), &mut cx);
            buf.extend_from_slice(black_box(&TOUCH)).unwrap();
            black_box(&mut buf);
        })
    });
    g.finish();

    let mut g = c.benchmark_group("freeze");
    // The plain round trip, in the same group: what freezing adds to it.
    g.bench_function("pool_round_trip", |b| {
        b.iter(|| {
            let mut buf = pool.try_acquire_owned().unwrap();
            buf.extend_from_slice(black_box(&TOUCH)).unwrap();
            black_box(&mut buf);
        })
    });
    g.bench_function("pool_freeze_clone_slice", |b| {
        b.iter(|| {
            let mut buf = pool.try_acquire_owned().unwrap();
            buf.extend_from_slice(black_box(&TOUCH)).unwrap();
            let bytes = buf.freeze();
            let clone = bytes.clone();
            black_box((bytes.slice(8..), clone));
        })
    });
    g.bench_function("pool_freeze_into_bytes_clone_slice", |b| {
        b.iter(|| {
            let mut buf = pool.try_acquire_owned().unwrap();
            buf.extend_from_slice(black_box(&TOUCH)).unwrap();
            let bytes = Bytes::from(buf.freeze());
            let clone = bytes.clone();
            black_box((bytes.slice(8..), clone));
        })
    });
    g.bench_function("pool_split_to_four_frames", |b| {
        b.iter(|| {
            let mut buf = pool.try_acquire_owned().unwrap();
            buf.extend_from_slice(black_box(&TOUCH)).unwrap();
            let frames: [_; 4] = std::array::from_fn(|_| buf.split_to(TOUCH.len() / 4));
            black_box((frames, buf));
        })
    });
    g.bench_function("bytes_copy_from_slice", |b| {
        b.iter(|| {
            let bytes = Bytes::copy_from_slice(black_box(&TOUCH));
            let clone = bytes.clone();
            black_box((bytes.slice(8..), clone));
        })
    });
    g.finish();
}

criterion_group!(benches, acquire);
criterion_main!(benches);
