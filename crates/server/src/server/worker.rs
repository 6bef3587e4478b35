//! A pool or Vec mode worker: one thread, a single-threaded tokio
//! runtime, one socket, and one of two loops ([`UdpIo`]).
//!
//! * [`UdpIo::PerDatagram`]: wait until the socket is readable; take up
//!   to `batch` datagrams off it with one `recvfrom` each, each straight
//!   into a buffer of its own; then answer each with one `sendto`.
//! * [`UdpIo::Mmsg`] (Linux): take up to `batch` buffers, receive up to
//!   one datagram into each with one `recvmmsg`, answer them all with one
//!   `sendmmsg`, and go on while the socket has more. Buffers that got no
//!   datagram are kept for the next call, so buffers are still taken per
//!   datagram. With `gso`, a buffer may hold a train of datagrams of one
//!   client (UDP GRO); each is checked and answered in place, and the
//!   train goes back in one send that the kernel splits (UDP GSO).
//!
//! Either way a datagram that arrives when the pool is empty is read into
//! a 64-byte scratch array, discarded and counted
//! ([`DropReason::PoolExhausted`]), a malformed one is counted by its
//! reason, and nothing is allocated per datagram in pool mode.

use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::sync::mpsc;

use arenapool::Pool;
use tokio::net::UdpSocket;
use tokio::sync::Notify;

use crate::allocs::{AllocWindow, Sample};
use crate::buffers::{BufSource, FreshVecs, PacketBuf};
use crate::config::{ServerConfig, UdpIo};
use crate::stats::{Counters, DropReason};
use crate::wire;

/// Everything a worker thread needs.
pub(super) struct Job {
    pub(super) socket: StdUdpSocket,
    pub(super) config: ServerConfig,
    pub(super) pool: Option<Pool>,
    pub(super) stop: Arc<Notify>,
    pub(super) counters: Arc<Counters>,
    pub(super) ready: mpsc::Sender<io::Result<()>>,
}

impl Job {
    pub(super) fn run(self) -> AllocWindow {
        let counters = Arc::clone(&self.counters);
        let cpu_start = crate::cpu::thread_cpu();
        let window = self.serve();
        counters.set_cpu(crate::cpu::thread_cpu().zip(cpu_start).map(|(e, s)| e - s));
        window
    }

    fn serve(self) -> AllocWindow {
        let Job {
            socket,
            config,
            pool,
            stop,
            counters,
            ready,
        } = self;
        #[cfg(target_os = "linux")]
        if let (crate::Mode::Uring, Some(pool)) = (config.mode, &pool) {
            return crate::uring::run(socket, config, pool.clone(), &stop, &counters, ready);
        }
        let setup = (|| {
            #[cfg(target_os = "linux")]
            if config.gso {
                crate::mmsg::enable_gro(&socket)?;
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()?;
            let socket = {
                let _enter = rt.enter();
                UdpSocket::from_std(socket)?
            };
            Ok::<_, io::Error>((rt, socket))
        })();
        let (rt, socket) = match setup {
            Ok(s) => s,
            Err(e) => {
                let _ = ready.send(Err(e));
                return AllocWindow::default();
            }
        };
        let _ = ready.send(Ok(()));
        drop(ready);
        let run = Run {
            socket: &socket,
            batch: config.batch,
            buffer_size: config.buffer_size,
            warmup: config.warmup,
            counters: &counters,
            stop: &stop,
        };
        rt.block_on(async {
            match &pool {
                Some(pool) => run.serve(pool, config.io).await,
                None => {
                    let vecs = FreshVecs {
                        size: config.recv_buffer_len(),
                    };
                    run.serve(&vecs, config.io).await
                }
            }
        })
    }
}

/// One worker's serving loop, generic over where buffers come from.
struct Run<'a> {
    socket: &'a UdpSocket,
    batch: usize,
    /// The most bytes one datagram may have, plus one.
    buffer_size: usize,
    warmup: u64,
    counters: &'a Counters,
    stop: &'a Notify,
}

