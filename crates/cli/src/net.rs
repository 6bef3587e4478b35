//! `arenapool serve` and `arenapool load`: the case study's two pieces,
//! separately, to run against each other from two terminals.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Args;

use arenapool_server::http::{HttpConfig, HttpServer, HttpStats};
use arenapool_server::latency::micros;
use arenapool_server::load::{self, LoadConfig};
use arenapool_server::{DropReason, Mode, Server, ServerConfig, ServerStats, UdpIo};

/// Runs the HTTP server until Ctrl-C (or `duration`), printing its
/// counters every second and a summary at the end. Raises the open-file
/// limit first, as far as it is allowed, and says so.
/// With `json`, also writes the shutdown report there.
pub(crate) fn serve_http(
    config: HttpConfig,
    duration: Option<Duration>,
    json: Option<&Path>,
) -> Result<(), String> {
    #[cfg(target_os = "linux")]
    match arenapool_server::http::raise_open_files() {
        Ok((before, after)) if before != after => {
            println!("arenapool: open-file limit raised from {before} to {after}");
        }
        Ok((_, after)) => println!("arenapool: open-file limit {after}"),
        Err(e) => println!("arenapool: open-file limit not raised: {e}"),
    }
    let server = HttpServer::start(config).map_err(|e| e.to_string())?;
    let listening = || {
        println!(
            "arenapool: HTTP on http://{} ({:?} mode, {} workers, at most {} connections); Ctrl-C stops",
            server.local_addr(),
            config.mode,
            config.workers,
            config.max_connections
        );
    };
    let started = Instant::now();
    let mut last = HttpStats::default();
    every_second_until(duration, listening, || {
        let s = server.stats();
        if s != last {
            println!(
                "{:>6.1} s  requests {}  open {}  refused {}  ({}/s)",
                started.elapsed().as_secs_f64(),
                s.requests,
                s.open,
                s.refused,
                s.requests - last.requests
            );
            last = s;
        }
    })?;
    let r = server.shutdown();
    let s = r.stats;
    println!(
        "arenapool: {} requests on {} connections ({} refused): {} ok, {} bad request, {} not found, \
         {} method not allowed, {} too large, {} headers too large, {} not implemented; \
         {} slow heads timed out, {} idle closed, {} I/O errors",
        s.requests,
        s.connections,
        s.refused,
        s.ok,
        s.bad_request,
        s.not_found,
        s.method_not_allowed,
        s.payload_too_large,
        s.headers_too_large,
        s.not_implemented,
        s.header_timeouts,
        s.idle_closed,
        s.io_errors
    );
    if let Some(per) = r.allocs.allocations_per_packet() {
        println!("arenapool: {per:.3} heap allocations per request after warm-up (workers only)");
    }
    if let Some(path) = json {
        serde_json::to_string_pretty(&r)
            .map_err(std::io::Error::other)
            .and_then(|text| std::fs::write(path, text))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Installs the Ctrl-C (SIGINT) handler, then calls `ready` (which says
/// where the server listens: a SIGINT from then on is never lost, as a
/// program that starts the server and stops it relies on), then `tick`
/// every second until Ctrl-C or `duration`.
fn every_second_until(
    duration: Option<Duration>,
    ready: impl FnOnce(),
    mut tick: impl FnMut(),
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting a runtime: {e}"))?;
    rt.block_on(async {
        #[cfg(unix)]
        let mut interrupt =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .map_err(|e| format!("handling SIGINT: {e}"))?;
        #[cfg(unix)]
        let ctrl_c = interrupt.recv();
        #[cfg(not(unix))]
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        ready();
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.tick().await;
        let until = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(until);
        loop {
            tokio::select! {
                _ = &mut ctrl_c => break,
                () = &mut until => break,
                _ = every.tick() => tick(),
            }
        }
        Ok(())
    })
}

/// Runs a server until Ctrl-C (or `duration`), printing its counters
/// every second and a summary at the end.
pub(crate) fn serve(config: ServerConfig, duration: Option<Duration>) -> Result<(), String> {
    let server = Server::start(config).map_err(|e| e.to_string())?;
    let listening = || {
        println!(
            "arenapool: serving on {} ({} mode{}, {} workers, {}-byte buffers{}); Ctrl-C stops",
            server.local_addr(),
            config.mode,
            match (config.mode, config.io, config.gso) {
                (Mode::Uring, ..) => "",
                (_, UdpIo::PerDatagram, _) => ", a system call per datagram",
                (_, UdpIo::Mmsg, false) => ", recvmmsg/sendmmsg",
                (_, UdpIo::Mmsg, true) => ", recvmmsg/sendmmsg with GRO/GSO",
            },
            config.workers,
            config.buffer_size,
            if config.mode.uses_pool() {
                format!(", pool of {}", config.capacity)
            } else {
                String::new()
            }
        );
    };
    let started = Instant::now();
    let mut last = ServerStats::default();
    every_second_until(duration, listening, || {
        let s = server.stats();
        if s != last {
            println!(
                "{:>6.1} s  replied {}  dropped {}  ({}/s)",
                started.elapsed().as_secs_f64(),
                s.replied,
                s.drops.total(),
                s.handled() - last.handled()
            );
            last = s;
        }
    })?;
    let report = server.shutdown();
    println!("{}", stats_text(&report.stats));
    if let Some(pool) = report.pool {
        println!("pool: {}", pool.counters);
    }
    if config.track_leaks > 0 {
        println!(
            "leak tracking (one acquisition in {}): {} tracked buffers still out at shutdown",
            config.track_leaks,
            report.leaks.len()
        );
        for leak in &report.leaks {
            println!("  {leak}");
        }
    }
    if let Some(a) = report.allocs.allocations_per_packet() {
        println!(
            "server threads: {} allocations over {} datagrams after warm-up ({a:.3} per packet)",
            report.allocs.allocations, report.allocs.packets
        );
    }
    Ok(())
}

fn stats_text(s: &ServerStats) -> String {
    let mut out = format!("replied {}", s.replied);
    for r in DropReason::ALL {
        out += &format!(", {} {}", r.name(), s.drops.get(r));
    }
    out += &format!(
        ", recv errors {}, send errors {}",
        s.recv_errors, s.send_errors
    );
    if s.enobufs > 0 {
        out += &format!(", io_uring ring ran dry {} times", s.enobufs);
    }
    if let Some(per) = s.datagrams_per_call() {
        out += &format!(
            "; {} receive/send system calls ({per:.2} datagrams per call)",
            s.io_calls
        );
    }
    if s.completions > 0 && s.io_calls > 0 {
        out += &format!(
            ", {:.2} completions per io_uring_enter",
            s.completions as f64 / s.io_calls as f64
        );
    }
    if s.cpu_ns > 0 {
        out += &format!(", worker CPU {:.2} s", s.cpu_ns as f64 / 1e9);
    }
    out
}

/// `arenapool load`'s flags.
#[derive(Args, Debug, Clone)]
pub(crate) struct LoadArgs {
    /// The server's address.
    #[arg(long, default_value = "127.0.0.1:7070")]
    target: SocketAddr,
    /// Requests to send.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Most requests in flight at once.
    #[arg(long, default_value_t = 64, value_parser = crate::at_least_one)]
    window: usize,
    /// Payload bytes per request.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Requests per second (default: as fast as the window allows).
    #[arg(long, value_parser = crate::at_least_one_u64)]
    rate: Option<u64>,
    /// Stop after this many seconds even if requests remain.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    duration: f64,
    /// Client sockets (the kernel spreads them over the server's workers).
    #[arg(long, default_value_t = 4, value_parser = crate::at_least_one)]
    sockets: usize,
    /// Threads driving the sockets.
    #[arg(long, default_value_t = 1, value_parser = crate::at_least_one)]
    threads: usize,
    /// Milliseconds before an unanswered request counts as lost.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    timeout_ms: u64,
    /// Requests per send call and replies per receive call on each socket
    /// (above 1: sendmmsg and recvmmsg, Linux). Default 32 on Linux.
    #[arg(long, value_parser = crate::at_least_one)]
    batch: Option<usize>,
    /// Send each batch as one UDP GSO send and take replies with GRO.
    #[arg(long)]
    gso: bool,
}

impl LoadArgs {
    pub(crate) fn config(&self) -> LoadConfig {
        let base = LoadConfig::default();
        LoadConfig {
            target: self.target,
            count: self.count,
            window: self.window,
            payload: self.size,
            rate: self.rate,
            duration: crate::seconds(self.duration),
            sockets: self.sockets,
            threads: self.threads,
            timeout: Duration::from_millis(self.timeout_ms.max(1)),
            batch: self.batch.unwrap_or(base.batch),
            gso: self.gso,
        }
    }
}

/// Runs the load generator once and prints what it saw. Returns whether
/// every request got a verified reply.
pub(crate) fn load(config: LoadConfig) -> Result<bool, String> {
    let r = load::run(&config).map_err(|e| e.to_string())?;
    let l = &r.latency;
    println!(
        "target {}: sent {}, verified replies {}, lost {}, late {}, bad {}, send errors {}, recv errors {}",
        config.target, r.sent, r.received, r.lost, r.late, r.bad, r.send_errors, r.recv_errors
    );
    println!(
        "{:.0} packets/s over {:.2} s (client CPU {:.2} s); RTT us: p50 {:.1}, p99 {:.1}, p99.9 {:.1}, max {:.1}",
        r.throughput(),
        r.elapsed_s,
        r.cpu_s,
        micros(l.p50_ns),
        micros(l.p99_ns),
        micros(l.p999_ns),
        micros(l.max_ns)
    );
    Ok(r.all_verified())
}
