//! Framing on pooled buffers: a tokio TCP server reads length-prefixed
//! frames (a 4-byte big-endian length, then that many bytes) into a pooled
//! buffer, cuts each complete frame off the front with `split_to` (a
//! `SharedBuf`: no copy, no allocation), hands it to another task, and
//! keeps reading into the rest of the same buffer.
//!
//! ```text
//! cargo run --release -p arenapool --example frames            # self-check: 8 clients, then exit
//! cargo run --release -p arenapool --example frames -- 20000   # frames per client
//! ```
//!
//! The pool has two size classes: 4 KiB read buffers and 256-byte reply
//! buffers. Each connection has one reader (this task) and one answering
//! task, joined by a bounded queue of frames made once per connection
//! ([`Frames`], which never allocates after that: tokio's `mpsc` now and
//! then frees and allocates a block of slots); the answering task writes
//! each frame's length and checksum from a small pooled buffer. When the
//! read buffer is full and ends in a partial frame, that tail is copied
//! into a fresh read buffer: the frames already cut keep the old one until
//! they are answered, and `clear` takes a buffer whole again once no frame
//! of it is alive. Per frame nothing is allocated once the connection
//! runs (`tests/frames_alloc.rs` counts it); at the end every buffer is
//! back in the pool.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arenapool::{Pool, SharedBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Bytes per read buffer; frames are at most this minus the length prefix.
pub const READ: usize = 4096;
/// Bytes per reply buffer.
pub const REPLY: usize = 256;

/// The pool the server uses: its two classes.
pub fn pool() -> Pool {
    Pool::builder()
        .class(REPLY, 64)
        .growing_class(READ, 16, 256)
        .build()
        .expect("valid classes")
}

/// The checksum a reply carries.
pub fn checksum(data: &[u8]) -> u32 {
    data.iter()
        .fold(0u32, |s, &b| s.wrapping_mul(31).wrapping_add(u32::from(b)))
}

/// A bounded queue of frames from one task to another, allocated once.
/// (A `Notify` keeps a wake-up that comes before its waiter, so none is
/// lost between the check and the wait.)
pub struct Frames {
    /// The frames, and whether the sender is done.
    queue: Mutex<(VecDeque<SharedBuf>, bool)>,
    added: Notify,
    taken: Notify,
}

impl Frames {
    const CAPACITY: usize = 64;

    fn new() -> Self {
        Self {
            queue: Mutex::new((VecDeque::with_capacity(Self::CAPACITY), false)),
            added: Notify::new(),
            taken: Notify::new(),
        }
    }

    /// Waits for room, then queues `frame`.
    async fn push(&self, frame: SharedBuf) {
        let mut frame = Some(frame);
        loop {
            {
                let mut q = self.queue.lock().expect("no panic holds the lock");
                if q.0.len() < Self::CAPACITY {
                    q.0.push_back(frame.take().expect("not queued yet"));
                    drop(q);
                    self.added.notify_one();
                    return;
                }
            }
            self.taken.notified().await;
        }
    }

    /// The next frame, or `None` once the sender is done and all are taken.
    async fn pop(&self) -> Option<SharedBuf> {
        loop {
            {
                let mut q = self.queue.lock().expect("no panic holds the lock");
                if let Some(frame) = q.0.pop_front() {
                    drop(q);
                    self.taken.notify_one();
                    return Some(frame);
                }
                if q.1 {
                    return None;
                }
            }
            self.added.notified().await;
        }
    }

    fn close(&self) {
        self.queue.lock().expect("no panic holds the lock").1 = true;
        self.added.notify_one();
    }
}

/// Answers frames in order: 8 bytes each, the length and the checksum.
async fn answer(pool: Pool, frames: Arc<Frames>, mut wr: OwnedWriteHalf) -> std::io::Result<()> {
    while let Some(frame) = frames.pop().await {
        let mut reply = pool
            .acquire_owned_with_capacity(8)
            .await
            .expect("the pool has a small class");
        reply
            .extend_from_slice(&(frame.len() as u32).to_be_bytes())
            .expect("fits");
        reply
            .extend_from_slice(&checksum(&frame).to_be_bytes())
            .expect("fits");
        drop(frame); // answered: its bytes may go back with their buffer
        wr.write_all(&reply).await?;
    }
    wr.shutdown().await
}

