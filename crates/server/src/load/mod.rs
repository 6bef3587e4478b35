//! The load generator: requests in flight over several sockets, every
//! reply checked, round trips in an HDR histogram.
//!
//! The work is split into *lanes*, one per client socket, spread over
//! `threads` OS threads that each run a single-threaded tokio runtime.
//! Each lane sends its share of `count` requests and keeps at most its
//! share of `window` of them in flight (a fixed window: a new request goes
//! out when a reply comes back), optionally also paced to its share of
//! `rate` requests per second. It stops by itself when every request has
//! been answered or given up on, or when `duration` has passed.
//!
//! Every reply is checked: header, sequence number, echoed timestamp,
//! payload (a pattern derived from the sequence number) and the checksum
//! the server computed. Nothing is hidden:
//!
//! * `lost`: no reply within `timeout` (the request's slot in the window is
//!   then reused), or still unanswered at the end;
//! * `late`: a reply for a request already counted as lost, or a duplicate;
//! * `bad`: a reply that fails a check.
//!
//! Several sockets matter on Linux, where the server's workers share one
//! port with `SO_REUSEPORT` and the kernel picks a worker by the sender's
//! address and port.
//!
//! A lane sends and receives a datagram per system call (`batch` 1), or
//! on Linux up to `batch` per `sendmmsg` and `recvmmsg`, or with `gso` a
//! run of requests per GSO send (see `lane.rs`): a server that batches
//! needs a client that costs no more per datagram than it does. The
//! report gives the client threads' CPU time ([`LoadReport::cpu_s`]) to
//! set beside the server's: a client near 100 % of its threads sets the
//! pace, not the server.

mod lane;

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;

use self::lane::Lane;
use crate::latency::{self, LatencySummary};
use crate::wire::HEADER_LEN;

/// Width of one bucket of [`LoadReport::timeline`].
pub const TIMELINE_STEP: Duration = Duration::from_millis(100);

/// Largest payload a UDP/IPv4 datagram can carry after the header.
pub const MAX_PAYLOAD: usize = 65_507 - HEADER_LEN;

const LANE_BITS: u32 = 48;

/// What load to send.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadConfig {
    /// The server. Default `127.0.0.1:7070`.
    pub target: SocketAddr,
    /// Requests to send in all. Default 100 000.
    pub count: u64,
    /// Most requests in flight at once, over all sockets. Default 64.
    pub window: usize,
    /// Requests per second over all sockets; `None`: as fast as the
    /// window allows. Default `None`.
    pub rate: Option<u64>,
    /// Payload bytes per request. Default 1024.
    pub payload: usize,
    /// Stop after this long even if requests remain. Default 60 s.
    pub duration: Duration,
    /// Client sockets (lanes). Default 4.
    pub sockets: usize,
    /// Threads driving the sockets. Default 1.
    pub threads: usize,
    /// A request unanswered for this long is lost. Default 1 s.
    pub timeout: Duration,
    /// Most requests a lane sends per system call, and replies it takes
    /// per call: 1 is a `send` and a `recv` per datagram; more uses
    /// `sendmmsg` and `recvmmsg` (Linux). Default 32 on Linux, 1
    /// elsewhere.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Send each batch of requests as one UDP GSO send (at most 64
    /// datagrams and 64 KiB), and take replies with GRO (Linux 5.0).
    /// Default off.
    #[serde(default)]
    pub gso: bool,
}

fn default_batch() -> usize {
    if cfg!(target_os = "linux") { 32 } else { 1 }
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            target: SocketAddr::from((Ipv4Addr::LOCALHOST, 7070)),
            count: 100_000,
            window: 64,
            rate: None,
            payload: 1024,
            duration: Duration::from_secs(60),
            sockets: 4,
            threads: 1,
            timeout: Duration::from_secs(1),
            batch: default_batch(),
            gso: false,
        }
    }
}

/// Why the load generator could not run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A setting cannot work.
    #[error("bad load settings: {0}")]
    Config(&'static str),
    /// A socket, runtime or thread could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
}

impl LoadConfig {
    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`LoadError::Config`] naming the first bad one.
    pub fn validate(&self) -> Result<(), LoadError> {
        if self.window == 0 {
            return Err(LoadError::Config("window must be at least 1"));
        }
        if self.sockets == 0 || self.threads == 0 {
            return Err(LoadError::Config("sockets and threads must be at least 1"));
        }
        if self.payload > MAX_PAYLOAD {
            return Err(LoadError::Config(
                "payload too large for a UDP datagram (at most 65475 bytes)",
            ));
        }
        if self.rate == Some(0) {
            return Err(LoadError::Config("rate must be at least 1 per second"));
        }
        if self.count >= 1 << LANE_BITS {
            return Err(LoadError::Config("count must be below 2^48"));
        }
        if self.batch == 0 || self.batch > crate::MAX_BATCH {
            return Err(LoadError::Config("batch must be 1 to 1024"));
        }
        if (self.batch > 1 || self.gso) && !cfg!(target_os = "linux") {
            return Err(LoadError::Config(
                "batch above 1 and gso need Linux (sendmmsg, recvmmsg, UDP GSO)",
            ));
        }
        Ok(())
    }
}