/// Datagrams handled, and when the allocation window opened.
struct Progress {
    handled: u64,
    window: Option<(Sample, u64)>,
    warmup: u64,
}

impl Progress {
    fn new(warmup: u64) -> Progress {
        Progress {
            handled: 0,
            window: (warmup == 0).then(|| (Sample::now(), 0)),
            warmup,
        }
    }

    /// Called between batches: the window opens once the warm-up is done.
    fn between_batches(&mut self) {
        if self.window.is_none() && self.handled >= self.warmup {
            self.window = Some((Sample::now(), self.handled));
        }
    }

    fn finish(self) -> AllocWindow {
        let end = Sample::now();
        match self.window {
            Some((start, at)) => AllocWindow::between(start, end, self.handled - at),
            None => AllocWindow::default(),
        }
    }
}

impl Run<'_> {
    async fn serve<S: BufSource>(&self, source: &S, io: UdpIo) -> AllocWindow {
        match io {
            UdpIo::PerDatagram => self.per_datagram(source).await,
            #[cfg(target_os = "linux")]
            UdpIo::Mmsg => self.mmsg(source).await,
            // `Server::start` refuses it off Linux (`UdpIo::unavailable`).
            #[cfg(not(target_os = "linux"))]
            UdpIo::Mmsg => AllocWindow::default(),
        }
    }

    /// Waits until the socket is readable or the worker is told to stop;
    /// `false` to stop.
    async fn readable(
        &self,
        stop: &mut std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
    ) -> bool {
        tokio::select! {
            biased;
            () = stop.as_mut() => false,
            ready = self.socket.readable() => {
                if ready.is_err() {
                    // Only a runtime that is shutting down says so.
                    self.counters.recv_error();
                }
                ready.is_ok()
            }
        }
    }

    /// Reads one datagram into `scratch` and drops it, counted, because
    /// no buffer is free; `false` when the socket is empty or failed.
    fn drop_one(&self, scratch: &mut [u8; 64], progress: &mut Progress) -> bool {
        self.counters.io_call();
        match self.socket.try_recv_from(scratch) {
            Ok(_) => {
                self.counters.dropped(DropReason::PoolExhausted);
                progress.handled += 1;
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(_) => {
                self.counters.recv_error();
                false
            }
        }
    }

    /// The loop with one system call per datagram.
    async fn per_datagram<S: BufSource>(&self, source: &S) -> AllocWindow {
        let mut batch: Vec<(S::Buf<'_>, usize, SocketAddr)> = Vec::with_capacity(self.batch);
        let mut spare: Option<S::Buf<'_>> = None;
        let mut scratch = [0u8; 64];
        let mut progress = Progress::new(self.warmup);
        let stop = self.stop.notified();
        let mut stop = std::pin::pin!(stop);
        while self.readable(&mut stop).await {
            // Take up to `batch` datagrams off the socket, each into a
            // buffer of its own.
            for _ in 0..self.batch {
                let Some(mut buf) = spare.take().or_else(|| source.take()) else {
                    if self.drop_one(&mut scratch, &mut progress) {
                        continue;
                    }
                    break;
                };
                self.counters.io_call();
                match self.socket.try_recv_from(buf.as_full_mut()) {
                    Ok((n, peer)) => batch.push((buf, n, peer)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // Keep it for the next datagram: a buffer is taken
                        // per datagram, not per look at an empty socket.
                        spare = Some(buf);
                        break;
                    }
                    Err(_) => {
                        self.counters.recv_error();
                        break;
                    }
                }
            }
            // Answer them, each from its own buffer.
            for (mut buf, n, peer) in batch.drain(..) {
                self.answer_one(&mut buf, n, peer).await;
                progress.handled += 1;
            }
            // The window opens between batches, when no buffer is out but
            // the spare, so every datagram in it took its buffer in it.
            progress.between_batches();
        }
        progress.finish()
    }

    async fn answer_one<B: PacketBuf>(&self, buf: &mut B, received: usize, peer: SocketAddr) {
        let Some(len) = self.reply_in_place(buf.as_full_mut(), received) else {
            return;
        };
        if !buf.set_filled(len) {
            self.counters.dropped(DropReason::Oversized);
            return;
        }
        self.counters.io_call();
        let sent = match self.socket.try_send_to(buf, peer) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.counters.io_call();
                self.socket.send_to(buf, peer).await
            }
            other => other,
        };
        match sent {
            Ok(_) => self.counters.replied(1),
            Err(_) => self.counters.send_error(1),
        }
    }

    /// Checks the datagram `buf[..received]` and turns it into its reply
    /// in place; `None` (counted) if it gets no reply. At most
    /// `buffer_size` bytes of `buf` count as its room, so the largest
    /// datagram is the same whatever the buffer's real size.
    fn reply_in_place(&self, buf: &mut [u8], received: usize) -> Option<usize> {
        let room = buf.len().min(self.buffer_size);
        match wire::make_reply(&mut buf[..room], received) {
            Ok(len) => Some(len),
            Err(e) => {
                // `make_reply` only reports reading errors, which all map.
                self.counters
                    .dropped(DropReason::from_wire(e).unwrap_or(DropReason::BadHeader));
                None
            }
        }
    }
}

