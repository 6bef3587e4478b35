//! A worker's accept loop and one connection's request loop, for both
//! modes: they differ only in where the read buffer lives ([`Input`]) and
//! where responses are put together ([`Output`]).

use std::cell::Cell;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use arenapool::{OwnedBuf, Pool};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::timeout;

use super::parse::{self, HEAD_MAX, Limits, Parsed, Route, Status, body_chunks};
use super::{Ctx, HttpMode};
use crate::allocs::{AllocWindow, Sample};

thread_local! {
    /// Requests this worker answered, and its allocation counters when the
    /// warm-up ended.
    static ANSWERED: Cell<u64> = const { Cell::new(0) };
    static WARM: Cell<Option<Sample>> = const { Cell::new(None) };
}

/// Runs one worker: a single-threaded runtime accepting on `listener`
/// until `stop`. Returns its allocation window.
pub(super) fn worker(
    listener: std::net::TcpListener,
    ctx: Ctx,
    stop: Arc<Notify>,
    ready: std::sync::mpsc::Sender<io::Result<()>>,
) -> AllocWindow {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return AllocWindow::default();
        }
    };
    let ctx = Arc::new(ctx);
    start_counting(ctx.config.warmup);
    rt.block_on(async {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        loop {
            tokio::select! {
                _ = stop.notified() => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    accept(stream, &ctx);
                }
            }
        }
    });
    let window = counted(ctx.config.warmup);
    // Dropping the runtime drops the connections still open, and their
    // buffers go back to the pool.
    drop(rt);
    window
}

/// Counts a new connection as open, or as refused at the cap (the caller
/// then closes it); returns whether it may be served.
pub(super) fn admit(ctx: &Ctx) -> bool {
    let open = &ctx.open;
    if open.fetch_add(1, Relaxed) >= ctx.config.max_connections {
        open.fetch_sub(1, Relaxed);
        ctx.counters.refused.fetch_add(1, Relaxed);
        return false;
    }
    ctx.counters.connections.fetch_add(1, Relaxed);
    true
}

/// Counts why a served connection ended, and that it is no longer open.
fn ended(ctx: &Ctx, end: End) {
    count_end(ctx, end);
    ctx.open.fetch_sub(1, Relaxed);
}

/// Counts why a connection ended (or is ending).
pub(super) fn count_end(ctx: &Ctx, end: End) {
    let c = &ctx.counters;
    let reason = match end {
        End::Closed => None,
        End::HeaderTimeout => Some(&c.header_timeouts),
        End::SlowBody => Some(&c.slow_bodies),
        End::SlowReader => Some(&c.slow_readers),
        End::Idle => Some(&c.idle_closed),
        End::Io => Some(&c.io_errors),
    };
    if let Some(r) = reason {
        r.fetch_add(1, Relaxed);
    }
}

/// Serves `stream` on its own task, or closes it at the connection cap.
fn accept(stream: TcpStream, ctx: &Arc<Ctx>) {
    if !admit(ctx) {
        return; // dropping the stream closes it
    }
    let _ = stream.set_nodelay(true);
    let ctx = Arc::clone(ctx);
    if ctx.config.mode == HttpMode::Hyper {
        tokio::spawn(async move {
            super::hyper_mode::serve(stream, Arc::clone(&ctx)).await;
            ctx.open.fetch_sub(1, Relaxed);
        });
        return;
    }
    tokio::spawn(async move {
        let end = match (&ctx.config.mode, &ctx.pool) {
            (HttpMode::Pool, Some(pool)) => {
                let input = PoolInput {
                    pool,
                    size: ctx.config.read_buffer,
                    buf: None,
                };
                serve(stream, input, &ctx).await
            }
            _ => {
                let input = VecInput {
                    buf: vec![0; ctx.config.read_buffer],
                    len: 0,
                };
                serve(stream, input, &ctx).await
            }
        };
        ended(&ctx, end);
    });
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// The peer closed it, or a request asked for (or forced) the close.
    Closed,
    HeaderTimeout,
    SlowBody,
    SlowReader,
    Idle,
    Io,
}

/// How an I/O error ends a connection: a stalled write is a slow reader,
/// another timeout a stalled body.
fn ended_by(e: &io::Error) -> End {
    match e.kind() {
        io::ErrorKind::TimedOut if e.get_ref().is_some_and(|e| e.is::<SlowReader>()) => {
            End::SlowReader
        }
        io::ErrorKind::TimedOut => End::SlowBody,
        _ => End::Io,
    }
}

