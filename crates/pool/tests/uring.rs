//! `arenapool::uring` against the real kernel: fixed-buffer file I/O,
//! receives with provided buffer rings (single, multishot, `recvmsg`),
//! running a ring dry, and dropping a ring with operations in flight.
//!
//! Each test skips (visibly, and as a failure in strict mode: see
//! `support/skip.rs`) only when the kernel refuses io_uring itself:
//! `io_uring_setup` fails with `ENOSYS`, or `EPERM` from
//! `kernel.io_uring_disabled` or seccomp. Any other setup error fails the
//! test. They make syscalls Miri cannot run.

#![cfg(all(feature = "io-uring", target_os = "linux"))]

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use arenapool::Pool;
use arenapool::uring::UringError;

#[path = "support/uring_ring.rs"]
mod uring_ring;
use uring_ring::{collect, one, ring};

/// A file in the temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("arenapool-uring-{}-{name}", std::process::id()));
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn udp_pair() -> (UdpSocket, UdpSocket) {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(server.local_addr().unwrap()).unwrap();
    (server, client)
}

#[test]
#[cfg_attr(miri, ignore = "io_uring syscalls")]
fn read_fixed_fills_pool_buffers_from_a_file() {
    let pool = Pool::new(1024, 8).unwrap();
    let Some(mut ring) = ring(&pool, true) else {
        return;
    };
    let tmp = TempFile::new("read");
    let data: Vec<u8> = (0..2500u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&tmp.0, &data).unwrap();
    let file = std::fs::File::open(&tmp.0).unwrap();

    let mut ids = Vec::new();
    for k in 0..3u64 {
        let buf = pool.try_acquire_owned().unwrap();
        assert!(ring.buf_index(&buf).is_some());
        ids.push(ring.read_fixed(&file, buf, k * 1024).unwrap());
    }
    assert_eq!(ring.stats().in_flight, 3);
    let done = collect(&mut ring, 3);
    assert_eq!(done.len(), 3);
    for c in done {
        let k = ids.iter().position(|&id| id == c.id).unwrap();
        let n = *c.result.as_ref().unwrap();
        let buf = c.buf.unwrap();
        let want = &data[k * 1024..data.len().min((k + 1) * 1024)];
        assert_eq!(n, want.len());
        assert_eq!(&buf[..], want, "chunk {k}");
        assert!(!c.more);
    }
    assert_eq!(ring.stats().in_flight, 0);
    assert_eq!(pool.stats().in_use, 0);
}

#[test]
#[cfg_attr(miri, ignore = "io_uring syscalls")]
fn write_fixed_then_read_back() {
    let pool = Pool::new(512, 4).unwrap();
    let Some(mut ring) = ring(&pool, true) else {
        return;
    };
    let tmp = TempFile::new("write");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp.0)
        .unwrap();
    let mut buf = pool.try_acquire_owned().unwrap();
    buf.extend_from_slice(b"written through a registered buffer")
        .unwrap();
    ring.write_fixed(&file, buf, 100).unwrap();
    let c = one(&mut ring);
    assert_eq!(c.result.unwrap(), 35);
    let buf = c.buf.unwrap();
    assert_eq!(&buf[..], b"written through a registered buffer");
    drop(buf);

    let on_disk = std::fs::read(&tmp.0).unwrap();
    assert_eq!(&on_disk[100..], b"written through a registered buffer");
    let back = pool.try_acquire_owned().unwrap();
    ring.read_fixed(&file, back, 108).unwrap();
    let c = one(&mut ring);
    assert_eq!(&c.buf.unwrap()[..], b"through a registered buffer");
}

#[test]
#[cfg_attr(miri, ignore = "io_uring syscalls")]
fn fixed_ops_refuse_foreign_and_unregistered_buffers() {
    let pool = Pool::builder()
        .buffer_size(64)
        .capacity(1)
        .grow_to(4)
        .build()
        .unwrap();
    let Some(mut ring) = ring(&pool, true) else {
        return;
    };
    let file = std::fs::File::open("/dev/zero").unwrap();
    let other = Pool::new(64, 1).unwrap();
    let foreign = other.try_acquire_owned().unwrap();
    let r = ring.read_fixed(&file, foreign, 0).unwrap_err();
    assert!(matches!(r.error, UringError::WrongPool));
    assert_eq!(r.buf.pool().stats().in_use, 1, "the buffer came back");

    let first = pool.try_acquire_owned().unwrap();
    let grown = pool.try_acquire_owned().unwrap(); // a segment made after registering
    assert_eq!(ring.buf_index(&first), Some(0));
    assert_eq!(ring.buf_index(&grown), None);
    let r = ring.read_fixed(&file, grown, 0).unwrap_err();
    assert!(matches!(r.error, UringError::NotRegistered { index: 1 }));

    let plain = self::ring(&pool, false).unwrap();
    assert_eq!(plain.buf_index(&first), None);
}

