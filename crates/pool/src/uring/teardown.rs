//! Dropping a [`Ring`]: cancel everything, wait for every completion, and
//! only then give memory back; when in doubt, leak.
//!
//! # Order, and why user code runs last
//!
//! 1. **Drain.** Queue cancels for everything in flight and reap
//!    completions until no operation is live. Every buffer a completion
//!    hands back is *kept* (in `reaped`), not dropped: dropping a buffer
//!    returns it to the pool, and a release may run a waiter's waker, user
//!    code that may panic. A panic here would unwind out of `drop` with
//!    operations still in flight and free what the kernel may still write.
//!    Nothing in the drain calls into the pool (refills are off while
//!    draining).
//! 2. **Unregister** every provided buffer ring. One that the kernel does
//!    not let go of is leaked with its buffers.
//! 3. **Give back**: the provided rings are freed and their buffers, then
//!    the reaped ones, returned to the pool. Wakers may run and panic now:
//!    no operation is in flight and no ring is registered, so unwinding
//!    from here frees only memory the kernel no longer knows. (The fixed
//!    buffers stay registered until the ring's descriptor closes, after
//!    `drop`; with nothing in flight the kernel does not touch them.)
//!
//! The drain gives up, and everything the kernel might still touch is
//! leaked instead of freed ([`leaked_teardowns`] counts it), when:
//!
//! * the kernel refuses to wait (`io_uring_enter` fails other than by
//!   `EINTR`, `EBUSY` or `EAGAIN`; for example a single-thread ring moved to
//!   another thread);
//! * the kernel dropped a completion (the completion queue's overflow
//!   counter is non-zero: without `IORING_FEAT_NODROP`, or when its backlog
//!   could not be allocated), so the drain cannot know which operations
//!   ended;
//! * no operation completes for [`PATIENCE`] although cancels were queued.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use io_uring::{opcode, types};

use super::{CANCEL_TAG, Ring};
use crate::handle::OwnedBuf;

/// How long a drain waits without any operation completing before it
/// gives up and leaks.
pub(super) const PATIENCE: Duration = Duration::from_secs(10);
/// One wait of the drain.
const TICK: Duration = Duration::from_millis(100);

/// Teardowns that leaked, process-wide.
static LEAKED: AtomicU64 = AtomicU64::new(0);

/// How many [`Ring`]s, in this process, could not confirm that the kernel
/// was done with their memory when dropped, and so leaked their buffers,
/// their provided rings and their pool instead of freeing them (see the
/// module docs of [`uring`](super)). Should stay 0; a server can export it.
pub fn leaked_teardowns() -> u64 {
    LEAKED.load(Ordering::Relaxed)
}

/// Why a drain stopped before every operation ended.
#[derive(Debug)]
enum Stuck {
    /// `io_uring_enter` failed.
    Enter,
    /// The kernel dropped completions.
    Overflow,
    /// Nothing completed for [`PATIENCE`].
    Silent,
}

impl Ring {
    /// Cancels everything in flight and waits for every completion,
    /// keeping the buffers they hand back in `reaped` (nothing here calls
    /// into the pool). `Err` if it cannot know that the kernel is done;
    /// the caller must then leak what the kernel may still touch.
    fn drain(&mut self, reaped: &mut Vec<OwnedBuf>) -> Result<(), Stuck> {
        self.draining = true;
        self.cancel_again = true;
        let ticks = PATIENCE.as_millis() / TICK.as_millis();
        let mut quiet = 0;
        while self.stats.in_flight > 0 {
            if self.ring.completion().overflow() > 0 {
                return Err(Stuck::Overflow);
            }
            if self.cancel_again {
                self.cancel_again = !self.push_cancels();
            }
            let before = (self.stats.in_flight, self.stats.completions);
            match self.wait_tick() {
                Ok(()) => {}
                // Interrupted, or the completion queue is full (emptied
                // below): try again.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)
                    ) => {}
                Err(_) => return Err(Stuck::Enter),
            }
            while let Some(c) = self.next_completion() {
                reaped.extend(c.buf);
            }
            if (self.stats.in_flight, self.stats.completions) == before {
                quiet += 1;
                if quiet >= ticks {
                    return Err(Stuck::Silent);
                }
            } else {
                quiet = 0;
            }
        }
        Ok(())
    }

    /// Submits and waits up to one [`TICK`] for a completion (or, on
    /// kernels without timed waits, until one arrives).
    fn wait_tick(&mut self) -> std::io::Result<()> {
        let ts = types::Timespec::from(TICK);
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => Ok(()),
            // No `IORING_FEAT_EXT_ARG` (before 5.11): wait without a limit.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                self.ring.submit_and_wait(1).map(drop)
            }
            Err(e) => Err(e),
        }
    }

    /// Queues cancels for everything in flight: one `ASYNC_CANCEL_ANY`, or
    /// one per operation where the kernel refused that. `false` if some
    /// could not be queued (to be tried again).
    fn push_cancels(&mut self) -> bool {
        if !self.cancel_any_failed {
            let any = opcode::AsyncCancel2::new(types::CancelBuilder::any())
                .build()
                .user_data(CANCEL_TAG);
            return self.push(&any).is_ok();
        }
        let mut all = true;
        for i in 0..self.ops.len() {
            let op = &self.ops[i];
            if op.live {
                let id = (u64::from(op.generation) << 32) | i as u64;
                let entry = opcode::AsyncCancel::new(id).build().user_data(CANCEL_TAG);
                all &= self.push(&entry).is_ok();
            }
        }
        all
    }

    /// Leaks everything the kernel may still touch: the table (buffers and
    /// boxed `msghdr`s), the provided rings and their buffers, and the pool
    /// with them.
    fn leak_all(&mut self) {
        LEAKED.fetch_add(1, Ordering::Relaxed);
        std::mem::forget(self.pool.clone());
        for op in std::mem::take(&mut self.ops) {
            std::mem::forget(op);
        }
        for g in std::mem::take(&mut self.groups) {
            g.leak();
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let mut reaped = Vec::with_capacity(self.stats.in_flight);
        if self.drain(&mut reaped).is_err() {
            self.leak_all();
            // The reaped buffers' operations did end: they may go back.
            drop(reaped);
            return;
        }
        // Nothing is in flight: no operation can pick a provided buffer.
        // Unregister them all before any buffer goes back (user code).
        let mut freed = Vec::with_capacity(self.groups.len());
        for g in std::mem::take(&mut self.groups) {
            if self.ring.submitter().unregister_buf_ring(g.group).is_ok() {
                freed.push(g);
            } else {
                LEAKED.fetch_add(1, Ordering::Relaxed);
                g.leak();
            }
        }
        // Only now may user code run: free the rings, returning their
        // buffers, then the buffers the drain reaped.
        drop(freed);
        drop(reaped);
        // The fixed buffers are unregistered when `self.ring` closes, right
        // after this; `self.pool` (a field after it) is released later.
    }
}
