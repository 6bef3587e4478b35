//! The async acquire: on tokio and on `futures`' executor, in arrival order,
//! cancellation-safe, woken by releases into thread caches, and under load.
//!
//! No test bounds how long anything takes. Waits that must end are guarded
//! by a deadlock detector far beyond any plausible delay; fairness is
//! counted (overtakes), not timed.

#![cfg(feature = "async")]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arenapool::{OwnedBuf, Pool};

/// Deadlock detector, not a performance bound.
const STUCK: Duration = Duration::from_secs(60);

fn pool(capacity: usize) -> Pool {
    Pool::builder()
        .buffer_size(64)
        .capacity(capacity)
        .build()
        .unwrap()
}

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_time()
        .build()
        .unwrap()
}

/// Polls `fut` once with a waker that does nothing.
fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    let waker = futures::task::noop_waker();
    Pin::new(fut).poll(&mut Context::from_waker(&waker))
}

#[test]
fn acquire_returns_at_once_when_a_buffer_is_free() {
    let pool = pool(2);
    futures::executor::block_on(async {
        let mut a = pool.acquire().await;
        a.extend_from_slice(b"abc").unwrap();
        let b = pool.acquire_owned().await;
        assert_ne!(a.index(), b.index());
        assert_eq!(pool.stats().in_use, 2);
        assert_eq!(pool.stats().waits, 0);
    });
    assert_eq!(pool.stats().in_use, 0);
}

#[test]
fn acquire_waits_for_a_release_on_futures_executor() {
    let pool = pool(1);
    let held = pool.try_acquire_owned().unwrap();
    let idx = held.index();
    let mut fut = pool.acquire_owned();
    assert!(poll_once(&mut fut).is_pending());
    assert_eq!(pool.stats().waiting, 1);
    let releaser = std::thread::spawn(move || drop(held));
    let got = futures::executor::block_on(fut);
    assert_eq!(got.index(), idx);
    releaser.join().unwrap();
    assert_eq!(pool.stats().waiting, 0);
}

#[test]
fn acquire_waits_for_a_release_on_tokio() {
    let pool = pool(1);
    let rt = runtime(2);
    rt.block_on(async {
        let held = pool.acquire_owned().await;
        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move { pool.acquire_owned().await.index() }
        });
        while pool.stats().waiting == 0 {
            tokio::task::yield_now().await;
        }
        let idx = held.index();
        drop(held);
        let got = tokio::time::timeout(STUCK, waiter).await.expect("stuck");
        assert_eq!(got.unwrap(), idx);
    });
}

/// Waiters queued one after another are served in that order, even when
/// the later ones are polled first after each release.
#[test]
fn waiters_are_served_in_arrival_order() {
    const N: usize = 8;
    let pool = pool(1);
    let mut held = Some(pool.try_acquire_owned().unwrap());
    let mut futs: Vec<_> = (0..N).map(|_| Some(pool.acquire_owned())).collect();
    for fut in futs.iter_mut() {
        assert!(poll_once(fut.as_mut().unwrap()).is_pending());
    }
    assert_eq!(pool.stats().waiting, N);
    let mut order = Vec::new();
    for _ in 0..N {
        drop(held.take());
        // Latest arrivals first: they must not take the buffer.
        for (i, slot) in futs.iter_mut().enumerate().rev() {
            if let Some(fut) = slot
                && let Poll::Ready(buf) = poll_once(fut)
            {
                order.push(i);
                *slot = None;
                held = Some(buf);
            }
        }
    }
    assert_eq!(order, (0..N).collect::<Vec<_>>());
}

/// A caller that arrives while others wait does not take a buffer that is
/// released meanwhile, even with thread caches: it queues behind them.
#[test]
fn late_arrival_queues_behind_waiters() {
    let pool = pool(1);
    let held = pool.try_acquire_owned().unwrap();
    let mut early = pool.acquire_owned();
    assert!(poll_once(&mut early).is_pending());
    drop(held); // handed to `early`, not parked in this thread's cache
    let mut late = pool.acquire_owned();
    assert!(
        poll_once(&mut late).is_pending(),
        "the late caller overtook"
    );
    let Poll::Ready(buf) = poll_once(&mut early) else {
        panic!("the early waiter was not served");
    };
    drop(buf);
    assert!(poll_once(&mut late).is_ready());
}

