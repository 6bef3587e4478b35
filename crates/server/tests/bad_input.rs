//! Each kind of bad datagram, sent on purpose: counted under its reason,
//! never answered, never a crash; the server keeps serving.

use std::net::UdpSocket;
use std::thread;
use std::time::{Duration, Instant};

use arenapool::Pool;
use arenapool_server::wire::{self, HEADER_LEN, Header, Kind};
use arenapool_server::{DropReason, Mode, Server, ServerConfig, ServerStats, UdpIo};

mod support;

/// Waits (without a timing assertion) until the server has handled `n`
/// datagrams; gives up after a minute so a bug fails instead of hanging.
fn wait_handled(server: &Server, n: u64) -> ServerStats {
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        let s = server.stats();
        if s.handled() >= n || Instant::now() > give_up {
            return s;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn request(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8; HEADER_LEN + payload.len()];
    Header {
        kind: Kind::Request,
        payload_len: payload.len() as u32,
        seq,
        sent_ns: 0,
        checksum: 0,
    }
    .write(&mut d)
    .unwrap();
    d[HEADER_LEN..].copy_from_slice(payload);
    d
}

fn client() -> UdpSocket {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c
}

/// A good request still gets its reply afterwards.
fn still_serves(server: &Server, client: &UdpSocket) {
    client
        .send_to(&request(99, b"still here"), server.local_addr())
        .unwrap();
    let mut buf = [0u8; 256];
    // A blocking receive with a timeout may be interrupted (EINTR): an
    // io_uring this thread used (the io_uring mode's probe) can leave it
    // task work that the kernel delivers that way. Not an error: again.
    let n = loop {
        match client.recv(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => {
                break r
                    .unwrap_or_else(|e| panic!("no reply from {}: {e}", server.config().label()));
            }
        }
    };
    let reply = wire::parse(&buf[..n]).unwrap();
    assert_eq!(reply.header.kind, Kind::Reply);
    assert_eq!(reply.header.seq, 99);
    assert_eq!(reply.payload, b"still here");
}

#[test]
fn malformed_datagrams_are_counted_by_reason() {
    for config in support::servers(ServerConfig {
        workers: 1,
        buffer_size: 512,
        ..ServerConfig::default()
    }) {
        let mode = config.label();
        let server = Server::start(config).unwrap();
        let to = server.local_addr();
        let c = client();

        // Shorter than the header, including empty.
        for len in [0, 1, HEADER_LEN - 1] {
            c.send_to(&vec![7u8; len], to).unwrap();
        }
        // Not our protocol: bad magic, bad version, bad kind, a reply.
        for (at, v) in [(0, b'Z'), (2, 9), (3, 5)] {
            let mut d = request(1, b"abc");
            d[at] = v;
            c.send_to(&d, to).unwrap();
        }
        let mut reply = request(1, b"abc");
        reply[3] = 1;
        c.send_to(&reply, to).unwrap();
        // Length fields that lie: too long, too short, absurd.
        for claimed in [4u32, 2, u32::MAX] {
            let mut d = request(1, b"abc");
            d[4..8].copy_from_slice(&claimed.to_be_bytes());
            c.send_to(&d, to).unwrap();
        }
        // Oversized: fills the 512-byte buffer, or far beyond it.
        c.send_to(&request(1, &[1u8; 512 - HEADER_LEN]), to)
            .unwrap();
        c.send_to(&request(1, &[1u8; 9000]), to).unwrap();

        let s = wait_handled(&server, 12);
        assert_eq!(s.drops.get(DropReason::Short), 3, "{mode}: {s:?}");
        assert_eq!(s.drops.get(DropReason::BadHeader), 4, "{mode}");
        assert_eq!(s.drops.get(DropReason::LengthMismatch), 3, "{mode}");
        assert_eq!(s.drops.get(DropReason::Oversized), 2, "{mode}");
        assert_eq!(s.drops.get(DropReason::PoolExhausted), 0, "{mode}");
        assert_eq!(s.replied, 0, "{mode}");

        still_serves(&server, &c);
        let report = server.shutdown();
        assert_eq!(report.stats.replied, 1);
        assert_eq!(report.stats.drops.total(), 12);
        if let Some(pool) = report.pool {
            assert_eq!(pool.failed_acquires, 0);
        }
    }
}

/// Both ways a pool-mode worker talks to its socket, where they run.
fn ios() -> Vec<UdpIo> {
    UdpIo::ALL
        .into_iter()
        .filter(|io| io.unavailable().is_none())
        .collect()
}

#[test]
fn an_exhausted_pool_drops_and_counts_and_recovers() {
    for io in ios() {
        exhausted_pool_drops_and_counts_and_recovers(io);
    }
}

fn exhausted_pool_drops_and_counts_and_recovers(io: UdpIo) {
    let pool = Pool::new(256, 4).unwrap();
    let server = Server::with_pool(
        ServerConfig {
            workers: 1,
            buffer_size: 256,
            io,
            ..ServerConfig::default()
        },
        pool.clone(),
    )
    .unwrap();
    let c = client();

    // Someone holds every buffer: a flood finds none.
    let held: Vec<_> = (0..4).map(|_| pool.try_acquire_owned().unwrap()).collect();
    for seq in 0..50 {
        c.send_to(&request(seq, b"flood"), server.local_addr())
            .unwrap();
    }
    let s = wait_handled(&server, 50);
    assert_eq!(s.drops.pool_exhausted, 50);
    assert_eq!(s.replied, 0);
    // Nothing was allocated around the pool: it did not grow.
    assert_eq!(pool.stats().capacity, 4);
    assert!(pool.stats().failed_acquires >= 50);

    // Buffers come back: service resumes.
    drop(held);
    still_serves(&server, &c);
    let report = server.shutdown();
    assert_eq!(report.stats.replied, 1);
    assert_eq!(report.stats.drops.pool_exhausted, 50);
    assert_eq!(report.pool.unwrap().capacity, 4);
}

/// How many small datagrams a socket set up like the server's holds: the
/// receive buffer the kernel granted (an unprivileged user gets at most
/// `net.core.rmem_max` of the `recv_buffer` asked for), read back, at a
/// generous 4 KiB of accounting per datagram.
fn datagrams_the_socket_holds(config: &ServerConfig) -> u64 {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    if let Some(bytes) = config.recv_buffer {
        s.set_recv_buffer_size(bytes).unwrap();
    }
    (s.recv_buffer_size().unwrap() / 4096) as u64
}

#[test]
fn a_flood_beyond_a_small_pool_is_answered_or_counted() {
    for io in ios() {
        flood_beyond_a_small_pool_is_answered_or_counted(io);
    }
}

fn flood_beyond_a_small_pool_is_answered_or_counted(io: UdpIo) {
    // Two buffers, batches of 32: a burst of datagrams queued on the
    // socket finds the pool empty after two. Every datagram is either
    // answered or counted as dropped; none vanish inside the server.
    let server = Server::start(ServerConfig {
        workers: 1,
        capacity: 2,
        buffer_size: 256,
        batch: 32,
        io,
        ..ServerConfig::default()
    })
    .unwrap();
    // Bursts no larger than the socket can hold, so the kernel drops none
    // (with the default 4 MiB asked for and granted, one burst of all 500).
    let burst = datagrams_the_socket_holds(server.config()).clamp(1, 500);
    let c = client();
    c.set_nonblocking(true).unwrap();
    let mut sent = 0;
    while sent < 500 {
        let end = (sent + burst).min(500);
        for seq in sent..end {
            c.send_to(&request(seq, &[3u8; 100]), server.local_addr())
                .unwrap();
        }
        sent = end;
        wait_handled(&server, sent);
    }
    let s = wait_handled(&server, 500);
    assert_eq!(s.handled(), 500, "{io}, in bursts of {burst}: {s:?}");
    assert_eq!(s.replied + s.drops.pool_exhausted, 500);
    let report = server.shutdown();
    assert_eq!(report.pool.unwrap().capacity, 2);
}

#[test]
fn bad_settings_are_errors_not_panics() {
    use arenapool_server::{ConfigError, ServerError};
    let bad = [
        (
            ServerConfig {
                workers: 0,
                ..ServerConfig::default()
            },
            ConfigError::NoWorkers,
        ),
        (
            ServerConfig {
                batch: 0,
                ..ServerConfig::default()
            },
            ConfigError::NoBatch,
        ),
        (
            ServerConfig {
                capacity: 0,
                ..ServerConfig::default()
            },
            ConfigError::NoCapacity,
        ),
        (
            ServerConfig {
                buffer_size: HEADER_LEN,
                ..ServerConfig::default()
            },
            ConfigError::BufferTooSmall(HEADER_LEN),
        ),
        (
            ServerConfig {
                batch: arenapool_server::MAX_BATCH + 1,
                ..ServerConfig::default()
            },
            ConfigError::BatchTooLarge(arenapool_server::MAX_BATCH + 1),
        ),
        (
            ServerConfig {
                io: UdpIo::PerDatagram,
                gso: true,
                ..ServerConfig::default()
            },
            ConfigError::GsoNeedsMmsg,
        ),
        (
            ServerConfig {
                mode: Mode::Uring,
                io: UdpIo::Mmsg,
                gso: true,
                ..ServerConfig::default()
            },
            ConfigError::GsoNeedsMmsg,
        ),
    ];
    for (config, want) in bad {
        match Server::start(config) {
            Err(ServerError::Config(e)) => assert_eq!(e, want),
            other => panic!("{config:?}: {other:?}"),
        }
    }
    let pool = Pool::new(128, 2).unwrap();
    assert!(matches!(
        Server::with_pool(ServerConfig::default(), pool),
        Err(ServerError::PoolMismatch {
            pool: 128,
            config: 2048
        })
    ));
}

#[test]
fn a_buffer_still_out_at_shutdown_is_reported_with_where_it_was_taken() {
    // More buffers than the worker keeps at hand between receives (up
    // to `batch`), so that one is left for this test to hold.
    let pool = Pool::builder()
        .buffer_size(256)
        .capacity(64)
        .track_leaks(1)
        .build()
        .unwrap();
    let server = Server::with_pool(
        ServerConfig {
            workers: 1,
            buffer_size: 256,
            ..ServerConfig::default()
        },
        pool.clone(),
    )
    .unwrap();
    let c = client();
    still_serves(&server, &c);
    let kept = pool.try_acquire_owned().unwrap();
    let report = server.shutdown();
    assert_eq!(report.leaks.len(), 1, "{:?}", report.leaks);
    assert!(
        report.leaks[0].contains("bad_input.rs"),
        "{:?}",
        report.leaks
    );
    drop(kept);
}
