//! `arenapool`: the project's command line.
//!
//! `arenapool` (or `arenapool demo`) prints the seed article's comparison,
//! reproduced honestly (a pooled 4096-byte buffer against
//! `Vec::with_capacity(4096)`, in the tight loop the article measured and in
//! the shapes that change the verdict: 64 held, two threads, cross-thread
//! release), then runs the packet-server case study in pool, Vec and
//! io_uring mode, the HTTP server in each mode under wrk or h2load, and
//! memory over time, and writes `arenapool-report/`.
//!
//! `arenapool serve` and `arenapool load` are the case study's two pieces,
//! separately; `bench-http` and `fragmentation` are the longer HTTP and
//! memory studies. `arenapool bench` runs the shoot-out against allocators
//! and pool crates, and `arenapool faults` the page-fault cost of each
//! arena backing; the work lives in the `arenapool-bench` library.
//!
//! The global allocator is `arenapool_alloc::Counting` over
//! `arenapool_bench::Chosen` (glibc unless `ARENAPOOL_ALLOCATOR` names
//! jemalloc or mimalloc), so the servers can count their allocations per
//! packet and per request, and the fragmentation study can run its
//! workload under each allocator.

mod demo;
mod frag;
mod http_bench;
mod net;
mod seed;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use arenapool_alloc::Counting;
use arenapool_bench::Chosen;
use arenapool_server::http::{HttpConfig, HttpMode};
use arenapool_server::{Mode, ServerConfig, UdpIo};
use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};

/// Counting, for the servers' allocations per request; over glibc, or
/// over jemalloc or mimalloc where `ARENAPOOL_ALLOCATOR` says (the
/// fragmentation study's child processes).
#[global_allocator]
static ALLOC: Counting<Chosen> = Counting::new(Chosen);

#[derive(Parser, Debug)]
#[command(version, about = "A fast, sound buffer pool: demo and measurements")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The demo (the default): the seed's table, the packet server and the
    /// HTTP server in each mode, and memory over time under each
    /// allocator; writes arenapool-report/.
    Demo(DemoArgs),
    /// Run the packet server (or, with `--protocol http`, the HTTP/1.1
    /// server) until Ctrl-C.
    Serve {
        /// `udp`: the packet server; `http`: HTTP/1.1 with keep-alive and
        /// pipelining, `GET /bytes/N` and `POST /echo`.
        #[arg(long, value_enum, default_value = "udp")]
        protocol: Protocol,
        /// Where buffers come from: pool, vec, or uring (pool buffers through
        /// io_uring: a provided buffer ring, multishot receives; Linux); for
        /// HTTP also hyper (hyper serving the same routes, the reference).
        /// `--io uring` says the same.
        #[arg(long, visible_alias = "io", default_value = "pool")]
        mode: String,
        /// HTTP: most open connections; more are accepted and closed.
        #[arg(long, default_value_t = 10_000, value_parser = at_least_one)]
        max_connections: usize,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7070")]
        bind: SocketAddr,
        #[command(flatten)]
        server: ServerArgs,
        /// Stop after this many seconds.
        #[arg(long, value_name = "SECS")]
        duration: Option<f64>,
        /// HTTP: at shutdown, also write the server's report (counters,
        /// allocations per request) here as JSON.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
    },
    /// The HTTP case study: the server in each mode under wrk, h2load or
    /// arenapool's own client, at several connection counts and response
    /// sizes and with most connections idle; server RSS, requests/s,
    /// latency, allocations per request; writes http.md, http.json and
    /// SVG charts.
    BenchHttp(http_bench::BenchHttpArgs),
    /// Memory over time: a server-like workload (sizes from 64 B to
    /// 256 KiB, heavy-tailed; most buffers released at once, some held for
    /// seconds) in Vec mode under glibc, glibc tuned, jemalloc and
    /// mimalloc, and in pool mode with size classes; a fresh process per
    /// run, RSS sampled every 100 ms; writes fragmentation.md, .json and
    /// -rss.svg.
    Fragmentation(frag::FragArgs),
    /// Internal: one run of `fragmentation`, in its own process.
    #[command(name = arenapool_bench::fragmentation::CHILD_COMMAND, hide = true)]
    FragmentationChild(frag::FragChildArgs),
    /// Send requests to a server, check every reply, print throughput and RTT.
    Load(net::LoadArgs),
    /// The shoot-out: allocators and pool crates against arenapool, in four
    /// scenarios, with peak memory; prints a table.
    Bench {
        /// Fewer, shorter repetitions (all candidates): under 30 s on 2 cores.
        #[arg(long)]
        quick: bool,
        /// Most threads for the scaling scenario (default: available CPUs).
        #[arg(long, value_name = "N", value_parser = at_least_one)]
        threads: Option<usize>,
        /// Also write the results as JSON here, and a chart next to it
        /// (same name, .svg).
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
        /// Run only candidates whose name contains this (repeatable).
        #[arg(long, value_name = "SUBSTRING")]
        only: Vec<String>,
    },
    /// Page faults and time of the first touch of a large pool, for each
    /// arena backing (heap, mmap, transparent huge pages, MAP_HUGETLB);
    /// prints a table.
    Faults {
        /// Pool size in MiB.
        #[arg(long, default_value_t = 1024, value_parser = at_least_one)]
        mib: usize,
        /// Bytes per buffer.
        #[arg(long, default_value_t = 4096, value_name = "BYTES", value_parser = at_least_one)]
        buffer_size: usize,
        /// A 64 MiB smoke run (overrides --mib).
        #[arg(long)]
        quick: bool,
    },
    /// The soak: random acquire/release/hand-off/freeze/grow on many
    /// threads, ownership checked on every release; exits 1 on any
    /// violation.
    Stress {
        /// How long to run.
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        /// Worker threads (default: available CPUs, at least 2).
        #[arg(long, value_parser = at_least_one)]
        threads: Option<usize>,
        /// Also write the report as JSON here.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
    },
    /// Internal: one mode of the demo's case study, in its own process.
    #[command(name = demo::CHILD_COMMAND, hide = true)]
    DemoCase {
        /// The case, as JSON.
        config: String,
    },
    /// Internal: one candidate's peak-RSS run, started by `bench`.
    #[command(name = arenapool_bench::rss::CHILD_COMMAND, hide = true)]
    BenchRssChild {
        /// Index in the roster; none for the channel floor.
        index: Option<usize>,
        #[arg(long)]
        quick: bool,
        #[arg(long)]
        threads: Option<usize>,
    },
}

