//! A TCP echo server on tokio that reads every chunk into a pooled buffer.
//!
//! ```text
//! cargo run --release -p arenapool --example tcp_echo                 # self-check: serve + 64 clients, then exit
//! cargo run --release -p arenapool --example tcp_echo -- 127.0.0.1:7000   # serve until Ctrl-C
//! ```
//!
//! Each connection waits for a buffer with `pool.acquire_owned().await`
//! (so 10,000 connections share the pool's 256 buffers instead of holding
//! one each), reads into it through `bytes::BufMut` (`read_buf`), writes it
//! back and drops it, which returns it to the pool. No unsafe code, no
//! per-read allocation.

use std::net::SocketAddr;

use arenapool::Pool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Echoes one connection until the peer closes it.
pub async fn echo(pool: Pool, mut stream: TcpStream) -> std::io::Result<u64> {
    let mut echoed = 0;
    loop {
        let mut buf = pool.acquire_owned().await;
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(echoed);
        }
        stream.write_all(&buf).await?;
        echoed += buf.len() as u64;
    }
}

/// Accepts connections for ever, one task each.
pub async fn serve(pool: Pool, listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let pool = pool.clone();
        tokio::spawn(async move {
            if let Err(e) = echo(pool, stream).await {
                eprintln!("connection failed: {e}");
            }
        });
    }
}

/// One client: sends `messages` messages of `size` bytes, checks every
/// echoed byte, returns the bytes it got back.
pub async fn client(
    addr: SocketAddr,
    id: u8,
    messages: usize,
    size: usize,
) -> std::io::Result<u64> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut expected = Vec::with_capacity(size);
    let mut got = vec![0u8; size];
    for m in 0..messages {
        expected.clear();
        expected.extend((0..size).map(|i| id ^ (m as u8) ^ (i as u8)));
        stream.write_all(&expected).await?;
        stream.read_exact(&mut got).await?;
        if got != expected {
            return Err(std::io::Error::other(format!(
                "client {id}: message {m} came back wrong"
            )));
        }
    }
    Ok((messages * size) as u64)
}

#[allow(dead_code)] // the tests include this file for its functions
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::builder().buffer_size(4096).capacity(256).build()?;
    if let Some(addr) = std::env::args().nth(1) {
        let listener = TcpListener::bind(&addr).await?;
        println!("echoing on {}", listener.local_addr()?);
        return Ok(serve(pool, listener).await?);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(pool.clone(), listener));
    let clients: Vec<_> = (0..64u8)
        .map(|id| tokio::spawn(client(addr, id, 100, 1000)))
        .collect();
    let mut total = 0;
    for c in clients {
        total += c.await??;
    }
    let s = pool.stats();
    println!(
        "64 clients echoed {total} bytes through {addr}; pool: {} buffers, high water {}, {} waits",
        s.capacity, s.high_water, s.waits
    );
    Ok(())
}
