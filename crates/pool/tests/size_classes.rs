//! Pools with size classes: which class serves a size, falling up, the
//! typed error above the largest class, waiting per class, per-class
//! growth, zeroing and counters, and the builder's checks. A proptest
//! model checks random programs of sized acquires and releases against
//! per-class free counts.

use std::time::Duration;

use arenapool::{AcquireError, BuildError, Pool, TooLarge};
use proptest::collection::vec;
use proptest::prelude::*;

/// Classes of 64 (2 buffers), 1500 (1) and 65536 (1) bytes.
fn three() -> Pool {
    Pool::builder()
        .class(1500, 1)
        .class(64, 2)
        .class(65536, 1)
        .build()
        .expect("valid classes")
}

#[test]
fn the_smallest_class_that_holds_the_size_serves_it() {
    let p = three();
    assert_eq!(
        p.buffer_sizes().collect::<Vec<_>>(),
        [64, 1500, 65536],
        "sorted"
    );
    assert_eq!(p.buffer_size(), 64);
    for (n, size) in [
        (0, 64),
        (1, 64),
        (64, 64),
        (65, 1500),
        (1500, 1500),
        (1501, 65536),
    ] {
        let buf = p.try_acquire_with_capacity(n).unwrap().unwrap();
        assert_eq!(buf.capacity(), size, "for {n} bytes");
        assert_eq!(
            buf.pool().buffer_size(),
            size,
            "the buffer's pool is its class"
        );
    }
    assert_eq!(p.stats().in_use, 0);
}

#[test]
fn above_the_largest_class_is_a_typed_error() {
    let p = three();
    let e = TooLarge {
        requested: 65537,
        largest: 65536,
    };
    assert_eq!(p.try_acquire_with_capacity(65537).unwrap_err(), e);
    assert_eq!(p.try_acquire_owned_with_capacity(65537).unwrap_err(), e);
    assert_eq!(
        p.acquire_blocking_with_capacity(usize::MAX, Duration::from_secs(60))
            .unwrap_err(),
        AcquireError::TooLarge(TooLarge {
            requested: usize::MAX,
            largest: 65536
        }),
        "never waits for a size no class has"
    );
    let single = Pool::new(128, 1).unwrap();
    let err = single.try_acquire_with_capacity(129).unwrap_err();
    assert_eq!((err.requested, err.largest), (129, 128));
    assert!(err.to_string().contains("129"), "{err}");
    assert_eq!(
        single
            .try_acquire_with_capacity(128)
            .unwrap()
            .unwrap()
            .capacity(),
        128
    );
}

#[test]
fn an_empty_class_falls_up_unless_told_not_to() {
    let p = three();
    let small: Vec<_> = (0..2)
        .map(|_| p.try_acquire_with_capacity(10).unwrap().unwrap())
        .collect();
    let up = p.try_acquire_with_capacity(10).unwrap().unwrap();
    assert_eq!(up.capacity(), 1500, "the 64-byte class is empty");
    let top = p.try_acquire_with_capacity(10).unwrap().unwrap();
    assert_eq!(top.capacity(), 65536);
    assert!(p.try_acquire_with_capacity(10).unwrap().is_none());
    let failed: Vec<_> = p
        .class_stats()
        .iter()
        .map(|c| c.stats.failed_acquires)
        .collect();
    assert_eq!(
        failed,
        [1, 0, 0],
        "the failure counts in the class asked for"
    );
    drop((small, up, top));

    let strict = Pool::builder()
        .class(64, 1)
        .class(1500, 1)
        .fall_up(false)
        .build()
        .unwrap();
    let held = strict.try_acquire_with_capacity(1).unwrap().unwrap();
    assert!(strict.try_acquire_with_capacity(1).unwrap().is_none());
    assert!(
        strict.try_acquire_with_capacity(1000).unwrap().is_some(),
        "the other class is untouched"
    );
    drop(held);
}

