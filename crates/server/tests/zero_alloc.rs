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
use arenapool_server::{Mode, ServerConfig, UdpIo};

mod support;

#[global_allocator]
static ALLOC: Counting<System> = Counting::new(System);

fn run(server: ServerConfig) -> case::CaseResult {
    let r = case::run(&CaseConfig {
        server: ServerConfig {
            workers: 2,
            warmup: 500,
            ..server
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
    assert!(r.load.all_verified(), "{}: {:?}", server.label(), r.load);
    r
}

#[test]
fn pool_and_uring_modes_allocate_nothing_per_packet_and_vec_mode_once() {
    assert!(arenapool_server::counting_installed());
    for server in support::servers(ServerConfig::default()) {
        let what = server.label();
        let r = run(server);
        let a = r.server.allocs;
        assert!(a.counted, "{what}");
        // Every worker that got traffic beyond its warm-up contributes:
        // the window covers most of the packets.
        assert!(a.packets >= 10_000, "{what}: {a:?}");
        assert_eq!(a.reallocations, 0, "{what}: {a:?}");
        match server.mode {
            Mode::Pool | Mode::Uring => {
                assert_eq!(a.allocations, 0, "{what} allocated: {a:?}");
                assert_eq!(a.deallocations, 0, "{what}: {a:?}");
                assert_eq!(a.allocations_per_packet(), Some(0.0));
            }
            Mode::Vec => {
                // One fresh zeroed buffer per datagram (per GRO train
                // with gso), freed after the reply; give or take the
                // buffers each of the two workers keeps for its next
                // receive (taken before the window opened, or still held
                // at its end): one in the loop with a call per datagram,
                // up to a batch with recvmmsg.
                let spares = match server.io {
                    UdpIo::PerDatagram => 2,
                    UdpIo::Mmsg => 2 * server.batch as u64,
                };
                if !server.gso {
                    assert!(a.allocations.abs_diff(a.packets) <= spares, "{what}: {a:?}");
                }
                assert!(
                    a.deallocations.abs_diff(a.allocations) <= spares,
                    "{what}: {a:?}"
                );
                assert!(
                    a.allocations > 0 && a.allocations <= a.packets + spares,
                    "{what}: {a:?}"
                );
                assert_eq!(
                    a.bytes_allocated,
                    a.allocations * server.recv_buffer_len() as u64,
                    "{what}: {a:?}"
                );
            }
        }
    }
}
