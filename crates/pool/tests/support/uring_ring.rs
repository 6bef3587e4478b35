//! What the io_uring suites share: a ring that skips where the kernel
//! refuses io_uring, and waiting for completions.

#![allow(dead_code)] // each suite uses what it needs

use std::time::Duration;

use arenapool::Pool;
use arenapool::uring::{Completion, Ring, UringError};

#[path = "skip.rs"]
mod skip;

/// A ring, or `None` (after [`skip::skip`]) when the kernel refuses
/// io_uring (`ENOSYS`, `EPERM`).
pub fn ring(pool: &Pool, fixed: bool) -> Option<Ring> {
    let made = if fixed {
        Ring::new(pool.clone(), 32)
    } else {
        Ring::without_fixed_buffers(pool.clone(), 32)
    };
    match made {
        Ok(r) => Some(r),
        Err(UringError::Setup(e))
            if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) =>
        {
            skip::skip(format_args!("the kernel refuses io_uring ({e})"));
            None
        }
        Err(e) => panic!("cannot build the ring: {e}"),
    }
}

/// Waits for `n` completions (a hang guard of about 10 s, not a timing
/// assertion).
pub fn collect(ring: &mut Ring, n: usize) -> Vec<Completion> {
    let mut out = Vec::new();
    for _ in 0..100 {
        ring.submit_and_wait_timeout(1, Duration::from_millis(100))
            .unwrap();
        while let Some(c) = ring.next_completion() {
            out.push(c);
        }
        if out.len() >= n {
            return out;
        }
    }
    panic!("only {} of {n} completions arrived", out.len());
}

pub fn one(ring: &mut Ring) -> Completion {
    let mut v = collect(ring, 1);
    assert_eq!(v.len(), 1, "one completion expected: {v:?}");
    v.pop().unwrap()
}
