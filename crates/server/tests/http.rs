//! The HTTP server against a client written here, in the pool, Vec and
//! io_uring modes (io_uring where the kernel gives it):
//! keep-alive, pipelining, HTTP/1.0, bodies in pieces, every refusal with
//! its status and counter, slowloris and idle timeouts, the connection
//! cap, and (pool mode) idle connections holding no buffer.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use arenapool_server::http::{HttpConfig, HttpMode, HttpServer};

mod support;

use support::http::{alphabet, closed, connect, modes, read_answer, start};

#[test]
fn keep_alive_and_pipelining_answer_in_order() {
    for mode in modes() {
        let server = start(mode, |_| {});
        let s = connect(&server);
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        for n in [0, 1, 128, 5000] {
            write!(w, "GET /bytes/{n} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let a = read_answer(&mut r).unwrap();
            assert_eq!((a.code, a.body), (200, alphabet(n)), "{mode:?}");
        }
        // Ten requests in one write, some with bodies.
        let mut batch = Vec::new();
        for i in 0..10 {
            if i % 2 == 0 {
                write!(batch, "GET /bytes/{i} HTTP/1.1\r\n\r\n").unwrap();
            } else {
                write!(
                    batch,
                    "POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nx{i}y"
                )
                .unwrap();
            }
        }
        w.write_all(&batch).unwrap();
        for i in 0..10 {
            let a = read_answer(&mut r).unwrap();
            let want = if i % 2 == 0 {
                alphabet(i)
            } else {
                format!("x{i}y").into_bytes()
            };
            assert_eq!((a.code, a.body), (200, want), "{mode:?} request {i}");
        }
        let stats = server.shutdown().stats;
        assert_eq!(
            (stats.requests, stats.ok, stats.connections),
            (14, 14, 1),
            "{mode:?}"
        );
    }
}

#[test]
fn http10_closes_unless_asked_to_keep_alive() {
    for mode in modes() {
        let server = start(mode, |_| {});
        let mut r = BufReader::new(connect(&server));
        r.get_mut()
            .write_all(b"GET /bytes/3 HTTP/1.0\r\n\r\n")
            .unwrap();
        let a = read_answer(&mut r).unwrap();
        assert_eq!((a.code, a.connection.as_deref()), (200, Some("close")));
        assert!(closed(&mut r), "{mode:?}");

        let mut r = BufReader::new(connect(&server));
        r.get_mut()
            .write_all(b"GET /bytes/3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let a = read_answer(&mut r).unwrap();
        assert_eq!(a.connection.as_deref(), Some("keep-alive"));
        r.get_mut()
            .write_all(b"GET /bytes/2 HTTP/1.0\r\n\r\n")
            .unwrap();
        assert_eq!(read_answer(&mut r).unwrap().body, b"ab");
        assert!(closed(&mut r));
        server.shutdown();
    }
}

#[test]
fn bodies_arrive_in_pieces_and_past_a_buffer() {
    for mode in modes() {
        let server = start(mode, |_| {});
        let s = connect(&server);
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        let body: Vec<u8> = (0..50_000u32).map(|i| (i * 7) as u8).collect();
        write!(
            w,
            "POST /echo HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        let writer = std::thread::spawn(move || {
            for piece in body.chunks(777) {
                w.write_all(piece).unwrap();
                w.flush().unwrap();
            }
            (w, body)
        });
        let a = read_answer(&mut r).unwrap();
        let (mut w, body) = writer.join().unwrap();
        assert_eq!(a.code, 200);
        assert!(a.body == body, "{mode:?}: the echo differs");
        // The head split too: a byte at a time.
        for b in b"GET /bytes/4 HTTP/1.1\r\n\r\n" {
            w.write_all(&[*b]).unwrap();
        }
        assert_eq!(read_answer(&mut r).unwrap().body, b"abcd");
        server.shutdown();
    }
}

#[test]
fn bad_requests_get_their_status_and_are_counted() {
    for mode in modes() {
        let server = start(mode, |_| {});
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (b"NOT HTTP AT ALL\r\n\r\n".to_vec(), 400),
            (b"GET /bytes/x HTTP/1.1\r\n\r\n".to_vec(), 400),
            (b"GET /bytes/999999999 HTTP/1.1\r\n\r\n".to_vec(), 400),
            (
                b"POST /echo HTTP/1.1\r\nContent-Length: 100001\r\n\r\n".to_vec(),
                413,
            ),
            (
                b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
                501,
            ),
            (
                [
                    b"GET /bytes/1 HTTP/1.1\r\nX-Big: ".to_vec(),
                    vec![b'z'; 2000],
                    b"\r\n\r\n".to_vec(),
                ]
                .concat(),
                431,
            ),
        ];
        for (req, code) in &cases {
            let mut r = BufReader::new(connect(&server));
            r.get_mut().write_all(req).unwrap();
            let a = read_answer(&mut r).unwrap();
            assert_eq!(
                a.code,
                *code,
                "{mode:?}: {:?}",
                String::from_utf8_lossy(&req[..20])
            );
            assert_eq!(a.connection.as_deref(), Some("close"));
            assert!(closed(&mut r), "{mode:?}: closed after {code}");
        }
        // 404 and 405 keep the connection.
        let mut r = BufReader::new(connect(&server));
        r.get_mut()
            .write_all(b"GET /nope HTTP/1.1\r\n\r\nPUT /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /bytes/1 HTTP/1.1\r\n\r\n")
            .unwrap();
        let codes: Vec<u16> = (0..3).map(|_| read_answer(&mut r).unwrap().code).collect();
        assert_eq!(codes, [404, 405, 200]);
        let s = server.shutdown().stats;
        assert_eq!(
            (
                s.bad_request,
                s.payload_too_large,
                s.not_implemented,
                s.headers_too_large
            ),
            (3, 1, 1, 1),
            "{mode:?}"
        );
        assert_eq!((s.not_found, s.method_not_allowed, s.ok), (1, 1, 1));
    }
}

