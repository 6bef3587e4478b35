//! One lane of the load generator: a client socket, its window of
//! requests in flight, and its checks.
//!
//! A lane talks to its socket in one of two ways:
//!
//! * one `send` per request and one `recv` per reply (`batch` 1, no
//!   `gso`: the client every tool starts with);
//! * in batches (Linux): up to `batch` requests per `sendmmsg` and replies
//!   per `recvmmsg`, or with `gso` each run of requests as one GSO send
//!   that the kernel splits, and replies taken with GRO, so that the
//!   client costs less per datagram than the server it measures.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use super::{LANE_BITS, LanePlan, LaneResult, LoadConfig, Progress, TIMELINE_STEP};
use crate::checksum::checksum;
use crate::wire::{self, HEADER_LEN, Header, Kind};

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    seq: u64,
    sent_ns: u64,
    in_flight: bool,
}

pub(super) struct Lane {
    plan: LanePlan,
    socket: UdpSocket,
    payload: usize,
    timeout_ns: u64,
    epoch: Instant,
    deadline: Instant,
    progress: Arc<Progress>,
    slots: Vec<Slot>,
    in_flight: usize,
    next: u64,
    next_send: Instant,
    batched: Option<batched::Batched>,
    out: LaneResult,
}

impl Lane {
    /// A lane on `socket`.
    ///
    /// # Errors
    ///
    /// If `config` asks for GRO and the socket refuses it.
    pub(super) fn new(
        plan: LanePlan,
        socket: UdpSocket,
        config: &LoadConfig,
        epoch: Instant,
        deadline: Instant,
        progress: Arc<Progress>,
    ) -> io::Result<Self> {
        Ok(Self {
            batched: batched::Batched::new(config, &socket)?,
            plan,
            socket,
            payload: config.payload,
            timeout_ns: config.timeout.as_nanos().min(u128::from(u64::MAX)) as u64,
            epoch,
            deadline,
            progress,
            slots: vec![Slot::default(); plan.window.max(1)],
            in_flight: 0,
            next: 0,
            next_send: epoch,
            out: LaneResult::new(),
        })
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn slot_of(&self, index: u64) -> usize {
        (index % self.slots.len() as u64) as usize
    }

    fn request_len(&self) -> usize {
        HEADER_LEN + self.payload
    }

    pub(super) async fn run(mut self) -> LaneResult {
        let mut request = vec![0u8; self.request_len()];
        // One spare byte, so an oversized reply is seen as such.
        let mut reply = vec![0u8; self.request_len() + 1];
        let mut batched = self.batched.take();
        let sleep = tokio::time::sleep_until(self.deadline.into());
        tokio::pin!(sleep);
        let mut armed = self.deadline;
        loop {
            let now = Instant::now();
            if now >= self.deadline {
                break;
            }
            let blocked = match &mut batched {
                None => self.send_what_we_may(&mut request, now),
                Some(b) => self.send_batched(b, now),
            };
            if self.next == self.plan.count {
                self.expire_stale();
            }
            if self.next == self.plan.count && self.in_flight == 0 {
                break;
            }
            let wake = self.next_wake(now);
            if wake < armed || armed <= now {
                sleep.as_mut().reset(wake.into());
                armed = wake;
            }
            tokio::select! {
                biased;
                r = self.socket.recv(&mut reply), if batched.is_none() => match r {
                    Ok(n) => self.check_reply(&reply[..n], n == reply.len()),
                    Err(_) => self.out.recv_errors += 1,
                },
                r = self.socket.readable(), if batched.is_some() => match (r, &mut batched) {
                    (Ok(()), Some(b)) => self.recv_batched(b),
                    _ => self.out.recv_errors += 1,
                },
                () = &mut sleep => {}
                _ = self.socket.writable(), if blocked => {}
            }
        }
        // Whatever is still out is lost.
        self.out.lost += self.in_flight as u64;
        self.progress.done.fetch_add(self.in_flight as u64, Relaxed);
        self.out
    }

    /// Whether request number `next + ahead` may go out now: the pace
    /// allows it and its slot in the window is free (a request there
    /// unanswered for longer than the timeout is given up on). `ahead`
    /// stays below the window, so the requests of one batch never share a
    /// slot.
    fn may_send(&mut self, ahead: u64, now: Instant, now_ns: u64) -> bool {
        let index = self.next + ahead;
        if index >= self.plan.count || ahead >= self.slots.len() as u64 {
            return false;
        }
        if let Some(iv) = self.plan.interval {
            let due = self.next_send + iv.saturating_mul(u32::try_from(ahead).unwrap_or(u32::MAX));
            if now < due {
                return false;
            }
        }
        let i = self.slot_of(index);
        if self.slots[i].in_flight {
            if now_ns.saturating_sub(self.slots[i].sent_ns) < self.timeout_ns {
                return false; // the window is full
            }
            self.slots[i].in_flight = false;
            self.in_flight -= 1;
            self.out.lost += 1;
            self.progress.done.fetch_add(1, Relaxed);
        }
        true
    }

    /// Writes request number `next + ahead` into `buf` (exactly
    /// [`request_len`](Self::request_len) bytes).
    fn write_request(&self, ahead: u64, now_ns: u64, buf: &mut [u8]) {
        let seq = self.plan.id << LANE_BITS | (self.next + ahead);
        let header = Header {
            kind: Kind::Request,
            payload_len: self.payload as u32,
            seq,
            sent_ns: now_ns,
            checksum: 0,
        };
        // `buf` is HEADER_LEN + payload bytes: `write` cannot fail.
        let _ = header.write(buf);
        wire::fill_payload(seq, &mut buf[HEADER_LEN..]);
    }

    /// Request number `next`, written at `now_ns`, went out.
    fn commit(&mut self, now_ns: u64) {
        let i = self.slot_of(self.next);
        self.slots[i] = Slot {
            seq: self.plan.id << LANE_BITS | self.next,
            sent_ns: now_ns,
            in_flight: true,
        };
        self.in_flight += 1;
        self.out.sent += 1;
        self.advance();
    }

    /// Request number `next` could not be sent: counted, and given up on.
    fn give_up(&mut self) {
        self.out.send_errors += 1;
        self.out.lost += 1;
        self.progress.done.fetch_add(1, Relaxed);
        self.advance();
    }

    /// Sends while the window, the pace and the socket allow; `true` if
    /// the socket's buffer is full (wait until it is writable).
    fn send_what_we_may(&mut self, request: &mut [u8], now: Instant) -> bool {
        loop {
            let now_ns = self.now_ns();
            if !self.may_send(0, now, now_ns) {
                return false;
            }
            self.write_request(0, now_ns, request);
            match self.socket.try_send(request) {
                Ok(_) => self.commit(now_ns),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => self.give_up(),
            }
        }
    }

    /// Once everything is sent: gives up on requests unanswered for longer
    /// than the timeout.
    fn expire_stale(&mut self) {
        let now_ns = self.now_ns();
        for slot in &mut self.slots {
            if slot.in_flight && now_ns.saturating_sub(slot.sent_ns) >= self.timeout_ns {
                slot.in_flight = false;
                self.in_flight -= 1;
                self.out.lost += 1;
                self.progress.done.fetch_add(1, Relaxed);
            }
        }
    }

    fn advance(&mut self) {
        self.next += 1;
        if let Some(iv) = self.plan.interval {
            self.next_send += iv;
        }
    }

    /// When to look again if no reply comes: the deadline, the next paced
    /// send, or the moment the oldest blocking request times out.
    fn next_wake(&self, now: Instant) -> Instant {
        let at = |ns: u64| self.epoch + Duration::from_nanos(ns.saturating_add(self.timeout_ns));
        let mut wake = self.deadline;
        if self.next < self.plan.count {
            if self.plan.interval.is_some() && self.next_send > now {
                wake = wake.min(self.next_send);
            }
            let s = &self.slots[self.slot_of(self.next)];
            if s.in_flight {
                wake = wake.min(at(s.sent_ns));
            }
        } else if let Some(oldest) = self
            .slots
            .iter()
            .filter(|s| s.in_flight)
            .map(|s| s.sent_ns)
            .min()
        {
            wake = wake.min(at(oldest));
        }
        wake.max(now)
    }

    fn check_reply(&mut self, datagram: &[u8], oversized: bool) {
        let packet = match wire::parse(datagram) {
            Ok(p) if p.header.kind == Kind::Reply && !oversized => p,
            _ => {
                self.out.bad += 1;
                return;
            }
        };
        let seq = packet.header.seq;
        let index = seq & ((1 << LANE_BITS) - 1);
        if seq >> LANE_BITS != self.plan.id || index >= self.plan.count {
            self.out.bad += 1;
            return;
        }
        let i = self.slot_of(index);
        let slot = self.slots[i];
        if !(slot.in_flight && slot.seq == seq) {
            self.out.late += 1;
            return;
        }
        self.slots[i].in_flight = false;
        self.in_flight -= 1;
        self.progress.done.fetch_add(1, Relaxed);
        let good = packet.header.sent_ns == slot.sent_ns
            && packet.payload.len() == self.payload
            && wire::payload_matches(seq, packet.payload)
            && packet.header.checksum == checksum(packet.payload);
        if !good {
            self.out.bad += 1;
            return;
        }
        let now_ns = self.now_ns();
        self.out
            .histogram
            .saturating_record(now_ns.saturating_sub(slot.sent_ns).max(1));
        self.out.received += 1;
        let bucket = (now_ns / TIMELINE_STEP.as_nanos() as u64) as usize;
        if self.out.timeline.len() <= bucket {
            self.out.timeline.resize(bucket + 1, 0);
        }
        self.out.timeline[bucket] += 1;
    }
}

#[cfg(target_os = "linux")]
mod batched {
    use std::io;
    use std::os::fd::AsFd;
    use std::time::Instant;

