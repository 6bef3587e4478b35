//! Single-thread round trip: get a 4096-byte buffer, write 64 bytes into
//! it, give it back. `arenapool` against the seed article's baseline
//! (`Vec::with_capacity(4096)`) and a zeroed `vec![0u8; 4096]`, both under
//! the system allocator (glibc malloc here). `arenapool` uses the default
//! per-thread cache; `arenapool_no_cache` only the shared free list. The
//! `size_classes` group measures what picking a class costs: `try_acquire`
//! against `try_acquire_with_capacity` on the same pool, and on the middle
//! class of three.
//!
//! Run: `cargo bench -p arenapool --bench acquire_release`.

use std::hint::black_box;

use arenapool::Pool;
use criterion::{Criterion, criterion_group, criterion_main};

const SIZE: usize = 4096;
const TOUCH: [u8; 64] = [0xA5; 64];

fn round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("acquire_release");

    let pool = Pool::builder()
        .buffer_size(SIZE)
        .capacity(1024)
        .build()
        .unwrap();
    g.bench_function("arenapool", |b| {
        b.iter(|| {
            let mut buf = pool.try_acquire().unwrap();
            buf.extend_from_slice(black_box(&TOUCH)).unwrap();
            black_box(&mut buf);
        })
    });

    let shared_only = Pool::builder()
        .buffer_size(SIZE)
        .capacity(1024)
        .cache_size(0)
        .build()
        .unwrap();
    g.bench_function("arenapool_no_cache", |b| {
        b.iter(|| {
            let mut buf = shared_only.try_acquire().unwrap();
            buf.extend_from_slice(black_box(&TOUCH)).unwrap();
            black_box(&mut buf);
        })
    });

    g.bench_function("vec_with_capacity", |b| {
        b.iter(|| {
            let mut v = Vec::<u8>::with_capacity(black_box(SIZE));
            v.extend_from_slice(black_box(&TOUCH));
            black_box(&mut v);
        })
    });

    g.bench_function("vec_zeroed", |b| {
        b.iter(|| {
            let mut v = vec![0u8; black_box(SIZE)];
            v[..64].copy_from_slice(black_box(&TOUCH));
            black_box(&mut v);
        })
    });
    g.finish();

    // What picking a size class costs: the same pool asked by size, and
    // the middle one of three classes (4096 bytes, as above).
    let mut g = c.benchmark_group("size_classes");
    g.bench_function("try_acquire", |b| {
        b.iter(|| {
            let mut buf = pool.try_acquire().unwrap();
            buf.extend_from_slice(black_box(&TOUCH)).unwrap();
            black_box(&mut buf);
        })
    });
    g.bench_function("with_capacity_one_class", |b| {
        b.iter(|| {
            let mut buf = pool
                .try_acquire_with_capacity(black_box(SIZE))
                .unwrap()
                .unwrap();
            buf.extend_from_slice(black_box(&TOUCH)).unwrap();
            black_box(&mut buf);
        })
    });
    let classes = Pool::builder()
        .class(256, 64)
        .class(SIZE, 1024)
        .class(16 * SIZE, 4)
        .build()
        .unwrap();
    g.bench_function("with_capacity_middle_of_three", |b| {
        b.iter(|| {
            let mut buf = classes
                .try_acquire_with_capacity(black_box(SIZE))
                .unwrap()
                .unwrap();
            buf.extend_from_slice(black_box(&TOUCH)).unwrap();
            black_box(&mut buf);
        })
    });
    g.finish();

    // The shape that changes the verdict for malloc: 64 buffers held at a
    // time, released oldest first.
    let mut g = c.benchmark_group("window_64");
    g.bench_function("arenapool", |b| {
        let mut held = std::collections::VecDeque::with_capacity(64);
        b.iter(|| {
            let mut buf = pool.try_acquire().unwrap();
            buf.extend_from_slice(black_box(&TOUCH)).unwrap();
            held.push_back(buf);
            if held.len() > 64 {
                held.pop_front();
            }
        })
    });
    g.bench_function("vec_with_capacity", |b| {
        let mut held = std::collections::VecDeque::with_capacity(64);
        b.iter(|| {
            let mut v = Vec::<u8>::with_capacity(black_box(SIZE));
            v.extend_from_slice(black_box(&TOUCH));
            held.push_back(v);
            if held.len() > 64 {
                held.pop_front();
            }
        })
    });
    g.finish();
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
