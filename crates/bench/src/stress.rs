//! The soak: `arenapool stress --seconds N --threads T`.
//!
//! T threads hammer one growable pool with a random mix of operations for N
//! seconds: acquire (non-blocking, blocking with a timeout, and `.await` on
//! a plain executor), release, hand-off to the next thread over a channel,
//! freeze into `SharedBuf` views, with clones sent across as views or as
//! `bytes::Bytes`, and
//! growth (the pool starts small and may double up to a limit).
//!
//! Every holder stamps its buffer with a serial number that no one else
//! uses, and checks the stamp (and the bytes after it) whenever the buffer
//! changes hands or goes back: a buffer with two owners, or one that
//! someone else wrote into, is a *violation*. At the end every thread
//! drains what it holds, and the pool's statistics must add up: nothing in
//! use, nobody waiting, every buffer acquirable once, with distinct
//! indices, and the capacity within its limit.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use arenapool::{OwnedBuf, Pool, SharedBuf, Stats};
use bytes::Bytes;
use serde::Serialize;

/// Buffer size of the soak's pool.
pub const STRESS_BUFFER: usize = 256;
/// Buffers the pool starts with.
pub const STRESS_CAPACITY: usize = 8;
/// Buffers it may grow to.
pub const STRESS_LIMIT: usize = 32;
/// Most buffers one thread holds at a time.
const HOLD: usize = 12;

/// What a soak run did and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StressReport {
    /// Worker threads.
    pub threads: usize,
    /// How long the workers ran.
    pub elapsed: Duration,
    /// Operations done, all kinds together.
    pub ops: u64,
    /// Acquires (all three ways).
    pub acquires: u64,
    /// Acquires that found the pool exhausted (`try_acquire`) or timed
    /// out: expected under load, not violations.
    pub exhausted: u64,
    /// Buffers handed to another thread.
    pub handoffs: u64,
    /// Buffers frozen into `SharedBuf` views.
    pub freezes: u64,
    /// Ownership or consistency violations: must be 0.
    pub violations: u64,
    /// The first few violations, described.
    pub violation_notes: Vec<String>,
    /// Buffers the pool had grown to when the workers stopped.
    pub final_capacity: usize,
    /// Its segments then (growth steps + 1).
    pub final_segments: usize,
}

impl StressReport {
    /// One line per fact, for the terminal.
    pub fn summary(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let mut s = format!(
            "{} threads, {:.1} s: {} ops ({:.2} M ops/s): {} acquires ({} exhausted or timed out), \
             {} hand-offs, {} freezes; pool ended at {} buffers in {} segments\nviolations: {}",
            self.threads,
            secs,
            self.ops,
            self.ops as f64 / secs / 1e6,
            self.acquires,
            self.exhausted,
            self.handoffs,
            self.freezes,
            self.final_capacity,
            self.final_segments,
            self.violations,
        );
        for note in &self.violation_notes {
            s.push_str("\n  ");
            s.push_str(note);
        }
        s
    }
}

/// What travels between threads: a held buffer, or a frozen one's clone
/// (a view, or a view turned into `Bytes`).
enum Parcel {
    Buf(OwnedBuf, u64),
    View(SharedBuf, u64),
    Frozen(Bytes, u64),
}

struct Shared {
    pool: Pool,
    serial: AtomicU64,
    stop: AtomicBool,
    violations: AtomicU64,
    notes: std::sync::Mutex<Vec<String>>,
}

impl Shared {
    fn violation(&self, note: String) {
        self.violations.fetch_add(1, Relaxed);
        let mut notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        if notes.len() < 8 {
            notes.push(note);
        }
    }

    /// Writes a fresh stamp (serial + a fill derived from it) and returns it.
    fn stamp(&self, buf: &mut OwnedBuf) -> u64 {
        let serial = self.serial.fetch_add(1, Relaxed);
        let len = 8 + fill_len(serial);
        let written = match buf.as_full_mut().get_mut(..len) {
            Some(area) => {
                area[..8].copy_from_slice(&serial.to_le_bytes());
                area[8..].fill(serial as u8);
                buf.set_len(len).is_ok()
            }
            None => false,
        };
        if !written {
            self.violation(format!("buffer {} refused a {len}-byte stamp", buf.index()));
        }
        serial
    }

    /// Checks that `data` still carries stamp `serial`.
    fn check(&self, data: &[u8], serial: u64, what: &str) {
        let fill = fill_len(serial);
        let good = data.len() == 8 + fill
            && data[..8] == serial.to_le_bytes()
            && data[8..].iter().all(|&b| b == serial as u8);
        if !good {
            self.violation(format!(
                "{what}: stamp {serial} lost (len {}, head {:?})",
                data.len(),
                &data[..data.len().min(8)]
            ));
        }
    }
}

fn fill_len(serial: u64) -> usize {
    (serial % (STRESS_BUFFER as u64 - 8)) as usize
}

