//! Overhead of `Counting` per allocate-and-free pair over the bare
//! allocator it wraps. Both are called directly (neither is installed), so
//! the harness's own allocations do not disturb the comparison.
//!
//! `cargo bench -p arenapool-alloc --bench counting -- --warm-up-time 1 --measurement-time 3`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;

use arenapool_alloc::Counting;
use criterion::{Criterion, criterion_group, criterion_main};

fn pair<A: GlobalAlloc>(a: &A, layout: Layout) {
    // SAFETY: `layout` has a non-zero size; the block is freed right away
    // with the same layout by the allocator that made it.
    unsafe {
        let p = a.alloc(black_box(layout));
        assert!(!p.is_null());
        a.dealloc(black_box(p), layout);
    }
}

fn bench(c: &mut Criterion) {
    let counting = Counting::new(System);
    for size in [16usize, 256] {
        let layout = Layout::from_size_align(size, 8).unwrap();
        let mut g = c.benchmark_group(format!("alloc_free_{size}B"));
        g.bench_function("system", |b| b.iter(|| pair(&System, layout)));
        g.bench_function("counting_system", |b| b.iter(|| pair(&counting, layout)));
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
