//! The HTTP server against clients nobody here wrote: wrk and h2load
//! (`--h1`), for a few seconds each, in every mode (hyper's the
//! reference; io_uring where the kernel gives it), and against our own load generator, the fallback. Each
//! client must see no error and only 200s, and the server's counters must
//! agree with what the client reports. Without the tools (Debian:
//! `apt-get install wrk nghttp2-client`) the tests skip, which fails in
//! strict mode (`.ci/run` installs them).

use std::process::Command;
use std::time::Duration;

use arenapool_server::http::clients::{self, Client, ClientRun, parse_wrk};
use arenapool_server::http::load::IdleConnections;
use arenapool_server::http::{HttpConfig, HttpMode, HttpServer};

mod support;

use support::skip::skip;

fn have(client: Client) -> bool {
    let found = client.installed();
    if !found {
        skip(format_args!(
            "{client} is not installed (apt-get install wrk nghttp2-client)"
        ));
    }
    found
}

/// Every mode, io_uring where the kernel gives it.
fn modes() -> Vec<HttpMode> {
    let mut m = vec![HttpMode::Pool, HttpMode::Vec, HttpMode::Hyper];
    if support::http_mode_runs_here(HttpMode::Uring) {
        m.insert(2, HttpMode::Uring);
    }
    m
}

fn server(mode: HttpMode) -> HttpServer {
    HttpServer::start(HttpConfig {
        mode,
        workers: 2,
        ..HttpConfig::default()
    })
    .expect("the server starts")
}

