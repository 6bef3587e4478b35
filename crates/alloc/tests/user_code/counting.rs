//! `Counting`: the closure of `measure`.

use arenapool_alloc::{measure, thread_stats};

use super::panics;

#[test]
fn a_panic_in_measure_keeps_the_threads_peak() {
    drop(std::hint::black_box(vec![0u8; 256 * 1024]));
    let peak = thread_stats().peak_bytes;
    // (The level can start below 0: the thread may free what another
    // allocated.)
    assert!(peak >= 200 * 1024, "peak {peak}");
    assert!(panics(|| {
        // `resume_unwind` skips the panic hook, which allocates (a
        // backtrace) and would raise the peak again by itself.
        measure(|| std::panic::resume_unwind(Box::new("inside measure")));
    }));
    assert!(
        thread_stats().peak_bytes >= peak,
        "the thread's peak fell from {peak} to {}",
        thread_stats().peak_bytes
    );
}

#[test]
fn a_panic_in_a_nested_measure_keeps_the_outer_peak() {
    let ((), outer) = measure(|| {
        drop(std::hint::black_box(vec![0u8; 100 * 1024]));
        assert!(panics(|| {
            measure(|| std::panic::resume_unwind(Box::new("inside the inner measure")));
        }));
    });
    assert!(
        outer.peak_bytes >= 100 * 1024,
        "the outer measure saw a peak of {}",
        outer.peak_bytes
    );
}