#[test]
#[cfg_attr(miri, ignore = "io_uring syscalls")]
fn recv_with_buffer_select() {
    let pool = Pool::new(2048, 16).unwrap();
    let Some(mut ring) = ring(&pool, false) else {
        return;
    };
    let group = ring.provide_buffers(1, 8).unwrap();
    assert_eq!(ring.buf_ring_stats(group).unwrap().stocked, 8);
    assert_eq!(pool.stats().in_use, 8, "stocked buffers are lent out");
    let (server, client) = udp_pair();
    let id = ring.recv(&server, group).unwrap();
    client.send(b"hello ring").unwrap();
    let c = one(&mut ring);
    assert_eq!(c.id, id);
    assert_eq!(c.result.unwrap(), 10);
    let buf = c.buf.unwrap();
    assert_eq!(&buf[..], b"hello ring");
    let stats = ring.buf_ring_stats(group).unwrap();
    assert_eq!(stats.delivered, 1);
    assert_eq!(stats.stocked, 8, "refilled from the pool");
    assert_eq!(pool.stats().in_use, 9);
    drop(buf);
    assert_eq!(pool.stats().in_use, 8);
}

#[test]
#[cfg_attr(miri, ignore = "io_uring syscalls")]
fn multishot_recv_takes_several_datagrams_from_one_submission() {
    let pool = Pool::new(256, 32).unwrap();
    let Some(mut ring) = ring(&pool, false) else {
        return;
    };
    let group = ring.provide_buffers(2, 16).unwrap();
    let (server, client) = udp_pair();
    let id = ring.recv_multi(&server, group).unwrap();
    for i in 0..5u8 {
        client.send(&[i; 20]).unwrap();
    }
    let done = collect(&mut ring, 5);
    assert_eq!(done.len(), 5);
    let mut seen = Vec::new();
    for c in done {
        assert_eq!(c.id, id);
        assert!(c.more, "the multishot receive goes on");
        let buf = c.buf.unwrap();
        assert_eq!(buf.len(), 20);
        assert!(buf.iter().all(|&b| b == buf[0]));
        seen.push(buf[0]);
    }
    seen.sort_unstable();
    assert_eq!(seen, [0, 1, 2, 3, 4]);
    assert_eq!(ring.stats().started, 1);
    assert_eq!(ring.stats().in_flight, 1);
}

#[test]
#[cfg_attr(miri, ignore = "io_uring syscalls")]
fn recvmsg_multishot_reports_source_addresses() {
    let pool = Pool::new(512, 16).unwrap();
    let Some(mut ring) = ring(&pool, false) else {
        return;
    };
    let group = ring.provide_buffers(3, 8).unwrap();
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = server.local_addr().unwrap();
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    ring.recvmsg_multi(&server, group).unwrap();
    a.send_to(b"from a", to).unwrap();
    b.send_to(b"from b, longer", to).unwrap();
    let done = collect(&mut ring, 2);
    let mut got: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    for c in done {
        assert!(c.more);
        let n = c.result.unwrap();
        let buf = c.buf.unwrap();
        assert_eq!(buf.len(), n, "the length is what the kernel wrote");
        let msg = c.msg.unwrap();
        assert!(!msg.truncated);
        assert_eq!(msg.payload.start, arenapool::uring::RECVMSG_HEADROOM);
        got.push((msg.source.unwrap(), buf[msg.payload].to_vec()));
    }
    got.sort();
    let mut want = vec![
        (a.local_addr().unwrap(), b"from a".to_vec()),
        (b.local_addr().unwrap(), b"from b, longer".to_vec()),
    ];
    want.sort();
    assert_eq!(got, want);
}

#[test]
#[cfg_attr(miri, ignore = "io_uring syscalls")]
fn send_to_sends_a_subrange_and_gives_the_buffer_back() {
    let pool = Pool::new(128, 4).unwrap();
    let Some(mut ring) = ring(&pool, false) else {
        return;
    };
    let (server, client) = udp_pair();
    let mut buf = pool.try_acquire_owned().unwrap();
    buf.extend_from_slice(b"xxxx payload yyyy").unwrap();
    let to = client.local_addr().unwrap();
    let bad = ring.send_to(&server, buf, 4..40, to).unwrap_err();
    assert!(matches!(bad.error, UringError::BadRange { .. }));
    ring.send_to(&server, bad.buf, 5..12, to).unwrap();
    let c = one(&mut ring);
    assert_eq!(c.result.unwrap(), 7);
    assert_eq!(&c.buf.unwrap()[..], b"xxxx payload yyyy");
    let mut got = [0u8; 64];
    let n = client.recv(&mut got).unwrap();
    assert_eq!(&got[..n], b"payload");
}