/// What `serve` speaks.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Udp,
    Http,
}

/// Settings the server takes, shared by `demo` and `serve`.
#[derive(Args, Debug, Clone)]
struct ServerArgs {
    /// Worker threads (each with its own socket).
    #[arg(long, default_value_t = 2, value_parser = at_least_one)]
    workers: usize,
    /// Bytes per receive buffer; the largest datagram is one byte less.
    #[arg(long, default_value_t = 2048, value_name = "BYTES")]
    buffer_size: usize,
    /// Buffers in the pool (pool mode).
    #[arg(long, default_value_t = 1024, value_parser = at_least_one)]
    capacity: usize,
    /// Datagrams a worker takes off its socket at a time (with
    /// `--udp-io mmsg`, per recvmmsg and sendmmsg; at most 1024).
    #[arg(long, default_value_t = 32, value_parser = at_least_one)]
    batch: usize,
    /// UDP: `mmsg` (recvmmsg/sendmmsg, a batch per system call; Linux,
    /// the default there) or `per-datagram` (a recvfrom and a sendto per
    /// datagram).
    #[arg(long, value_name = "IO", default_value_t = UdpIo::default())]
    udp_io: UdpIo,
    /// UDP: GRO on the sockets and GSO on the replies (with `--udp-io
    /// mmsg`, Linux 5.0): several datagrams of one client per buffer and
    /// per send; receive buffers are then 64 KiB.
    #[arg(long)]
    gso: bool,
    /// UDP, pool and io_uring modes: record where one buffer acquisition
    /// in N was made, and list those still out at shutdown.
    #[arg(long, value_name = "N", default_value_t = 0)]
    track_leaks: u32,
}

impl ServerArgs {
    fn apply(&self, base: ServerConfig) -> ServerConfig {
        ServerConfig {
            workers: self.workers,
            buffer_size: self.buffer_size,
            capacity: self.capacity,
            batch: self.batch,
            io: self.udp_io,
            gso: self.gso,
            track_leaks: self.track_leaks,
            ..base
        }
    }
}

