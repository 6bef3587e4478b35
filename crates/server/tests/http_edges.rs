//! The HTTP server at the edges a well-behaved client reaches rarely and a
//! hostile one on purpose, in every mode: a body after `Connection:
//! close`, a body on a `GET`, and a client that pipelines in one-byte
//! segments while it reads no answer.

use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

use arenapool_server::http::HttpMode;

mod support;

use support::http::{alphabet, closed, connect, modes, read_answer, start};

/// A body still to come when the request said `Connection: close` (with
/// `Expect: 100-continue`, and in HTTP/1.0) is read and echoed before the
/// connection closes.
#[test]
fn a_body_after_connection_close_is_read_and_echoed() {
    for mode in modes() {
        let server = start(mode, |c| c.header_timeout = Duration::from_secs(3));
        let mut r = BufReader::new(connect(&server));
        r.get_mut()
            .write_all(
                b"POST /echo HTTP/1.1\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
            )
            .unwrap();
        let mut interim = String::new();
        r.read_line(&mut interim).unwrap();
        assert_eq!(interim, "HTTP/1.1 100 Continue\r\n", "{mode:?}");
        r.read_line(&mut interim).unwrap();
        // The client sends its body only after the interim answer.
        std::thread::sleep(Duration::from_millis(100));
        r.get_mut().write_all(b"hello").unwrap();
        let a = read_answer(&mut r).expect("the echo");
        assert_eq!((a.code, a.body), (200, b"hello".to_vec()), "{mode:?}");
        assert!(closed(&mut r), "{mode:?}");

        // HTTP/1.0, body in a second segment after a pause.
        let mut r = BufReader::new(connect(&server));
        r.get_mut()
            .write_all(b"POST /echo HTTP/1.0\r\nContent-Length: 4\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        r.get_mut().write_all(b"ping").unwrap();
        let a = read_answer(&mut r).expect("the echo");
        assert_eq!((a.code, a.body), (200, b"ping".to_vec()), "{mode:?}");
        assert!(closed(&mut r), "{mode:?}");
        let s = server.shutdown().stats;
        assert_eq!(
            (s.ok, s.slow_bodies, s.io_errors),
            (2, 0, 0),
            "{mode:?}: {s:?}"
        );
    }
}

/// A `GET` with a body: the body is skipped, not parsed as the next
/// request.
#[test]
fn a_body_on_a_get_is_skipped() {
    for mode in modes() {
        let server = start(mode, |_| {});
        let mut r = BufReader::new(connect(&server));
        r.get_mut()
            .write_all(b"GET /bytes/3 HTTP/1.1\r\nContent-Length: 5\r\n\r\nxxxxxGET /bytes/2 HTTP/1.1\r\n\r\n")
            .unwrap();
        let a = read_answer(&mut r).unwrap();
        assert_eq!((a.code, a.body), (200, alphabet(3)), "{mode:?}");
        let a = read_answer(&mut r).unwrap();
        assert_eq!((a.code, a.body), (200, alphabet(2)), "{mode:?}");
        let s = server.shutdown().stats;
        assert_eq!((s.ok, s.bad_request), (2, 0), "{mode:?}: {s:?}");
    }
}

/// A client asks for a large answer, reads none of it, and keeps sending
/// one-byte segments: what the server holds for it stays bounded (a few
/// read buffers, not one per segment), and the others are still served.
#[test]
fn one_byte_segments_behind_a_blocked_answer_hold_few_buffers() {
    for mode in modes() {
        let server = start(mode, |c| {
            c.ring_buffers = 16;
            c.buffers = 16;
            c.max_bytes = 64 << 20;
        });
        let s = connect(&server);
        s.set_nodelay(true).unwrap();
        let mut w = s.try_clone().unwrap();
        w.write_all(b"GET /bytes/33554432 HTTP/1.1\r\n\r\n")
            .unwrap();
        // Let the answer fill the socket buffers, so its send blocks.
        std::thread::sleep(Duration::from_millis(200));
        for _ in 0..400 {
            if w.write_all(b"G").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        std::thread::sleep(Duration::from_millis(200));
        let pool = server.pool().map(|p| p.class_stats()[0].stats.in_use);
        if let Some(read_in_use) = pool {
            let lent = server.lent_buffers();
            assert!(
                read_in_use <= lent + 4,
                "{mode:?}: {read_in_use} read buffers out ({lent} lent to the kernel) for one client's 400 one-byte segments"
            );
        }
        // Another client is served meanwhile.
        let mut r = BufReader::new(connect(&server));
        r.get_mut()
            .write_all(b"GET /bytes/7 HTTP/1.1\r\n\r\n")
            .unwrap();
        let a = read_answer(&mut r).unwrap();
        assert_eq!((a.code, a.body), (200, alphabet(7)), "{mode:?}");
        // The stalled client can still read its answer.
        let mut first = BufReader::new(s);
        let a = read_answer(&mut first).unwrap();
        assert_eq!(a.body.len(), 32 << 20, "{mode:?}");
        let mut rest = [0u8; 1];
        let _ = first
            .get_mut()
            .set_read_timeout(Some(Duration::from_millis(50)));
        let _ = first.read(&mut rest);
        drop(first);
        server.shutdown();
    }
}

/// The modes that hold pooled read buffers are the ones the bound above
/// is checked in.
#[test]
fn the_bounded_modes_have_pools() {
    for mode in modes() {
        let server = start(mode, |_| {});
        let pooled = matches!(mode, HttpMode::Pool | HttpMode::Uring);
        assert_eq!(server.pool().is_some(), pooled, "{mode:?}");
        server.shutdown();
    }
}
