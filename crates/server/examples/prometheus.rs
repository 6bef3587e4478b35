//! The HTTP server's pool, exported for Prometheus: every second the
//! example takes a snapshot of `Pool::class_stats` and serves it at
//! `GET /metrics` on a second port, in the Prometheus text exposition
//! format, with hyper. The counters are the pool's own: cumulative
//! acquires, releases, failed acquires, waits and wait time, growths,
//! trims, steals, cache refills and flushes, and gauges of what is held
//! now and of the arenas' reserved and resident bytes, one series per
//! size class.
//!
//! ```sh
//! cargo run --release -p arenapool-server --example prometheus
//! # serving HTTP on http://127.0.0.1:8080, metrics on http://127.0.0.1:9898/metrics
//! curl -s http://127.0.0.1:8080/bytes/1000 > /dev/null
//! curl -s http://127.0.0.1:9898/metrics | grep acquires
//! ```
//!
//! With `--check` it sends itself a few requests, fetches its own
//! `/metrics` once the snapshot has them, checks what it reads and exits
//! (CI runs it so).

use std::convert::Infallible;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arenapool::{ClassStats, Pool};
use arenapool_server::http::{HttpConfig, HttpServer};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// One metric: its name after `arenapool_`, its type, its help line, and
/// how to read it off a class's stats.
struct Metric {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&arenapool::Stats) -> f64,
}

const METRICS: &[Metric] = &[
    Metric {
        name: "acquires_total",
        kind: "counter",
        help: "Buffers acquired.",
        value: |s| s.acquires as f64,
    },
    Metric {
        name: "releases_total",
        kind: "counter",
        help: "Buffers released.",
        value: |s| s.releases as f64,
    },
    Metric {
        name: "failed_acquires_total",
        kind: "counter",
        help: "Acquires that got no buffer.",
        value: |s| s.failed_acquires as f64,
    },
    Metric {
        name: "waits_total",
        kind: "counter",
        help: "Acquires that queued for a buffer.",
        value: |s| s.waits as f64,
    },
    Metric {
        name: "wait_seconds_total",
        kind: "counter",
        help: "Time spent queued, all waiters together.",
        value: |s| s.wait_total.as_secs_f64(),
    },
    Metric {
        name: "wait_seconds_max",
        kind: "gauge",
        help: "The longest one waiter queued.",
        value: |s| s.wait_max.as_secs_f64(),
    },
    Metric {
        name: "growths_total",
        kind: "counter",
        help: "Segments added.",
        value: |s| s.growths as f64,
    },
    Metric {
        name: "trims_total",
        kind: "counter",
        help: "Trims run (memory given back).",
        value: |s| s.trims as f64,
    },
    Metric {
        name: "steals_total",
        kind: "counter",
        help: "Times the thread caches were emptied for a taker.",
        value: |s| s.steals as f64,
    },
    Metric {
        name: "cache_refills_total",
        kind: "counter",
        help: "Thread-cache refills from the shared list.",
        value: |s| s.refills as f64,
    },
    Metric {
        name: "cache_flushes_total",
        kind: "counter",
        help: "Thread-cache flushes to the shared list.",
        value: |s| s.flushes as f64,
    },
    Metric {
        name: "buffers",
        kind: "gauge",
        help: "Buffers the class has.",
        value: |s| s.capacity as f64,
    },
    Metric {
        name: "buffers_in_use",
        kind: "gauge",
        help: "Buffers held by users.",
        value: |s| s.in_use as f64,
    },
    Metric {
        name: "buffers_cached",
        kind: "gauge",
        help: "Free buffers parked in thread caches.",
        value: |s| s.cached as f64,
    },
    Metric {
        name: "buffers_held_high_water",
        kind: "gauge",
        help: "Most buffers seen held by users at once.",
        value: |s| s.held_high_water as f64,
    },
    Metric {
        name: "waiting",
        kind: "gauge",
        help: "Callers queued now.",
        value: |s| s.waiting as f64,
    },
    Metric {
        name: "reserved_bytes",
        kind: "gauge",
        help: "Bytes of the arenas the class holds.",
        value: |s| s.reserved_bytes as f64,
    },
    Metric {
        name: "resident_bytes",
        kind: "gauge",
        help: "Of the reserved bytes, those in memory now.",
        value: |s| s.resident_bytes as f64,
    },
];

