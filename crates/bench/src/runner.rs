//! The scenarios and the statistics: each scenario is a loop generic over a
//! [`Candidate`], timed in batches; a measurement is the [`median`] of many
//! batches after a warm-up batch, each batch sized by [`calibrate`] to last
//! about [`Plan::sample`].
//!
//! Threaded scenarios keep their threads for all repetitions and start each
//! one on a [`Barrier`]; a repetition lasts until its slowest thread is done.
//!
//! The hand-off (scenario d) uses `std::sync::mpsc::sync_channel` with room
//! for 1024 items. Since Rust 1.67 std's channel is crossbeam-channel's
//! algorithm; on this machine, at this bound, it moved as many or more items
//! per second than `crossbeam_channel::bounded` in the same run (see the
//! crate README). The bound matters more than the crate: at 64 items the
//! producer fills the channel and both threads spend their time parking and
//! waking each other (both channels fell below 5 Mops/s); at 1024 they run
//! in batches.

use std::collections::VecDeque;
use std::hint::black_box;
use std::panic;
use std::sync::Barrier;
use std::sync::mpsc::sync_channel;
use std::thread;
use std::time::{Duration, Instant};

use crate::candidate::{Candidate, Contender};

/// Buffers held at once in scenario b.
pub const WINDOW: usize = 64;

/// The bound of the channel in scenario d.
pub const CHANNEL_BOUND: usize = 1024;

/// The channel scenario d uses, as reported.
pub const CHANNEL_NAME: &str = "std::sync::mpsc::sync_channel(1024)";

// Buffers in flight in scenario d: the channel's and the two threads'.
const _: () = assert!(CHANNEL_BOUND + 2 <= crate::candidate::POOL_CAPACITY);

/// How long and how often to measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Timed batches per measurement; the median is reported.
    pub reps: usize,
    /// What one batch should last; batch sizes are calibrated to it.
    pub sample: Duration,
    /// Scenario c runs with 1, 2, ... `max_threads` threads.
    pub max_threads: usize,
    /// Iterations of each scenario in the peak-RSS workload.
    pub rss_iters: u64,
}

impl Plan {
    /// The full run: 41 batches of about 10 ms per measurement.
    pub fn full(max_threads: usize) -> Self {
        Self {
            reps: 41,
            sample: Duration::from_millis(10),
            max_threads: max_threads.max(1),
            rss_iters: 200_000,
        }
    }

    /// The smoke test: 11 batches of about 3 ms; every candidate and every
    /// scenario still runs.
    pub fn quick(max_threads: usize) -> Self {
        Self {
            reps: 11,
            sample: Duration::from_millis(3),
            max_threads: max_threads.max(1),
            rss_iters: 20_000,
        }
    }
}

