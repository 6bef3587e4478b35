//! 10,000 small allocations, and 10,000 `Vec` pushes, in our `Bump`, in
//! bumpalo, and with the system allocator. Both arenas are reset (keeping
//! their largest chunk) before each iteration, so the loop measures
//! allocation, not chunk allocation; the system allocator pays for freeing.
//!
//! `cargo bench -p arenapool-alloc --bench bump -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use allocator_api2::vec::Vec as AVec;
use arenapool_alloc::Bump;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const N: usize = 10_000;

fn small_allocations(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc_10k_u64");
    g.throughput(Throughput::Elements(N as u64));
    let mut ours = Bump::new();
    g.bench_function("arenapool_bump", |b| {
        b.iter(|| {
            ours.reset();
            for i in 0..N as u64 {
                black_box(ours.alloc(black_box(i)));
            }
        })
    });
    let mut theirs = bumpalo::Bump::new();
    g.bench_function("bumpalo", |b| {
        b.iter(|| {
            theirs.reset();
            for i in 0..N as u64 {
                black_box(theirs.alloc(black_box(i)));
            }
        })
    });
    let mut boxes: Vec<Box<u64>> = Vec::with_capacity(N);
    g.bench_function("system_box", |b| {
        b.iter(|| {
            for i in 0..N as u64 {
                boxes.push(Box::new(black_box(i)));
            }
            boxes.clear();
        })
    });
    g.finish();
}

fn vec_pushes(c: &mut Criterion) {
    let mut g = c.benchmark_group("vec_push_10k_u32");
    g.throughput(Throughput::Elements(N as u64));
    let mut ours = Bump::new();
    g.bench_function("arenapool_bump", |b| {
        b.iter(|| {
            ours.reset();
            let mut v = AVec::new_in(&ours);
            for i in 0..N as u32 {
                v.push(black_box(i));
            }
            black_box(&v);
        })
    });
    let mut theirs = bumpalo::Bump::new();
    g.bench_function("bumpalo", |b| {
        b.iter(|| {
            theirs.reset();
            let mut v = AVec::new_in(&theirs);
            for i in 0..N as u32 {
                v.push(black_box(i));
            }
            black_box(&v);
        })
    });
    g.bench_function("system_vec", |b| {
        b.iter(|| {
            let mut v = Vec::new();
            for i in 0..N as u32 {
                v.push(black_box(i));
            }
            black_box(&v);
        })
    });
    g.finish();
}

criterion_group!(benches, small_allocations, vec_pushes);
criterion_main!(benches);
