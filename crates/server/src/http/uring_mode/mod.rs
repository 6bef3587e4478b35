//! [`HttpMode::Uring`](super::HttpMode::Uring): the HTTP server on
//! [`arenapool::uring`], without tokio and without a task per connection.
//!
//! Each worker thread owns one [`Ring`], its listening socket (with
//! `SO_REUSEPORT`, like the other modes) and one multishot accept. Every
//! connection it accepts gets one multishot `recv` that picks its buffers
//! from the worker's provided buffer ring
//! ([`HttpConfig::ring_buffers`](super::HttpConfig::ring_buffers) of
//! them), stocked from the pool's read class: an idle connection holds no
//! buffer at all, only its entry in the worker's connection table
//! ([`Conn`], 48 bytes) and the kernel's socket. A connection with bytes
//! or an answer in hand also has an [`Active`] entry, taken from a free
//! list and given back when it is idle again.
//!
//! A received buffer is parsed where the kernel put it. Answers are put
//! together in a buffer of the pool's response class and sent with `send`
//! from that buffer; a connection has at most one send in flight, and a
//! long answer (a large `/bytes/N`, an echoed body) is produced one buffer
//! at a time as the sends complete. When the buffer read is answered it
//! goes back to the pool, and so does the response buffer once the last
//! send of an answer is done.
//!
//! Backpressure: while its answer is blocked (a send in flight), a
//! connection's requests wait in its buffer; bytes that do not fit wait in
//! a short list of received buffers, and the receive is cancelled until
//! that list is empty again. When the provided ring runs dry (`ENOBUFS`)
//! the receives that needed a buffer end; they are counted and re-armed as
//! soon as the ring has buffers again, and the bytes wait in the kernel.
//!
//! Timeouts are checked by a sweep over the table a few times per
//! timeout, in the worker's loop (it wakes at least every
//! [`STOP_POLL`]): a head that takes longer than `header_timeout`, a body
//! that stops for as long, a send that makes no progress for
//! `idle_timeout`, and a connection silent for `idle_timeout` each close
//! it, counted as in the other modes. Closing shuts the socket down, which
//! ends its receive and any send; the entry is freed once both have
//! completed.

use std::io;
use std::net::TcpListener;
use std::pin::pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use arenapool::Pool;
use arenapool::uring::{BufGroup, Completion, OpId, Ring, UringError};
use socket2::Socket;
use tokio::sync::Notify;

use super::Ctx;
use super::conn::{self, End};
use super::parse::Limits;
use crate::allocs::AllocWindow;

mod answer;
mod state;

use state::{Active, Conn, NONE, Task};

/// How long the worker sleeps in the kernel before it looks at the stop
/// signal and the clock again.
const STOP_POLL: Duration = Duration::from_millis(20);

/// Submission queue entries per worker (the completion queue has twice
/// as many; the kernel keeps what overflows it until it is reaped).
const SQ_ENTRIES: u32 = 512;

/// Buffer group id of each worker's provided ring.
const GROUP: u16 = 0;

/// Received buffers a connection may hold beyond the one it parses before
/// its receive is cancelled (the kernel may deliver a few more before the
/// cancel lands; those are kept too).
const STASH: usize = 2;

/// Provided ring entries per worker: `ring_buffers` as a power of two,
/// within what the kernel takes.
pub(super) fn ring_entries(ring_buffers: usize) -> u32 {
    ring_buffers.clamp(1, 32768).next_power_of_two() as u32
}

