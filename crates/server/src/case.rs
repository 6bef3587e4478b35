//! One measured run: a server and a load generator in this process.
//!
//! The server's workers and the load generator's threads are separate OS
//! threads, so the allocations counted on the workers
//! ([`ServerReport::allocs`]) are the server's alone. Memory figures are
//! the whole process's (server, load generator, runtime); run each case in
//! a fresh process to compare them (see [`crate::rss`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::buffers::Mode;
use crate::config::ServerConfig;
use crate::load::{self, LoadConfig, LoadError, LoadReport, Progress};
use crate::rss;
use crate::server::{Server, ServerError, ServerReport};

/// A server and the load to put on it; `load.target` is replaced by the
/// server's address.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CaseConfig {
    /// The server.
    pub server: ServerConfig,
    /// The load.
    pub load: LoadConfig,
}

/// Process memory around a run, in KiB (Linux; `None` elsewhere).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    /// Resident set before the server started.
    pub rss_before_kib: Option<u64>,
    /// Peak resident set of the process when the run ended.
    pub peak_rss_kib: Option<u64>,
}

/// What one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseResult {
    /// The server's mode.
    pub mode: Mode,
    /// The server's side: counters, drops, allocations.
    pub server: ServerReport,
    /// The client's side: replies, loss, round trips.
    pub load: LoadReport,
    /// Process memory.
    pub memory: Memory,
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// The server did not start.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The load generator did not run.
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// Starts the server, runs the load against it, stops the server.
///
/// # Errors
///
/// If either side cannot be set up.
pub fn run(config: &CaseConfig) -> Result<CaseResult, CaseError> {
    run_with_progress(config, &Arc::new(Progress::default()))
}

/// [`run`], updating `progress` as requests finish.
///
/// # Errors
///
/// As [`run`].
pub fn run_with_progress(
    config: &CaseConfig,
    progress: &Arc<Progress>,
) -> Result<CaseResult, CaseError> {
    let rss_before_kib = rss::current_kib();
    let server = Server::start(config.server)?;
    let load = LoadConfig {
        target: server.local_addr(),
        ..config.load
    };
    let report = load::run_with_progress(&load, progress);
    let server = server.shutdown();
    Ok(CaseResult {
        mode: config.server.mode,
        server,
        load: report?,
        memory: Memory {
            rss_before_kib,
            peak_rss_kib: rss::peak_kib(),
        },
    })
}
