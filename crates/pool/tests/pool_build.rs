//! Every `BuildError` variant, reached through the public builder, and the
//! error types' `Display` messages.

use std::time::Duration;

use arenapool::{BuildError, CapacityError, Exhausted, MAX_ALIGNMENT, MAX_CAPACITY, Pool};

fn build_err(b: arenapool::PoolBuilder) -> BuildError {
    b.build().expect_err("this configuration must be refused")
}

#[test]
fn zero_size() {
    assert_eq!(
        build_err(Pool::builder().buffer_size(0)),
        BuildError::ZeroSize
    );
    assert_eq!(Pool::new(0, 4).unwrap_err(), BuildError::ZeroSize);
}

#[test]
fn zero_capacity() {
    assert_eq!(
        build_err(Pool::builder().capacity(0)),
        BuildError::ZeroCapacity
    );
    assert_eq!(Pool::new(64, 0).unwrap_err(), BuildError::ZeroCapacity);
    // Growth does not make an empty start acceptable.
    assert_eq!(
        build_err(Pool::builder().capacity(0).grow_to(8)),
        BuildError::ZeroCapacity
    );
}

#[test]
fn capacity_too_large() {
    assert_eq!(
        build_err(Pool::builder().capacity(MAX_CAPACITY + 1)),
        BuildError::CapacityTooLarge {
            requested: MAX_CAPACITY as u64 + 1,
            max: MAX_CAPACITY as u64,
        }
    );
    assert_eq!(
        build_err(Pool::builder().capacity(usize::MAX)),
        BuildError::CapacityTooLarge {
            requested: usize::MAX as u64,
            max: MAX_CAPACITY as u64,
        }
    );
    // The growth limit is checked against the same maximum.
    assert_eq!(
        build_err(Pool::builder().capacity(4).grow_to(MAX_CAPACITY + 1)),
        BuildError::CapacityTooLarge {
            requested: MAX_CAPACITY as u64 + 1,
            max: MAX_CAPACITY as u64,
        }
    );
    assert_eq!(MAX_CAPACITY, u32::MAX as usize - 1);
}

#[test]
fn grow_limit_below_capacity() {
    assert_eq!(
        build_err(Pool::builder().capacity(10).grow_to(9)),
        BuildError::GrowLimitBelowCapacity {
            capacity: 10,
            limit: 9
        }
    );
    assert_eq!(
        build_err(Pool::builder().capacity(1).grow_to(0)),
        BuildError::GrowLimitBelowCapacity {
            capacity: 1,
            limit: 0
        }
    );
    // Equal is fine: a pool that cannot grow.
    let pool = Pool::builder()
        .buffer_size(8)
        .capacity(3)
        .grow_to(3)
        .build()
        .unwrap();
    assert_eq!(pool.stats().max_capacity, 3);
}

#[test]
fn bad_alignment() {
    for a in [
        0,
        3,
        6,
        48,
        100,
        MAX_ALIGNMENT + 1,
        MAX_ALIGNMENT * 2,
        usize::MAX,
    ] {
        assert_eq!(
            build_err(Pool::builder().buffer_size(8).capacity(1).alignment(a)),
            BuildError::BadAlignment(a),
            "alignment {a}"
        );
    }
}

#[test]
fn good_alignments_give_aligned_buffers() {
    for a in [1, 2, 8, 64, 512, MAX_ALIGNMENT] {
        let pool = Pool::builder()
            .buffer_size(3)
            .capacity(3)
            .alignment(a)
            .build()
            .unwrap_or_else(|e| panic!("alignment {a}: {e}"));
        assert_eq!(pool.alignment(), a);
        let bufs: Vec<_> = (0..3).map(|_| pool.try_acquire().unwrap()).collect();
        for b in &bufs {
            assert_eq!(b.as_full().as_ptr() as usize % a, 0, "alignment {a}");
            assert_eq!(b.capacity(), 3);
        }
    }
}

