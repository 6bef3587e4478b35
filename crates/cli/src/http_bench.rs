//! `arenapool bench-http`, and part 3 of the demo: the HTTP server in
//! each mode under a client nobody here wrote (wrk, else h2load), or under
//! arenapool's own HTTP load generator where neither is installed, at
//! several connection counts, and with most connections idle
//! (`arenapool_server::http::study`).

use std::path::PathBuf;
use std::time::Duration;

use arenapool_server::http::HttpMode;
use arenapool_server::http::clients::Client;
use arenapool_server::http::study::{self, HttpStudy, IdleCase, StudyConfig};
use clap::Args;
use indicatif::ProgressBar;

/// The environment variable that names the HTTP modes the demo runs (a
/// comma-separated list, such as `pool,vec`).
pub(crate) const MODES_VAR: &str = "ARENAPOOL_DEMO_HTTP_MODES";

/// `arenapool bench-http`'s flags.
#[derive(Args, Debug, Clone)]
pub(crate) struct BenchHttpArgs {
    /// A smoke test in seconds: 100 and 1,000 connections, 128 B
    /// answers, 990 idle beside 10 busy, 1 s each (in place of
    /// --connections, --responses, the idle flags and --seconds).
    #[arg(long)]
    quick: bool,
    /// Server modes, comma-separated: pool, vec, uring, hyper [default:
    /// all four, less uring where the kernel gives no io_uring].
    #[arg(long, value_delimiter = ',')]
    modes: Option<Vec<HttpMode>>,
    /// Busy keep-alive connection counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000", value_parser = crate::at_least_one)]
    connections: Vec<usize>,
    /// Response sizes in bytes (`GET /bytes/N`), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "128,16384")]
    responses: Vec<usize>,
    /// Connections in the mostly-idle case (0: leave it out).
    #[arg(long, default_value_t = 10_000)]
    idle_total: usize,
    /// Of which busy.
    #[arg(long, default_value_t = 100, value_parser = crate::at_least_one)]
    idle_busy: usize,
    /// Seconds of load per run.
    #[arg(long, default_value_t = 5, value_parser = crate::at_least_one_u64)]
    seconds: u64,
    /// wrk, h2load, builtin (arenapool's own), or auto: the first of
    /// those installed.
    #[arg(long, default_value = "auto")]
    client: String,
    /// Client threads.
    #[arg(long, default_value_t = 2, value_parser = crate::at_least_one)]
    client_threads: usize,
    /// Server worker threads.
    #[arg(long, default_value_t = 2, value_parser = crate::at_least_one)]
    workers: usize,
    /// Where to write http.md, http.json and the charts.
    #[arg(long, value_name = "DIR", default_value = "arenapool-report")]
    out: PathBuf,
}

/// The client `--client` names, or the best installed for `auto`, and a
/// line that says which and why.
fn client(asked: &str) -> Result<(Client, String), String> {
    if asked == "auto" {
        let c = Client::best_installed();
        let why = match c {
            Client::Builtin => format!(
                "load from {c} (arenapool's own HTTP load generator): neither wrk nor \
                h2load is installed (Debian: apt-get install wrk nghttp2-client)"
            ),
            c => format!("load from {c} (installed)"),
        };
        return Ok((c, why));
    }
    let c: Client = asked.parse()?;
    if !c.installed() {
        return Err(format!(
            "--client {c}: it is not installed (Debian: apt-get install wrk nghttp2-client)"
        ));
    }
    Ok((c, format!("load from {c} (--client)")))
}

/// Where a study writes each client's raw output and each server's
/// report.
fn scratch(out: &std::path::Path) -> PathBuf {
    out.join("http-runs")
}

/// The settings of every quick run (`bench-http --quick`, `demo
/// --quick`): 100 and 1,000 connections, 128 B answers, 990 idle beside
/// 10 busy, 1 s each.
fn quick_settings(config: StudyConfig) -> StudyConfig {
    StudyConfig {
        connections: vec![100, 1000],
        responses: vec![128],
        idle: Some(IdleCase {
            total: 1000,
            busy: 10,
        }),
        duration: Duration::from_secs(1),
        ..config
    }
}

fn exe() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("finding this executable: {e}"))
}

/// Runs `config`, one progress line (or `step` on the bar) per run.
fn measure(config: StudyConfig, bar: Option<(&ProgressBar, u64)>) -> Result<HttpStudy, String> {
    let total = config.run_count();
    let mut done = 0;
    let study = study::run(&config, |r| {
        done += 1;
        let line = format!(
            "{done}/{total}: {:?} mode, {} connections{}, {} B: {:.0} requests/s, {} errors",
            r.mode,
            r.connections,
            if r.idle > 0 {
                format!(" + {} idle", r.idle)
            } else {
                String::new()
            },
            r.response_bytes,
            r.client.requests_per_s,
            r.errors()
        );
        match bar {
            Some((b, step)) => {
                b.inc(step);
                b.set_message(format!("part 3: {line}"));
            }
            None => eprintln!("{line}"),
        }
    })
    .map_err(|e| e.to_string())?;
    let mut study = study;
    let m = arenapool_bench::Machine::detect();
    study
        .notes
        .insert(0, format!("machine: {} ({} CPUs, {})", m.cpu, m.cpus, m.os));
    Ok(study)
}

