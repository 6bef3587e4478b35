//! The demo: part 1 (the seed's table, [`crate::seed`]) and part 2, the
//! packet-server case study, pool mode, Vec mode and io_uring mode under
//! the same load, each in a fresh child process so that its peak RSS is
//! its own. A child that fails (exits non-zero or reports nothing) fails
//! the demo, naming its mode: nothing is re-run or hidden.
//!
//! io_uring mode is left out, with the reason printed, where it cannot run
//! here; in strict mode (`ARENAPOOL_STRICT=1`, as `.ci/run` sets) that
//! fails the demo instead. `ARENAPOOL_DEMO_MODES` (a comma-separated list,
//! such as `pool,vec`) names the modes to run, for a run with a reason to
//! leave one out: `.ci/run`'s valgrind pass leaves out io_uring mode,
//! whose child does not finish under valgrind (one thread at a time).
//!
//! Part 3 is the HTTP server (`arenapool_server::http`) in pool, Vec,
//! io_uring (where it runs, as in part 2) and hyper mode under wrk (else h2load, else arenapool's own HTTP load
//! generator, and it prints which), each in a fresh server process, at
//! 100, 1,000 and 10,000 busy connections and with 9,900 idle beside 100
//! busy ([`crate::http_bench`]). `ARENAPOOL_DEMO_HTTP_MODES` names its
//! modes as `ARENAPOOL_DEMO_MODES` does part 2's.
//!
//! Part 4 is memory over time (`arenapool fragmentation`, shorter): the
//! same server-like workload in Vec mode under glibc, glibc tuned,
//! jemalloc and mimalloc, and in pool mode with and without per-thread
//! caches, a process each, about 25 s in all ([`crate::frag`]).
//!
//! Writes `arenapool-report/`: report.md, report.json, http.md, http.json,
//! fragmentation.md, fragmentation.json and five SVG charts.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use arenapool_bench::fragmentation::FragStudy;
use arenapool_server::case::{self, CaseConfig, CaseResult};
use arenapool_server::http::study::HttpStudy;
use arenapool_server::load::{LoadConfig, Progress};
use arenapool_server::report::CaseStudy;
use arenapool_server::{Mode, ServerConfig};
use indicatif::{ProgressBar, ProgressStyle};

use crate::http_bench::Part3;
use crate::seed::{self, SeedTable};

/// Progress-bar units per run of part 3.
const PART3_STEP: u64 = 1000;

/// The hidden subcommand that runs one mode in a child process.
pub(crate) const CHILD_COMMAND: &str = "demo-case";
const PROGRESS: &str = "progress ";
const RESULT: &str = "result ";
/// The modes to run, when not all (a comma-separated list).
const MODES_VAR: &str = "ARENAPOOL_DEMO_MODES";

/// What the demo runs.
#[derive(Debug, Clone)]
pub(crate) struct DemoOptions {
    pub(crate) quick: bool,
    pub(crate) out: PathBuf,
    pub(crate) server: ServerConfig,
    pub(crate) load: LoadConfig,
}

impl DemoOptions {
    /// The defaults for a full or a quick run; flags override them.
    pub(crate) fn new(quick: bool) -> Self {
        let server = ServerConfig {
            workers: 2,
            warmup: if quick { 300 } else { 2000 },
            ..ServerConfig::default()
        };
        let load = LoadConfig {
            // Enough for about a second a run at the fastest: shorter
            // runs on a 2-CPU machine moved by a third from run to run.
            count: if quick { 5_000 } else { 600_000 },
            window: 64,
            payload: 1024,
            sockets: 8,
            // Two threads, and GSO where the kernel has it: the client
            // must cost less per datagram than the servers it measures.
            threads: 2,
            gso: arenapool_server::gso_unavailable().is_none(),
            duration: Duration::from_secs(if quick { 5 } else { 20 }),
            ..LoadConfig::default()
        };
        Self {
            quick,
            out: PathBuf::from("arenapool-report"),
            server,
            load,
        }
    }
}

