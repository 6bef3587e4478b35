//! The `arenapool` executable, run as a user would: bad flags are one
//! line and exit code 2; the quick demo runs both parts and writes the
//! report; `serve --io uring` starts the io_uring server.

use std::path::PathBuf;
use std::process::{Command, Output};

#[path = "../../server/tests/support/mod.rs"]
mod support;

fn arenapool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arenapool"))
        .args(args)
        .output()
        .expect("run arenapool")
}

#[test]
fn bad_flags_are_one_line_and_exit_2() {
    for args in [
        &["serve", "--workers", "x"][..],
        &["serve", "--workers", "0"],
        &["serve", "--mode", "heap"],
        &["serve", "--buffer-size", "10"],
        &["load", "--frobnicate"],
        &["load", "--window", "0"],
        &["load", "--size", "70000"],
        &["load", "--batch", "0"],
        &["load", "--batch", "5000"],
        &["serve", "--udp-io", "batch"],
        &["serve", "--batch", "5000"],
        &["serve", "--udp-io", "per-datagram", "--gso"],
        &["serve", "--mode", "uring", "--gso"],
        &["demo", "--size", "5000"],
        &["faults", "--mib", "0"],
        &["faults", "--buffer-size", "x"],
        &["bench-http", "--client", "curl"],
        &["bench-http", "--modes", "heap"],
        &["bench-http", "--seconds", "0"],
        &["bench-http", "--connections", "10,0"],
        &["bench-http", "--responses", "9999999"],
        &["bench-http", "--idle-total", "10", "--idle-busy", "20"],
        &["serve", "--json", "x.json"],
        &["fragmentation", "--seconds", "0"],
        &["fragmentation", "--threads", "0"],
        &["nonsense"],
    ] {
        let out = arenapool(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("arenapool: "), "{args:?}: {err}");
    }
}

