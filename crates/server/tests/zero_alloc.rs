//! The claim "pool mode allocates nothing per packet", as a test: this
//! binary installs the counting global allocator, and each server worker
//! counts its own thread's allocations over its steady state (after a
//! warm-up), so the load generator in the same process is not counted.
//!
//! io_uring mode must allocate nothing per packet either. Vec mode, same
//! load, is the control: one allocation per packet.

use std::alloc::System;
use std::time::Duration;

use arenapool_alloc::Counting;
use arenapool_server::case::{self, CaseConfig};
use arenapool_server::load::LoadConfig;
use arenapool_server::{Mode, ServerConfig};

mod support;

#[global_allocator]
static ALLOC: Counting<System> = Counting::new(System);

fn run(mode: Mode) -> case::CaseResult {
    let r = case::run(&CaseConfig {
        server: ServerConfig {
            mode,
            workers: 2,
            warmup: 500,
            ..ServerConfig::default()
        },
        load: LoadConfig {
            count: 20_000,
            window: 32,
            payload: 512,
            sockets: 4,
            timeout: Duration::from_secs(10),
            ..LoadConfig::default()
        },
    })
    .unwrap();
    assert!(r.load.all_verified(), "{mode}: {:?}", r.load);
    r
}

#[test]
fn pool_and_uring_modes_allocate_nothing_per_packet_and_vec_mode_once() {
    assert!(arenapool_server::counting_installed());

    let pool = run(Mode::Pool);
    let a = pool.server.allocs;
    assert!(a.counted);
    // Every worker that got traffic beyond its warm-up contributes: the
    // window covers most of the packets.
    assert!(a.packets >= 10_000, "{a:?}");
    assert_eq!(a.allocations, 0, "pool mode allocated: {a:?}");
    assert_eq!(a.reallocations, 0, "{a:?}");
    assert_eq!(a.deallocations, 0, "{a:?}");
    assert_eq!(a.allocations_per_packet(), Some(0.0));

    if support::mode_runs_here(Mode::Uring) {
        let uring = run(Mode::Uring);
        let u = uring.server.allocs;
        assert!(u.counted);
        assert!(u.packets >= 10_000, "{u:?}");
        assert_eq!(u.allocations, 0, "uring mode allocated: {u:?}");
        assert_eq!(u.reallocations, 0, "{u:?}");
        assert_eq!(u.deallocations, 0, "{u:?}");
    }

    let vec = run(Mode::Vec);
    let v = vec.server.allocs;
    assert!(v.counted && v.packets >= 10_000, "{v:?}");
    // One `vec![0; 2048]` per datagram, freed after the reply; give or
    // take the one spare buffer each of the two workers keeps between
    // batches (taken before the window opened, or still held at its end).
    assert!(v.allocations.abs_diff(v.packets) <= 2, "{v:?}");
    assert!(v.deallocations.abs_diff(v.packets) <= 2, "{v:?}");
    assert_eq!(v.bytes_allocated, v.allocations * 2048, "{v:?}");
    assert_eq!(v.reallocations, 0, "{v:?}");
}