/// The Prometheus text format of `classes`: each metric once, one series
/// per class, labelled with its buffer size.
fn render(classes: &[ClassStats]) -> String {
    let mut out = String::new();
    for m in METRICS {
        let _ = writeln!(out, "# HELP arenapool_{} {}", m.name, m.help);
        let _ = writeln!(out, "# TYPE arenapool_{} {}", m.name, m.kind);
        for c in classes {
            let _ = writeln!(
                out,
                "arenapool_{}{{buffer_size=\"{}\"}} {}",
                m.name,
                c.buffer_size,
                (m.value)(&c.stats)
            );
        }
    }
    out
}

/// Serves the latest snapshot at `/metrics` (404 elsewhere) until the
/// process ends.
async fn serve_metrics(listener: tokio::net::TcpListener, snapshot: Arc<Mutex<String>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let snapshot = Arc::clone(&snapshot);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let body = match req.uri().path() {
                    "/metrics" => Some(snapshot.lock().map(|s| s.clone()).unwrap_or_default()),
                    _ => None,
                };
                async move {
                    let mut r =
                        Response::new(Full::new(Bytes::from(body.clone().unwrap_or_default())));
                    if body.is_none() {
                        *r.status_mut() = hyper::StatusCode::NOT_FOUND;
                    } else if let Ok(v) = "text/plain; version=0.0.4".parse() {
                        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
                    }
                    Ok::<_, Infallible>(r)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A plain HTTP/1.0 GET, for the self-check: the whole answer.
fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}

/// The value of the series `line_start` (`name{labels}`) in `metrics`.
fn value_of(metrics: &str, line_start: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let check = std::env::args().any(|a| a == "--check");
    let (http_bind, metrics_bind): (SocketAddr, SocketAddr) = if check {
        ("127.0.0.1:0".parse()?, "127.0.0.1:0".parse()?)
    } else {
        ("127.0.0.1:8080".parse()?, "127.0.0.1:9898".parse()?)
    };
    let server = HttpServer::start(HttpConfig {
        bind: http_bind,
        ..HttpConfig::default()
    })?;
    let pool: Pool = server.pool().ok_or("pool mode has a pool")?.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind(metrics_bind))?;
    let metrics_addr = listener.local_addr()?;
    println!(
        "serving HTTP on http://{}, metrics on http://{metrics_addr}/metrics",
        server.local_addr()
    );
    let snapshot = Arc::new(Mutex::new(render(&pool.class_stats())));
    {
        // Every second, a fresh snapshot.
        let snapshot = Arc::clone(&snapshot);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let text = render(&pool.class_stats());
                if let Ok(mut s) = snapshot.lock() {
                    *s = text;
                }
            }
        });
    }
    // The exporter's own thread drives its runtime.
    let exporter = std::thread::spawn(move || rt.block_on(serve_metrics(listener, snapshot)));
    if !check {
        let _ = exporter.join();
        return Ok(());
    }
    // The self-check: three requests, then the snapshot must count them.
    let http = server.local_addr();
    for _ in 0..3 {
        let answer = get(http, "/bytes/100")?;
        assert_eq!(answer.split_whitespace().nth(1), Some("200"), "{answer}");
    }
    let series = format!(
        "arenapool_acquires_total{{buffer_size=\"{}\"}}",
        server.pool().map_or(0, Pool::buffer_size)
    );
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        assert!(
            std::time::Instant::now() < give_up,
            "the snapshot never counted the requests"
        );
        let text = get(metrics_addr, "/metrics")?;
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        if value_of(&body, &series).is_some_and(|v| v >= 3.0) {
            break body;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for m in METRICS {
        assert!(
            metrics.contains(&format!("# TYPE arenapool_{} {}", m.name, m.kind)),
            "{metrics}"
        );
    }
    print!("{metrics}");
    let report = server.shutdown();
    println!("check passed: {} requests answered", report.stats.requests);
    Ok(())
}
