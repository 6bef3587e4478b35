//! `arenapool::uring` over TCP against the real kernel: multishot accept,
//! connections sharing one provided buffer ring through multishot `recv`,
//! sends from pool buffers, and how a connection's end shows.
//!
//! Skips as `uring.rs` does, only where the kernel refuses io_uring.

#![cfg(all(feature = "io-uring", target_os = "linux"))]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

use arenapool::Pool;
use arenapool::uring::UringError;

#[path = "support/uring_ring.rs"]
mod uring_ring;
use uring_ring::{collect, one, ring};

fn client(listener: &TcpListener) -> TcpStream {
    let c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

#[test]
#[cfg_attr(miri, ignore = "io_uring syscalls")]
fn one_accept_many_connections_one_buffer_ring() {
    let pool = Pool::new(64, 16).unwrap();
    let Some(mut ring) = ring(&pool, false) else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let accept = ring.accept_multi(&listener).unwrap();
    let mut clients: Vec<TcpStream> = (0..3).map(|_| client(&listener)).collect();
    let accepted: Vec<OwnedFd> = collect(&mut ring, 3)
        .into_iter()
        .map(|c| {
            assert_eq!(c.id, accept);
            assert!(c.more, "multishot: the accept stays armed");
            assert!(c.buf.is_none());
            c.accepted.expect("each completion owns a socket")
        })
        .collect();
    assert_eq!(ring.stats().in_flight, 1, "the accept alone");

    // Four buffers for three connections: the ring is shared.
    let group = ring.provide_buffers(3, 4).unwrap();
    let mut owner = vec![usize::MAX; 64];
    for (i, socket) in accepted.iter().enumerate() {
        let id = ring.recv_multi(socket, group).unwrap();
        owner[id.index()] = i;
    }
    for (i, c) in clients.iter_mut().enumerate() {
        write!(c, "hello {i}").unwrap();
    }
    for c in collect(&mut ring, 3) {
        let i = owner[c.id.index()];
        assert!(i < 3, "the index names the receive: {c:?}");
        assert!(c.more);
        let n = c.result.unwrap();
        let buf = c.buf.expect("a buffer from the ring");
        assert_eq!(&buf[..], format!("hello {i}").as_bytes());
        // Echo it from the same buffer.
        ring.send(&accepted[i], buf, 0..n).unwrap();
    }
    let sends = collect(&mut ring, 3);
    for s in &sends {
        assert_eq!(*s.result.as_ref().unwrap(), 7);
        assert!(s.buf.is_some(), "the send gives its buffer back");
    }
    drop(sends);
    for (i, c) in clients.iter_mut().enumerate() {
        let mut got = [0u8; 7];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, format!("hello {i}").as_bytes());
    }
    // Every buffer is back in the ring or the pool.
    assert_eq!(ring.buf_ring_stats(group).unwrap().stocked, 4);
    assert_eq!(pool.stats().in_use, 4, "only the ring's four are out");

    // A peer that closes ends its receive with 0 bytes and no buffer.
    drop(clients.remove(0));
    let end = one(&mut ring);
    assert_eq!(owner[end.id.index()], 0);
    assert!(!end.more && end.buf.is_none(), "{end:?}");
    assert_eq!(end.result.unwrap(), 0);
    assert_eq!(ring.stats().in_flight, 3, "the accept and two receives");
}

#[test]
#[cfg_attr(miri, ignore = "io_uring syscalls")]
fn send_checks_its_range_and_fails_without_a_signal_on_a_reset_peer() {
    let pool = Pool::new(256, 4).unwrap();
    let Some(mut ring) = ring(&pool, false) else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = client(&listener);
    let (server, _) = listener.accept().unwrap();
    let mut buf = pool.try_acquire_owned().unwrap();
    buf.extend_from_slice(b"[head]body").unwrap();
    let bad = ring.send(&server, buf, 3..11).unwrap_err();
    assert!(matches!(bad.error, UringError::BadRange { .. }));
    ring.send(&server, bad.buf, 6..10).unwrap();
    assert_eq!(one(&mut ring).result.unwrap(), 4);
    let mut got = [0u8; 4];
    (&c).read_exact(&mut got).unwrap();
    assert_eq!(&got, b"body");

    // The peer resets the connection: sends fail with an error (EPIPE or
    // ECONNRESET), the buffer comes back, and the process lives on.
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);
    let mut failed = false;
    for _ in 0..50 {
        let mut buf = pool.try_acquire_owned().unwrap();
        buf.extend_from_slice(&[7; 200]).unwrap();
        ring.send(&server, buf, 0..200).unwrap();
        let done = one(&mut ring);
        assert!(done.buf.is_some());
        if let Err(e) = done.result {
            assert!(
                matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)),
                "{e}"
            );
            failed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(failed, "a send to a reset peer fails");
    assert_eq!(pool.stats().in_use, 0);
}

#[test]
#[cfg_attr(miri, ignore = "io_uring syscalls")]
fn dropping_the_ring_ends_the_accept_and_closes_what_it_accepted() {
    let pool = Pool::new(64, 4).unwrap();
    let Some(mut ring) = ring(&pool, false) else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    ring.accept_multi(&listener).unwrap();
    let mut c = client(&listener);
    // The connection is accepted in the kernel; its completion is not
    // read before the ring goes.
    ring.submit_and_wait_timeout(1, Duration::from_secs(10))
        .unwrap();
    drop(ring);
    // The accepted socket was closed with its unread completion: the
    // client sees the end of the stream.
    let mut rest = Vec::new();
    assert_eq!(c.read_to_end(&mut rest).unwrap(), 0);
    // The listener is still ours and still accepts.
    let _d = client(&listener);
    listener.accept().unwrap();
}
