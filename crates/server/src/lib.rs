//! The arenapool case study: a UDP packet server on the pool, its load
//! generator, and the side-by-side measurement of the two.
//!
//! * The server ([`Server`]) answers each request datagram from the buffer
//!   it was received into, with the RFC 1071 checksum of its payload
//!   computed with SIMD ([`checksum`]). In [`Mode::Pool`] the buffers come
//!   from an [`arenapool::Pool`]; in [`Mode::Vec`] each datagram gets a
//!   fresh `Vec<u8>`; the code path is otherwise the same. [`Mode::Uring`]
//!   (Linux) serves from the pool through io_uring instead of tokio: a
//!   provided buffer ring, multishot `recvmsg`, and the reply sent from
//!   the buffer it arrived in.
//! * The load generator ([`load::run`]) keeps a window of requests in
//!   flight (or sends at a rate), checks every reply, and records round
//!   trip times in an HDR histogram.
//! * [`case::run`] runs both in one process and reports throughput,
//!   latency, allocations per packet on the server threads, and drops;
//!   [`report`] turns two such runs into a table, JSON and SVG charts.
//!
//! ```
//! use arenapool_server::{case, load::LoadConfig, Mode, ServerConfig};
//!
//! let result = case::run(&case::CaseConfig {
//!     server: ServerConfig { mode: Mode::Pool, workers: 1, warmup: 10, ..ServerConfig::default() },
//!     load: LoadConfig { count: 200, window: 8, payload: 256, ..LoadConfig::default() },
//! })?;
//! assert_eq!(result.load.received, 200);
//! assert_eq!(result.server.stats.replied, 200);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The crate README has the profiling workflow (criterion, perf,
//! valgrind, heaptrack, Miri) and how the figures were measured.
//!
//! # Layout
//!
//! * `wire.rs`: the datagram format; `checksum/`: RFC 1071, scalar, SSE2
//!   and AVX2; `mmsg.rs`: `recvmmsg`, `sendmmsg`, UDP GRO and GSO (with
//!   `checksum/` and one call in `cpu.rs`, the crate's only `unsafe`
//!   code);
//! * `buffers.rs`: pool or `Vec`; `config.rs` (with [`UdpIo`]),
//!   `server/` (the server; `worker.rs`, the tokio workers' two loops),
//!   `stats.rs`: the server and its counters; `uring.rs`: the io_uring
//!   worker; `allocs.rs`: allocations per packet; `cpu.rs`: thread CPU
//!   time;
//! * `load/`: the load generator (`lane.rs`: one client socket, a datagram
//!   or a batch per call); `latency.rs`: histogram summaries;
//! * `case.rs`: one measured run; `rss.rs`: peak memory;
//!   `report.rs`, `chart.rs`: tables, JSON and SVG.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod allocs;
mod buffers;
pub mod case;
mod chart;
pub mod checksum;
mod config;
mod cpu;
pub mod http;
pub mod latency;
pub mod load;
#[cfg(target_os = "linux")]
mod mmsg;
pub mod report;
pub mod rss;
mod server;
mod stats;
#[cfg(target_os = "linux")]
mod uring;
pub mod wire;
mod workers;

pub use allocs::{AllocWindow, counting_installed};
pub use buffers::{Mode, UnknownMode};
pub use config::{ConfigError, GRO_BUFFER, MAX_BATCH, ServerConfig, UdpIo, gso_unavailable};
pub use server::{PoolSummary, Server, ServerError, ServerReport};
pub use stats::{DropReason, Drops, ServerStats};