    use tokio::io::Interest;
    use tokio::net::UdpSocket;

    use super::Lane;
    use crate::config::GRO_BUFFER;
    use crate::load::LoadConfig;
    use crate::mmsg::{self, Batch, MAX_SEGMENTS, Outgoing};

    /// A lane's batched I/O: the kernel's headers, the requests of one
    /// call and the buffers replies land in.
    pub(super) struct Batched {
        batch: Batch,
        /// Without GSO, one buffer per request; with it, one train of
        /// `per_call` requests back to back.
        requests: Vec<Vec<u8>>,
        replies: Vec<Vec<u8>>,
        gso: bool,
        per_call: usize,
    }

    impl Batched {
        /// `None` for the one-call-per-datagram client.
        pub(super) fn new(config: &LoadConfig, socket: &UdpSocket) -> io::Result<Option<Batched>> {
            if config.batch <= 1 && !config.gso {
                return Ok(None);
            }
            let len = crate::wire::HEADER_LEN + config.payload;
            let (requests, replies, per_call) = if config.gso {
                mmsg::enable_gro(socket)?;
                // One GSO send: at most MAX_SEGMENTS datagrams, and no
                // more bytes than one UDP/IPv4 datagram carries.
                let most = (super::super::MAX_PAYLOAD + crate::wire::HEADER_LEN) / len;
                let per_call = config.batch.min(MAX_SEGMENTS).min(most).max(1);
                let replies = (0..config.batch.min(8)).map(|_| vec![0u8; GRO_BUFFER]);
                (vec![vec![0u8; per_call * len]], replies.collect(), per_call)
            } else {
                let requests = (0..config.batch).map(|_| vec![0u8; len]).collect();
                // One spare byte, so an oversized reply is seen as such.
                let replies = (0..config.batch).map(|_| vec![0u8; len + 1]).collect();
                (requests, replies, config.batch)
            };
            Ok(Some(Batched {
                batch: Batch::new(config.batch),
                requests,
                replies,
                gso: config.gso,
                per_call,
            }))
        }
    }