/// Counts overtakes: acquires that arrived later but were served earlier.
/// Records are (arrival ticket, service ticket).
fn max_overtakes(records: &mut [(u64, u64)]) -> usize {
    // For each acquire in service order, count those already served that
    // arrived after it (a Fenwick tree over arrival tickets).
    records.sort_by_key(|&(_, served)| served);
    let n = records
        .iter()
        .map(|&(arrived, _)| arrived)
        .max()
        .map_or(0, |m| m as usize + 1);
    let mut tree = vec![0usize; n + 1];
    let mut max = 0;
    for (done, &(arrived, _)) in records.iter().enumerate() {
        let mut i = arrived as usize + 1;
        let mut not_later = 0;
        while i > 0 {
            not_later += tree[i];
            i &= i - 1;
        }
        max = max.max(done - not_later);
        let mut i = arrived as usize + 1;
        while i <= n {
            tree[i] += 1;
            i += i & i.wrapping_neg();
        }
    }
    max
}

/// Many tasks cycle few buffers as fast as they can: no acquire is
/// overtaken by later arrivals. (With barging, a task that releases a
/// buffer and asks again at once takes it back from its cache, and a
/// waiter can be overtaken without end.)
///
/// On one thread, so that "served" means "handed the buffer": on a thread
/// pool a task handed a buffer can sit in a preempted worker's queue while
/// others go on, which would count against the pool.
#[test]
#[cfg_attr(miri, ignore = "thousands of tasks on a thread pool")]
fn cycling_buffers_do_not_starve_early_waiters() {
    const TASKS: usize = 32;
    const ROUNDS: usize = 300;
    const CAPACITY: usize = 4;
    let pool = pool(CAPACITY);
    let arrivals = Arc::new(AtomicU64::new(0));
    let services = Arc::new(AtomicU64::new(0));
    let records = Arc::new(Mutex::new(Vec::new()));
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let (pool, arrivals, services, records) = (
                        pool.clone(),
                        arrivals.clone(),
                        services.clone(),
                        records.clone(),
                    );
                    tokio::spawn(async move {
                        let mut mine = Vec::with_capacity(ROUNDS);
                        for _ in 0..ROUNDS {
                            let arrived = arrivals.fetch_add(1, SeqCst);
                            let buf = pool.acquire_owned().await;
                            let served = services.fetch_add(1, SeqCst);
                            mine.push((arrived, served));
                            tokio::task::yield_now().await;
                            drop(buf);
                        }
                        records.lock().unwrap().extend(mine);
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
    let mut records = std::mem::take(&mut *records.lock().unwrap());
    assert_eq!(records.len(), TASKS * ROUNDS);
    let max = max_overtakes(&mut records);
    println!("most overtakes of one acquire: {max}");
    assert_eq!(max, 0, "an acquire was overtaken {max} times");
    assert_eq!(pool.stats().in_use, 0);
}

/// Futures dropped at every stage of waiting, by `timeout` and `select!`,
/// while buffers keep returning: afterwards every buffer can be taken and
/// nobody is left in the queue.
#[test]
#[cfg_attr(miri, ignore = "thousands of tasks on a thread pool")]
fn cancelled_waiters_lose_no_buffer_and_no_wakeup() {
    const CAPACITY: usize = 4;
    let pool = pool(CAPACITY);
    let served = Arc::new(AtomicUsize::new(0));
    runtime(2).block_on(async {
        let mut tasks = Vec::new();
        for t in 0..64u64 {
            let (pool, served) = (pool.clone(), served.clone());
            tasks.push(tokio::spawn(async move {
                for round in 0..50u64 {
                    let limit = Duration::from_micros((t * 7 + round * 13) % 200);
                    if round % 2 == 0 {
                        if let Ok(mut buf) = tokio::time::timeout(limit, pool.acquire_owned()).await
                        {
                            served.fetch_add(1, SeqCst);
                            buf.clear();
                            buf.extend_from_slice(&t.to_le_bytes()).unwrap();
                            tokio::task::yield_now().await;
                            assert_eq!(&buf[..], &t.to_le_bytes(), "buffer had two owners");
                            drop(buf);
                        }
                    } else {
                        tokio::select! {
                            buf = pool.acquire_owned() => {
                                served.fetch_add(1, SeqCst);
                                drop(buf);
                            }
                            _ = tokio::task::yield_now() => {}
                        }
                    }
                }
            }));
        }
        for task in tasks {
            tokio::time::timeout(STUCK, task)
                .await
                .expect("stuck")
                .unwrap();
        }
        // Every buffer is free and reachable, and new waiters still wake:
        // one each, each held until all are served.
        let all: Vec<OwnedBuf> = (0..CAPACITY)
            .map(|_| pool.try_acquire_owned().unwrap())
            .collect();
        let mut indices: Vec<_> = all.iter().map(OwnedBuf::index).collect();
        indices.sort_unstable();
        let (held_tx, held_rx) = tokio::sync::mpsc::channel::<OwnedBuf>(CAPACITY);
        let waiters: Vec<_> = (0..CAPACITY)
            .map(|_| {
                let (pool, held_tx) = (pool.clone(), held_tx.clone());
                tokio::spawn(async move { held_tx.send(pool.acquire_owned().await).await })
            })
            .collect();
        drop(held_tx);
        drop(all);
        for w in waiters {
            tokio::time::timeout(STUCK, w)
                .await
                .expect("stuck")
                .unwrap()
                .unwrap();
        }
        let mut woken = Vec::new();
        let mut held_rx = held_rx;
        while let Some(buf) = held_rx.recv().await {
            woken.push(buf);
        }
        let mut got: Vec<_> = woken.iter().map(OwnedBuf::index).collect();
        got.sort_unstable();
        assert_eq!(got, indices, "each waiter got its own buffer");
    });
    // The first CAPACITY acquires found free buffers and nobody waiting.
    assert!(served.load(SeqCst) >= CAPACITY, "{served:?}");
    let s = pool.stats();
    assert_eq!((s.in_use, s.waiting), (0, 0), "{s:?}");
}

/// A buffer released by a thread with a cache while a task waits reaches
/// the task (the release sees the waiter and bypasses its cache).
#[test]
fn release_into_a_cache_wakes_a_waiting_task() {
    let pool = Pool::builder()
        .buffer_size(64)
        .capacity(1)
        .cache_size(32)
        .build()
        .unwrap();
    // The releasing thread has a cache: it used the pool before.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let releaser = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            let buf = pool.try_acquire_owned().unwrap();
            rx.recv().unwrap();
            drop(buf);
            rx.recv().unwrap(); // stay alive: exit would hand the cache back
        })
    };
    while pool.stats().in_use == 0 {
        std::thread::yield_now();
    }
    let got = futures::executor::block_on(async {
        let mut fut = pool.acquire_owned();
        assert!(poll_once(&mut fut).is_pending());
        tx.send(()).unwrap();
        fut.await
    });
    assert_eq!(pool.stats().cached, 0);
    drop(got);
    tx.send(()).unwrap();
    releaser.join().unwrap();
}

