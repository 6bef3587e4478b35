//! What every contender implements: [`Candidate`], the typed trait the hot
//! loops are generic over, and [`Contender`], its object-safe face that the
//! roster, the CLI and the criterion benches hold in a `Box<dyn _>`.
//!
//! The split keeps dynamic dispatch out of the measured loops: each scenario
//! is monomorphised for each candidate, and the trait object is crossed once
//! per batch, not once per buffer.

use std::time::Duration;

use crate::runner;

/// Bytes in every buffer the shoot-out hands out.
pub const SIZE: usize = 4096;

/// What a "touch" writes: 64 bytes, one cache line, at the buffer's start.
pub const TOUCH: [u8; 64] = [0xA5; 64];

/// Buffers every pool holds (or may grow to): more than any scenario keeps
/// out at once (the 64-buffer window; the channel's 1024 plus the two in
/// the hands of the producer and the consumer), so no pool runs dry.
pub const POOL_CAPACITY: usize = 4096;

/// A way to get a 4096-byte buffer and give it back.
///
/// `release` may run on another thread than the `acquire` that produced the
/// buffer (scenario d), so buffers are `Send` and the candidate `Sync`.
pub trait Candidate: Send + Sync + 'static {
    /// The buffer handed out: an RAII guard, a boxed slice, a raw allocation.
    type Buf: Send + 'static;

    /// The label used in tables, JSON and charts.
    fn name(&self) -> String;

    /// Takes a buffer of at least [`SIZE`] bytes.
    ///
    /// # Panics
    ///
    /// If the candidate cannot provide one (an exhausted fixed-size pool):
    /// with a message that names the candidate, never by returning a buffer
    /// that is not there.
    fn acquire(&self) -> Self::Buf;

    /// The work done with a buffer in the timed loops: write [`TOUCH`] at its
    /// start (the seed's `Vec::with_capacity` baseline writes nothing).
    fn touch(buf: &mut Self::Buf);

    /// Gives the buffer back; from any thread.
    fn release(&self, buf: Self::Buf);

    /// Writes `byte` into every one of the buffer's [`SIZE`] bytes and
    /// returns them: proof, for the tests, that the whole buffer is there
    /// and writable.
    fn fill(buf: &mut Self::Buf, byte: u8) -> &[u8];
}

/// The object-safe face of a [`Candidate`]: one method per scenario, each
/// running a whole batch in a loop monomorphised for the candidate.
///
/// Every `Candidate` is a `Contender` through a blanket implementation.
pub trait Contender: Send + Sync {
    /// The candidate's label.
    fn name(&self) -> String;

    /// Scenario a: `iters` round trips (acquire, touch, release) on this
    /// thread; the time they took.
    fn round_trip(&self, iters: u64) -> Duration;

    /// Scenario b: with 64 buffers held, `iters` times acquire a new one and
    /// release the oldest; the time the loop took (filling and draining the
    /// window is not timed).
    fn window(&self, iters: u64) -> Duration;

    /// Scenario c: `threads` threads each do `iters` round trips, started
    /// together on a barrier, `reps` times; the wall time of each repetition
    /// (the slowest thread's).
    fn parallel(&self, threads: usize, iters: u64, reps: usize) -> Vec<Duration>;

    /// Scenario d: one thread acquires, touches and sends `iters` buffers
    /// over a bounded channel, another receives and releases them, `reps`
    /// times; the time of each repetition, seen by the receiver.
    fn handoff(&self, iters: u64, reps: usize) -> Vec<Duration>;

    /// Acquires a buffer, fills all of it with `byte`, checks it and releases
    /// it; an error says what was wrong. Used by the tests.
    fn check(&self, byte: u8) -> Result<(), String>;
}

impl<C: Candidate> Contender for C {
    fn name(&self) -> String {
        Candidate::name(self)
    }

    fn round_trip(&self, iters: u64) -> Duration {
        runner::round_trip(self, iters)
    }

    fn window(&self, iters: u64) -> Duration {
        runner::window(self, iters)
    }

    fn parallel(&self, threads: usize, iters: u64, reps: usize) -> Vec<Duration> {
        runner::parallel(self, threads, iters, reps)
    }

    fn handoff(&self, iters: u64, reps: usize) -> Vec<Duration> {
        runner::handoff(
            || {
                let mut buf = self.acquire();
                C::touch(&mut buf);
                buf
            },
            |buf| self.release(buf),
            iters,
            reps,
        )
    }

    fn check(&self, byte: u8) -> Result<(), String> {
        let mut buf = self.acquire();
        let bytes = C::fill(&mut buf, byte);
        let result = if bytes.len() < SIZE {
            Err(format!("{} bytes, expected {SIZE}", bytes.len()))
        } else if let Some(i) = bytes.iter().position(|&b| b != byte) {
            Err(format!(
                "byte {i} reads {:#x} after filling with {byte:#x}",
                bytes[i]
            ))
        } else {
            Ok(())
        };
        C::touch(&mut buf);
        self.release(buf);
        result
    }
}