/// Runs one worker until `stop`. Returns its allocation window.
pub(super) fn worker(
    listener: TcpListener,
    ctx: Ctx,
    stop: Arc<Notify>,
    ready: mpsc::Sender<io::Result<()>>,
) -> AllocWindow {
    let Some(pool) = ctx.pool.clone() else {
        let _ = ready.send(Err(io::Error::other("io_uring mode needs its pool")));
        return AllocWindow::default();
    };
    let entries = ring_entries(ctx.config.ring_buffers);
    let setup = (|| {
        let mut ring = Ring::builder(pool.clone())
            .entries(SQ_ENTRIES)
            .fixed_buffers(false)
            .single_thread(true)
            .build()?;
        let group = ring.provide_buffers(GROUP, entries)?;
        Ok::<_, UringError>((ring, group))
    })();
    let (mut ring, group) = match setup {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(crate::uring::to_io(e)));
            return AllocWindow::default();
        }
    };
    if let Err(e) = probe(&mut ring, group) {
        let _ = ready.send(Err(e));
        return AllocWindow::default();
    }
    let _ = ready.send(Ok(()));
    drop(ready);
    conn::start_counting(ctx.config.warmup);
    let cfg = &ctx.config;
    // Address space, not memory: the pages are touched as connections
    // come, and the table never moves (no copy left behind as it grows).
    let mut table = Table::default();
    table.conns.reserve(cfg.max_connections);
    let mut w = Worker {
        ring,
        group,
        listener: &listener,
        accept: None,
        accept_retry: Instant::now(),
        table,
        owner: Vec::new(),
        starved: Vec::new(),
        waiting: Vec::new(),
        pool,
        out_size: cfg.write_buffer(),
        limits: Limits {
            max_body: cfg.max_body,
            max_bytes: cfg.max_bytes,
        },
        ctx: &ctx,
        now: Instant::now(),
    };
    w.serve(&stop);
    let window = conn::counted(cfg.warmup);
    // Cancels every operation in flight, waits for them, and gives every
    // buffer back; then the sockets close with the table.
    let Worker { ring, table, .. } = w;
    drop(ring);
    let open = table.conns.iter().filter(|c| c.is_some()).count();
    ctx.open.fetch_sub(open, Relaxed);
    drop(table);
    window
}

/// A worker's connections: every open one's [`Conn`], and the
/// [`Active`] entries of those with something in hand.
#[derive(Default)]
struct Table {
    conns: Vec<Option<Conn>>,
    free: Vec<u32>,
    acts: Vec<Active>,
    acts_free: Vec<u32>,
}

impl Table {
    pub(super) fn conn(&mut self, i: u32) -> Option<&mut Conn> {
        self.conns.get_mut(i as usize).and_then(Option::as_mut)
    }

    /// Connection `i` and its [`Active`], which it takes now if it has
    /// none.
    pub(super) fn split(&mut self, i: u32) -> Option<(&mut Conn, &mut Active)> {
        let conn = self.conns.get_mut(i as usize)?.as_mut()?;
        if conn.act == NONE {
            conn.act = match self.acts_free.pop() {
                Some(a) => a,
                None => {
                    self.acts.push(Active::default());
                    (self.acts.len() - 1) as u32
                }
            };
        }
        let at = conn.act as usize;
        Some((conn, &mut self.acts[at]))
    }

    /// Connection `i` and its [`Active`] if it has one.
    pub(super) fn parts(&mut self, i: u32) -> Option<(&mut Conn, Option<&mut Active>)> {
        let conn = self.conns.get_mut(i as usize)?.as_mut()?;
        let a = self.acts.get_mut(conn.act as usize);
        Some((conn, a))
    }

    /// Gives connection `i`'s [`Active`] back if it holds nothing.
    pub(super) fn release(&mut self, i: u32) {
        let Some((conn, Some(a))) = self.parts(i) else {
            return;
        };
        if a.is_empty() {
            let at = conn.act;
            conn.act = NONE;
            self.acts_free.push(at);
        }
    }

    /// Adds a connection; returns its index.
    fn insert(&mut self, conn: Conn) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.conns[i as usize] = Some(conn);
                i
            }
            None => {
                self.conns.push(Some(conn));
                (self.conns.len() - 1) as u32
            }
        }
    }

    /// Removes connection `i` (closing its socket); its [`Active`], if it
    /// has one, is emptied and goes back to the free list.
    fn remove(&mut self, i: u32) {
        let Some(conn) = self.conns.get_mut(i as usize).and_then(Option::take) else {
            return;
        };
        if let Some(a) = self.acts.get_mut(conn.act as usize) {
            a.clear();
            self.acts_free.push(conn.act);
        }
        self.free.push(i);
    }
}

