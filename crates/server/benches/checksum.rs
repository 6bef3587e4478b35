//! The RFC 1071 checksum, each kernel, in GB/s.
//!
//! `cargo bench -p arenapool-server --bench checksum`; criterion prints a
//! throughput (GiB/s) per kernel and size.

use std::hint::black_box;

use arenapool_server::checksum::Kernel;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn kernels(c: &mut Criterion) {
    let data: Vec<u8> = (0..65_536u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut group = c.benchmark_group("checksum");
    for size in [64usize, 1500, 65_536] {
        group.throughput(Throughput::Bytes(size as u64));
        for kernel in Kernel::available() {
            group.bench_with_input(BenchmarkId::new(kernel.name(), size), &size, |b, &n| {
                b.iter(|| kernel.checksum(black_box(&data[..n])));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