#[test]
fn owned_buffers_of_any_class_outlive_the_pool_handle() {
    let p = three();
    let mut big = p.try_acquire_owned_with_capacity(2000).unwrap().unwrap();
    let small = p.try_acquire_owned_with_capacity(2).unwrap().unwrap();
    drop(p);
    big.extend_from_slice(&[7; 2000]).unwrap();
    assert_eq!(big.pool().stats().in_use, 1);
    let frozen = big.freeze();
    assert_eq!(frozen.len(), 2000);
    drop((small, frozen)); // the last of each class frees it (Miri checks)
}

#[test]
fn a_waiting_acquire_waits_in_its_class() {
    let p = Pool::builder()
        .class(64, 1)
        .class(4096, 1)
        .cache_size(0)
        .build()
        .unwrap();
    let small = p.try_acquire_with_capacity(1).unwrap().unwrap();
    let large = p.try_acquire_with_capacity(1).unwrap().unwrap();
    assert_eq!(large.capacity(), 4096, "fell up");
    let err = p
        .acquire_blocking_with_capacity(1, Duration::from_millis(5))
        .unwrap_err();
    assert!(matches!(err, AcquireError::Exhausted(e) if e.waited >= Duration::from_millis(5)));
    std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(small);
        });
        let got = p
            .acquire_blocking_with_capacity(1, Duration::from_secs(30))
            .unwrap();
        assert_eq!(got.capacity(), 64, "woken by its own class's release");
    });
    drop(large);
    let owned = p
        .acquire_owned_blocking_with_capacity(100, Duration::ZERO)
        .unwrap();
    assert_eq!(owned.capacity(), 4096);
}

#[test]
#[cfg(feature = "async")]
fn async_acquires_fall_up_then_wait_in_their_class() {
    futures::executor::block_on(async {
        let p = Pool::builder().class(64, 1).class(4096, 1).build().unwrap();
        let a = p.acquire_with_capacity(8).await.unwrap();
        let b = p.acquire_owned_with_capacity(8).await.unwrap();
        assert_eq!((a.capacity(), b.capacity()), (64, 4096));
        assert!(p.acquire_with_capacity(5000).await.is_err());
        let mut waiting = Box::pin(p.acquire_with_capacity(8));
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        assert_eq!(p.class_stats()[0].stats.waiting, 1);
        drop(b);
        assert!(
            waiting.as_mut().poll(&mut cx).is_pending(),
            "a larger release does not serve it"
        );
        drop(a);
        let got = waiting.await.unwrap();
        assert_eq!(got.capacity(), 64);
    });
}

#[test]
fn classes_grow_zero_and_count_on_their_own() {
    let p = Pool::builder()
        .class(16, 1)
        .growing_class(32, 1, 4)
        .zero_on_release(true)
        .fall_up(false)
        .build()
        .unwrap();
    let held: Vec<_> = (0..4)
        .map(|_| p.try_acquire_with_capacity(20).unwrap().unwrap())
        .collect();
    assert!(
        p.try_acquire_with_capacity(20).unwrap().is_none(),
        "grown to its limit"
    );
    let mut small = p.try_acquire_with_capacity(1).unwrap().unwrap();
    assert!(
        p.try_acquire_with_capacity(1).unwrap().is_none(),
        "the 16-byte class cannot grow"
    );
    small.extend_from_slice(b"secret").unwrap();
    drop(small);
    let again = p.try_acquire_with_capacity(1).unwrap().unwrap();
    assert!(
        again.as_full().iter().all(|&b| b == 0),
        "zeroed in its class"
    );
    let stats = p.class_stats();
    assert_eq!(
        stats
            .iter()
            .map(|c| (c.buffer_size, c.stats.capacity, c.stats.max_capacity))
            .collect::<Vec<_>>(),
        [(16, 1, 1), (32, 4, 4)]
    );
    let sum = p.stats();
    assert_eq!((sum.capacity, sum.max_capacity, sum.in_use), (5, 5, 5));
    assert_eq!(sum.failed_acquires, 2);
    drop((held, again));
    assert_eq!(p.stats().in_use, 0);
}