/// A small xorshift generator: the soak needs cheap, varied choices, not
/// statistical quality.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[derive(Default)]
struct Counts {
    ops: u64,
    acquires: u64,
    exhausted: u64,
    handoffs: u64,
    freezes: u64,
}

fn worker(
    id: usize,
    shared: &Shared,
    inbox: &mpsc::Receiver<Parcel>,
    next: &mpsc::SyncSender<Parcel>,
) -> Counts {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut held: Vec<(OwnedBuf, u64)> = Vec::with_capacity(HOLD);
    let mut frozen: Vec<(SharedBuf, u64)> = Vec::new();
    let mut c = Counts::default();
    let pool = &shared.pool;
    while !shared.stop.load(Relaxed) {
        c.ops += 1;
        // Take in what others sent, checking it on arrival.
        while let Ok(parcel) = inbox.try_recv() {
            match parcel {
                Parcel::Buf(buf, serial) => {
                    shared.check(&buf, serial, "handed-off buffer");
                    if held.len() < HOLD {
                        held.push((buf, serial));
                    }
                }
                Parcel::View(view, serial) => shared.check(&view, serial, "frozen view"),
                Parcel::Frozen(bytes, serial) => shared.check(&bytes, serial, "frozen clone"),
            }
        }
        match rng.below(100) {
            // Acquire, three ways.
            0..=39 if held.len() < HOLD => {
                c.acquires += 1;
                let got = match rng.below(3) {
                    0 => pool.try_acquire_owned(),
                    1 => pool.acquire_owned_blocking(Duration::from_millis(2)).ok(),
                    // The async acquire, polled once: if it has to wait, it
                    // is cancelled (a buffer handed to it meanwhile must
                    // pass on to the next waiter).
                    _ => {
                        let waker = futures::task::noop_waker();
                        let mut cx = std::task::Context::from_waker(&waker);
                        let mut wait = pool.acquire_owned();
                        match std::pin::Pin::new(&mut wait).poll(&mut cx) {
                            std::task::Poll::Ready(buf) => Some(buf),
                            std::task::Poll::Pending => None,
                        }
                    }
                };
                match got {
                    Some(mut buf) => {
                        let serial = shared.stamp(&mut buf);
                        held.push((buf, serial));
                    }
                    None => c.exhausted += 1,
                }
            }
            // Release, checking the stamp first.
            0..=74 if !held.is_empty() => {
                let i = rng.below(held.len() as u64) as usize;
                let (buf, serial) = held.swap_remove(i);
                shared.check(&buf, serial, "release");
                drop(buf);
            }
            // Hand a buffer to the next thread.
            75..=86 if !held.is_empty() => {
                let (buf, serial) = held.swap_remove(0);
                match next.try_send(Parcel::Buf(buf, serial)) {
                    Ok(()) => c.handoffs += 1,
                    Err(mpsc::TrySendError::Full(Parcel::Buf(buf, serial)))
                    | Err(mpsc::TrySendError::Disconnected(Parcel::Buf(buf, serial))) => {
                        held.push((buf, serial));
                    }
                    Err(_) => {}
                }
            }
            // Freeze: keep a slice, send a clone.
            87..=94 if !held.is_empty() => {
                let (buf, serial) = held.swap_remove(0);
                let view = buf.freeze();
                c.freezes += 1;
                let parcel = if rng.below(2) == 0 {
                    Parcel::View(view.clone(), serial)
                } else {
                    Parcel::Frozen(Bytes::from(view.clone()), serial)
                };
                let _ = next.try_send(parcel);
                if rng.below(2) == 0 {
                    frozen.push((view, serial));
                }
            }
            // Drop frozen bytes (the buffer returns when the last goes).
            _ => {
                if let Some((bytes, serial)) = frozen.pop() {
                    shared.check(&bytes, serial, "frozen bytes");
                }
            }
        }
        if frozen.len() > HOLD {
            frozen.clear();
        }
    }
    for (buf, serial) in held {
        shared.check(&buf, serial, "final release");
    }
    for (bytes, serial) in frozen {
        shared.check(&bytes, serial, "final frozen");
    }
    c
}

