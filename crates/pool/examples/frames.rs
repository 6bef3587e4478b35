//! Framing on pooled buffers: a tokio TCP server reads newline-delimited
//! frames into a pooled buffer, cuts each complete frame off the front with
//! `split_to` (a `SharedBuf`: no copy, no allocation), hands it to another
//! task, and keeps reading into the rest of the same buffer.
//!
//! ```text
//! cargo run --release -p arenapool --example frames            # self-check: 8 clients, then exit
//! cargo run --release -p arenapool --example frames -- 20000   # frames per client
//! ```
//!
//! The pool has two size classes: 4 KiB read buffers and 256-byte reply
//! buffers. A frame task answers with the frame's length and checksum in a
//! small buffer. When the read buffer is full and ends in a partial frame,
//! that tail is copied into a fresh read buffer: the frames already cut
//! keep the old one until their tasks drop them, and `clear` takes a
//! buffer whole again once no frame of it is alive. At the end every
//! buffer is back in the pool.

use std::time::Instant;

use arenapool::{OwnedBuf, Pool, SharedBuf};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const READ: usize = 4096;
const REPLY: usize = 256;

/// Answers one frame: its length and a checksum, in a small pooled buffer.
async fn answer(pool: &Pool, frame: SharedBuf) -> OwnedBuf {
    let mut reply = pool
        .acquire_owned_with_capacity(REPLY)
        .await
        .expect("the pool has a class of REPLY bytes");
    let sum = frame
        .iter()
        .fold(0u32, |s, &b| s.wrapping_mul(31).wrapping_add(u32::from(b)));
    use std::fmt::Write as _;
    writeln!(reply, "{} {sum:08x}", frame.len() - 1).expect("a short line fits");
    reply
}

/// Serves one connection: cuts frames and sends their answers back, in
/// order.
async fn serve(pool: Pool, stream: TcpStream) -> std::io::Result<u64> {
    let (mut rd, mut wr) = stream.into_split();
    // Answers travel to the writer in order, each as a task's result.
    let (tx, mut rx) = mpsc::channel::<tokio::task::JoinHandle<OwnedBuf>>(64);
    let writer = tokio::spawn(async move {
        while let Some(task) = rx.recv().await {
            let reply = task.await.expect("a frame task panicked");
            wr.write_all(&reply).await?;
        }
        std::io::Result::Ok(())
    });
    let mut frames = 0;
    let mut buf = pool
        .acquire_owned_with_capacity(READ)
        .await
        .expect("a read class");
    loop {
        if buf.remaining() == 0 {
            // Full: keep the partial frame, in a fresh buffer.
            let mut next = pool
                .acquire_owned_with_capacity(READ)
                .await
                .expect("a read class");
            next.extend_from_slice(&buf)
                .expect("a tail fits in a fresh buffer");
            buf = next;
        }
        if rd.read_buf(&mut buf).await? == 0 {
            break;
        }
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let frame = buf.split_to(end + 1);
            let pool = pool.clone();
            frames += 1;
            if tx
                .send(tokio::spawn(async move { answer(&pool, frame).await }))
                .await
                .is_err()
            {
                break;
            }
        }
        if buf.is_empty() {
            buf.clear(); // the whole buffer again, once its frames are gone
        }
    }
    drop(tx);
    writer.await.expect("the writer panicked")?;
    Ok(frames)
}

/// Sends `n` frames of varying length and checks every answer.
async fn client(addr: std::net::SocketAddr, id: usize, n: usize) -> std::io::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    let (rd, mut wr) = stream.into_split();
    let expected: Vec<String> = (0..n)
        .map(|i| {
            let len = (i * 7 + id) % 300;
            let line: Vec<u8> = (0..len).map(|j| b'a' + ((i + j) % 26) as u8).collect();
            let sum = line
                .iter()
                .fold(0u32, |s, &b| s.wrapping_mul(31).wrapping_add(u32::from(b)));
            let sum = sum.wrapping_mul(31).wrapping_add(u32::from(b'\n'));
            format!("{len} {sum:08x}")
        })
        .collect();
    let send = tokio::spawn(async move {
        for i in 0..n {
            let len = (i * 7 + id) % 300;
            let mut line: Vec<u8> = (0..len).map(|j| b'a' + ((i + j) % 26) as u8).collect();
            line.push(b'\n');
            wr.write_all(&line).await?;
        }
        wr.shutdown().await
    });
    let mut lines = BufReader::new(rd).lines();
    for want in &expected {
        let got = lines.next_line().await?.expect("an answer per frame");
        assert_eq!(&got, want, "client {id}");
    }
    assert!(lines.next_line().await?.is_none(), "one answer per frame");
    send.await.expect("the sender panicked")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let per_client: usize = std::env::args().nth(1).map_or(Ok(2000), |n| n.parse())?;
    let clients = 8;
    let pool = Pool::builder()
        .class(REPLY, 256)
        .growing_class(READ, 16, 64)
        .build()?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut total = 0;
            for _ in 0..clients {
                let (stream, _) = listener.accept().await?;
                total += 1;
                let pool = pool.clone();
                tokio::spawn(async move { serve(pool, stream).await });
            }
            std::io::Result::Ok(total)
        })
    };
    let start = Instant::now();
    let mut tasks = Vec::new();
    for id in 0..clients {
        tasks.push(tokio::spawn(client(addr, id, per_client)));
    }
    for t in tasks {
        t.await??;
    }
    server.await??;
    let took = start.elapsed();
    // The connection tasks end once their clients closed; let them go.
    for _ in 0..100 {
        if pool.stats().in_use == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let frames = clients * per_client;
    println!(
        "{frames} frames from {clients} clients in {:.0} ms, every answer checked",
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
