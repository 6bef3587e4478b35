//! Scenario a under criterion: one thread, acquire a 4096-byte buffer,
//! write 64 bytes, release; every candidate of the shoot-out.
//!
//! Run: `cargo bench -p arenapool-bench --bench round_trip`
//! (filter with a name, e.g. `-- arenapool`).

use arenapool_bench::roster;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_trip");
    group.throughput(Throughput::Elements(1)); // one buffer per iteration
    for entry in roster() {
        let candidate = entry.build().expect("candidate builds");
        group.bench_function(candidate.name(), |b| {
            b.iter_custom(|iters| candidate.round_trip(iters));
        });
    }
    group.finish();
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