/// The number after `label` in `text` (`label` then spaces then digits).
fn number_after(text: &str, label: &str) -> Option<u64> {
    let at = text.find(label)? + label.len();
    let digits: String = text[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

#[test]
fn wrk_sees_no_errors_and_the_counts_agree() {
    if !have(Client::Wrk) {
        return;
    }
    for mode in modes() {
        let server = server(mode);
        let url = format!("http://{}/bytes/128", server.local_addr());
        let out = Command::new("wrk")
            .args(["-t2", "-c50", "-d2s", "--latency", &url])
            .output()
            .expect("wrk runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{mode:?}: wrk failed: {text}");
        let r = parse_wrk(&text).expect("wrk's figures");
        assert_eq!((r.errors, r.non_2xx), (0, 0), "{mode:?}: {text}");
        let requests = r.requests;
        assert!(requests > 100, "{mode:?}: {text}");
        assert!(
            r.p50_us.is_some() && r.p99_us >= r.p50_us,
            "{mode:?}: {text}"
        );
        let stats = server.shutdown().stats;
        // wrk counts the answers it read; the server may have answered a
        // few more that were in flight when wrk stopped.
        assert!(
            stats.ok >= requests && stats.ok <= requests + 2 * 50,
            "{mode:?}: server answered {}, wrk counted {requests}",
            stats.ok
        );
        assert_eq!(stats.requests, stats.ok, "{mode:?}: only 200s: {stats:?}");
        assert_eq!(stats.header_timeouts, 0, "{mode:?}: {stats:?}");
        // wrk stops by closing its connections with requests in flight:
        // the server's writes on them fail (a reset), at most once each.
        assert!(stats.io_errors <= stats.connections, "{mode:?}: {stats:?}");
    }
}

#[test]
fn h2load_sees_no_errors_and_the_counts_agree() {
    if !have(Client::H2load) {
        return;
    }
    for mode in modes() {
        let server = server(mode);
        for path in ["/bytes/128", "/bytes/16384"] {
            let url = format!("http://{}{path}", server.local_addr());
            let out = Command::new("h2load")
                .args(["--h1", "-n", "20000", "-c", "100", "-m", "4", &url])
                .output()
                .expect("h2load runs");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{mode:?}: h2load failed: {text}");
            // "requests: 20000 total, 20000 started, 20000 done, 20000 succeeded, 0 failed, 0 errored, 0 timeout"
            assert_eq!(number_after(&text, "requests:"), Some(20_000), "{text}");
            assert!(
                text.contains("20000 succeeded, 0 failed, 0 errored, 0 timeout"),
                "{mode:?}: {text}"
            );
            assert!(text.contains("status codes: 20000 2xx"), "{mode:?}: {text}");
        }
        let stats = server.shutdown().stats;
        assert_eq!(
            (stats.ok, stats.requests),
            (40_000, 40_000),
            "{mode:?}: {stats:?}"
        );
        assert_eq!(stats.connections, 200, "{mode:?}");
    }
}

/// Every client through `clients::run`, as `arenapool bench-http` runs
/// them: figures read, no errors, and the server's count agrees.
#[test]
fn every_client_reports_what_the_server_answered() {
    let scratch = std::env::temp_dir().join(format!("arenapool-clients-{}", std::process::id()));
    for client in Client::ALL {
        if !have(client) {
            continue;
        }
        let server = server(HttpMode::Pool);
        let connections = 20;
        let r = clients::run(&ClientRun {
            client,
            target: server.local_addr(),
            path: "/bytes/128".into(),
            connections,
            threads: 2,
            duration: Duration::from_secs(1),
            scratch: scratch.join(client.name()),
        })
        .unwrap_or_else(|e| panic!("{client}: {e}"));
        assert!(r.requests > 100, "{client}: {r:?}");
        assert_eq!((r.errors, r.non_2xx), (0, 0), "{client}: {r:?}");
        let (p50, p99) = (r.p50_us.expect("p50"), r.p99_us.expect("p99"));
        assert!(0.0 < p50 && p50 <= p99, "{client}: {r:?}");
        assert!(r.requests_per_s > 0.0, "{client}: {r:?}");
        let stats = server.shutdown().stats;
        // Answers in flight when the client stopped were sent but not
        // counted by it: at most one per connection (two for h2load,
        // whose last request and its close can cross).
        let slack = 2 * connections as u64;
        assert!(
            stats.ok >= r.requests && stats.ok <= r.requests + slack,
            "{client}: server answered {}, the client counted {}",
            stats.ok,
            r.requests
        );
        assert_eq!(stats.requests, stats.ok, "{client}: {stats:?}");
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// Our own generator checks what it reads: a server that answers 404
/// shows up as bad answers, not as requests.
#[test]
fn the_builtin_client_counts_wrong_answers_as_bad() {
    let server = server(HttpMode::Pool);
    let r = arenapool_server::http::load::run(&arenapool_server::http::load::HttpLoadConfig {
        target: server.local_addr(),
        path: "/no/such/route".into(),
        connections: 3,
        threads: 1,
        duration: Duration::from_millis(300),
    })
    .unwrap();
    // Each connection stops at its first bad answer.
    assert_eq!((r.requests, r.bad, r.errors), (0, 3, 0), "{r:?}");
    assert_eq!(server.shutdown().stats.not_found, 3);
}

/// Many idle connections held open beside the load, in pool and io_uring
/// modes: the server keeps every one and holds no read buffer for them.
#[test]
fn idle_connections_stay_open_without_buffers_beside_the_load() {
    let mut modes = vec![HttpMode::Pool];
    if support::http_mode_runs_here(HttpMode::Uring) {
        modes.push(HttpMode::Uring);
    }
    for mode in modes {
        let server = server(mode);
        let idle = IdleConnections::open(server.local_addr(), 300, "/bytes/64").unwrap();
        assert_eq!(idle.len(), 300);
        let busy = 4;
        let r = arenapool_server::http::load::run(&arenapool_server::http::load::HttpLoadConfig {
            target: server.local_addr(),
            path: "/bytes/64".into(),
            connections: busy,
            threads: 1,
            duration: Duration::from_millis(300),
        })
        .unwrap();
        assert!(
            r.requests > 0 && r.errors == 0 && r.bad == 0,
            "{mode:?}: {r:?}"
        );
        let stats = server.stats();
        assert_eq!(
            stats.open, 300,
            "{mode:?}: the load's connections closed, the idle ones stay"
        );
        // None of them holds a buffer (the last answer's goes back just
        // after its bytes went out); io_uring mode lends its provided
        // rings' buffers to the kernel, whatever the connections do.
        let pool = server.pool().expect("a pooled mode");
        let lent = server.lent_buffers();
        let t0 = std::time::Instant::now();
        while pool.stats().in_use > lent && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(pool.stats().in_use, lent, "{mode:?}: {:?}", pool.stats());
        drop(idle);
        // The load counts the answers it read whole; an answer in flight
        // when it stopped was sent but not counted: at most one per
        // connection.
        let answered = server.shutdown().stats.requests;
        assert!(
            (300 + r.requests..=300 + r.requests + busy as u64).contains(&answered),
            "{mode:?}: the server answered {answered}, the load counted 300 + {}",
            r.requests
        );
    }
}