/// Live progress of a run, readable from another thread.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
}

impl Progress {
    /// Requests finished so far: answered, bad or lost.
    pub fn done(&self) -> u64 {
        self.done.load(Relaxed)
    }
}

/// What a run of the load generator saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadReport {
    /// The settings.
    pub config: LoadConfig,
    /// Requests sent.
    pub sent: u64,
    /// Replies that passed every check.
    pub received: u64,
    /// Requests never answered in time.
    pub lost: u64,
    /// Replies after their request was counted lost, or duplicates.
    pub late: u64,
    /// Replies that failed a check.
    pub bad: u64,
    /// Sends that failed (other than "would block", which is retried).
    pub send_errors: u64,
    /// Receives that failed (e.g. "connection refused": nothing listens).
    pub recv_errors: u64,
    /// Seconds from the first send to the last lane's end.
    pub elapsed_s: f64,
    /// CPU seconds (user and system) the load threads used, all together;
    /// 0 where the platform does not say.
    #[serde(default)]
    pub cpu_s: f64,
    /// Round-trip times of the good replies.
    pub latency: LatencySummary,
    /// Good replies in each [`TIMELINE_STEP`] since the start.
    pub timeline: Vec<u64>,
    /// The round-trip histogram itself (not serialised).
    #[serde(skip)]
    pub histogram: Option<Histogram<u64>>,
}

impl LoadReport {
    /// Good replies per second.
    pub fn throughput(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.received as f64 / self.elapsed_s
        } else {
            0.0
        }
    }

    /// Whether every request got a good reply.
    pub fn all_verified(&self) -> bool {
        self.received == self.config.count && self.lost == 0 && self.bad == 0 && self.late == 0
    }
}

/// Runs the load to completion.
///
/// # Errors
///
/// If the settings are bad or a socket, runtime or thread cannot be set
/// up; not for lost or bad replies, which are counted.
pub fn run(config: &LoadConfig) -> Result<LoadReport, LoadError> {
    run_with_progress(config, &Arc::new(Progress::default()))
}

/// [`run`], updating `progress` as requests finish.
///
/// # Errors
///
/// As [`run`].
pub fn run_with_progress(
    config: &LoadConfig,
    progress: &Arc<Progress>,
) -> Result<LoadReport, LoadError> {
    config.validate()?;
    if config.gso
        && let Some(why) = crate::gso_unavailable()
    {
        return Err(LoadError::Io {
            what: "UDP GSO",
            source: io::Error::new(io::ErrorKind::Unsupported, why),
        });
    }
    let lanes = plan_lanes(config);
    let threads = config.threads.min(lanes.len()).max(1);
    let mut sockets = Vec::with_capacity(lanes.len());
    for _ in &lanes {
        sockets.push(client_socket(config.target)?);
    }
    let mut per_thread: Vec<Vec<(LanePlan, StdUdpSocket)>> =
        (0..threads).map(|_| Vec::new()).collect();
    for (i, lane) in lanes.into_iter().zip(sockets).enumerate() {
        per_thread[i % threads].push(lane);
    }
    let epoch = Instant::now();
    let deadline = epoch + config.duration;
    let handles: Vec<_> = per_thread
        .into_iter()
        .map(|lanes| {
            let progress = Arc::clone(progress);
            let config = *config;
            thread::Builder::new()
                .name("arenapool-load".into())
                .spawn(move || drive(lanes, config, epoch, deadline, progress))
                .map_err(|source| LoadError::Io {
                    what: "starting a load thread",
                    source,
                })
        })
        .collect::<Result<_, _>>()?;
    let mut total = LaneResult::new();
    for h in handles {
        let r = h.join().map_err(|_| LoadError::Io {
            what: "a load thread",
            source: io::Error::other("panicked"),
        })??;
        total.merge(r);
    }
    let elapsed_s = epoch.elapsed().as_secs_f64();

    Ok(LoadReport {
        config: *config,
        sent: total.sent,
        received: total.received,
        lost: total.lost,
        late: total.late,
        bad: total.bad,
        send_errors: total.send_errors,
        recv_errors: total.recv_errors,
        elapsed_s,
        cpu_s: total.cpu.as_secs_f64(),
        latency: LatencySummary::from_histogram(&total.histogram),
        timeline: total.timeline,
        histogram: Some(total.histogram),
    })
}

#[derive(Debug, Clone, Copy)]
struct LanePlan {
    id: u64,
    count: u64,
    window: usize,
    interval: Option<Duration>,
}

/// Splits count, window and rate over the lanes (no more lanes than the
/// window, so each has at least one request in flight).
fn plan_lanes(c: &LoadConfig) -> Vec<LanePlan> {
    let n = c.sockets.min(c.window).max(1);
    let share = |total: u64, i: usize| total / n as u64 + u64::from((i as u64) < total % n as u64);
    (0..n)
        .map(|i| LanePlan {
            id: i as u64,
            count: share(c.count, i),
            window: share(c.window as u64, i) as usize,
            interval: c.rate.map(|r| Duration::from_secs_f64(n as f64 / r as f64)),
        })
        .collect()
}