/// Checks that the kernel runs a multishot `recv` on a stream socket
/// with a provided buffer (Linux 6.0; 5.19 has the rings but refuses the
/// receive): one byte through a socket pair. Without this, every
/// connection would fail on its first receive.
fn probe(ring: &mut Ring, group: BufGroup) -> io::Result<()> {
    use std::io::Write;
    let why = |what: String| {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!("io_uring mode needs multishot recv with provided buffers (Linux 6.0): {what}"),
        )
    };
    let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
    let id = ring.recv_multi(&a, group).map_err(|e| why(e.to_string()))?;
    b.write_all(b"?")?;
    drop(b); // the receive then ends with the end of the stream
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut got, mut ended) = (false, false);
    while !ended && Instant::now() < deadline {
        crate::uring::wait(ring, STOP_POLL).map_err(|e| why(format!("io_uring_enter: {e}")))?;
        while let Some(c) = ring.next_completion() {
            if c.id != id {
                continue;
            }
            match &c.result {
                Ok(1) if c.buf.as_ref().is_some_and(|b| &b[..] == b"?") => got = true,
                Ok(_) => {}
                Err(e) => return Err(why(e.to_string())),
            }
            ended |= !c.more;
        }
    }
    if got {
        Ok(())
    } else {
        Err(why("no byte came through a socket pair in 5 s".into()))
    }
}

struct Worker<'a> {
    ring: Ring,
    group: BufGroup,
    listener: &'a TcpListener,
    accept: Option<OpId>,
    /// When to arm the accept again after it failed.
    accept_retry: Instant,
    table: Table,
    /// `owner[op.index()]`: the connection an operation belongs to.
    owner: Vec<u32>,
    /// Connections whose receive ran dry, to re-arm.
    starved: Vec<u32>,
    /// Connections that could not get a response buffer or a submission
    /// entry, to pump again.
    waiting: Vec<u32>,
    pool: Pool,
    out_size: usize,
    limits: Limits,
    ctx: &'a Ctx,
    now: Instant,
}

