//! The server and the load generator against each other on loopback, in
//! every mode (io_uring mode where the kernel offers it), for a bounded
//! count: every reply verified.

use std::time::Duration;

use arenapool_server::case::{self, CaseConfig};
use arenapool_server::load::{self, LoadConfig};
use arenapool_server::{Mode, Server, ServerConfig};

mod support;

fn case(mode: Mode, workers: usize, load: LoadConfig) -> case::CaseResult {
    let result = case::run(&CaseConfig {
        server: ServerConfig {
            mode,
            workers,
            warmup: 50,
            ..ServerConfig::default()
        },
        load,
    })
    .unwrap();
    assert_eq!(result.mode, mode);
    result
}

#[test]
fn every_mode_answers_every_request() {
    let servers = support::servers(ServerConfig {
        workers: 2,
        warmup: 50,
        ..ServerConfig::default()
    });
    let clients = support::clients(LoadConfig {
        count: 3000,
        window: 32,
        payload: 1000,
        sockets: 4,
        // Generous: a shared CI machine may stall a thread for a while,
        // and a reply that comes late would be counted, not hidden.
        timeout: Duration::from_secs(10),
        ..LoadConfig::default()
    });
    for server in servers {
        for load in &clients {
            answers_every_request(server, *load);
        }
    }
}

fn answers_every_request(server: ServerConfig, load: LoadConfig) {
    let what = format!(
        "{}, client batch {} gso {}",
        server.label(),
        load.batch,
        load.gso
    );
    let r = case::run(&CaseConfig { server, load }).unwrap();
    assert!(r.load.all_verified(), "{what}: {:?}", r.load);
    assert_eq!(r.server.stats.replied, 3000, "{what}");
    assert_eq!(r.server.stats.drops.total(), 0, "{what}");
    assert_eq!(r.server.per_worker.len(), 2);
    assert_eq!(
        r.server.per_worker.iter().map(|w| w.replied).sum::<u64>(),
        3000
    );
    assert_eq!(r.load.latency.count, 3000);
    assert!(r.load.latency.p50_ns <= r.load.latency.p99_ns);
    assert_eq!(r.load.timeline.iter().sum::<u64>(), 3000);
    // Every way counts its system calls and its CPU time.
    assert!(r.server.stats.io_calls > 0, "{what}");
    if cfg!(target_os = "linux") {
        assert!(r.server.stats.cpu_ns > 0, "{what}");
        assert!(r.load.cpu_s > 0.0, "{what}");
    }
    match server.mode {
        Mode::Pool | Mode::Uring => {
            let pool = r.server.pool.unwrap();
            assert_eq!(pool.failed_acquires, 0);
            assert!(pool.high_water <= pool.capacity);
        }
        Mode::Vec => assert!(r.server.pool.is_none()),
    }
}

#[test]
fn odd_payload_sizes_and_a_paced_rate() {
    for payload in [0, 1, 33, 1471] {
        let r = case(
            Mode::Pool,
            1,
            LoadConfig {
                count: 200,
                window: 4,
                payload,
                rate: Some(20_000),
                sockets: 2,
                timeout: Duration::from_secs(10),
                ..LoadConfig::default()
            },
        );
        assert!(r.load.all_verified(), "payload {payload}: {:?}", r.load);
    }
}

#[test]
fn serve_and_load_separately() {
    let server = Server::start(ServerConfig {
        mode: Mode::Vec,
        workers: 3,
        ..ServerConfig::default()
    })
    .unwrap();
    let report = load::run(&LoadConfig {
        target: server.local_addr(),
        count: 1000,
        window: 16,
        payload: 64,
        sockets: 6,
        threads: 2,
        timeout: Duration::from_secs(10),
        ..LoadConfig::default()
    })
    .unwrap();
    assert!(report.all_verified(), "{report:?}");
    assert_eq!(server.stats().replied, 1000);
    let done = server.shutdown();
    assert_eq!(done.stats.replied, 1000);
}

