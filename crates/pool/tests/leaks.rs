//! Leak reports with the call site (`PoolBuilder::track_leaks`): where
//! each tracked buffer still held was acquired, for every way of
//! acquiring, sampled one in `every`, cleared on release, kept for
//! buffers lost to `mem::forget`, and reported once when the last handle
//! drops (with the feature `tracing`).

use std::panic::Location;
use std::time::Duration;

use arenapool::Pool;

fn tracked(every: u32) -> Pool {
    Pool::builder()
        .buffer_size(64)
        .capacity(128)
        .track_leaks(every)
        .build()
        .unwrap()
}

/// Classes of 64 and 1024 bytes, every acquisition tracked.
fn two_classes_tracked() -> Pool {
    Pool::builder()
        .class(64, 8)
        .class(1024, 8)
        .track_leaks(1)
        .build()
        .unwrap()
}

#[test]
fn every_way_of_acquiring_names_its_caller() {
    let pool = two_classes_tracked();
    let here = Location::caller().file();
    let t = Duration::from_secs(1);
    // Each acquire is on the line after its `line!()`.
    let la = line!() + 1;
    let a = pool.try_acquire().unwrap();
    let lb = line!() + 1;
    let b = pool.try_acquire_owned().unwrap();
    let lc = line!() + 1;
    let c = pool.acquire_blocking(t).unwrap();
    let ld = line!() + 1;
    let d = pool.acquire_owned_blocking(t).unwrap();
    let le = line!() + 1;
    let e = pool.try_acquire_with_capacity(1000).unwrap().unwrap();
    let lf = line!() + 1;
    let f = pool.try_acquire_owned_with_capacity(1000).unwrap().unwrap();
    let lg = line!() + 1;
    let g = pool.acquire_blocking_with_capacity(1000, t).unwrap();
    let mut out = pool.outstanding();
    out.sort_by_key(|o| o.location.line());
    let lines: Vec<u32> = out.iter().map(|o| o.location.line()).collect();
    assert_eq!(lines, [la, lb, lc, ld, le, lf, lg], "{out:#?}");
    assert!(out.iter().all(|o| o.location.file() == here), "{out:#?}");
    let sizes: Vec<usize> = out.iter().map(|o| o.buffer_size).collect();
    assert_eq!(sizes, [64, 64, 64, 64, 1024, 1024, 1024]);
    drop((a, b, c, d, e, f, g));
    assert!(pool.outstanding().is_empty());
}

#[cfg(feature = "async")]
#[test]
fn async_acquires_name_their_caller_too() {
    use futures::executor::block_on as wait;
    let pool = two_classes_tracked();
    // Each future is made on the line after its `line!()`.
    let lh = line!() + 1;
    let h = wait(pool.acquire());
    let li = line!() + 1;
    let i = wait(pool.acquire_owned());
    let lj = line!() + 1;
    let j = wait(pool.acquire_with_capacity(1000)).unwrap();
    let lk = line!() + 1;
    let k = wait(pool.acquire_owned_with_capacity(1000)).unwrap();
    let mut out = pool.outstanding();
    out.sort_by_key(|o| o.location.line());
    let lines: Vec<u32> = out.iter().map(|o| o.location.line()).collect();
    assert_eq!(lines, [lh, li, lj, lk], "{out:#?}");
    drop((h, i, j, k));
    assert!(pool.outstanding().is_empty());
}

#[test]
#[cfg_attr(miri, ignore = "it leaks a buffer on purpose, and with it the pool")]
fn a_release_clears_the_record_and_a_forgotten_buffer_keeps_it() {
    // A handle kept for the whole process, so that the pool a forgotten
    // buffer keeps alive stays reachable: LeakSanitizer (CI's
    // AddressSanitizer run) reports only what nothing points to.
    static KEPT: std::sync::OnceLock<Pool> = std::sync::OnceLock::new();
    let pool = KEPT.get_or_init(|| tracked(1));
    let kept = pool.try_acquire_owned().unwrap();
    let lost = pool.try_acquire_owned().unwrap();
    let lost_index = lost.index();
    std::mem::forget(lost);
    drop(pool.try_acquire().unwrap());
    std::thread::sleep(Duration::from_millis(10));
    let out = pool.outstanding();
    assert_eq!(out.len(), 2, "{out:#?}");
    drop(kept);
    let out = pool.outstanding();
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].index, lost_index);
    assert!(out[0].age >= Duration::from_millis(10), "{out:#?}");
    assert!(out[0].to_string().contains("64-byte buffer"), "{}", out[0]);
    // Still there later: nothing ever releases it.
    for _ in 0..100 {
        drop(pool.try_acquire().unwrap());
    }
    assert_eq!(pool.outstanding().len(), 1);
}

#[test]
fn one_acquisition_in_every_is_tracked() {
    // A fresh thread: the sampling count is per thread.
    std::thread::spawn(|| {
        let pool = tracked(4);
        let held: Vec<_> = (0..100).map(|_| pool.try_acquire().unwrap()).collect();
        assert_eq!(pool.outstanding().len(), 25);
        drop(held);
        assert!(pool.outstanding().is_empty());
    })
    .join()
    .unwrap();
}

#[test]
fn off_tracks_nothing() {
    let pool = Pool::new(64, 4).unwrap();
    let held = pool.try_acquire().unwrap();
    assert!(pool.outstanding().is_empty());
    drop(held);
}

#[cfg(feature = "tracing")]
mod report {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    /// Counts warnings, and keeps the last one's text.
    #[derive(Default)]
    struct Warnings {
        count: AtomicUsize,
        last: std::sync::Mutex<String>,
    }

    struct Collect(Arc<Warnings>);

    impl Subscriber for Collect {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, e: &Event<'_>) {
            if *e.metadata().level() == Level::WARN {
                self.0.count.fetch_add(1, Relaxed);
                *self.0.last.lock().unwrap() = format!("{e:?}");
            }
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn the_last_handle_reports_what_is_still_out_once() {
        let seen = Arc::new(Warnings::default());
        tracing::subscriber::with_default(Collect(Arc::clone(&seen)), || {
            let pool = arenapool::Pool::builder()
                .class(64, 4)
                .class(4096, 4)
                .track_leaks(1)
                .build()
                .unwrap();
            let small = pool.try_acquire_owned().unwrap();
            let large = pool.try_acquire_owned_with_capacity(4096).unwrap().unwrap();
            let copy = pool.clone();
            drop(pool);
            assert_eq!(seen.count.load(Relaxed), 0, "a handle is left");
            drop(copy);
            assert_eq!(seen.count.load(Relaxed), 1, "one report for both classes");
            let text = seen.last.lock().unwrap().clone();
            assert!(text.contains("leaks.rs"), "{text}");
            assert!(text.contains("4096-byte"), "{text}");
            // The buffers still work, and their release reports nothing.
            drop((small, large));
            assert_eq!(seen.count.load(Relaxed), 1);
        });
    }
}
