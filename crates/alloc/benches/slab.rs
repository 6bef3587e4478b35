//! Insert, get and remove of 10,000 entries in our generational `Slab` and
//! in the `slab` crate.
//!
//! `cargo bench -p arenapool-alloc --bench slab -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use arenapool_alloc::Slab;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const N: usize = 10_000;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("slab_insert_10k");
    g.throughput(Throughput::Elements(N as u64));
    let mut ours: Slab<u64> = Slab::with_capacity(N);
    let mut our_keys = Vec::with_capacity(N);
    g.bench_function("arenapool_slab", |b| {
        b.iter(|| {
            ours.clear();
            our_keys.clear();
            for i in 0..N as u64 {
                our_keys.push(ours.insert(black_box(i)));
            }
        })
    });
    let mut theirs: slab::Slab<u64> = slab::Slab::with_capacity(N);
    let mut their_keys = Vec::with_capacity(N);
    g.bench_function("slab_crate", |b| {
        b.iter(|| {
            theirs.clear();
            their_keys.clear();
            for i in 0..N as u64 {
                their_keys.push(theirs.insert(black_box(i)));
            }
        })
    });
    g.finish();

    // Both are full now; look every key up.
    let mut g = c.benchmark_group("slab_get_10k");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("arenapool_slab", |b| {
        b.iter(|| {
            let mut sum = 0;
            for &k in &our_keys {
                sum += *ours.get(black_box(k)).unwrap();
            }
            sum
        })
    });
    g.bench_function("slab_crate", |b| {
        b.iter(|| {
            let mut sum = 0;
            for &k in &their_keys {
                sum += *theirs.get(black_box(k)).unwrap();
            }
            sum
        })
    });
    g.finish();

    // Remove every other entry and insert it back: the free-list path.
    let mut g = c.benchmark_group("slab_remove_insert_5k");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("arenapool_slab", |b| {
        b.iter(|| {
            for k in our_keys.iter_mut().step_by(2) {
                let v = ours.remove(*k).unwrap();
                *k = ours.insert(black_box(v));
            }
        })
    });
    g.bench_function("slab_crate", |b| {
        b.iter(|| {
            for k in their_keys.iter_mut().step_by(2) {
                let v = theirs.remove(*k);
                *k = theirs.insert(black_box(v));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