/// Flags that cannot work, as one line (exit code 2).
pub(crate) fn validate(args: &BenchHttpArgs) -> Result<(), String> {
    if args.client != "auto" {
        args.client.parse::<Client>()?;
    }
    let max = arenapool_server::http::HttpConfig::default().max_bytes;
    if let Some(n) = args.responses.iter().find(|&&n| n > max) {
        return Err(format!(
            "--responses {n}: the server answers at most {max} bytes"
        ));
    }
    if args.idle_total > 0 && args.idle_busy > args.idle_total {
        return Err(format!(
            "--idle-busy {} is more than --idle-total {}",
            args.idle_busy, args.idle_total
        ));
    }
    Ok(())
}

/// `arenapool bench-http`.
pub(crate) fn bench_http(args: &BenchHttpArgs) -> Result<(), String> {
    let (client, why) = client(&args.client)?;
    println!("arenapool bench-http: {why}");
    let config = StudyConfig {
        exe: exe()?,
        modes: match &args.modes {
            Some(m) => m.clone(),
            None => runnable_modes("bench-http")?,
        },
        connections: args.connections.clone(),
        responses: args.responses.clone(),
        idle: (args.idle_total > 0).then_some(IdleCase {
            total: args.idle_total,
            busy: args.idle_busy,
        }),
        duration: Duration::from_secs(args.seconds),
        client,
        client_threads: args.client_threads,
        workers: args.workers,
        scratch: scratch(&args.out),
    };
    let config = if args.quick {
        quick_settings(config)
    } else {
        config
    };
    let study = measure(config, None)?;
    println!("{}", study.table());
    let files = study
        .write(&args.out)
        .map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    println!("{}", written(&files));
    Ok(())
}

pub(crate) fn written(files: &[PathBuf]) -> String {
    format!(
        "report: {}",
        files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Every HTTP mode, in table order.
const ALL_MODES: [HttpMode; 4] = [
    HttpMode::Pool,
    HttpMode::Vec,
    HttpMode::Uring,
    HttpMode::Hyper,
];

/// Every HTTP mode that runs here: io_uring mode is left out, with the
/// reason printed, where the kernel or the machine cannot run it (in
/// strict mode that is an error).
fn runnable_modes(what: &str) -> Result<Vec<HttpMode>, String> {
    match arenapool_server::Mode::Uring.unavailable() {
        None => Ok(ALL_MODES.to_vec()),
        Some(why) if crate::strict() => Err(format!(
            "uring mode cannot run here, and ARENAPOOL_STRICT=1 allows nothing to be left out: {why}"
        )),
        Some(why) => {
            println!("arenapool: uring mode left out of {what}: {why}");
            Ok(ALL_MODES
                .into_iter()
                .filter(|&m| m != HttpMode::Uring)
                .collect())
        }
    }
}

/// The demo's part 3: what it runs.
pub(crate) struct Part3 {
    config: StudyConfig,
    /// Which client, and why.
    pub(crate) client_line: String,
}

impl Part3 {
    /// The demo's settings: pool, Vec, io_uring and hyper at 100, 1,000 and 10,000
    /// busy connections for 2 s each, and 9,900 idle + 100 busy; quick:
    /// 100 and 1,000 for 1 s, and 990 idle + 10 busy.
    pub(crate) fn new(quick: bool, out: &std::path::Path) -> Result<Part3, String> {
        let (client, client_line) = client("auto")?;
        let modes = match std::env::var(MODES_VAR) {
            Err(_) => runnable_modes("the demo")?,
            Ok(list) => list
                .split(',')
                .map(|m| m.trim().parse::<HttpMode>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{MODES_VAR}={list}: {e}"))?,
        };
        if modes.is_empty() {
            return Err(format!("{MODES_VAR} names no mode"));
        }
        let config = StudyConfig {
            exe: exe()?,
            modes,
            connections: vec![100, 1000, 10_000],
            responses: vec![128],
            idle: Some(IdleCase {
                total: 10_000,
                busy: 100,
            }),
            duration: Duration::from_secs(2),
            client,
            client_threads: 2,
            workers: 2,
            scratch: scratch(out),
        };
        Ok(Part3 {
            config: if quick {
                quick_settings(config)
            } else {
                config
            },
            client_line,
        })
    }

    /// Runs it, `step` on the bar per run.
    pub(crate) fn run(self, bar: &ProgressBar, step: u64) -> Result<HttpStudy, String> {
        measure(self.config, Some((bar, step)))
    }

    /// How many runs it makes.
    pub(crate) fn runs(&self) -> u64 {
        self.config.run_count() as u64
    }
}
