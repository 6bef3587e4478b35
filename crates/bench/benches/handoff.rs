//! Scenario d under criterion: a producer thread acquires a 4096-byte
//! buffer, writes 64 bytes and sends it over a bounded channel; a consumer
//! thread releases it. Every candidate, and the channel alone (a `usize`)
//! as the floor. Times are per buffer.
//!
//! Run: `cargo bench -p arenapool-bench --bench handoff`.

use std::time::Duration;

use arenapool_bench::{channel_floor, roster};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn handoff(c: &mut Criterion) {
    let mut group = c.benchmark_group("handoff");
    group.throughput(Throughput::Elements(1)); // one buffer per iteration
    // Each sample starts two threads; keep samples long enough to hide that.
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("channel alone (usize)", |b| {
        b.iter_custom(|iters| channel_floor(iters, 1)[0]);
    });
    for entry in roster() {
        let candidate = entry.build().expect("candidate builds");
        group.bench_function(candidate.name(), |b| {
            b.iter_custom(|iters| candidate.handoff(iters, 1)[0]);
        });
    }
    group.finish();
}

criterion_group!(benches, handoff);
criterion_main!(benches);