    impl Lane {
        /// Sends while the window, the pace and the socket allow, a batch
        /// per call; `true` if the socket's buffer is full.
        pub(super) fn send_batched(&mut self, b: &mut Batched, now: Instant) -> bool {
            let len = self.request_len();
            loop {
                let now_ns = self.now_ns();
                let mut n = 0;
                while n < b.per_call && self.may_send(n as u64, now, now_ns) {
                    let buf = if b.gso {
                        &mut b.requests[0][n * len..(n + 1) * len]
                    } else {
                        &mut b.requests[n][..]
                    };
                    self.write_request(n as u64, now_ns, buf);
                    n += 1;
                }
                if n == 0 {
                    return false;
                }
                let fd = self.socket.as_fd();
                let (batch, requests, gso) = (&mut b.batch, &b.requests, b.gso);
                let sent = self.socket.try_io(Interest::WRITABLE, || {
                    if gso {
                        let train = Outgoing {
                            bytes: &requests[0][..n * len],
                            to: None,
                            segment: (n > 1).then_some(len as u16),
                        };
                        batch.send(fd, [train]).map(|k| if k == 1 { n } else { 0 })
                    } else {
                        batch.send(
                            fd,
                            requests[..n].iter().map(|r| Outgoing {
                                bytes: r,
                                to: None,
                                segment: None,
                            }),
                        )
                    }
                });
                match sent {
                    Ok(k) if k > 0 => {
                        for _ in 0..k {
                            self.commit(now_ns);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    // A train fails whole: all its requests are given up.
                    _ if b.gso => {
                        for _ in 0..n {
                            self.give_up();
                        }
                    }
                    // The first request failed: counted, given up on.
                    _ => self.give_up(),
                }
            }
        }

        /// Takes every reply waiting on the socket, a batch per call.
        pub(super) fn recv_batched(&mut self, b: &mut Batched) {
            loop {
                let (batch, replies) = (&mut b.batch, &mut b.replies);
                let socket = &self.socket;
                let got = socket.try_io(Interest::READABLE, || {
                    batch.recv(socket.as_fd(), replies).map(<[_]>::len)
                });
                let n = match got {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(_) => {
                        self.out.recv_errors += 1;
                        return;
                    }
                };
                for i in 0..n {
                    let r = b.batch.received()[i];
                    let data = &b.replies[i][..r.len];
                    match r.segment {
                        Some(seg) if seg < r.len && !r.truncated => {
                            for d in data.chunks(seg) {
                                self.check_reply(d, false);
                            }
                        }
                        _ => {
                            let full = r.truncated || r.len == b.replies[i].len();
                            self.check_reply(data, full);
                        }
                    }
                }
                if n < b.replies.len() {
                    return;
                }
            }
        }
    }
}

/// Off Linux the lane always talks a datagram per call.
#[cfg(not(target_os = "linux"))]
mod batched {
    use std::io;
    use std::time::Instant;

    use tokio::net::UdpSocket;

    use super::Lane;
    use crate::load::LoadConfig;

    pub(super) enum Batched {}

    impl Batched {
        pub(super) fn new(_: &LoadConfig, _: &UdpSocket) -> io::Result<Option<Batched>> {
            Ok(None)
        }
    }

    impl Lane {
        pub(super) fn send_batched(&mut self, b: &mut Batched, _: Instant) -> bool {
            match *b {}
        }

        pub(super) fn recv_batched(&mut self, b: &mut Batched) {
            match *b {}
        }
    }
}
