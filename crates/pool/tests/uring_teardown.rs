//! Dropping a `uring::Ring` while user code misbehaves: the kernel must
//! never write into a buffer after the pool handed it to a new owner.
//!
//! The reads here are `O_DIRECT` reads of several MiB from a file, which the
//! kernel cannot cancel quickly: they are still running while the ring is
//! dropped. A waiter whose waker panics sits on the pool, so the first
//! buffer the teardown gives back runs that waker.
//!
//! Each test skips (visibly, and as a failure in strict mode: see
//! `support/skip.rs`) only when the kernel refuses io_uring itself
//! (`ENOSYS`, `EPERM`) or the temp directory's file system refuses
//! `O_DIRECT`.

#![cfg(all(feature = "io-uring", feature = "async", target_os = "linux"))]

use std::future::Future;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use arenapool::Pool;
use arenapool::uring::{Ring, UringError};

#[path = "support/skip.rs"]
mod skip;

const BUF: usize = 4 << 20;
const BUFS: usize = 8;
const FILL: u8 = 0xAB;

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

struct Panics;

impl Wake for Panics {
    fn wake(self: Arc<Self>) {
        panic!("a waker that panics during the ring's teardown");
    }
}

/// A file of `BUFS * BUF` bytes of `FILL`, opened with `O_DIRECT`; `None`
/// (printed) where the file system refuses `O_DIRECT`.
fn direct_file() -> Option<(TempFile, std::fs::File)> {
    let path = std::env::temp_dir().join(format!("arenapool-teardown-{}", std::process::id()));
    let tmp = TempFile(path);
    let mut f = std::fs::File::create(&tmp.0).unwrap();
    let chunk = vec![FILL; BUF];
    for _ in 0..BUFS {
        f.write_all(&chunk).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&tmp.0)
    {
        Ok(f) => Some((tmp, f)),
        Err(e) => {
            skip::skip(format_args!("O_DIRECT refused in the temp directory ({e})"));
            None
        }
    }
}

/// The ring drops with `O_DIRECT` reads in flight and a waiter whose waker
/// panics. The panic reaches the caller of `drop`, but only after every
/// read ended: buffers that the pool hands out afterwards stay as their new
/// owner wrote them.
#[test]
fn a_waker_panicking_in_the_teardown_cannot_expose_a_buffer_the_kernel_writes() {
    let Some((_tmp, file)) = direct_file() else {
        return;
    };
    let pool = Pool::builder()
        .buffer_size(BUF)
        .capacity(BUFS)
        .alignment(4096)
        .build()
        .unwrap();
    let mut ring = match Ring::new(pool.clone(), 32) {
        Ok(r) => r,
        Err(UringError::Setup(e))
            if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) =>
        {
            skip::skip(format_args!("the kernel refuses io_uring ({e})"));
            return;
        }
        Err(e) => panic!("cannot build the ring: {e}"),
    };
    for i in 0..BUFS {
        let buf = pool.try_acquire_owned().unwrap();
        ring.read_fixed(&file, buf, (i * BUF) as u64)
            .map_err(|r| r.error)
            .unwrap();
    }
    ring.submit().unwrap();
    assert_eq!(pool.stats().in_use, BUFS);

    let waker = Waker::from(Arc::new(Panics));
    let mut waiting = pin!(pool.acquire_owned());
    assert!(
        waiting
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );

    let dropped = catch_unwind(AssertUnwindSafe(move || drop(ring)));
    assert!(dropped.is_err(), "the waker's panic reaches the caller");

    // Take every buffer (the waiter's too), overwrite it, and look again a
    // little later: a read still running would show up as `FILL` bytes.
    let granted = waiting
        .as_mut()
        .poll(&mut Context::from_waker(futures::task::noop_waker_ref()));
    let mut mine: Vec<_> = (0..BUFS).map_while(|_| pool.try_acquire_owned()).collect();
    if let std::task::Poll::Ready(b) = granted {
        mine.push(b);
    }
    assert_eq!(mine.len(), BUFS, "a buffer was lost: {:?}", pool.stats());
    for b in &mut mine {
        b.as_full_mut().fill(0);
    }
    std::thread::sleep(Duration::from_millis(200));
    let written: usize = mine
        .iter_mut()
        .map(|b| b.as_full_mut().iter().filter(|&&x| x == FILL).count())
        .sum();
    assert_eq!(
        written, 0,
        "the kernel wrote {written} bytes into buffers the pool had handed out again"
    );
}