#[derive(Args, Debug, Clone, Default)]
struct DemoArgs {
    /// Small sizes: a smoke test of both parts that finishes in seconds.
    #[arg(long)]
    quick: bool,
    /// Where to write the report.
    #[arg(long, value_name = "DIR", default_value = "arenapool-report")]
    out: PathBuf,
    /// Server worker threads.
    #[arg(long, value_parser = at_least_one)]
    workers: Option<usize>,
    /// Bytes per receive buffer.
    #[arg(long, value_name = "BYTES")]
    buffer_size: Option<usize>,
    /// Buffers in the pool.
    #[arg(long, value_parser = at_least_one)]
    capacity: Option<usize>,
    /// Payload bytes per request.
    #[arg(long, value_name = "BYTES")]
    size: Option<usize>,
    /// Requests per mode.
    #[arg(long, value_parser = at_least_one_u64)]
    count: Option<u64>,
    /// Requests in flight at once.
    #[arg(long, value_parser = at_least_one)]
    window: Option<usize>,
}

/// Exit code for bad flags and settings.
const USAGE: i32 = 2;

fn fail(code: i32, msg: impl std::fmt::Display) -> ! {
    eprintln!("arenapool: {msg}");
    std::process::exit(code)
}

fn parse() -> Cli {
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            _ => {
                let text = e.render().to_string();
                let line = text.lines().next().unwrap_or("bad arguments");
                fail(USAGE, line.strip_prefix("error: ").unwrap_or(line))
            }
        },
    }
}

fn seconds(s: f64) -> Duration {
    if s.is_finite() && s > 0.0 {
        Duration::from_secs_f64(s.min(1e9))
    } else {
        fail(
            USAGE,
            format!("a duration must be a positive number of seconds, not {s}"),
        )
    }
}

fn main() {
    let cli = parse();
    match cli.command.unwrap_or(Command::Demo(DemoArgs {
        out: PathBuf::from("arenapool-report"),
        ..DemoArgs::default()
    })) {
        Command::Demo(args) => demo(&args),
        Command::Serve {
            protocol: Protocol::Http,
            mode,
            max_connections,
            bind,
            server,
            duration,
            json,
        } => {
            let mode = mode.parse::<HttpMode>().unwrap_or_else(|e| fail(USAGE, e));
            let config = HttpConfig {
                mode,
                bind,
                workers: server.workers,
                max_connections,
                ..HttpConfig::default()
            };
            if let Err(e) = config.validate() {
                fail(USAGE, e);
            }
            if let Err(e) = net::serve_http(config, duration.map(seconds), json.as_deref()) {
                fail(1, e);
            }
        }
        Command::Serve {
            protocol: Protocol::Udp,
            mode,
            max_connections: _,
            bind,
            server,
            duration,
            json,
        } => {
            if json.is_some() {
                fail(USAGE, "--json is for --protocol http");
            }
            let mode: Mode = mode.parse().unwrap_or_else(|e| fail(USAGE, e));
            let config = server.apply(ServerConfig {
                mode,
                bind,
                ..ServerConfig::default()
            });
            if let Err(e) = config.validate() {
                fail(USAGE, e);
            }
            if let Err(e) = net::serve(config, duration.map(seconds)) {
                fail(1, e);
            }
        }
        Command::Load(args) => {
            let config = args.config();
            if let Err(e) = config.validate() {
                fail(USAGE, e);
            }
            match net::load(config) {
                Ok(true) => {}
                Ok(false) => std::process::exit(1),
                Err(e) => fail(1, e),
            }
        }
        Command::Fragmentation(args) => {
            if let Err(e) = frag::fragmentation(&args) {
                fail(1, e);
            }
        }
        Command::FragmentationChild(args) => {
            if let Err(e) = frag::child(&args) {
                fail(1, e);
            }
        }
        Command::BenchHttp(args) => {
            if let Err(e) = http_bench::validate(&args) {
                fail(USAGE, e);
            }
            if let Err(e) = http_bench::bench_http(&args) {
                fail(1, e);
            }
        }
        Command::Stress {
            seconds: secs,
            threads,
            json,
        } => stress(seconds(secs), threads, json),
        Command::Faults {
            mib,
            buffer_size,
            quick,
        } => {
            let opts = arenapool_bench::FaultOptions {
                mib: if quick { 64 } else { mib },
                buffer_size,
            };
            match arenapool_bench::faults(opts) {
                Ok(rows) => print!("{}", arenapool_bench::fault_table(opts, &rows)),
                Err(e) => fail(1, e),
            }
        }
        Command::DemoCase { config } => {
            if let Err(e) = demo::child_main(&config) {
                fail(1, e);
            }
        }
        Command::Bench {
            quick,
            threads,
            json,
            only,
        } => bench(quick, threads, json, only),
        Command::BenchRssChild {
            index,
            quick,
            threads,
        } => {
            let plan = arenapool_bench::Options {
                quick,
                threads,
                rss: false,
                only: Vec::new(),
            }
            .plan();
            if let Err(e) = arenapool_bench::rss::child_main(index, &plan) {
                eprintln!("arenapool: {e}");
                std::process::exit(1);
            }
        }
    }
}