/// The median of `samples` (sorting them); the mean of the middle two for
/// an even count; `None` if empty. NaNs sort last.
pub fn median(samples: &mut [f64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let mid = samples.len() / 2;
    Some(if samples.len() % 2 == 1 {
        samples[mid]
    } else {
        (samples[mid - 1] + samples[mid]) / 2.0
    })
}

/// A batch size for which `run(batch)` takes about `target`: grows the
/// batch from 1 until one run takes a quarter of the target, then scales.
pub fn calibrate(target: Duration, mut run: impl FnMut(u64) -> Duration) -> u64 {
    let quarter = target / 4;
    let mut iters: u64 = 1;
    loop {
        let took = run(iters);
        if took >= quarter || iters >= 1 << 40 {
            let scale = target.as_secs_f64() / took.as_secs_f64().max(1e-9);
            return ((iters as f64 * scale).ceil() as u64).max(1);
        }
        let grow = if took.is_zero() {
            16.0
        } else {
            (quarter.as_secs_f64() / took.as_secs_f64()).clamp(2.0, 16.0)
        };
        iters = (iters as f64 * grow).ceil() as u64;
    }
}

/// Runs `run(batch)` once to warm up, then `reps` times, and returns the
/// median of `per_batch(batch, time)`.
fn measure(
    reps: usize,
    batch: u64,
    mut run: impl FnMut(u64) -> Duration,
    per_batch: impl Fn(u64, Duration) -> f64,
) -> f64 {
    run(batch);
    let mut samples: Vec<f64> = (0..reps.max(1))
        .map(|_| per_batch(batch, run(batch)))
        .collect();
    median(&mut samples).unwrap_or(f64::NAN)
}

fn ns_per_op(iters: u64, took: Duration) -> f64 {
    took.as_nanos() as f64 / iters as f64
}

fn mops(ops: u64, took: Duration) -> f64 {
    ops as f64 / took.as_secs_f64().max(1e-12) / 1e6
}

/// Scenario a for one candidate: median ns per round trip.
pub(crate) fn measure_round_trip(c: &dyn Contender, plan: &Plan) -> f64 {
    let batch = calibrate(plan.sample, |n| c.round_trip(n));
    measure(plan.reps, batch, |n| c.round_trip(n), ns_per_op)
}

/// Scenario b for one candidate: median ns per round trip with 64 held.
pub(crate) fn measure_window(c: &dyn Contender, plan: &Plan) -> f64 {
    let batch = calibrate(plan.sample, |n| c.window(n));
    measure(plan.reps, batch, |n| c.window(n), ns_per_op)
}

/// Scenario c for one candidate: median total Mops/s for 1 ..= max threads.
pub(crate) fn measure_parallel(c: &dyn Contender, plan: &Plan) -> Vec<(usize, f64)> {
    // Per-thread batch: what one thread does in one sample when alone.
    let batch = calibrate(plan.sample, |n| c.round_trip(n));
    (1..=plan.max_threads)
        .map(|threads| {
            let mut samples: Vec<f64> = c
                .parallel(threads, batch, plan.reps)
                .into_iter()
                .map(|wall| mops(batch * threads as u64, wall))
                .collect();
            (threads, median(&mut samples).unwrap_or(f64::NAN))
        })
        .collect()
}

/// Scenario d for one candidate: median Mops/s through the hand-off.
pub(crate) fn measure_handoff(c: &dyn Contender, plan: &Plan) -> f64 {
    let batch = calibrate(plan.sample, |n| c.handoff(n, 1)[0]);
    let mut samples: Vec<f64> = c
        .handoff(batch, plan.reps)
        .into_iter()
        .map(|took| mops(batch, took))
        .collect();
    median(&mut samples).unwrap_or(f64::NAN)
}

/// Scenario d's floor: the channel alone, sending a `usize`.
pub(crate) fn measure_channel_floor(plan: &Plan) -> f64 {
    let batch = calibrate(plan.sample, |n| channel_floor(n, 1)[0]);
    let mut samples: Vec<f64> = channel_floor(batch, plan.reps)
        .into_iter()
        .map(|took| mops(batch, took))
        .collect();
    median(&mut samples).unwrap_or(f64::NAN)
}

/// Scenario a: `iters` round trips; the time they took.
#[inline(never)]
pub fn round_trip<C: Candidate>(c: &C, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let mut buf = c.acquire();
        C::touch(&mut buf);
        black_box(&mut buf);
        c.release(buf);
    }
    start.elapsed()
}

/// Scenario b: with [`WINDOW`] buffers held, `iters` times take a new one
/// and release the oldest (FIFO); only that loop is timed.
#[inline(never)]
pub fn window<C: Candidate>(c: &C, iters: u64) -> Duration {
    let take = || {
        let mut buf = c.acquire();
        C::touch(&mut buf);
        buf
    };
    let mut held: VecDeque<C::Buf> = VecDeque::with_capacity(WINDOW + 1);
    held.extend((0..WINDOW).map(|_| take()));
    let start = Instant::now();
    for _ in 0..iters {
        held.push_back(take());
        if let Some(oldest) = held.pop_front() {
            c.release(oldest);
        }
    }
    let took = start.elapsed();
    for buf in held.drain(..) {
        c.release(buf);
    }
    took
}

