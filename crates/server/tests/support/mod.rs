//! What the server's tests share (the CLI's tests include this file too):
//! the skip helper, and when io_uring mode may be left out.

#![allow(dead_code)] // each suite uses what it needs

use std::io;

use arenapool_server::http::HttpMode;
use arenapool_server::load::LoadConfig;
use arenapool_server::{Mode, ServerConfig};

#[path = "../../../pool/tests/support/skip.rs"]
pub mod skip;

pub mod http;

/// The kernel's refusal of io_uring itself, if it refuses: `io_uring_setup`
/// (a bare ring, no buffers registered) fails with `ENOSYS` (no io_uring)
/// or `EPERM` (`kernel.io_uring_disabled`, seccomp). Any other failure is
/// not a refusal: the tests then run io_uring mode and fail.
pub fn uring_refused() -> Option<io::Error> {
    #[cfg(target_os = "linux")]
    {
        use arenapool::Pool;
        use arenapool::uring::{Ring, UringError};

        const EPERM: i32 = 1;
        const ENOSYS: i32 = 38;
        let pool = Pool::new(64, 1).expect("a one-buffer pool");
        match Ring::without_fixed_buffers(pool, 1) {
            Err(UringError::Setup(e)) if matches!(e.raw_os_error(), Some(EPERM | ENOSYS)) => {
                Some(e)
            }
            _ => None,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Some(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring is Linux only",
        ))
    }
}

/// Whether `mode` runs here. Only io_uring mode may not, and only where
/// the kernel refuses io_uring ([`uring_refused`]): then this skips
/// ([`skip::skip`]: a failure in strict mode) and returns false. Where the
/// kernel gives io_uring, the mode's own probe ([`Mode::unavailable`],
/// which exercises provided buffers, multishot `recvmsg`, submit and
/// completion) must pass: a regression there fails the test, never skips
/// it.
///
/// # Panics
///
/// If `mode`'s probe fails where the kernel does not refuse io_uring.
pub fn mode_runs_here(mode: Mode) -> bool {
    if mode == Mode::Uring
        && let Some(why) = uring_refused()
    {
        skip::skip(format_args!(
            "{mode} mode: the kernel refuses io_uring (io_uring_setup: {why})"
        ));
        return false;
    }
    if let Some(why) = mode.unavailable() {
        panic!("{mode} mode fails its probe here: {why}");
    }
    true
}

/// Whether the HTTP server's `mode` runs here: io_uring mode only where
/// the kernel gives io_uring (else a skip, as [`mode_runs_here`]).
pub fn http_mode_runs_here(mode: HttpMode) -> bool {
    if mode == HttpMode::Uring
        && let Some(why) = uring_refused()
    {
        skip::skip(format_args!(
            "HTTP io_uring mode: the kernel refuses io_uring (io_uring_setup: {why})"
        ));
        return false;
    }
    true
}

/// Whether UDP GRO/GSO works here; else a skip (a failure in strict mode).
pub fn gso_runs_here() -> bool {
    match arenapool_server::gso_unavailable() {
        None => true,
        Some(why) => {
            skip::skip(format_args!("UDP GRO/GSO: {why}"));
            false
        }
    }
}

/// `base` in every way the UDP server runs here
/// ([`ServerConfig::every_io`] of each mode): a way the kernel does not
/// have is a skip (a failure in strict mode).
pub fn servers(base: ServerConfig) -> Vec<ServerConfig> {
    let mut out = Vec::new();
    for mode in Mode::ALL {
        if !mode_runs_here(mode) {
            continue;
        }
        for way in (ServerConfig { mode, ..base }).every_io() {
            match way.unavailable() {
                None => out.push(way),
                Some(why) => skip::skip(format_args!("{}: {why}", way.label())),
            }
        }
    }
    out
}

/// `base` as each kind of client the load generator can be here: a system
/// call per datagram, batches (Linux), and GSO trains (where the kernel
/// has them).
pub fn clients(base: LoadConfig) -> Vec<LoadConfig> {
    let mut out = vec![LoadConfig {
        batch: 1,
        gso: false,
        ..base
    }];
    if cfg!(target_os = "linux") {
        out.push(LoadConfig {
            batch: 16,
            gso: false,
            ..base
        });
        if arenapool_server::gso_unavailable().is_none() {
            out.push(LoadConfig {
                batch: 16,
                gso: true,
                ..base
            });
        }
    }
    out
}