/// Runs the soak for `duration` on `threads` threads; `tick` is called about
/// every 100 ms with the elapsed fraction (for a progress bar).
pub fn stress(duration: Duration, threads: usize, tick: impl Fn(f64)) -> StressReport {
    let threads = threads.max(1);
    let pool = Pool::builder()
        .buffer_size(STRESS_BUFFER)
        .capacity(STRESS_CAPACITY)
        .grow_to(STRESS_LIMIT)
        .cache_size(8)
        .build()
        .expect("the soak's pool settings are valid");
    let shared = Shared {
        pool: pool.clone(),
        serial: AtomicU64::new(1),
        stop: AtomicBool::new(false),
        violations: AtomicU64::new(0),
        notes: std::sync::Mutex::new(Vec::new()),
    };
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..threads)
        .map(|_| mpsc::sync_channel::<Parcel>(HOLD))
        .unzip();
    let start = Instant::now();
    let (counts, receivers): (Vec<Counts>, Vec<_>) = std::thread::scope(|s| {
        let workers: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(id, inbox)| {
                let next = senders[(id + 1) % threads].clone();
                let shared = &shared;
                s.spawn(move || (worker(id, shared, &inbox, &next), inbox))
            })
            .collect();
        while start.elapsed() < duration {
            std::thread::sleep(Duration::from_millis(100).min(duration));
            tick((start.elapsed().as_secs_f64() / duration.as_secs_f64()).min(1.0));
        }
        shared.stop.store(true, Relaxed);
        workers
            .into_iter()
            .filter_map(|w| match w.join() {
                Ok(done) => Some(done),
                Err(_) => {
                    shared.violation("a worker panicked".into());
                    None
                }
            })
            .unzip()
    });
    let elapsed = start.elapsed();
    // Parcels still in flight: check and release them.
    drop(senders);
    for inbox in &receivers {
        while let Ok(parcel) = inbox.try_recv() {
            match parcel {
                Parcel::Buf(buf, serial) => shared.check(&buf, serial, "in-flight buffer"),
                Parcel::View(view, serial) => shared.check(&view, serial, "in-flight view"),
                Parcel::Frozen(bytes, serial) => shared.check(&bytes, serial, "in-flight clone"),
            }
        }
    }
    drop(receivers);
    let grown = pool.stats();
    check_final(&shared, &grown);

    let mut report = StressReport {
        threads,
        elapsed,
        violations: 0,
        ..StressReport::default()
    };
    for c in counts {
        report.ops += c.ops;
        report.acquires += c.acquires;
        report.exhausted += c.exhausted;
        report.handoffs += c.handoffs;
        report.freezes += c.freezes;
    }
    report.final_capacity = grown.capacity;
    report.final_segments = grown.segments;
    report.violations = shared.violations.load(Relaxed);
    report.violation_notes =
        std::mem::take(&mut *shared.notes.lock().unwrap_or_else(|e| e.into_inner()));
    report
}

/// The end-of-run consistency checks (see the module docs).
fn check_final(shared: &Shared, s: &Stats) {
    let pool = &shared.pool;
    if s.in_use != 0 || s.waiting != 0 {
        shared.violation(format!(
            "after the run: {} in use, {} waiting",
            s.in_use, s.waiting
        ));
    }
    let doubled = (s.capacity / STRESS_CAPACITY).is_power_of_two()
        && s.capacity.is_multiple_of(STRESS_CAPACITY);
    if s.capacity > STRESS_LIMIT || !doubled || s.max_capacity != STRESS_LIMIT {
        shared.violation(format!("capacity {} (limit {STRESS_LIMIT})", s.capacity));
    }
    let all: Vec<OwnedBuf> = std::iter::from_fn(|| pool.try_acquire_owned())
        .take(STRESS_LIMIT + 1)
        .collect();
    let distinct: HashSet<u32> = all.iter().map(|b| b.index()).collect();
    let now = pool.stats().capacity;
    if all.len() != now || distinct.len() != all.len() {
        shared.violation(format!(
            "{} buffers acquirable ({} distinct) of {now}",
            all.len(),
            distinct.len()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_soak_finds_no_violation() {
        let r = stress(
            Duration::from_millis(if cfg!(miri) { 50 } else { 700 }),
            3,
            |_| {},
        );
        assert_eq!(r.violations, 0, "{}", r.summary());
        assert!(r.acquires > 0 && r.ops >= r.acquires, "{}", r.summary());
        assert!(r.final_capacity >= STRESS_CAPACITY);
    }

    /// The check is not vacuous: a buffer someone else wrote into, or a
    /// wrong length, is a violation.
    #[test]
    fn the_ownership_check_catches_a_foreign_write() {
        let pool = Pool::new(STRESS_BUFFER, 2).unwrap();
        let shared = Shared {
            pool: pool.clone(),
            serial: AtomicU64::new(7),
            stop: AtomicBool::new(false),
            violations: AtomicU64::new(0),
            notes: std::sync::Mutex::new(Vec::new()),
        };
        let mut buf = pool.try_acquire_owned().unwrap();
        let serial = shared.stamp(&mut buf);
        shared.check(&buf, serial, "clean");
        assert_eq!(shared.violations.load(Relaxed), 0);
        let last = buf.len() - 1;
        buf[last] ^= 1;
        shared.check(&buf, serial, "someone wrote");
        buf.truncate(3);
        shared.check(&buf, serial, "truncated");
        assert_eq!(shared.violations.load(Relaxed), 2);
    }
}