/// The bytes read and not yet answered.
trait Input {
    /// Buffer to read into, taken now if need be (pool mode waits for one).
    async fn spare(&mut self) -> &mut [u8];
    fn commit(&mut self, n: usize);
    fn data(&self) -> &[u8];
    /// Drops the first `n` bytes (answered); an empty pooled buffer goes
    /// back to the pool.
    fn consume(&mut self, n: usize);
    /// Whether the buffer is full (a head that does not fit).
    fn full(&self) -> bool;
    /// An empty buffer that was taken but not read into goes back.
    fn idle(&mut self);
}

struct PoolInput<'p> {
    pool: &'p Pool,
    size: usize,
    buf: Option<OwnedBuf>,
}

impl Input for PoolInput<'_> {
    async fn spare(&mut self) -> &mut [u8] {
        if self.buf.is_none() {
            let buf = self.pool.acquire_owned_with_capacity(self.size).await;
            self.buf = Some(buf.expect("the pool has a read class"));
        }
        let buf = self.buf.as_mut().expect("just set");
        buf.spare_mut()
    }

    fn commit(&mut self, n: usize) {
        if let Some(b) = &mut self.buf {
            let len = b.len() + n;
            let _ = b.set_len(len);
        }
    }

    fn data(&self) -> &[u8] {
        self.buf.as_deref().unwrap_or(&[])
    }

    fn consume(&mut self, n: usize) {
        let Some(b) = &mut self.buf else { return };
        if n >= b.len() {
            self.buf = None; // answered: the buffer goes back
        } else if n > 0 {
            let len = b.len();
            b.copy_within(n.., 0);
            b.truncate(len - n);
        }
    }

    fn full(&self) -> bool {
        self.buf.as_ref().is_some_and(|b| b.remaining() == 0)
    }

    fn idle(&mut self) {
        if self.buf.as_ref().is_some_and(|b| b.is_empty()) {
            self.buf = None;
        }
    }
}

struct VecInput {
    buf: Vec<u8>,
    len: usize,
}

impl Input for VecInput {
    async fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.len..]
    }

    fn commit(&mut self, n: usize) {
        self.len += n;
    }

    fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.buf.copy_within(n..self.len, 0);
        self.len -= n;
    }

    fn full(&self) -> bool {
        self.len == self.buf.len()
    }

    fn idle(&mut self) {}
}

/// Where responses are put together before they are written.
struct Output<'p> {
    /// Pool mode: response buffers of this class; `None`: a `Vec` each.
    pool: Option<(&'p Pool, usize)>,
    /// How long one write may make no progress.
    stall: std::time::Duration,
    buf: Option<OwnedBuf>,
    vec: Vec<u8>,
}