fn client_socket(target: SocketAddr) -> Result<StdUdpSocket, LoadError> {
    let local: SocketAddr = match target {
        SocketAddr::V4(a) if a.ip().is_loopback() => (Ipv4Addr::LOCALHOST, 0).into(),
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let io = |what| move |source| LoadError::Io { what, source };
    let s = StdUdpSocket::bind(local).map_err(io("binding a client socket"))?;
    s.connect(target)
        .map_err(io("connecting a client socket"))?;
    s.set_nonblocking(true)
        .map_err(io("setting a socket non-blocking"))?;
    Ok(s)
}

fn drive(
    lanes: Vec<(LanePlan, StdUdpSocket)>,
    config: LoadConfig,
    epoch: Instant,
    deadline: Instant,
    progress: Arc<Progress>,
) -> Result<LaneResult, LoadError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|source| LoadError::Io {
            what: "starting a load runtime",
            source,
        })?;
    let cpu_start = crate::cpu::thread_cpu();
    let mut total = rt.block_on(async move {
        let mut set = tokio::task::JoinSet::new();
        for (plan, socket) in lanes {
            let socket = UdpSocket::from_std(socket).map_err(|source| LoadError::Io {
                what: "registering a client socket",
                source,
            })?;
            let lane = Lane::new(
                plan,
                socket,
                &config,
                epoch,
                deadline,
                Arc::clone(&progress),
            )
            .map_err(|source| LoadError::Io {
                what: "turning on UDP GRO on a client socket",
                source,
            })?;
            set.spawn(lane.run());
        }
        let mut total = LaneResult::new();
        while let Some(r) = set.join_next().await {
            if let Ok(r) = r {
                total.merge(r);
            }
        }
        Ok::<_, LoadError>(total)
    })?;
    if let (Some(end), Some(start)) = (crate::cpu::thread_cpu(), cpu_start) {
        total.cpu += end - start;
    }
    Ok(total)
}

struct LaneResult {
    sent: u64,
    received: u64,
    lost: u64,
    late: u64,
    bad: u64,
    send_errors: u64,
    recv_errors: u64,
    histogram: Histogram<u64>,
    timeline: Vec<u64>,
    /// CPU time of the load threads (summed per thread, not per lane).
    cpu: Duration,
}

impl LaneResult {
    fn new() -> Self {
        Self {
            sent: 0,
            received: 0,
            lost: 0,
            late: 0,
            bad: 0,
            send_errors: 0,
            recv_errors: 0,
            histogram: latency::histogram(),
            timeline: Vec::new(),
            cpu: Duration::ZERO,
        }
    }

    fn merge(&mut self, o: LaneResult) {
        self.sent += o.sent;
        self.received += o.received;
        self.lost += o.lost;
        self.late += o.late;
        self.bad += o.bad;
        self.send_errors += o.send_errors;
        self.recv_errors += o.recv_errors;
        self.cpu += o.cpu;
        // Same bounds on both sides: `add` cannot fail.
        let _ = self.histogram.add(&o.histogram);
        if self.timeline.len() < o.timeline.len() {
            self.timeline.resize(o.timeline.len(), 0);
        }
        for (a, b) in self.timeline.iter_mut().zip(o.timeline) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_share_count_window_and_rate() {
        let c = LoadConfig {
            count: 10,
            window: 5,
            sockets: 3,
            rate: Some(300),
            ..LoadConfig::default()
        };
        let lanes = plan_lanes(&c);
        assert_eq!(lanes.len(), 3);
        assert_eq!(lanes.iter().map(|l| l.count).sum::<u64>(), 10);
        assert_eq!(lanes.iter().map(|l| l.window).sum::<usize>(), 5);
        assert!(lanes.iter().all(|l| l.window >= 1));
        assert_eq!(lanes[0].interval, Some(Duration::from_millis(10)));
        // Fewer window slots than sockets: fewer lanes.
        let narrow = plan_lanes(&LoadConfig {
            window: 2,
            sockets: 8,
            ..c
        });
        assert_eq!(narrow.len(), 2);
    }

    #[test]
    fn bad_settings_are_errors() {
        let ok = LoadConfig::default();
        assert!(ok.validate().is_ok());
        for bad in [
            LoadConfig { window: 0, ..ok },
            LoadConfig { sockets: 0, ..ok },
            LoadConfig { threads: 0, ..ok },
            LoadConfig {
                payload: MAX_PAYLOAD + 1,
                ..ok
            },
            LoadConfig {
                rate: Some(0),
                ..ok
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(LoadError::Config(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn nobody_listening_means_lost_not_hung() {
        // A port that was just free: nothing answers there.
        let free = StdUdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let r = run(&LoadConfig {
            target: free,
            count: 5,
            window: 5,
            sockets: 1,
            timeout: Duration::from_millis(50),
            ..LoadConfig::default()
        })
        .unwrap();
        assert_eq!(r.received, 0);
        assert_eq!(r.lost, 5);
        assert!(!r.all_verified());
    }
}