#[test]
#[cfg_attr(miri, ignore = "io_uring syscalls")]
fn running_dry_counts_enobufs_and_recovers() {
    // 4 buffers, all in the ring: the fifth datagram finds none.
    let pool = Pool::builder()
        .buffer_size(128)
        .capacity(4)
        .cache_size(0)
        .build()
        .unwrap();
    let Some(mut ring) = ring(&pool, false) else {
        return;
    };
    let group = ring.provide_buffers(4, 4).unwrap();
    let (server, client) = udp_pair();
    for i in 0..8u8 {
        client.send(&[i; 10]).unwrap();
    }
    ring.recvmsg_multi(&server, group).unwrap();
    let mut held = Vec::new();
    let mut ended = None;
    while ended.is_none() {
        for c in collect(&mut ring, 1) {
            if c.more {
                held.push(c.buf.unwrap());
            } else {
                ended = Some(c);
            }
        }
    }
    let end = ended.unwrap();
    assert!(end.ran_dry());
    assert_eq!(
        end.result.unwrap_err().raw_os_error(),
        Some(ENOBUFS),
        "the receive ended for lack of buffers"
    );
    assert_eq!(held.len(), 4);
    let stats = ring.buf_ring_stats(group).unwrap();
    assert!(stats.enobufs >= 1);
    assert!(stats.restock_misses >= 1);
    assert_eq!(stats.stocked, 0);
    assert_eq!(ring.stats().in_flight, 0);

    // Give the buffers back; the ring refills from the pool and a new
    // receive gets the datagrams that waited in the socket.
    held.clear();
    assert!(ring.restock());
    assert_eq!(ring.buf_ring_stats(group).unwrap().stocked, 4);
    ring.recvmsg_multi(&server, group).unwrap();
    let mut payloads = Vec::new();
    while payloads.len() < 4 {
        for c in collect(&mut ring, 1) {
            if let Some(buf) = c.buf {
                let msg = c.msg.unwrap();
                payloads.push(buf[msg.payload][0]);
            }
        }
    }
    payloads.sort_unstable();
    assert_eq!(payloads, [4, 5, 6, 7]);
}

const ENOBUFS: i32 = 105;
const EBADF: i32 = 9;

#[test]
#[cfg_attr(miri, ignore = "io_uring syscalls")]
fn buffers_in_flight_count_as_in_use() {
    let pool = Pool::new(256, 4).unwrap();
    let Some(mut ring) = ring(&pool, true) else {
        return;
    };
    let (mut tx, rx) = UnixStream::pair().unwrap();
    let buf = pool.try_acquire_owned().unwrap();
    ring.read_fixed(&rx, buf, 0).unwrap();
    ring.submit().unwrap();
    assert_eq!(pool.stats().in_use, 1, "the kernel holds the buffer");
    assert_eq!(ring.stats().in_flight, 1);
    tx.write_all(b"late data").unwrap();
    let c = one(&mut ring);
    let buf = c.buf.unwrap();
    assert_eq!(&buf[..], b"late data");
    assert_eq!(pool.stats().in_use, 1, "now the caller holds it");
    drop(buf);
    assert_eq!(pool.stats().in_use, 0);
}

#[test]
#[cfg_attr(miri, ignore = "io_uring syscalls")]
fn dropping_the_ring_with_ops_in_flight_loses_no_buffer() {
    let pool = Pool::new(256, 16).unwrap();
    let Some(mut ring) = ring(&pool, true) else {
        return;
    };
    let group = ring.provide_buffers(5, 8).unwrap();
    let (server, _client) = udp_pair();
    let (_tx, rx) = UnixStream::pair().unwrap();
    ring.recvmsg_multi(&server, group).unwrap();
    ring.recv(&server, group).unwrap();
    for _ in 0..3 {
        let buf = pool.try_acquire_owned().unwrap();
        ring.read_fixed(&rx, buf, 0).unwrap();
    }
    ring.submit().unwrap();
    assert_eq!(ring.stats().in_flight, 5);
    assert_eq!(pool.stats().in_use, 8 + 3);
    drop(pool); // the ring keeps it
    let pool = ring.pool().clone();
    drop(ring);
    assert_eq!(pool.stats().in_use, 0, "every buffer is back in the pool");
    drop(rx);
}