#[test]
fn the_builder_checks_classes_before_allocating_any() {
    let err = |b: arenapool::PoolBuilder| b.build().unwrap_err();
    assert_eq!(
        err(Pool::builder().class(64, 1).class(64, 2)),
        BuildError::DuplicateClass(64)
    );
    assert_eq!(
        err(Pool::builder().buffer_size(64).class(128, 1)),
        BuildError::ClassesAndSize
    );
    assert_eq!(
        err(Pool::builder().class(64, 1).class(128, 0)),
        BuildError::ZeroCapacity
    );
    assert_eq!(
        err(Pool::builder().class(64, 1).growing_class(128, 4, 2)),
        BuildError::GrowLimitBelowCapacity {
            capacity: 4,
            limit: 2
        }
    );
    assert_eq!(err(Pool::builder().class(0, 1)), BuildError::ZeroSize);
    let huge = Pool::builder().class(64, 1).class(1 << 40, 1 << 24);
    assert_eq!(err(huge), BuildError::TooLarge);
}

/// A sized acquire (owned or not) or a release, in a random program.
#[derive(Debug, Clone)]
enum Op {
    Take { n: usize, owned: bool },
    Release(usize),
}

fn op(largest: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..largest + 40, any::<bool>()).prop_map(|(n, owned)| Op::Take { n, owned }),
        2 => any::<usize>().prop_map(Op::Release),
    ]
}

/// Up to four classes of distinct sizes, with their capacities, and the
/// fall-up setting.
fn classes() -> impl Strategy<Value = (Vec<(usize, usize)>, bool)> {
    (
        prop::collection::btree_map(1usize..200, 1usize..4, 1..5),
        any::<bool>(),
    )
        .prop_map(|(m, fall_up)| (m.into_iter().collect(), fall_up))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 256 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn sized_acquires_match_a_model(
        (classes, fall_up) in classes(),
        ops in vec(op(200), 1..if cfg!(miri) { 20 } else { 80 }),
    ) {
        let mut b = Pool::builder().fall_up(fall_up).cache_size(2);
        for &(size, cap) in &classes {
            b = b.class(size, cap);
        }
        let pool = b.build().unwrap();
        let largest = classes.last().unwrap().0;
        let mut free: Vec<usize> = classes.iter().map(|c| c.1).collect();
        let mut held = Vec::new();
        for op in ops {
            match op {
                Op::Take { n, owned } => {
                    let want = classes.iter().position(|c| n <= c.0);
                    // A borrowed buffer cannot outlive this arm: it shows
                    // its size and goes back at once.
                    let got = if owned {
                        pool.try_acquire_owned_with_capacity(n)
                            .map(|o| o.map(|b| (b.capacity(), Some(b))))
                    } else {
                        pool.try_acquire_with_capacity(n).map(|o| o.map(|b| (b.capacity(), None)))
                    };
                    let Some(k) = want else {
                        prop_assert_eq!(got.err(), Some(TooLarge { requested: n, largest }));
                        continue;
                    };
                    let last = if fall_up { classes.len() - 1 } else { k };
                    let serving = (k..=last).find(|&j| free[j] > 0);
                    match (serving, got.unwrap()) {
                        (Some(j), Some((cap, buf))) => {
                            prop_assert_eq!(cap, classes[j].0, "class for {} bytes", n);
                            if let Some(buf) = buf {
                                free[j] -= 1;
                                held.push((j, buf));
                            }
                        }
                        (None, None) => {}
                        (want, got) => prop_assert!(
                            false,
                            "model {:?}, pool {:?}",
                            want,
                            got.map(|g| g.0)
                        ),
                    }
                }
                Op::Release(i) => {
                    if !held.is_empty() {
                        let (j, _) = held.swap_remove(i % held.len());
                        free[j] += 1;
                    }
                }
            }
            let in_use: Vec<_> = pool.class_stats().iter().map(|c| c.stats.in_use).collect();
            let model: Vec<_> = classes.iter().zip(&free).map(|(c, f)| c.1 - f).collect();
            prop_assert_eq!(in_use, model);
        }
    }
}