#[test]
fn payloads_that_do_not_fit_are_dropped_as_oversized() {
    // 2048-byte buffers take at most 2047-byte datagrams: a 2015-byte
    // payload fits exactly, a 2016-byte one does not.
    let server = Server::start(ServerConfig {
        workers: 1,
        ..ServerConfig::default()
    })
    .unwrap();
    let fits = load::run(&LoadConfig {
        target: server.local_addr(),
        count: 10,
        window: 1,
        payload: server.config().max_payload(),
        sockets: 1,
        timeout: Duration::from_secs(10),
        ..LoadConfig::default()
    })
    .unwrap();
    assert!(fits.all_verified());
    let too_big = load::run(&LoadConfig {
        target: server.local_addr(),
        count: 10,
        window: 10,
        payload: server.config().max_payload() + 1,
        sockets: 1,
        timeout: Duration::from_millis(300),
        ..LoadConfig::default()
    })
    .unwrap();
    assert_eq!(too_big.received, 0);
    assert_eq!(too_big.lost, 10);
    let report = server.shutdown();
    assert_eq!(report.stats.drops.oversized, 10);
    assert_eq!(report.stats.replied, 10);
}

#[test]
fn uring_mode_recovers_when_its_buffer_rings_run_dry() {
    if !support::mode_runs_here(Mode::Uring) {
        return;
    }
    // One worker with 2 buffers: its provided ring holds 1. A window of 64
    // requests keeps up to 63 datagrams waiting in the socket while the
    // ring's one buffer is out (received into, then sent from), so each
    // receive finds the ring empty after one datagram: it ends with
    // ENOBUFS, counted, and is re-armed once the reply gives its buffer
    // back. Every request is still answered.
    let result = case::run(&CaseConfig {
        server: ServerConfig {
            mode: Mode::Uring,
            workers: 1,
            capacity: 2,
            warmup: 50,
            ..ServerConfig::default()
        },
        load: LoadConfig {
            count: 2000,
            window: 64,
            payload: 700,
            sockets: 4,
            timeout: Duration::from_secs(10),
            ..LoadConfig::default()
        },
    })
    .unwrap();
    assert!(result.load.all_verified(), "{:?}", result.load);
    let stats = result.server.stats;
    assert_eq!(stats.replied, 2000);
    assert_eq!(stats.drops.total(), 0);
    assert_eq!(stats.recv_errors, 0);
    assert_eq!(stats.send_errors, 0);
    assert!(stats.enobufs > 0, "the ring never ran dry: {stats:?}");
    let pool = result.server.pool.unwrap();
    assert_eq!(pool.capacity, 2);
    assert_eq!(pool.failed_acquires, 0);
}

#[test]
fn uring_mode_gives_every_buffer_back_on_shutdown() {
    if !support::mode_runs_here(Mode::Uring) {
        return;
    }
    let server = Server::start(ServerConfig {
        mode: Mode::Uring,
        workers: 2,
        capacity: 64,
        ..ServerConfig::default()
    })
    .unwrap();
    let pool = server.pool().unwrap().clone();
    // Each worker lends half its share (16) to its provided ring.
    assert_eq!(pool.stats().in_use, 32);
    let report = load::run(&LoadConfig {
        target: server.local_addr(),
        count: 500,
        window: 8,
        payload: 100,
        sockets: 4,
        timeout: Duration::from_secs(10),
        ..LoadConfig::default()
    })
    .unwrap();
    assert!(report.all_verified(), "{report:?}");
    let done = server.shutdown();
    assert_eq!(done.stats.replied, 500);
    assert_eq!(pool.stats().in_use, 0, "the rings gave their buffers back");
}

#[test]
fn gso_trains_of_large_requests_stay_within_one_udp_datagram() {
    if !(cfg!(target_os = "linux") && support::gso_runs_here()) {
        return;
    }
    // 32 requests of 2114 bytes would be 67 648 bytes: more than one
    // UDP/IPv4 datagram holds, so a train must carry fewer.
    for payload in [2082, 1060] {
        let load = LoadConfig {
            count: 2000,
            window: 64,
            payload,
            sockets: 1,
            batch: 64,
            gso: true,
            timeout: Duration::from_secs(10),
            ..LoadConfig::default()
        };
        let r = case::run(&CaseConfig {
            server: ServerConfig {
                workers: 1,
                buffer_size: 4096,
                warmup: 0,
                gso: true,
                ..ServerConfig::default()
            },
            load,
        })
        .unwrap();
        let l = &r.load;
        let seen = (l.sent, l.received, l.lost, l.bad, l.send_errors);
        assert_eq!(l.send_errors, 0, "payload {payload}: {seen:?}");
        assert!(l.all_verified(), "payload {payload}: {seen:?}");
    }
}