#[test]
fn help_is_not_an_error() {
    let out = arenapool(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["demo", "serve", "load", "bench", "bench-http", "faults"] {
        assert!(text.contains(cmd), "{text}");
    }
}

#[test]
fn quick_demo_prints_both_parts_and_writes_the_report() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("arenapool-cli-test-{}", std::process::id()));
    let out = arenapool(&[
        "demo",
        "--quick",
        "--count",
        "2000",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Part 1"), "{text}");
    assert!(text.contains("acquire on A, release on B"), "{text}");
    assert!(text.contains("Part 2"), "{text}");
    assert!(text.contains("server allocs/packet"), "{text}");
    assert!(text.contains("Part 3: HTTP/1.1 server"), "{text}");
    for f in [
        "report.md",
        "report.json",
        "latency-cdf.svg",
        "throughput.svg",
        "http.md",
        "http.json",
        "http-rss.svg",
        "http-rps.svg",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let runs = json["case_study"]["runs"].as_array().unwrap();
    // Pool and Vec mode each with a system call per datagram, with
    // recvmmsg/sendmmsg and with GRO/GSO; io_uring unless the kernel
    // refuses it.
    let uring = support::mode_runs_here(arenapool_server::Mode::Uring);
    let labels: Vec<String> = support::servers(arenapool_server::ServerConfig::default())
        .iter()
        .map(arenapool_server::ServerConfig::label)
        .collect();
    assert_eq!(runs.len(), labels.len(), "{text}");
    for (r, label) in runs.iter().zip(&labels) {
        assert_eq!(r["load"]["received"], 2000, "{label}: {r}");
        assert!(text.contains(label.as_str()), "{label}: {text}");
        // The binary installs the counting allocator: pool and io_uring
        // mode count 0, however they talk to the socket.
        assert_eq!(r["server"]["allocs"]["counted"], true, "{label}");
        if r["mode"] != "vec" {
            assert_eq!(r["server"]["allocs"]["allocations"], 0, "{label}");
        }
        assert!(
            r["server"]["stats"]["io_calls"].as_u64() > Some(0),
            "{label}"
        );
    }
    assert!(text.contains("datagrams per syscall"), "{text}");
    part3_is_whole(&json["http"], &text, uring);
    assert!(text.contains("Part 4: memory over time"), "{text}");
    for f in [
        "fragmentation.md",
        "fragmentation.json",
        "fragmentation-rss.svg",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    fragmentation_is_whole(&json["fragmentation"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Part 3 of the quick demo: pool, Vec, io_uring (where it runs) and
/// hyper at 100 and 1,000 connections and with 990 idle beside 10 busy,
/// each answered without errors, with the server's memory read and its
/// allocations counted.
fn part3_is_whole(http: &serde_json::Value, text: &str, uring: bool) {
    let runs = http["runs"].as_array().expect("part 3's runs");
    let modes = 3 + usize::from(uring);
    assert_eq!(runs.len(), modes * 3, "{text}");
    let client = http["config"]["client"].as_str().unwrap();
    assert!(
        text.contains(&format!("load from {client}")),
        "the demo says which client it used: {text}"
    );
    for r in runs {
        assert!(r["client"]["requests"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["client"]["errors"], 0, "{r}");
        assert_eq!(r["client"]["non_2xx"], 0, "{r}");
        assert!(r["rss_busy_kib"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["server"]["allocs"]["counted"], true, "{r}");
        let per = r["server"]["allocs"]["allocations"].as_f64().unwrap()
            / r["server"]["allocs"]["packets"].as_f64().unwrap().max(1.0);
        match r["mode"].as_str().unwrap() {
            // New connections after the warm-up allocate (their tasks),
            // requests do not.
            "Pool" | "Uring" => assert!(per < 0.05, "pooled: {per} allocations per request: {r}"),
            // A fresh Vec per response.
            "Vec" => assert!(per >= 0.9, "vec mode: {per} allocations per request: {r}"),
            _ => {}
        }
        if r["idle"].as_u64().unwrap() > 0 {
            assert_eq!(r["idle"], 990, "{r}");
            assert!(r["rss_idle_kib"].as_u64().unwrap() > 0, "{r}");
        }
    }
}

#[test]
fn faults_prints_a_row_per_backing() {
    let out = arenapool(&["faults", "--mib", "8"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("first touch of a 8 MiB pool"), "{text}");
    for backing in ["Heap", "Mmap", "TransparentHugePages", "HugeTlb"] {
        assert!(
            text.lines().any(|l| l.starts_with(backing)),
            "{backing}: {text}"
        );
    }
    assert!(text.contains("the heap (global allocator)"), "{text}");
}

/// Runs `serve` with `args` for 0.3 s in io_uring mode: it starts and
/// names its mode (`mode_line`), or, only where the kernel refuses
/// io_uring, refuses to start with the kernel's answer (a skip).
fn serves_in_io_uring_mode(args: &[&str], mode_line: &str) {
    let mut all = vec!["serve"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--bind", "127.0.0.1:0", "--duration", "0.3"]);
    let out = arenapool(&all);
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    if let Some(why) = support::uring_refused() {
        assert_eq!(out.status.code(), Some(1), "{text}\n{err}");
        assert!(err.contains(&why.to_string()), "{why}: {err}");
        support::skip::skip(format_args!(
            "the kernel refuses io_uring (io_uring_setup: {why})"
        ));
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(text.contains(mode_line), "{text}");
}

#[test]
fn serve_takes_io_uring_as_its_mode() {
    serves_in_io_uring_mode(&["--io", "uring"], "(uring mode");
}

#[test]
fn serve_and_load_talk_in_batches_and_gso_trains() {
    let linux = cfg!(target_os = "linux");
    let gso = linux && support::gso_runs_here();
    for (serve, line) in [
        (
            &["--udp-io", "per-datagram", "--track-leaks", "1"][..],
            "(pool mode, a system call per datagram",
        ),
        (&["--udp-io", "mmsg"], "(pool mode, recvmmsg/sendmmsg,"),
        (
            &["--udp-io", "mmsg", "--gso"],
            "(pool mode, recvmmsg/sendmmsg with GRO/GSO",
        ),
    ] {
        if (serve.contains(&"mmsg") && !linux) || (serve.contains(&"--gso") && !gso) {
            continue;
        }
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut args = vec!["serve", "--bind", &addr, "--duration", "3"];
        args.extend_from_slice(serve);
        let server = Command::new(env!("CARGO_BIN_EXE_arenapool"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let load = if gso { &["--gso"][..] } else { &[][..] };
        let mut largs = vec![
            "load",
            "--target",
            &addr,
            "--count",
            "3000",
            "--timeout-ms",
            "5000",
        ];
        largs.extend_from_slice(load);
        let out = arenapool(&largs);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{serve:?}: {text}");
        assert!(
            text.contains("verified replies 3000, lost 0"),
            "{serve:?}: {text}"
        );
        assert!(text.contains("client CPU"), "{text}");
        let served = server.wait_with_output().unwrap();
        let stext = String::from_utf8_lossy(&served.stdout);
        assert!(stext.contains(line), "{serve:?}: {stext}");
        assert!(stext.contains("replied 3000,"), "{serve:?}: {stext}");
        assert!(stext.contains("datagrams per call"), "{stext}");
        if serve.contains(&"--track-leaks") {
            let line = "leak tracking (one acquisition in 1): 0 tracked buffers still out";
            assert!(stext.contains(line), "{stext}");
        }
    }
}

#[test]
fn serve_http_takes_io_uring_as_its_mode() {
    serves_in_io_uring_mode(&["--protocol", "http", "--mode", "uring"], "(Uring mode");
}

/// A fragmentation study: the six runs, each on the allocator it asked
/// for, each sampled, with no request refused.
fn fragmentation_is_whole(study: &serde_json::Value) {
    let runs = study["runs"].as_array().expect("the runs");
    let labels: Vec<String> = runs
        .iter()
        .map(|r| {
            let c = &r["case"];
            format!(
                "{} {} {}",
                c["mode"].as_str().unwrap(),
                c["allocator"].as_str().unwrap(),
                c["tunables"].is_string()
            )
        })
        .collect();
    assert_eq!(
        labels,
        [
            "Vec glibc false",
            "Vec glibc true",
            "Vec jemalloc false",
            "Vec mimalloc false",
            "Pool glibc false",
            "PoolUncached glibc false"
        ]
    );
    for r in runs {
        assert_eq!(r["allocator_seen"], r["case"]["allocator"], "{r}");
        assert!(r["requests"].as_u64().unwrap() > 1000, "{r}");
        assert_eq!(r["refused"], 0, "{r}");
        let samples = r["samples"].as_array().unwrap();
        assert!(samples.len() >= 8, "{} samples", samples.len());
        assert!(samples.iter().all(|s| s["rss_kib"].as_u64().unwrap() > 0));
        assert!(samples.iter().any(|s| s["live_kib"].as_u64().unwrap() > 0));
    }
}

#[test]
fn fragmentation_runs_each_allocator_in_its_own_process() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("arenapool-frag-test-{}", std::process::id()));
    let out = arenapool(&["fragmentation", "--quick", "--out", dir.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for label in [
        "vec / glibc",
        "vec / glibc, tuned",
        "vec / jemalloc",
        "vec / mimalloc",
        "pool / glibc",
        "pool-uncached / glibc",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(label)),
            "{label}: {text}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("fragmentation.json")).unwrap())
            .unwrap();
    fragmentation_is_whole(&json["study"]);
    assert!(dir.join("fragmentation-rss.svg").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_fragmentation_child_refuses_an_allocator_it_does_not_run_on() {
    let out = Command::new(env!("CARGO_BIN_EXE_arenapool"))
        .args([
            "fragmentation-child",
            "--mode",
            "vec",
            "--seconds",
            "0.2",
            "--threads",
            "1",
            "--allocator",
            "jemalloc",
        ])
        .env("ARENAPOOL_ALLOCATOR", "mimalloc")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("asked for jemalloc, running on mimalloc"),
        "{err}"
    );
}