/// Serves one connection: cuts frames and hands them to its answering
/// task. Counts each frame in `frames`.
pub async fn connection(
    pool: Pool,
    stream: TcpStream,
    frames: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let (mut rd, wr) = stream.into_split();
    let queue = Arc::new(Frames::new());
    let answering = tokio::spawn(answer(pool.clone(), Arc::clone(&queue), wr));
    let read = || async { pool.acquire_owned_with_capacity(READ).await };
    let mut buf = read().await.expect("a read class");
    loop {
        if buf.remaining() == 0 {
            // Full, with a partial frame: it goes on in a fresh buffer.
            let mut next = read().await.expect("a read class");
            next.extend_from_slice(&buf)
                .expect("a partial frame fits a fresh buffer");
            buf = next;
        }
        if rd.read_buf(&mut buf).await? == 0 {
            break;
        }
        while buf.len() >= 4 {
            let len = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
            if len > READ - 4 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "frame too long",
                ));
            }
            if buf.len() < 4 + len {
                break;
            }
            drop(buf.split_to(4)); // the length prefix
            let frame = buf.split_to(len);
            frames.fetch_add(1, Relaxed);
            queue.push(frame).await;
        }
        if buf.is_empty() {
            buf.clear(); // the whole buffer again, once its frames are gone
        }
    }
    queue.close();
    answering.await.expect("the answering task panicked")
}

/// Frame `i` of client `id`: its length varies from 0 to 999 bytes.
pub fn frame(id: usize, i: usize) -> Vec<u8> {
    let len = (i * 37 + id * 11) % 1000;
    (0..len).map(|j| (i + j + id) as u8).collect()
}

/// Sends `n` frames and checks every answer.
pub async fn client(addr: std::net::SocketAddr, id: usize, n: usize) -> std::io::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    let (mut rd, mut wr) = stream.into_split();
    let send = tokio::spawn(async move {
        for i in 0..n {
            let f = frame(id, i);
            wr.write_all(&(f.len() as u32).to_be_bytes()).await?;
            wr.write_all(&f).await?;
        }
        wr.shutdown().await
    });
    for i in 0..n {
        let f = frame(id, i);
        let mut answer = [0u8; 8];
        rd.read_exact(&mut answer).await?;
        assert_eq!(
            answer[..4],
            (f.len() as u32).to_be_bytes(),
            "client {id} frame {i}"
        );
        assert_eq!(
            answer[4..],
            checksum(&f).to_be_bytes(),
            "client {id} frame {i}"
        );
    }
    assert_eq!(rd.read(&mut [0u8; 1]).await?, 0, "one answer per frame");
    send.await.expect("the sender panicked")
}

#[allow(dead_code)] // the tests use the functions above, not `main`
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let per_client: usize = std::env::args().nth(1).map_or(Ok(2000), |n| n.parse())?;
    let clients = 8;
    let pool = pool();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let frames = Arc::new(AtomicU64::new(0));
    let server = {
        let (pool, frames) = (pool.clone(), Arc::clone(&frames));
        tokio::spawn(async move {
            let mut conns = Vec::new();
            for _ in 0..clients {
                let (stream, _) = listener.accept().await?;
                conns.push(tokio::spawn(connection(
                    pool.clone(),
                    stream,
                    Arc::clone(&frames),
                )));
            }
            for c in conns {
                c.await.expect("a connection panicked")?;
            }
            std::io::Result::Ok(())
        })
    };
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|id| tokio::spawn(client(addr, id, per_client)))
        .collect();
    for t in tasks {
        t.await??;
    }
    server.await??;
    let took = start.elapsed();
    println!(
        "{} frames from {clients} clients in {:.0} ms, every answer checked",
        frames.load(Relaxed),
        took.as_secs_f64() * 1e3
    );
    for class in pool.class_stats() {
        let s = class.stats;
        println!(
            "class {:>5} B: capacity {:>3}, high water {:>3}, in use {}",
            class.buffer_size, s.capacity, s.high_water, s.in_use
        );
    }
    assert_eq!(pool.stats().in_use, 0, "every buffer is back");
    Ok(())
}