/// Scenario c: `threads` threads each run `iters` round trips per
/// repetition, started together; the wall time of each repetition.
pub fn parallel<C: Candidate>(c: &C, threads: usize, iters: u64, reps: usize) -> Vec<Duration> {
    let threads = threads.max(1);
    let barrier = Barrier::new(threads);
    let per_thread: Vec<Vec<Duration>> = thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    round_trip(c, iters); // warm-up
                    (0..reps)
                        .map(|_| {
                            barrier.wait();
                            round_trip(c, iters)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().map(join).collect()
    });
    (0..reps)
        .map(|rep| {
            per_thread
                .iter()
                .map(|times| times[rep])
                .max()
                .unwrap_or_default()
        })
        .collect()
}

/// Scenario d, for any payload: a producer thread sends `produce()` over a
/// bounded channel, a consumer thread passes each item to `consume`; after
/// one warm-up repetition, `reps` repetitions of `iters` items, each timed
/// by the consumer from the shared start to its last item.
pub fn handoff<T: Send>(
    produce: impl Fn() -> T + Sync,
    consume: impl Fn(T) + Sync,
    iters: u64,
    reps: usize,
) -> Vec<Duration> {
    let (tx, rx) = sync_channel::<T>(CHANNEL_BOUND);
    let barrier = &Barrier::new(2);
    let (produce, consume) = (&produce, &consume);
    thread::scope(|s| {
        let producer = s.spawn(move || {
            for _ in 0..=reps {
                barrier.wait();
                for _ in 0..iters {
                    if tx.send(produce()).is_err() {
                        return; // the consumer died; its panic is reported
                    }
                }
            }
        });
        let consumer = s.spawn(move || {
            let mut times = Vec::with_capacity(reps);
            for rep in 0..=reps {
                barrier.wait();
                let start = Instant::now();
                for _ in 0..iters {
                    match rx.recv() {
                        Ok(item) => consume(item),
                        Err(_) => return times, // the producer died
                    }
                }
                if rep > 0 {
                    times.push(start.elapsed());
                }
            }
            times
        });
        let times = join(consumer);
        join(producer);
        times
    })
}

/// The channel floor: [`handoff`] of a `usize`, no buffer at all.
pub fn channel_floor(iters: u64, reps: usize) -> Vec<Duration> {
    handoff(
        || black_box(7usize),
        |n| {
            black_box(n);
        },
        iters,
        reps,
    )
}

/// Joins a scoped thread, re-raising its panic here.
fn join<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|payload| panic::resume_unwind(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [4.0]), Some(4.0));
        assert_eq!(median(&mut [9.0, 1.0, 5.0]), Some(5.0));
        assert_eq!(median(&mut [9.0, 1.0, 3.0, 5.0]), Some(4.0));
        // An outlier moves the mean, not the median.
        assert_eq!(median(&mut [1.0, 1e9, 2.0, 3.0, 2.0]), Some(2.0));
    }

    #[test]
    fn median_sorts_nan_last() {
        assert_eq!(median(&mut [f64::NAN, 1.0, 2.0]), Some(2.0));
    }

    #[test]
    fn calibrate_scales_to_the_target() {
        // A fake clock: each iteration "takes" 1 µs.
        let batch = calibrate(Duration::from_millis(10), Duration::from_micros);
        assert!((9_990..=10_010).contains(&batch), "{batch}");
        // Zero-time runs grow the batch until it is capped.
        assert!(calibrate(Duration::from_millis(1), |_| Duration::ZERO) >= 1 << 40);
    }

    #[test]
    fn handoff_times_each_repetition() {
        let times = channel_floor(1000, 3);
        assert_eq!(times.len(), 3);
        assert!(times.iter().all(|t| !t.is_zero()));
    }
}