fn stress(duration: Duration, threads: Option<usize>, json: Option<PathBuf>) {
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(2)
    });
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template("stress {bar:40} {elapsed}/{msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(format!("{:.0?}", duration));
    let report =
        arenapool_bench::stress(duration, threads, |f| bar.set_position((f * 1000.0) as u64));
    bar.finish_and_clear();
    println!("{}", report.summary());
    if let Some(path) = json {
        let written = serde_json::to_string_pretty(&report)
            .map_err(std::io::Error::other)
            .and_then(|text| std::fs::write(&path, text));
        if let Err(e) = written {
            fail(1, format!("could not write {}: {e}", path.display()));
        }
    }
    if report.violations > 0 {
        std::process::exit(1);
    }
}

pub(crate) fn at_least_one(arg: &str) -> Result<usize, String> {
    match arg.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

pub(crate) fn positive_seconds(arg: &str) -> Result<f64, String> {
    match arg.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(s),
        Ok(_) => Err("must be a number of seconds above 0, at most a day".into()),
        Err(e) => Err(e.to_string()),
    }
}

pub(crate) fn at_least_one_u64(arg: &str) -> Result<u64, String> {
    match arg.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn demo(args: &DemoArgs) {
    let mut opts = demo::DemoOptions::new(args.quick);
    opts.out.clone_from(&args.out);
    if let Some(w) = args.workers {
        opts.server.workers = w;
    }
    if let Some(b) = args.buffer_size {
        opts.server.buffer_size = b;
    }
    if let Some(c) = args.capacity {
        opts.server.capacity = c;
    }
    if let Some(s) = args.size {
        opts.load.payload = s;
    }
    if let Some(c) = args.count {
        opts.load.count = c;
    }
    if let Some(w) = args.window {
        opts.load.window = w;
    }
    if let Err(e) = opts.server.validate() {
        fail(USAGE, e);
    }
    if let Err(e) = opts.load.validate() {
        fail(USAGE, e);
    }
    if opts.load.payload > opts.server.max_payload() {
        fail(
            USAGE,
            format!(
                "--size {} does not fit a {}-byte buffer (at most {} payload bytes)",
                opts.load.payload,
                opts.server.buffer_size,
                opts.server.max_payload()
            ),
        );
    }
    if let Err(e) = demo::run(&opts) {
        fail(1, e);
    }
}

/// Whether this run is strict (`ARENAPOOL_STRICT=1`, as `.ci/run` sets):
/// nothing may be left out, neither a demo mode nor a bench candidate.
fn strict() -> bool {
    std::env::var_os("ARENAPOOL_STRICT").is_some_and(|v| v == "1")
}

fn bench(quick: bool, threads: Option<usize>, json: Option<PathBuf>, only: Vec<String>) {
    let opts = arenapool_bench::Options {
        quick,
        threads,
        rss: true,
        only,
    };
    let report = arenapool_bench::run(&opts);
    println!("{}\n{}", report.table(), report.legend());
    if let Some(path) = json {
        match arenapool_bench::write_files(&report, &path) {
            Ok(svg) => println!("wrote {} and {}", path.display(), svg.display()),
            Err(e) => {
                eprintln!("arenapool: {e}");
                std::process::exit(1);
            }
        }
    }
    if strict() && !report.left_out.is_empty() {
        eprintln!(
            "arenapool: ARENAPOOL_STRICT=1 allows nothing to be left out; this run left out {}:{}",
            report.left_out.len(),
            report.left_out_lines()
        );
        std::process::exit(1);
    }
}
