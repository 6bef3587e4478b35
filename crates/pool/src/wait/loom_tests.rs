use std::time::Duration;

use crate::Pool;
use std::future::Future;

use crate::sync::{model, thread};

fn pool(capacity: usize) -> Pool {
    Pool::builder()
        .buffer_size(8)
        .capacity(capacity)
        .cache_size(0)
        .build()
        .unwrap()
}

/// A release racing a blocking waiter that is joining the queue: the
/// waiter gets the slot (by hand-off or from the free list).
#[test]
fn release_reaches_waiter() {
    model(|| {
        let p = pool(1);
        let buf = p.try_acquire_owned().unwrap();
        let t = thread::spawn(move || drop(buf));
        let got = p.acquire_blocking(Duration::MAX).unwrap();
        assert_eq!(got.index(), 0);
        drop(got);
        t.join().unwrap();
        assert_eq!(p.stats().in_use, 0);
    });
}

/// Two waiters, two releases: both waiters are served, whatever the
/// interleaving of offers, failed offers and late arrivals.
#[test]
fn two_waiters_two_releases() {
    model(|| {
        let p = pool(2);
        let a = p.try_acquire_owned().unwrap();
        let b = p.try_acquire_owned().unwrap();
        let releaser = thread::spawn(move || {
            drop(a);
            drop(b);
        });
        let waiter = {
            let p = p.clone();
            thread::spawn(move || p.acquire_owned_blocking(Duration::MAX).unwrap())
        };
        let mine = p.acquire_owned_blocking(Duration::MAX).unwrap();
        let theirs = waiter.join().unwrap();
        assert_ne!(mine.index(), theirs.index());
        releaser.join().unwrap();
    });
}

/// A queued async waiter is dropped while a release hands it the slot:
/// the slot is not lost (the next acquire gets it).
#[test]
fn cancelled_waiter_loses_no_slot() {
    model(|| {
        let p = pool(1);
        let buf = p.try_acquire_owned().unwrap();
        let mut fut = Box::pin(p.acquire_owned());
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        let t = thread::spawn(move || drop(buf));
        drop(fut);
        t.join().unwrap();
        assert!(p.try_acquire().is_some(), "{:?}", p.stats());
    });
}

/// A cancelled waiter in front of a blocking one: the grant it may have
/// received passes on, so the blocking waiter does not hang.
#[test]
fn grant_passes_to_next_waiter() {
    model(|| {
        let p = pool(1);
        let buf = p.try_acquire_owned().unwrap();
        let mut fut = Box::pin(p.acquire_owned());
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        let waiter = {
            let p = p.clone();
            thread::spawn(move || p.acquire_owned_blocking(Duration::MAX).unwrap())
        };
        drop(buf);
        drop(fut);
        assert_eq!(waiter.join().unwrap().index(), 0);
    });
}

/// A forgotten waiter, racing a release on another thread: it costs at
/// most the slot granted to it. The waiter count always returns to 0
/// (so the caches come back on) and the other slot stays usable.
#[test]
fn forgotten_waiter_costs_one_slot() {
    model(|| {
        let p = pool(2);
        let a = p.try_acquire_owned().unwrap();
        let b = p.try_acquire_owned().unwrap();
        let mut fut = Box::pin(p.acquire_owned());
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        std::mem::forget(fut);
        let t = thread::spawn(move || drop(a));
        drop(b);
        t.join().unwrap();
        let s = p.stats();
        assert_eq!(s.waiting, 0, "{s:?}");
        assert_eq!(s.in_use, 1, "{s:?}");
        assert!(p.try_acquire().is_some());
    });
}