/// The blocking and the async acquire share one queue, in one order.
#[test]
fn blocking_and_async_waiters_share_the_queue() {
    let pool = pool(1);
    let held = pool.try_acquire_owned().unwrap();
    let mut first = pool.acquire_owned();
    assert!(poll_once(&mut first).is_pending());
    let blocking = {
        let pool = pool.clone();
        std::thread::spawn(move || pool.acquire_owned_blocking(STUCK).map(|b| b.index()))
    };
    while pool.stats().waiting < 2 {
        std::thread::yield_now();
    }
    drop(held);
    let Poll::Ready(buf) = poll_once(&mut first) else {
        panic!("the first waiter was not served first");
    };
    drop(buf);
    assert_eq!(blocking.join().unwrap().unwrap(), 0);
}

/// 64 tasks contend for 8 buffers on a multi-thread runtime, 500 acquires
/// each. Each holder writes its id into the buffer and checks it before
/// release, so a buffer with two owners is caught. Reports the longest
/// wait.
#[test]
#[cfg_attr(miri, ignore = "32,000 acquires on a thread pool")]
fn stress_64_tasks_8_buffers() {
    const TASKS: u64 = 64;
    const ROUNDS: u64 = 500;
    let pool = pool(8);
    let max_wait_ns = Arc::new(AtomicU64::new(0));
    let ops = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    runtime(4).block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|id| {
                let (pool, max_wait_ns, ops) = (pool.clone(), max_wait_ns.clone(), ops.clone());
                tokio::spawn(async move {
                    for _ in 0..ROUNDS {
                        let asked = Instant::now();
                        let mut buf = pool.acquire_owned().await;
                        let waited = asked.elapsed().as_nanos() as u64;
                        max_wait_ns.fetch_max(waited, SeqCst);
                        buf.clear();
                        buf.extend_from_slice(&id.to_le_bytes()).unwrap();
                        tokio::task::yield_now().await;
                        assert_eq!(&buf[..], &id.to_le_bytes(), "buffer had two owners");
                        ops.fetch_add(1, SeqCst);
                    }
                })
            })
            .collect();
        for task in tasks {
            tokio::time::timeout(STUCK, task)
                .await
                .expect("stuck")
                .unwrap();
        }
    });
    let s = pool.stats();
    println!(
        "{} acquires by {TASKS} tasks on 8 buffers in {:?}; longest wait {:?}",
        ops.load(SeqCst),
        start.elapsed(),
        Duration::from_nanos(max_wait_ns.load(SeqCst))
    );
    assert_eq!(ops.load(SeqCst), TASKS * ROUNDS);
    assert_eq!((s.in_use, s.waiting, s.capacity), (0, 0, 8), "{s:?}");
}