impl Output<'_> {
    /// Makes room for at least `want` contiguous bytes: in pool mode a
    /// buffer with less is written out and a fresh one taken (`want` is at
    /// most a response buffer's size).
    ///
    /// Nothing large lives across the awaits of these methods: a
    /// connection's task is as large as its largest state, idle or not, so
    /// a stack chunk held across a write would cost every idle connection
    /// its size.
    async fn room(&mut self, stream: &mut TcpStream, want: usize) -> io::Result<()> {
        if let Some((pool, size)) = self.pool
            && self.buf.as_ref().is_none_or(|b| b.remaining() < want)
        {
            self.flush(stream).await?;
            let b = pool.acquire_owned_with_capacity(size).await;
            self.buf = Some(b.expect("the pool has a response class"));
        }
        Ok(())
    }

    /// Pool mode, after [`room`](Self::room): appends what fits of `n`
    /// bytes, written in place by `fill`; returns how many.
    fn fill_some(&mut self, n: usize, fill: impl FnOnce(&mut [u8])) -> usize {
        let b = self.buf.as_mut().expect("room() took a buffer");
        let k = n.min(b.remaining());
        let len = b.len();
        fill(&mut b.spare_mut()[..k]);
        b.set_len(len + k)
            .expect("k <= remaining: within the capacity, and written");
        k
    }

    /// Appends `bytes`, writing out full buffers on the way.
    async fn put(&mut self, stream: &mut TcpStream, mut bytes: &[u8]) -> io::Result<()> {
        if self.pool.is_none() {
            self.vec.extend_from_slice(bytes);
            return Ok(());
        }
        while !bytes.is_empty() {
            self.room(stream, 1).await?;
            let k = self.fill_some(bytes.len(), |dst| dst.copy_from_slice(&bytes[..dst.len()]));
            bytes = &bytes[k..];
        }
        Ok(())
    }

    /// Appends `n` bytes of the `/bytes/N` body.
    async fn put_body(&mut self, stream: &mut TcpStream, n: usize) -> io::Result<()> {
        if self.pool.is_none() {
            parse::extend_body(&mut self.vec, n);
            return Ok(());
        }
        let mut done = 0;
        while done < n {
            self.room(stream, 1).await?;
            done += self.fill_some(n - done, |dst| {
                let mut at = 0;
                for chunk in body_chunks(done, dst.len()) {
                    dst[at..at + chunk.len()].copy_from_slice(chunk);
                    at += chunk.len();
                }
            });
        }
        Ok(())
    }

    /// Writes out what is there. A pooled buffer goes back to the pool.
    async fn flush(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        if let Some(b) = self.buf.take()
            && !b.is_empty()
        {
            write_all(stream, &b, self.stall).await?;
        }
        if !self.vec.is_empty() {
            write_all(stream, &self.vec, self.stall).await?;
            // A fresh `Vec` per response, as typical code has.
            self.vec = Vec::new();
        }
        Ok(())
    }

    /// A response head.
    async fn head(
        &mut self,
        stream: &mut TcpStream,
        status: Status,
        len: usize,
        keep_alive: bool,
        http10: bool,
    ) -> io::Result<usize> {
        // The head is made after the last await, so that its stack copy
        // is not held across one.
        let head = || {
            let mut bytes = [0u8; HEAD_MAX];
            let n = parse::write_head(&mut bytes, status, len, keep_alive, http10);
            (bytes, n)
        };
        if self.pool.is_none() {
            // Vec mode: each response in a `Vec` of its own, sized for it.
            self.flush(stream).await?;
            let (bytes, n) = head();
            self.vec = Vec::with_capacity(n + len);
            self.vec.extend_from_slice(&bytes[..n]);
            return Ok(n);
        }
        self.room(stream, HEAD_MAX).await?;
        let (bytes, n) = head();
        let put = self.fill_some(n, |dst| dst.copy_from_slice(&bytes[..n]));
        debug_assert_eq!(put, n, "room() made HEAD_MAX bytes of room");
        Ok(n)
    }
}

/// The request loop of one connection.
async fn serve(mut stream: TcpStream, mut input: impl Input, ctx: &Ctx) -> End {
    let cfg = &ctx.config;
    let limits = Limits {
        max_body: cfg.max_body,
        max_bytes: cfg.max_bytes,
    };
    let mut out = Output {
        pool: ctx.pool.as_ref().map(|p| (p, cfg.write_buffer())),
        stall: cfg.idle_timeout,
        buf: None,
        vec: Vec::new(),
    };
    // When the request head now being read started to arrive.
    let mut head_since: Option<Instant> = None;
    loop {
        // Answer every complete request in the buffer.
        loop {
            let data = input.data();
            if data.is_empty() {
                break;
            }
            match parse::parse(data, limits) {
                Parsed::Partial => {
                    if input.full() {
                        return refuse(&mut stream, &mut out, Status::HeadersTooLarge, ctx).await;
                    }
                    head_since.get_or_insert_with(Instant::now);
                    break;
                }
                Parsed::Refuse(status) => return refuse(&mut stream, &mut out, status, ctx).await,
                Parsed::Request(req) => {
                    head_since = None;
                    input.consume(req.head_len);
                    let (status, len) = req.answer();
                    let stall = cfg.header_timeout;
                    let r: io::Result<usize> = async {
                        if req.expect_continue && input.data().len() < req.body_len {
                            // The client waits for this before the body.
                            out.put(&mut stream, b"HTTP/1.1 100 Continue\r\n\r\n")
                                .await?;
                            out.flush(&mut stream).await?;
                        }
                        let head = out
                            .head(&mut stream, status, len, req.keep_alive, req.http10)
                            .await?;
                        let keep = req.route == Route::Echo;
                        match req.route {
                            Route::Bytes(n) => {
                                out.put_body(&mut stream, n).await?;
                                // A body it sent is not ours to parse.
                                if req.body_len > 0 {
                                    let n = req.body_len;
                                    echo(&mut stream, &mut input, &mut out, n, false, stall)
                                        .await?;
                                }
                            }
                            _ => {
                                echo(&mut stream, &mut input, &mut out, req.body_len, keep, stall)
                                    .await?
                            }
                        }
                        Ok(head + len)
                    }
                    .await;
                    match r {
                        Ok(bytes) => ctx.counters.answered(status, bytes),
                        Err(e) => return ended_by(&e),
                    }
                    note_answered(cfg.warmup);
                    if !req.keep_alive {
                        return match out.flush(&mut stream).await {
                            Ok(()) => close(&mut stream).await,
                            Err(e) => ended_by(&e),
                        };
                    }
                }
            }
        }
        if let Err(e) = out.flush(&mut stream).await {
            return ended_by(&e);
        }
        input.idle();
        // Wait for more: a head in progress has until its deadline, an
        // idle connection `idle_timeout`.
        let wait = match head_since {
            Some(t) => cfg.header_timeout.saturating_sub(t.elapsed()),
            None => cfg.idle_timeout,
        };
        match timeout(wait, stream.readable()).await {
            Err(_) => {
                return if head_since.is_some() {
                    End::HeaderTimeout
                } else {
                    End::Idle
                };
            }
            Ok(Err(_)) => return End::Io,
            Ok(Ok(())) => {}
        }
        let spare = input.spare().await;
        match stream.try_read(spare) {
            Ok(0) => return End::Closed,
            Ok(n) => {
                input.commit(n);
                head_since.get_or_insert_with(Instant::now);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => input.idle(),
            Err(_) => return End::Io,
        }
    }
}

/// Writes all of `data`, failing with [`SlowReader`] when a write makes no
/// progress for `stall` (a client that stopped reading).
async fn write_all(
    stream: &mut TcpStream,
    mut data: &[u8],
    stall: std::time::Duration,
) -> io::Result<()> {
    // A timer only when the socket is full: a write that goes through at
    // once (the steady state) arms none.
    while !data.is_empty() {
        match stream.try_write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match timeout(stall, stream.writable()).await {
                    Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, SlowReader)),
                    Ok(r) => r?,
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Why a connection timed out: its client stopped reading answers.
#[derive(Debug)]
struct SlowReader;

impl std::fmt::Display for SlowReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the client stopped reading")
    }
}

