//! "Pool mode allocates nothing per request", for the HTTP server: this
//! binary installs the counting global allocator, and each server worker
//! counts its own thread's allocations after a warm-up, so the clients in
//! the same process are not counted. Vec mode, same load, is the control:
//! it allocates for every response. io_uring mode, where the kernel
//! gives it, allocates nothing either.

use std::alloc::System;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use arenapool_alloc::Counting;
use arenapool_server::http::{HttpConfig, HttpMode, HttpReport, HttpServer};

mod support;

#[global_allocator]
static ALLOC: Counting<System> = Counting::new(System);

const CLIENTS: usize = 4;
const PER_CLIENT: usize = 1500;

/// `CLIENTS` keep-alive connections, each sending `PER_CLIENT` requests,
/// pipelined four at a time: `GET /bytes/128`, `GET /bytes/16384` and
/// `POST /echo` of 300 bytes in turn.
fn run(mode: HttpMode) -> HttpReport {
    let server = HttpServer::start(HttpConfig {
        mode,
        workers: 1,
        warmup: 400,
        ..HttpConfig::default()
    })
    .unwrap();
    let addr = server.local_addr();
    // The connections stay open until the server stopped: its window ends
    // there, and a connection's teardown is not part of a request.
    let open: Vec<TcpStream> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                s.spawn(move || {
                    let w = TcpStream::connect(addr).unwrap();
                    let mut r = BufReader::new(w.try_clone().unwrap());
                    let mut w = w;
                    let body = [b'e'; 300];
                    let mut line = String::new();
                    for round in 0..PER_CLIENT / 4 {
                        let mut batch = Vec::new();
                        for i in 0..4 {
                            match (round + i) % 3 {
                                0 => batch.extend_from_slice(b"GET /bytes/128 HTTP/1.1\r\n\r\n"),
                                1 => batch.extend_from_slice(b"GET /bytes/16384 HTTP/1.1\r\n\r\n"),
                                _ => {
                                    batch.extend_from_slice(
                                        b"POST /echo HTTP/1.1\r\nContent-Length: 300\r\n\r\n",
                                    );
                                    batch.extend_from_slice(&body);
                                }
                            }
                        }
                        w.write_all(&batch).unwrap();
                        for _ in 0..4 {
                            let mut len = 0;
                            loop {
                                line.clear();
                                r.read_line(&mut line).unwrap();
                                if let Some(v) = line.strip_prefix("Content-Length: ") {
                                    len = v.trim().parse().unwrap();
                                }
                                if line == "\r\n" {
                                    break;
                                }
                            }
                            let mut b = vec![0; len];
                            r.read_exact(&mut b).unwrap();
                        }
                    }
                    w
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let report = server.shutdown();
    drop(open);
    report
}

/// `mode` answers every request and allocates nothing in its steady
/// state.
fn allocates_nothing(mode: HttpMode) {
    let report = run(mode);
    assert_eq!(report.stats.ok as usize, CLIENTS * PER_CLIENT, "{mode:?}");
    let a = report.allocs;
    assert!(a.counted && a.packets >= 5000, "{mode:?}: {a:?}");
    assert_eq!(
        (a.allocations, a.reallocations),
        (0, 0),
        "{mode:?} allocated in its steady state: {a:?}"
    );
}

#[test]
fn pool_mode_allocates_nothing_per_request_and_vec_mode_does() {
    assert!(arenapool_server::counting_installed());
    allocates_nothing(HttpMode::Pool);
    // io_uring mode: no task per connection, no tokio, the same zero.
    if support::http_mode_runs_here(HttpMode::Uring) {
        allocates_nothing(HttpMode::Uring);
    }

    let vec = run(HttpMode::Vec);
    let v = vec.allocs;
    assert!(v.counted && v.packets >= 5000, "{v:?}");
    assert!(
        v.allocations >= v.packets,
        "vec mode is the control: a Vec per response ({v:?})"
    );
}