#[test]
fn too_large() {
    // The stride (size rounded up to the alignment) overflows.
    assert_eq!(
        build_err(Pool::builder().buffer_size(usize::MAX).capacity(1)),
        BuildError::TooLarge
    );
    assert_eq!(
        build_err(
            Pool::builder()
                .buffer_size(usize::MAX - 10)
                .capacity(1)
                .alignment(64)
        ),
        BuildError::TooLarge
    );
    // stride x capacity above isize::MAX.
    assert_eq!(
        build_err(Pool::builder().buffer_size(1 << 40).capacity(1 << 24)),
        BuildError::TooLarge
    );
    assert_eq!(
        build_err(
            Pool::builder()
                .buffer_size(isize::MAX as usize / 2 + 1)
                .alignment(1)
                .capacity(2)
        ),
        BuildError::TooLarge
    );
    // The growth limit counts, not only the initial capacity.
    assert_eq!(
        build_err(
            Pool::builder()
                .buffer_size(1 << 40)
                .capacity(1)
                .grow_to(1 << 24)
        ),
        BuildError::TooLarge
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "Miri aborts on huge allocations instead of returning null"
)]
fn alloc_failure_is_a_typed_error() {
    // 2^32 x 2^30 = 2^62 bytes (4 EiB): below isize::MAX, so it passes the
    // checks, but it lies beyond any address space (47 bits, or 56 with
    // 5-level paging): no allocator can map it, even with
    // `vm.overcommit_memory = 1`.
    let err = Pool::builder()
        .buffer_size(1 << 32)
        .capacity(1 << 30)
        .build()
        .expect_err("4 EiB cannot be allocated");
    assert!(
        matches!(err, BuildError::Alloc { bytes } if bytes == 1 << 62),
        "{err:?}"
    );
    assert!(err.to_string().contains(&(1u64 << 62).to_string()), "{err}");
}

#[test]
fn defaults_build_and_are_reported() {
    let pool = Pool::builder().build().unwrap();
    assert_eq!(pool.buffer_size(), 4096);
    assert_eq!(pool.alignment(), 64);
    let s = pool.stats();
    assert_eq!((s.capacity, s.max_capacity, s.in_use), (1024, 1024, 0));
    assert_eq!(s.segments, 1);

    let pool = Pool::new(100, 7).unwrap();
    assert_eq!(pool.buffer_size(), 100);
    assert_eq!(pool.stats().capacity, 7);
    let dbg = format!("{pool:?}");
    assert!(dbg.contains("buffer_size: 100"), "{dbg}");
}

#[test]
fn builder_is_reusable_through_clone() {
    let b = Pool::builder().buffer_size(32).capacity(2);
    let p1 = b.clone().build().unwrap();
    let p2 = b.build().unwrap();
    assert_eq!(p1.buffer_size(), p2.buffer_size());
    assert_eq!(p1.stats().capacity, p2.stats().capacity);
}

#[test]
fn build_error_display_messages() {
    let errors = [
        BuildError::ZeroSize,
        BuildError::ZeroCapacity,
        BuildError::CapacityTooLarge {
            requested: 5_000_000_000,
            max: MAX_CAPACITY as u64,
        },
        BuildError::GrowLimitBelowCapacity {
            capacity: 10,
            limit: 9,
        },
        BuildError::BadAlignment(48),
        BuildError::TooLarge,
        BuildError::Alloc { bytes: 12345 },
    ];
    let mut seen = Vec::new();
    for e in &errors {
        let msg = e.to_string();
        assert!(!msg.trim().is_empty(), "{e:?} has an empty message");
        assert!(!seen.contains(&msg), "two variants share {msg:?}");
        seen.push(msg);
        // It is a std error, usable behind `dyn Error`.
        let dynamic: &dyn std::error::Error = e;
        assert_eq!(dynamic.to_string(), e.to_string());
    }
    // The numbers the caller needs are in the message.
    assert!(errors[2].to_string().contains("5000000000"));
    assert!(errors[3].to_string().contains("10"));
    assert!(errors[3].to_string().contains('9'));
    assert!(errors[4].to_string().contains("48"));
    assert!(errors[6].to_string().contains("12345"));
}

#[test]
fn capacity_error_and_exhausted_display_messages() {
    let e = CapacityError {
        requested: 17,
        capacity: 16,
    };
    let msg = e.to_string();
    assert!(!msg.is_empty());
    assert!(msg.contains("17") && msg.contains("16"), "{msg}");
    let _: &dyn std::error::Error = &e;

    let e = Exhausted {
        waited: Duration::from_millis(5),
    };
    let msg = e.to_string();
    assert!(!msg.is_empty());
    assert!(msg.contains("5ms"), "{msg}");
    let _: &dyn std::error::Error = &e;

    // The real errors, not only hand-built ones, have messages.
    let pool = Pool::new(4, 1).unwrap();
    let mut buf = pool.try_acquire().unwrap();
    let real = buf.extend_from_slice(b"12345").unwrap_err();
    assert_eq!(
        real,
        CapacityError {
            requested: 5,
            capacity: 4
        }
    );
    assert!(!real.to_string().is_empty());
    let real = pool.acquire_blocking(Duration::ZERO).unwrap_err();
    assert!(!real.to_string().is_empty());
}