impl std::error::Error for SlowReader {}

/// Copies (`keep`) or skips a body of `len` bytes: first what the read
/// buffer holds, then straight from the socket. Fails with `TimedOut`
/// when the body stops arriving for `stall`.
async fn echo(
    stream: &mut TcpStream,
    input: &mut impl Input,
    out: &mut Output<'_>,
    len: usize,
    keep: bool,
    stall: std::time::Duration,
) -> io::Result<()> {
    let mut left = len;
    while left > 0 {
        if input.data().is_empty() {
            // Read first, and arm a timer only when nothing is there.
            let spare = input.spare().await;
            match stream.try_read(spare) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => input.commit(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match timeout(stall, stream.readable()).await {
                        Err(_) => return Err(io::ErrorKind::TimedOut.into()),
                        Ok(r) => r?,
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        let n = input.data().len().min(left);
        if keep {
            out.put(stream, &input.data()[..n]).await?;
        }
        input.consume(n);
        left -= n;
    }
    Ok(())
}

/// Answers `status` with an empty body and closes the connection.
async fn refuse(stream: &mut TcpStream, out: &mut Output<'_>, status: Status, ctx: &Ctx) -> End {
    let r = async {
        let n = out.head(stream, status, 0, false, false).await?;
        out.flush(stream).await?;
        Ok::<_, io::Error>(n)
    }
    .await;
    match r {
        Ok(n) => {
            ctx.counters.answered(status, n);
            close(stream).await
        }
        Err(_) => End::Io,
    }
}

/// Closes our side after the answer went out.
async fn close(stream: &mut TcpStream) -> End {
    let _ = stream.shutdown().await;
    End::Closed
}

/// Starts this worker's allocation window now if there is no warm-up.
pub(super) fn start_counting(warmup: u64) {
    if warmup == 0 {
        WARM.set(Some(Sample::now()));
    }
}

/// This worker's allocation window: from the end of its warm-up to now.
pub(super) fn counted(warmup: u64) -> AllocWindow {
    match WARM.get() {
        Some(start) => AllocWindow::between(start, Sample::now(), ANSWERED.get() - warmup),
        None => AllocWindow::default(),
    }
}

/// Counts an answered request on this worker; the allocation window
/// starts when the warm-up ends.
pub(super) fn note_answered(warmup: u64) {
    let n = ANSWERED.get() + 1;
    ANSWERED.set(n);
    if n == warmup {
        WARM.set(Some(Sample::now()));
    }
}
