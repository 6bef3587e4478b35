//! A deliberate data race on a pool buffer while tokio receives into it,
//! for ThreadSanitizer to report. `bin/sanitize.sh thread` runs it (it is
//! ignored otherwise) with the project's suppressions, and fails unless
//! TSan reports the race: the suppression for tokio's own I/O driver
//! (`bin/tsan-suppressions.txt`) must not hide a race on our buffers.
//! `UdpSocket::recv_buf_from` receives inside
//! `tokio::runtime::io::registration::Registration::async_io`, so a rule
//! matching any `tokio::runtime::io` frame of either stack would hide it.

#![cfg(feature = "bytes")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread;

use arenapool::Pool;

/// A pointer into a pool buffer, sent to another thread to race on.
struct Racy(*mut u8);

// SAFETY: none in the sense of soundness: this carries the pointer for the
// data race the test exists to commit, and only ThreadSanitizer runs it.
unsafe impl Send for Racy {}

#[test]
#[ignore = "a deliberate data race: bin/sanitize.sh thread runs it and expects ThreadSanitizer to report it"]
fn a_race_on_a_pool_buffer_during_a_tokio_receive_is_reported() {
    let pool = Pool::new(4096, 2).unwrap();
    let mut buf = pool.try_acquire_owned().unwrap();
    let racy = Racy(buf.as_full_mut().as_mut_ptr());
    // Relaxed: it orders nothing for TSan, so the receive below and the
    // write on the other thread stay unordered: a data race.
    let read_done = Arc::new(AtomicBool::new(false));
    let racer = {
        let read_done = Arc::clone(&read_done);
        thread::spawn(move || {
            let racy = racy;
            while !read_done.load(Relaxed) {
                std::hint::spin_loop();
            }
            // SAFETY: none: a write to the byte the receive below filled,
            // not ordered with it (the race for TSan to report).
            unsafe { racy.0.write_volatile(0xAA) };
        })
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    rt.block_on(async {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = socket.local_addr().unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"racy", to).unwrap();
        let (n, _) = socket.recv_buf_from(&mut buf).await.unwrap();
        assert_eq!(n, 4);
    });
    read_done.store(true, Relaxed);
    racer.join().unwrap();
    drop(buf);
}