pub(crate) fn run(opts: &DemoOptions) -> Result<(), String> {
    let started = Instant::now();
    let modes = modes()?;
    let servers = part2_runs(&modes, opts.server)?;
    let part3 = Part3::new(opts.quick, &opts.out)?;
    let part4_runs = arenapool_bench::fragmentation::cases().len() as u64;
    let bar = ProgressBar::new(
        seed::STEPS
            + servers.len() as u64 * opts.load.count
            + part3.runs() * PART3_STEP
            + part4_runs * PART3_STEP,
    );
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {percent:>3}% {wide_msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));

    let table = seed::run(opts.quick, &bar)?;
    let mut runs = Vec::new();
    for &server in &servers {
        let label = server.label();
        bar.set_message(format!("part 2: {label}, {} requests", opts.load.count));
        let config = CaseConfig {
            server,
            load: opts.load,
        };
        let base = bar.position();
        let result = match run_child(&config, &bar, base) {
            Ok(r) => r,
            Err(e) => {
                bar.finish_and_clear();
                return Err(format!("part 2, {label}: {e}"));
            }
        };
        bar.set_position(base + opts.load.count);
        runs.push(result);
    }
    bar.set_message(format!("part 3: HTTP, {}", part3.client_line));
    let client_line = part3.client_line.clone();
    let http = part3.run(&bar, PART3_STEP);
    bar.set_message("part 4: memory over time");
    let frag = crate::frag::study(crate::frag::demo_config(opts.quick), |label| {
        bar.inc(PART3_STEP);
        bar.set_message(format!("part 4: {label} done"));
    });
    bar.finish_and_clear();

    let study = CaseStudy {
        notes: notes(opts),
        runs,
    };
    let wall = started.elapsed();
    println!("{}", part1_text(&table));
    println!("{}", part2_text(opts, &study));
    // A failed part 3 still shows parts 1 and 2, just printed.
    let http =
        http.map_err(|e| format!("part 3: {e} (parts 1 and 2 are above; no report written)"))?;
    println!(
        "Part 3: HTTP/1.1 server, keep-alive, GET /bytes/{}; {client_line}\n\n{}",
        http.config.responses.first().copied().unwrap_or(0),
        http.table()
    );
    let frag =
        frag.map_err(|e| format!("part 4: {e} (parts 1 to 3 are above; no report written)"))?;
    println!(
        "Part 4: memory over time, the same workload under each allocator and in pool mode\n\
         ({:.0} s a run, before buffers held for seconds settle: `arenapool fragmentation` runs 20 s)\n\n{}",
        frag.config.seconds,
        frag.table()
    );
    let mut files = write_report(&opts.out, &table, &study, &http, &frag, opts, wall)?;
    let written = |e: Box<dyn std::error::Error>| format!("writing {}: {e}", opts.out.display());
    files.extend(http.write(&opts.out).map_err(|e| written(e.into()))?);
    files.extend(frag.write(&opts.out).map_err(written)?);
    println!("{}", crate::http_bench::written(&files));
    println!("demo took {:.1} s", wall.as_secs_f64());
    Ok(())
}

fn part1_text(t: &SeedTable) -> String {
    format!(
        "Part 1: the seed's table, 4096-byte buffers; median of {} batches of ~{} ms\n\
         (Vec columns call glibc malloc directly; Mops/s = million buffers per second)\n\n{}\n{}\n",
        t.reps,
        t.sample_ms,
        t.text(),
        seed::LEGEND
    )
}

fn part2_text(opts: &DemoOptions, s: &CaseStudy) -> String {
    format!(
        "Part 2: UDP echo-with-checksum server on loopback: {}\n\
         {} requests of {} payload bytes, window {}, {} server workers, {} client sockets\n\n{}",
        s.runs
            .iter()
            .map(|r| r.server.config.label())
            .collect::<Vec<_>>()
            .join(", "),
        opts.load.count,
        opts.load.payload,
        opts.load.window,
        opts.server.workers,
        opts.load.sockets,
        s.table()
    )
}