impl Worker<'_> {
    fn serve(&mut self, stop: &Notify) {
        let mut stop = pin!(stop.notified());
        let mut cx = Context::from_waker(Waker::noop());
        let cfg = &self.ctx.config;
        let sweep_every = (cfg.header_timeout.min(cfg.idle_timeout) / 8)
            .clamp(Duration::from_millis(5), Duration::from_secs(1));
        let mut swept = Instant::now();
        loop {
            // `notify_one` wakes this waiter or leaves a permit for the
            // next poll: a stop is never missed.
            if let Poll::Ready(()) = stop.as_mut().poll(&mut cx) {
                return;
            }
            self.now = Instant::now();
            if self.accept.is_none() && self.now >= self.accept_retry {
                match self.ring.accept_multi(self.listener) {
                    Ok(id) => self.accept = Some(id),
                    Err(_) => self.accept_retry = self.now + sweep_every,
                }
            }
            self.rearm_starved();
            for i in std::mem::take(&mut self.waiting) {
                self.pump(i);
            }
            if let Err(e) = crate::uring::wait(&mut self.ring, STOP_POLL) {
                eprintln!("arenapool: an HTTP io_uring worker stops: io_uring_enter: {e}");
                return;
            }
            self.now = Instant::now();
            while let Some(c) = self.ring.next_completion() {
                self.complete(c);
            }
            if self.now.duration_since(swept) >= sweep_every {
                swept = self.now;
                self.sweep();
            }
        }
    }

    /// Remembers that operation `id` is connection `i`'s.
    fn own(&mut self, id: OpId, i: u32) {
        let at = id.index();
        if at >= self.owner.len() {
            self.owner.resize((at + 1).next_power_of_two(), u32::MAX);
        }
        self.owner[at] = i;
    }

    fn complete(&mut self, c: Completion) {
        if Some(c.id) == self.accept {
            return self.accepted(c);
        }
        let Some(&i) = self.owner.get(c.id.index()) else {
            return;
        };
        let Some((conn, a)) = self.table.parts(i) else {
            return;
        };
        if Some(c.id) == conn.recv {
            self.received(i, c);
        } else if a.is_some_and(|a| a.send.is_some_and(|s| s.id == c.id)) {
            self.sent(i, c);
        }
    }

    fn accepted(&mut self, c: Completion) {
        if !c.more {
            self.accept = None;
            if c.result.is_err() {
                // Out of descriptors, say: try again on the next sweep.
                self.accept_retry = self.now + STOP_POLL;
            }
        }
        let Some(fd) = c.accepted else { return };
        if !conn::admit(self.ctx) {
            return; // dropping the socket closes it
        }
        let socket = Socket::from(fd);
        let _ = socket.set_tcp_nodelay(true);
        let entry = Conn::new(socket, self.now);
        let i = self.table.insert(entry);
        self.reading(i);
    }

    fn received(&mut self, i: u32, c: Completion) {
        let now = self.now;
        let ran_dry = c.ran_dry();
        let Some(conn) = self.table.conn(i) else {
            return;
        };
        let cancelled = conn.cancelled;
        if !c.more {
            conn.recv = None;
            conn.cancelled = false;
        }
        match (c.result, c.buf) {
            (Ok(_), Some(buf)) if !buf.is_empty() => {
                conn.active = now;
                if conn.ending.is_none()
                    && let Some((_, a)) = self.table.split(i)
                {
                    a.push(buf);
                    // Whatever else the connection is waiting for (a send
                    // in flight, say): bytes it cannot use yet stop its
                    // receive here.
                    self.backpressure(i);
                }
            }
            (Ok(_), _) => conn.eof = true,
            (Err(_), _) if ran_dry => {
                conn.starved = true;
                self.ctx.counters.recv_ran_dry.fetch_add(1, Relaxed);
                self.starved.push(i);
            }
            // Our cancel (`ECANCELED`), or an error after it.
            (Err(_), _) if cancelled => {}
            (Err(_), _) => return self.close(i, End::Io),
        }
        self.pump(i);
    }

    fn sent(&mut self, i: u32, c: Completion) {
        let now = self.now;
        let Some((conn, Some(a))) = self.table.parts(i) else {
            return;
        };
        let Some(send) = a.send.take() else { return };
        let Some(mut buf) = c.buf else {
            return self.close(i, End::Io);
        };
        let len = buf.len();
        match c.result {
            Ok(_) if conn.ending.is_some() => self.finish(i),
            Ok(0) if send.from < len => self.close(i, End::Io),
            Ok(n) if send.from + n < len => {
                // A partial send: the rest from the same buffer.
                conn.active = now;
                self.start_send(i, buf, send.from + n..len);
            }
            Ok(_) => {
                conn.active = now;
                buf.clear();
                // Kept for the rest of a long answer; `pump` lets it go
                // once the connection has nothing more to say.
                a.out = Some(buf);
                self.pump(i);
            }
            Err(_) => self.close(i, End::Io),
        }
    }

    /// Cancels connection `i`'s receive if [`STASH`] received buffers
    /// wait already.
    fn backpressure(&mut self, i: u32) {
        let Some((conn, Some(a))) = self.table.parts(i) else {
            return;
        };
        if a.stash.len() >= STASH
            && let Some(id) = conn.recv
            && !conn.cancelled
            && self.ring.cancel(id).is_ok()
        {
            conn.cancelled = true;
        }
    }

    /// Arms the receive while the connection has room for bytes, and
    /// cancels it while received buffers wait or when no more bytes are
    /// wanted (a request body still to come is).
    fn reading(&mut self, i: u32) {
        let group = self.group;
        let Some((conn, a)) = self.table.parts(i) else {
            return;
        };
        let stashed = a.as_ref().map_or(0, |a| a.stash.len());
        let body = a.is_some_and(|a| a.wants_body());
        let stop = (conn.close_after && !body) || conn.eof || conn.ending.is_some();
        match conn.recv {
            Some(id)
                if (stop || stashed >= STASH)
                    && !conn.cancelled
                    && self.ring.cancel(id).is_ok() =>
            {
                conn.cancelled = true;
            }
            None if !stop && !conn.starved && stashed == 0 => {
                match self.ring.recv_multi(&conn.socket, group) {
                    Ok(id) => {
                        conn.recv = Some(id);
                        self.own(id, i);
                    }
                    Err(_) => self.waiting.push(i),
                }
            }
            _ => {}
        }
    }

    /// Re-arms the receives that ran dry, once the ring has buffers, as
    /// many as it has; entries of connections that since closed (or whose
    /// slot serves another) are dropped on the way.
    fn rearm_starved(&mut self) {
        if self.starved.is_empty() {
            return;
        }
        self.ring.restock();
        let mut stocked = self
            .ring
            .buf_ring_stats(self.group)
            .map_or(0, |s| s.stocked);
        let mut k = 0;
        while k < self.starved.len() && stocked > 0 {
            let i = self.starved[k];
            if let Some(conn) = self.table.conn(i)
                && conn.starved
            {
                conn.starved = false;
                self.reading(i);
                stocked -= 1;
            }
            k += 1;
        }
        self.starved.drain(..k);
    }

    /// Shuts connection `i` down for `end`: its receive and any send end,
    /// and [`finish`](Self::finish) frees it after their completions.
    fn close(&mut self, i: u32, end: End) {
        let Some((conn, a)) = self.table.parts(i) else {
            return;
        };
        if conn.ending.is_none() {
            // Counted now: the client may see the end before the kernel
            // reports the last completion.
            conn::count_end(self.ctx, end);
            conn.ending = Some(end);
            if let Some(a) = a {
                a.clear();
            }
            let _ = conn.socket.shutdown(std::net::Shutdown::Both);
            if let Some(id) = conn.recv
                && !conn.cancelled
                && self.ring.cancel(id).is_ok()
            {
                conn.cancelled = true;
            }
        }
        self.finish(i);
    }

    /// Frees connection `i` if it is shut down and nothing is in flight.
    fn finish(&mut self, i: u32) {
        let Some((conn, a)) = self.table.parts(i) else {
            return;
        };
        let sending = a.is_some_and(|a| a.send.is_some());
        if conn.ending.is_none() || conn.recv.is_some() || sending {
            return;
        }
        self.table.remove(i); // closes the socket
        self.ctx.open.fetch_sub(1, Relaxed);
    }

    /// Closes the connections whose time ran out.
    fn sweep(&mut self) {
        let cfg = &self.ctx.config;
        let (head, idle, now) = (cfg.header_timeout, cfg.idle_timeout, self.now);
        let late = |since: Instant, limit: Duration| now.duration_since(since) > limit;
        for i in 0..self.table.conns.len() as u32 {
            let Some((c, a)) = self.table.parts(i) else {
                continue;
            };
            // A receive that ran dry has bytes waiting in the kernel:
            // it waits for the ring, not for its client.
            if c.ending.is_some() || c.starved {
                continue;
            }
            let end = match a {
                None => late(c.active, idle).then_some(End::Idle),
                Some(a) => {
                    if let Some(s) = a.send {
                        late(s.since, idle).then_some(End::SlowReader)
                    } else if a.wants_body() {
                        late(c.active, head).then_some(End::SlowBody)
                    } else if let Some(t) = a.head_since {
                        late(t, head).then_some(End::HeaderTimeout)
                    } else if a.input.is_none() && a.task == Task::Idle {
                        late(c.active, idle).then_some(End::Idle)
                    } else {
                        None
                    }
                }
            };
            if let Some(end) = end {
                self.close(i, end);
            }
        }
    }
}