#[test]
#[cfg_attr(miri, ignore = "io_uring syscalls")]
fn a_closed_descriptor_only_fails_the_operation() {
    let pool = Pool::new(64, 2).unwrap();
    let Some(mut ring) = ring(&pool, true) else {
        return;
    };
    let (tx, rx) = UnixStream::pair().unwrap();
    // A descriptor number far above the lowest free one: the tests beside
    // this one open and close descriptors all the time, and the kernel
    // gives out the lowest free number, so a low number closed here could
    // name another test's socket by the time the operation runs (which the
    // module docs allow: it would read that socket into this buffer).
    let high = rustix::io::fcntl_dupfd_cloexec(&rx, 600).unwrap();
    drop((rx, tx));
    let buf = pool.try_acquire_owned().unwrap();
    ring.read_fixed(&high, buf, 0).unwrap();
    drop(high); // closed before the kernel saw the operation
    let c = one(&mut ring);
    assert_eq!(c.result.unwrap_err().raw_os_error(), Some(EBADF));
    assert!(c.buf.is_some(), "the buffer comes back");
}

#[test]
#[cfg_attr(miri, ignore = "io_uring syscalls")]
fn provided_rings_check_their_arguments() {
    let pool = Pool::new(64, 4).unwrap();
    let Some(mut ring) = ring(&pool, false) else {
        return;
    };
    for bad in [0, 3, 65536] {
        assert!(matches!(
            ring.provide_buffers(9, bad),
            Err(UringError::BadEntries { .. })
        ));
    }
    let group = ring.provide_buffers(9, 8).unwrap();
    let stats = ring.buf_ring_stats(group).unwrap();
    assert_eq!(
        (stats.stocked, stats.restock_misses),
        (4, 1),
        "the pool had 4"
    );
    assert!(matches!(
        ring.provide_buffers(9, 8),
        Err(UringError::GroupExists { group: 9 })
    ));
}

#[test]
#[cfg_attr(miri, ignore = "io_uring syscalls")]
fn zero_on_release_clears_what_the_kernel_wrote() {
    let pool = Pool::builder()
        .buffer_size(256)
        .capacity(1)
        .zero_on_release(true)
        .build()
        .unwrap();
    let Some(mut ring) = ring(&pool, true) else {
        return;
    };
    let tmp = TempFile::new("zero");
    std::fs::write(&tmp.0, [0xAB; 200]).unwrap();
    let file = std::fs::File::open(&tmp.0).unwrap();
    let buf = pool.try_acquire_owned().unwrap();
    ring.read_fixed(&file, buf, 0).unwrap();
    let c = one(&mut ring);
    let mut buf = c.buf.unwrap();
    assert_eq!(buf.len(), 200);
    buf.truncate(0); // the handle no longer shows the bytes...
    drop(buf);
    // ...but the kernel wrote them, so they are cleared on release.
    let again = pool.try_acquire_owned().unwrap();
    assert!(again.as_full().iter().all(|&b| b == 0));
}

/// Once the pool's arenas are registered as fixed buffers, the kernel may
/// hold their pages: a trim frees no segment and hands no page back, even
/// with the ring gone, and the registered bytes stay the ones written.
#[test]
#[cfg_attr(miri, ignore = "io_uring syscalls")]
fn trim_leaves_registered_arenas_in_place() {
    let pool = Pool::builder()
        .buffer_size(4096)
        .alignment(4096)
        .capacity(8)
        .grow_to(16)
        .cache_size(0)
        .backing(arenapool::Backing::Mmap)
        .build()
        .unwrap();
    // Grown first, so that both segments are registered.
    let mut held: Vec<_> = (0..16).map(|_| pool.try_acquire().unwrap()).collect();
    for b in &mut held {
        b.as_full_mut().fill(0xC3);
    }
    drop(held);
    let Some(ring) = ring(&pool, true) else {
        return;
    };
    let before = pool.stats();
    for _ in 0..2 {
        let t = pool.trim();
        assert_eq!((t.segments_freed, t.bytes_released), (0, 0), "{t:?}");
        let s = pool.stats();
        assert_eq!(
            (s.capacity, s.resident_bytes),
            (16, before.resident_bytes),
            "{s}"
        );
    }
    drop(ring);
    assert_eq!(pool.trim().segments_freed, 0);
    let all: Vec<_> = (0..16).map(|_| pool.try_acquire().unwrap()).collect();
    assert!(all.iter().all(|b| b.as_full().iter().all(|&x| x == 0xC3)));
}