fn notes(opts: &DemoOptions) -> Vec<String> {
    let m = arenapool_bench::Machine::detect();
    vec![
        format!("machine: {} ({} CPUs, {})", m.cpu, m.cpus, m.os),
        format!(
            "server: {} workers (one thread + one socket each, SO_REUSEPORT on Linux), {}-byte buffers, pool of {} buffers, batches of {}",
            opts.server.workers, opts.server.buffer_size, opts.server.capacity, opts.server.batch
        ),
        format!(
            "allocs/packet: counted by arenapool-alloc's Counting allocator on the server's worker threads only, after each worker's first {} datagrams, until shutdown",
            opts.server.warmup
        ),
        format!(
            "the load generator runs in the same process ({} threads, {} sockets{}) and checks every reply: payload pattern and checksum; the same client for every run",
            opts.load.threads,
            opts.load.sockets,
            match (opts.load.gso, opts.load.batch) {
                (true, _) => ", each lane's requests sent as one UDP GSO train, replies taken with GRO".to_owned(),
                (false, 1) => ", a system call per datagram".to_owned(),
                (false, b) => format!(", up to {b} datagrams per sendmmsg/recvmmsg"),
            }
        ),
        "per-datagram: a recvfrom and a sendto per datagram; mmsg: up to a batch per recvmmsg and per sendmmsg; +gso: UDP GRO on the server's sockets (several datagrams of one client in one 64 KiB buffer) and each train of replies sent back with one GSO send".into(),
        "CPU: the worker threads' and the load threads' own CPU time (user + system), per verified packet and as a share of the wall time (100 % = one CPU busy throughout)".into(),
        "uring mode: no tokio; each worker owns an io_uring with a provided buffer ring of pool buffers (half its share of the pool), one multishot recvmsg, and sends each reply with sendmsg from the buffer it arrived in; its pool buffers are longer by the kernel's recvmsg header and the source address (arenapool::uring::RECVMSG_HEADROOM)".into(),
        "peak RSS: VmHWM of a fresh process per run, holding server + load generator + runtimes".into(),
    ]
}