#[test]
fn slow_heads_and_idle_connections_are_closed_on_time() {
    for mode in modes() {
        let server = start(mode, |c| {
            c.header_timeout = Duration::from_millis(300);
            c.idle_timeout = Duration::from_millis(600);
        });
        // Slowloris: a byte every 100 ms never finishes its head in time.
        let mut slow = connect(&server);
        let t0 = std::time::Instant::now();
        let mut sent = 0;
        for b in b"GET /bytes/1 HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaa" {
            if slow.write_all(&[*b]).is_err() {
                break;
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(100));
            if t0.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        let mut rest = Vec::new();
        let _ = slow.read_to_end(&mut rest);
        assert!(rest.is_empty(), "no answer to a head that never came");
        assert!(
            sent < 40,
            "{mode:?}: the server kept a slow head open for {sent} bytes"
        );

        // Idle keep-alive: answered, then closed after the idle timeout.
        let mut r = BufReader::new(connect(&server));
        r.get_mut()
            .write_all(b"GET /bytes/1 HTTP/1.1\r\n\r\n")
            .unwrap();
        assert_eq!(read_answer(&mut r).unwrap().code, 200);
        assert!(closed(&mut r));
        let s = server.shutdown().stats;
        assert_eq!((s.header_timeouts, s.idle_closed), (1, 1), "{mode:?}");
    }
}

#[test]
fn connections_past_the_cap_are_refused_and_counted() {
    for mode in modes() {
        let server = start(mode, |c| c.max_connections = 2);
        let mut held: Vec<BufReader<TcpStream>> = (0..2)
            .map(|_| {
                let mut r = BufReader::new(connect(&server));
                r.get_mut()
                    .write_all(b"GET /bytes/1 HTTP/1.1\r\n\r\n")
                    .unwrap();
                assert_eq!(read_answer(&mut r).unwrap().code, 200);
                r
            })
            .collect();
        let mut extra = BufReader::new(connect(&server));
        let _ = extra.get_mut().write_all(b"GET /bytes/1 HTTP/1.1\r\n\r\n");
        assert!(
            read_answer(&mut extra).is_none(),
            "{mode:?}: a third connection was served"
        );
        drop(held.pop());
        // Once one closes, a new one is served.
        let mut again = None;
        for _ in 0..50 {
            let mut r = BufReader::new(connect(&server));
            let _ = r.get_mut().write_all(b"GET /bytes/1 HTTP/1.1\r\n\r\n");
            if let Some(a) = read_answer(&mut r) {
                again = Some(a.code);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(again, Some(200));
        let s = server.shutdown().stats;
        assert!(s.refused >= 1 && s.connections >= 3, "{mode:?}: {s:?}");
    }
}

#[test]
fn idle_connections_hold_no_pooled_buffer() {
    let mut modes = vec![HttpMode::Pool];
    if support::http_mode_runs_here(HttpMode::Uring) {
        modes.push(HttpMode::Uring);
    }
    for mode in modes {
        let server = start(mode, |c| {
            c.buffers = 8;
            c.ring_buffers = 5;
            c.max_connections = 200;
        });
        let conns: Vec<BufReader<TcpStream>> = (0..100)
            .map(|_| {
                let mut r = BufReader::new(connect(&server));
                r.get_mut()
                    .write_all(b"GET /bytes/100 HTTP/1.1\r\n\r\n")
                    .unwrap();
                assert_eq!(read_answer(&mut r).unwrap().code, 200);
                r
            })
            .collect();
        let pool = server.pool().unwrap();
        // io_uring mode lends its provided ring's buffers to the kernel
        // for good; beyond those, nothing is held. The last answer's
        // buffer goes back just after its bytes went out.
        let lent = server.lent_buffers();
        assert_eq!(
            lent,
            if mode == HttpMode::Uring { 8 } else { 0 },
            "5 as a power of two"
        );
        let t0 = std::time::Instant::now();
        while pool.stats().in_use > lent && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            pool.stats().in_use,
            lent,
            "{mode:?}: 100 idle connections hold buffers"
        );
        let classes = pool.class_stats();
        assert!(
            classes[0].stats.capacity <= 16 + lent,
            "{mode:?}: the read class grew to {} for 100 sequential requests",
            classes[0].stats.capacity
        );
        assert_eq!(server.stats().open, 100, "{mode:?}");
        drop(conns);
        server.shutdown();
    }
}

/// The reference mode serves the same routes, keep-alive and pipelined.
#[test]
fn hyper_mode_serves_the_same_routes() {
    let server = start(HttpMode::Hyper, |_| {});
    let s = connect(&server);
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    w.write_all(b"GET /bytes/30 HTTP/1.1\r\n\r\nPOST /echo HTTP/1.1\r\nContent-Length: 4\r\n\r\npingGET /nope HTTP/1.1\r\n\r\n")
        .unwrap();
    let a = read_answer(&mut r).unwrap();
    assert_eq!((a.code, a.body), (200, alphabet(30)));
    let a = read_answer(&mut r).unwrap();
    assert_eq!((a.code, a.body), (200, b"ping".to_vec()));
    assert_eq!(read_answer(&mut r).unwrap().code, 404);
    let s = server.shutdown().stats;
    assert_eq!((s.requests, s.ok, s.not_found), (3, 2, 1));
}

#[test]
fn expect_100_continue_gets_its_interim_answer() {
    for mode in modes() {
        let server = start(mode, |_| {});
        let mut r = BufReader::new(connect(&server));
        r.get_mut()
            .write_all(b"POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            .unwrap();
        let mut interim = String::new();
        r.read_line(&mut interim).unwrap();
        assert_eq!(interim, "HTTP/1.1 100 Continue\r\n", "{mode:?}");
        r.read_line(&mut interim).unwrap();
        r.get_mut().write_all(b"hello").unwrap();
        let a = read_answer(&mut r).unwrap();
        assert_eq!((a.code, a.body), (200, b"hello".to_vec()), "{mode:?}");
        server.shutdown();
    }
}

#[test]
fn stalled_bodies_and_readers_are_closed_and_counted() {
    for mode in modes() {
        let server = start(mode, |c| {
            c.header_timeout = Duration::from_millis(300);
            c.idle_timeout = Duration::from_millis(500);
        });
        // A body that stops arriving.
        let mut r = BufReader::new(connect(&server));
        r.get_mut()
            .write_all(b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
            .unwrap();
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        // A client that asks for 40 MB and reads none of it.
        let mut w = connect(&server);
        let ask = "GET /bytes/200000 HTTP/1.1\r\n\r\n".repeat(200);
        let _ = w.write_all(ask.as_bytes());
        let t0 = std::time::Instant::now();
        while server.stats().slow_readers == 0 && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let s = server.shutdown().stats;
        assert_eq!((s.slow_bodies, s.slow_readers), (1, 1), "{mode:?}: {s:?}");
        drop(w);
    }
}

#[test]
fn bad_settings_are_errors_not_panics() {
    use arenapool_server::http::{HttpConfigError, HttpError};
    type Set = fn(&mut HttpConfig);
    let cases: [(Set, HttpConfigError); 5] = [
        (|c| c.workers = 0, HttpConfigError::NoWorkers),
        (|c| c.max_connections = 0, HttpConfigError::NoConnections),
        (
            |c| c.read_buffer = 100,
            HttpConfigError::ReadBufferTooSmall(100),
        ),
        (|c| c.buffers = 0, HttpConfigError::NoBuffers),
        (
            |c| c.ring_buffers = 40_000,
            HttpConfigError::RingBuffers(40_000),
        ),
    ];
    for (set, want) in cases {
        let mut cfg = HttpConfig::default();
        set(&mut cfg);
        match HttpServer::start(cfg) {
            Err(HttpError::Config(got)) => assert_eq!(got, want),
            other => panic!("{want:?}: {other:?}"),
        }
    }
}