#[cfg(target_os = "linux")]
mod batched {
    use std::os::fd::AsFd;

    use tokio::io::Interest;

    use super::{DropReason, PacketBuf, Progress, Run, io};
    use crate::allocs::AllocWindow;
    use crate::buffers::BufSource;
    use crate::mmsg::{Batch, Outgoing, Received};
    use crate::wire;

    /// A reply ready to go: its buffer, where to, its GSO segment size,
    /// and how many datagrams it carries.
    type Reply<B> = (B, std::net::SocketAddr, Option<u16>, u64);

    impl Run<'_> {
        /// The loop with `recvmmsg` and `sendmmsg`.
        pub(super) async fn mmsg<S: BufSource>(&self, source: &S) -> AllocWindow {
            let mut batch = Batch::new(self.batch);
            let mut bufs: Vec<S::Buf<'_>> = Vec::with_capacity(batch.capacity());
            let mut out: Vec<Reply<S::Buf<'_>>> = Vec::with_capacity(batch.capacity());
            let mut scratch = [0u8; 64];
            let mut progress = Progress::new(self.warmup);
            let stop = self.stop.notified();
            let mut stop = std::pin::pin!(stop);
            while self.readable(&mut stop).await {
                loop {
                    while bufs.len() < batch.capacity() {
                        match source.take() {
                            Some(b) => bufs.push(b),
                            None => break,
                        }
                    }
                    if bufs.is_empty() {
                        if self.drop_one(&mut scratch, &mut progress) {
                            continue;
                        }
                        break;
                    }
                    let asked = bufs.len();
                    self.counters.io_call();
                    let fd = self.socket.as_fd();
                    let got = self.socket.try_io(Interest::READABLE, || {
                        batch.recv(fd, &mut bufs).map(<[Received]>::len)
                    });
                    let n = match got {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            self.counters.recv_error();
                            break;
                        }
                    };
                    for (buf, r) in bufs.drain(..n).zip(batch.received().iter().copied()) {
                        progress.handled += self.answer(buf, r, &mut out);
                    }
                    self.send_all(&mut batch, &mut out).await;
                    progress.between_batches();
                    if n < asked {
                        // The socket is empty: wait for readiness again.
                        break;
                    }
                }
            }
            progress.finish()
        }

        /// Turns what `r` says arrived in `buf` into replies and queues
        /// them on `out`; returns the datagrams it held.
        fn answer<B: PacketBuf>(&self, mut buf: B, r: Received, out: &mut Vec<Reply<B>>) -> u64 {
            if r.truncated {
                // Only a datagram larger than the whole buffer; with GRO
                // the kernel never coalesces past the buffer's 64 KiB.
                self.counters.dropped(DropReason::Oversized);
                return 1;
            }
            let Some(peer) = r.peer else {
                // A source the kernel could not give as IPv4 or IPv6 (as
                // in io_uring mode): a failed receive, not a datagram.
                self.counters.recv_error();
                return 0;
            };
            let seg = match r.segment {
                Some(s) if s < r.len => s,
                // One datagram.
                _ => {
                    if let Some(len) = self.reply_in_place(buf.as_full_mut(), r.len) {
                        if buf.set_filled(len) {
                            out.push((buf, peer, None, 1));
                        } else {
                            self.counters.dropped(DropReason::Oversized);
                        }
                    }
                    return 1;
                }
            };
            // A GRO train: datagrams of `seg` bytes, the last maybe
            // shorter. Each is answered in place; any that gets no reply
            // is squeezed out, so the replies stay a train of `seg`-byte
            // datagrams with a shorter one only at the end.
            let count = r.len.div_ceil(seg) as u64;
            let full = buf.as_full_mut();
            let mut kept = 0;
            for start in (0..r.len).step_by(seg) {
                let end = (start + seg).min(r.len);
                let ok = if end - start >= self.buffer_size {
                    self.counters.dropped(DropReason::Oversized);
                    false
                } else {
                    match wire::make_reply_exact(&mut full[start..end]) {
                        Ok(_) => true,
                        Err(e) => {
                            self.counters
                                .dropped(DropReason::from_wire(e).unwrap_or(DropReason::BadHeader));
                            false
                        }
                    }
                };
                if ok {
                    if kept != start {
                        full.copy_within(start..end, kept);
                    }
                    kept += end - start;
                }
            }
            let replies = kept.div_ceil(seg) as u64;
            if replies == 0 {
                return count;
            }
            // `kept <= r.len`, inside the buffer: this holds.
            if !buf.set_filled(kept) {
                self.counters.dropped_n(DropReason::Oversized, replies);
                return count;
            }
            // The train goes back as it came. The kernel that coalesced it
            // takes as many segments back (64 from a network card; 128
            // from a local GSO sender since Linux 6.9); a train it refuses
            // is counted as send errors, datagram by datagram.
            let segment = if replies > 1 {
                match u16::try_from(seg) {
                    Ok(s) => Some(s),
                    Err(_) => {
                        self.counters.send_error(replies);
                        return count;
                    }
                }
            } else {
                None
            };
            out.push((buf, peer, segment, replies));
            count
        }

        /// Sends every reply in `out`, waiting while the socket is full;
        /// then gives their buffers back.
        async fn send_all<B: PacketBuf>(&self, batch: &mut Batch, out: &mut Vec<Reply<B>>) {
            let mut done = 0;
            let fd = self.socket.as_fd();
            while done < out.len() {
                self.counters.io_call();
                let rest = &out[done..];
                let sent = self.socket.try_io(Interest::WRITABLE, || {
                    batch.send(
                        fd,
                        rest.iter().map(|(b, to, segment, _)| Outgoing {
                            bytes: b,
                            to: Some(*to),
                            segment: *segment,
                        }),
                    )
                });
                match sent {
                    Ok(k) if k > 0 => {
                        let replied: u64 = out[done..done + k].iter().map(|r| r.3).sum();
                        self.counters.replied(replied);
                        done += k;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if self.socket.writable().await.is_err() {
                            break;
                        }
                    }
                    // An error (or nothing taken, which sendmmsg only does
                    // with an error) is this reply's: count it, go on.
                    _ => {
                        self.counters.send_error(out[done].3);
                        done += 1;
                    }
                }
            }
            // Unsent only when the runtime shuts down: counted as errors.
            let unsent: u64 = out[done..].iter().map(|r| r.3).sum();
            if unsent > 0 {
                self.counters.send_error(unsent);
            }
            out.clear();
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::net::UdpSocket;
    use std::os::fd::AsFd;
    use std::time::{Duration, Instant};

    use crate::mmsg::{Batch, Outgoing};
    use crate::wire::{self, HEADER_LEN, Header, Kind};
    use crate::{DropReason, Server, ServerConfig, ServerStats, UdpIo};

    fn request(seq: u64, payload: usize) -> Vec<u8> {
        let mut d = vec![0u8; HEADER_LEN + payload];
        Header {
            kind: Kind::Request,
            payload_len: payload as u32,
            seq,
            sent_ns: 0,
            checksum: 0,
        }
        .write(&mut d)
        .unwrap();
        wire::fill_payload(seq, &mut d[HEADER_LEN..]);
        d
    }

    fn send_train(c: &UdpSocket, to: std::net::SocketAddr, segments: &[Vec<u8>]) {
        let train: Vec<u8> = segments.concat();
        let sent = Batch::new(1)
            .send(
                c.as_fd(),
                [Outgoing {
                    bytes: &train,
                    to: Some(to),
                    segment: Some(segments[0].len() as u16),
                }],
            )
            .unwrap();
        assert_eq!(sent, 1);
    }

    fn wait_handled(server: &Server, n: u64) -> ServerStats {
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            let s = server.stats();
            if s.handled() >= n || Instant::now() > give_up {
                return s;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn replies(c: &UdpSocket, n: usize) -> Vec<u64> {
        let mut buf = [0u8; 2048];
        (0..n)
            .map(|_| {
                let len = c.recv(&mut buf).unwrap();
                let p = wire::parse(&buf[..len]).unwrap();
                assert_eq!(p.header.kind, Kind::Reply);
                assert_eq!(p.header.checksum, crate::checksum::checksum(p.payload));
                assert!(wire::payload_matches(p.header.seq, p.payload));
                p.header.seq
            })
            .collect()
    }

    #[test]
    fn a_gro_train_with_bad_datagrams_in_it_gets_replies_for_the_good_ones() {
        if let Some(why) = crate::gso_unavailable() {
            eprintln!("SKIPPED: UDP GRO/GSO: {why}");
            return;
        }
        let server = Server::start(ServerConfig {
            workers: 1,
            buffer_size: 512,
            io: UdpIo::Mmsg,
            gso: true,
            ..ServerConfig::default()
        })
        .unwrap();
        let to = server.local_addr();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();

        // Good, bad magic, good, a lying length, and a shorter good last.
        let mut bad_magic = request(0, 16);
        bad_magic[0] = b'Z';
        let mut lying = request(0, 16);
        lying[4..8].copy_from_slice(&4u32.to_be_bytes());
        send_train(
            &c,
            to,
            &[
                request(1, 16),
                bad_magic,
                request(2, 16),
                lying,
                request(3, 8),
            ],
        );
        assert_eq!(replies(&c, 3), [1, 2, 3]);
        let s = wait_handled(&server, 5);
        assert_eq!(s.replied, 3, "{s:?}");
        assert_eq!(s.drops.get(DropReason::BadHeader), 1);
        assert_eq!(s.drops.get(DropReason::LengthMismatch), 1);

        // The shorter last one is bad: the two before still go back.
        let mut short_bad = request(0, 8);
        short_bad[3] = 1; // a reply, not a request
        send_train(&c, to, &[request(4, 16), request(5, 16), short_bad]);
        assert_eq!(replies(&c, 2), [4, 5]);

        // Datagrams longer than buffer_size allows: dropped, however they
        // came.
        send_train(&c, to, &[request(6, 600), request(7, 600)]);
        let s = wait_handled(&server, 10);
        assert_eq!(s.drops.get(DropReason::Oversized), 2, "{s:?}");
        assert_eq!(s.drops.get(DropReason::BadHeader), 2);

        // And service goes on.
        send_train(&c, to, &[request(8, 16)]);
        assert_eq!(replies(&c, 1), [8]);
        let r = server.shutdown();
        assert_eq!(r.stats.replied, 6);
        assert_eq!(r.stats.drops.total(), 5);
    }
}