/// The modes part 2 runs: those `ARENAPOOL_DEMO_MODES` names (all when it
/// is unset), less those that cannot run here, each printed with its
/// reason.
///
/// # Errors
///
/// If `ARENAPOOL_DEMO_MODES` names an unknown mode or none, or, in strict
/// mode, if a mode cannot run.
fn modes() -> Result<Vec<Mode>, String> {
    let asked = match std::env::var(MODES_VAR) {
        Err(_) => Mode::ALL.to_vec(),
        Ok(list) => {
            let named = list
                .split(',')
                .map(|m| m.trim().parse::<Mode>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{MODES_VAR}={list}: {e}"))?;
            let asked: Vec<Mode> = Mode::ALL
                .into_iter()
                .filter(|m| named.contains(m))
                .collect();
            let left_out: Vec<&str> = Mode::ALL
                .into_iter()
                .filter(|m| !asked.contains(m))
                .map(Mode::name)
                .collect();
            if !left_out.is_empty() {
                println!(
                    "arenapool: {MODES_VAR}={list}: part 2 leaves out {} mode",
                    left_out.join(" and ")
                );
            }
            asked
        }
    };
    let mut modes = Vec::with_capacity(asked.len());
    for m in asked {
        match m.unavailable() {
            None => modes.push(m),
            Some(why) if crate::strict() => {
                return Err(format!(
                    "{m} mode cannot run here, and ARENAPOOL_STRICT=1 allows nothing to be left out: {why}"
                ));
            }
            Some(why) => println!("arenapool: {m} mode left out of the demo: {why}"),
        }
    }
    if modes.is_empty() {
        return Err(format!("no mode of part 2 can run ({MODES_VAR})"));
    }
    Ok(modes)
}

/// Part 2's servers: every way of each mode ([`ServerConfig::every_io`]);
/// one that cannot run here is left out with its reason (in strict mode,
/// that fails the demo). Modes were checked by [`modes`].
fn part2_runs(modes: &[Mode], base: ServerConfig) -> Result<Vec<ServerConfig>, String> {
    let mut runs = Vec::new();
    for &mode in modes {
        for way in (ServerConfig { mode, ..base }).every_io() {
            let why = match way.mode {
                Mode::Uring => None,
                _ => way.unavailable(),
            };
            match why {
                None => runs.push(way),
                Some(why) if crate::strict() => {
                    return Err(format!(
                        "{} cannot run here, and ARENAPOOL_STRICT=1 allows nothing to be left out: {why}",
                        way.label()
                    ));
                }
                Some(why) => println!("arenapool: {} left out of part 2: {why}", way.label()),
            }
        }
    }
    Ok(runs)
}

/// Runs `config` in a child process (`arenapool demo-case <json>`),
/// following its progress on `bar` from `base`.
fn run_child(config: &CaseConfig, bar: &ProgressBar, base: u64) -> Result<CaseResult, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let json = serde_json::to_string(config).map_err(|e| e.to_string())?;
    let mut child = Command::new(&exe)
        .arg(CHILD_COMMAND)
        .arg(json)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut result = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        if let Some(n) = line.strip_prefix(PROGRESS) {
            if let Ok(n) = n.trim().parse::<u64>() {
                bar.set_position(base + n);
            }
        } else if let Some(r) = line.strip_prefix(RESULT) {
            result = Some(serde_json::from_str::<CaseResult>(r).map_err(|e| e.to_string())?);
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    match result {
        Some(r) if status.success() => Ok(r),
        Some(_) => Err(format!(
            "its child process (`{CHILD_COMMAND}`) reported a result, then exited with {status}"
        )),
        None => Err(format!(
            "its child process (`{CHILD_COMMAND}`) exited with {status} without a result"
        )),
    }
}

/// The child's side: runs one case, prints progress lines and the result.
pub(crate) fn child_main(json: &str) -> Result<(), String> {
    let config: CaseConfig = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let progress = Arc::new(Progress::default());
    let done = Arc::new(AtomicBool::new(false));
    let reporter = {
        let (progress, done) = (Arc::clone(&progress), Arc::clone(&done));
        thread::spawn(move || {
            while !done.load(Relaxed) {
                println!("{PROGRESS}{}", progress.done());
                thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let result = case::run_with_progress(&config, &progress);
    done.store(true, Relaxed);
    let _ = reporter.join();
    let result = result.map_err(|e| e.to_string())?;
    let json = serde_json::to_string(&result).map_err(|e| e.to_string())?;
    println!("{RESULT}{json}");
    Ok(())
}

fn write_report(
    dir: &Path,
    table: &SeedTable,
    study: &CaseStudy,
    http: &HttpStudy,
    frag: &FragStudy,
    opts: &DemoOptions,
    wall: Duration,
) -> Result<Vec<PathBuf>, String> {
    let err = |what: &Path| {
        let what = what.display().to_string();
        move |e: std::io::Error| format!("writing {what}: {e}")
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    let md_path = dir.join("report.md");
    let json_path = dir.join("report.json");
    let charts = study.write_charts(dir).map_err(err(dir))?;
    let md = format!(
        "# arenapool demo{}\n\n\
         ## 1. The seed's table, reproduced\n\n\
         4096-byte buffers; median of {} batches of about {} ms. The Vec columns call glibc\n\
         malloc directly. Lower is better for ns, higher for Mops/s.\n\n{}\n```text\n{}\n```\n\n\
         ## 2. The packet server: pool, Vec and io_uring modes, a datagram or a batch per system call\n\n\
         {} requests of {} payload bytes over loopback, window {}, {} server workers.\n\n{}\n\
         ![latency CDF](latency-cdf.svg)\n\n![throughput](throughput.svg)\n\n\
         ## 3. The HTTP server: pool, Vec, io_uring and hyper under {}\n\n\
         Keep-alive connections, one `GET /bytes/{}` at a time on each; server RSS is the server\n\
         process's own (a fresh one per run). Also in http.md and http.json.\n\n{}\n\
         ![server RSS](http-rss.svg)\n\n![requests/s](http-rps.svg)\n\n\
         ## 4. Memory over time: glibc, jemalloc, mimalloc and the pool\n\n{}\n\
         ![RSS over time](fragmentation-rss.svg)\n\n\
         Wall time of the demo: {:.1} s.\n",
        if opts.quick { " (--quick)" } else { "" },
        table.reps,
        table.sample_ms,
        table.markdown(),
        seed::LEGEND,
        opts.load.count,
        opts.load.payload,
        opts.load.window,
        opts.server.workers,
        study.markdown(),
        http.config.client,
        http.config.responses.first().copied().unwrap_or(0),
        http.markdown(),
        frag.markdown(),
        wall.as_secs_f64()
    );
    std::fs::write(&md_path, md).map_err(err(&md_path))?;
    let json = serde_json::json!({
        "quick": opts.quick,
        "wall_s": wall.as_secs_f64(),
        "seed_table": table,
        "case_study": study,
        "http": http,
        "fragmentation": frag,
    });
    let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
    std::fs::write(&json_path, text).map_err(err(&json_path))?;
    let mut files = vec![md_path, json_path];
    files.extend(charts);
    Ok(files)
}
