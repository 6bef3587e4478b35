//! Framing allocates nothing: freezing, cloning, slicing, splitting and
//! dropping views, and the `frames` example's server per frame once its
//! connections run. This binary installs the counting global allocator;
//! the server runs on a thread of its own (a single-threaded runtime, so
//! every server task is counted there and no client is), and its thread's
//! allocations are counted over 20,000 frames after a warm-up.
//!
//! Every connection stays open through the counted window: a connection
//! that ends is torn down by tokio, which allocates (deregistering its
//! socket: one 32-byte allocation, failing this test once in CI and once
//! in 40 local runs, whose backtrace goes through tokio's
//! `RegistrationSet::deregister`). A client ends only after all its own
//! frames were answered, so each client sends more frames than the warm-up
//! and the window together, with a margin for the watcher's 1 ms polling.

#![cfg(all(feature = "async", feature = "bytes"))]

use std::alloc::System;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use arenapool::Pool;
use arenapool_alloc::Counting;

#[global_allocator]
static ALLOC: Counting<System> = Counting::new(System);

#[path = "../examples/frames.rs"]
#[allow(dead_code)]
mod frames;

const CLIENTS: usize = 8;
const PER_CLIENT: usize = 40_000;
const WARM: u64 = 10_000;
const COUNTED: u64 = 20_000;

#[test]
#[cfg_attr(miri, ignore = "TCP sockets and a tokio runtime")]
fn frames_cost_no_heap_allocation_in_steady_state() {
    assert!(arenapool_alloc::is_counting() || cfg!(miri));
    // Sized for the load, so that no growth (an arena allocation) falls
    // into the window.
    let pool = Pool::builder()
        .class(frames::REPLY, 512)
        .class(frames::READ, 512)
        .build()
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let server = {
        let (pool, count) = (pool.clone(), Arc::clone(&count));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let mut conns = Vec::new();
                for _ in 0..CLIENTS {
                    let (stream, _) = listener.accept().await.unwrap();
                    conns.push(tokio::spawn(frames::connection(
                        pool.clone(),
                        stream,
                        Arc::clone(&count),
                    )));
                }
                // Every connection runs: count from the warm-up on.
                while count.load(Relaxed) < WARM {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let (start, from) = (arenapool_alloc::thread_stats(), count.load(Relaxed));
                while count.load(Relaxed) < from + COUNTED {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let (end, to) = (arenapool_alloc::thread_stats(), count.load(Relaxed));
                let open = conns.iter().filter(|c| !c.is_finished()).count();
                for c in conns {
                    c.await.unwrap().unwrap();
                }
                (end.since(&start), to - from, open)
            })
        })
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| tokio::spawn(frames::client(addr, id, PER_CLIENT)))
            .collect();
        for c in clients {
            c.await.unwrap().unwrap();
        }
    });
    let (window, counted, open) = server.join().unwrap();
    assert!(counted >= COUNTED, "{counted}");
    assert_eq!(
        open, CLIENTS,
        "a connection ended inside the counted window"
    );
    assert_eq!(
        (window.allocations, window.reallocations),
        (0, 0),
        "the server allocated over {counted} frames: {window:?}"
    );
    assert_eq!(pool.stats().in_use, 0, "every buffer is back");
}

#[test]
fn views_allocate_nothing() {
    let pool = Pool::new(4096, 4).unwrap();
    let data = [7u8; 64];
    // This thread's cache of the pool is made (allocated) at its first use.
    drop(pool.try_acquire_owned());
    let before = arenapool_alloc::thread_stats();
    for _ in 0..if cfg!(miri) { 50 } else { 10_000 } {
        let mut buf = pool.try_acquire_owned().unwrap();
        buf.extend_from_slice(&data).unwrap();
        let front = buf.split_to(16);
        let frozen = buf.freeze();
        let copy = frozen.clone();
        let part = copy.slice(8..);
        let mut back = part.try_into_mut().unwrap_err();
        let tail = back.split_off(10);
        std::hint::black_box((&front, &frozen, &back, &tail));
    }
    let d = arenapool_alloc::thread_stats().since(&before);
    assert!(arenapool_alloc::is_counting());
    assert_eq!((d.allocations, d.reallocations), (0, 0), "{d:?}");
    assert_eq!(pool.stats().in_use, 0);
}
