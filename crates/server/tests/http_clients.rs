//! The HTTP server against clients nobody here wrote: wrk and h2load
//! (`--h1`), for a few seconds each, in all three modes (hyper's the
//! reference). Each client must see
//! no error and only 200s, and the server's counters must agree with what
//! the client reports. Without the tools (Debian: `apt-get install wrk
//! nghttp2-client`) the tests skip, which fails in strict mode
//! (`.ci/run` installs them).

use std::process::Command;

use arenapool_server::http::{HttpConfig, HttpMode, HttpServer};

mod support;

use support::skip::skip;

fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        skip(format_args!(
            "{tool} is not installed (apt-get install wrk nghttp2-client)"
        ));
    }
    found
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
    if !have("wrk") {
        return;
    }
    for mode in [HttpMode::Pool, HttpMode::Vec, HttpMode::Hyper] {
        let server = server(mode);
        let url = format!("http://{}/bytes/128", server.local_addr());
        let out = Command::new("wrk")
            .args(["-t2", "-c50", "-d2s", "--latency", &url])
            .output()
            .expect("wrk runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{mode:?}: wrk failed: {text}");
        assert!(!text.contains("Socket errors"), "{mode:?}: {text}");
        assert!(!text.contains("Non-2xx"), "{mode:?}: {text}");
        let requests = text
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .expect("wrk's request count");
        assert!(requests > 100, "{mode:?}: {text}");
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
    if !have("h2load") {
        return;
    }
    for mode in [HttpMode::Pool, HttpMode::Vec, HttpMode::Hyper] {
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
