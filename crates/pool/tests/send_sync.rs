//! Compile-time auto-trait checks, written by hand (no `static_assertions`
//! dependency): each public type is `Send`, `Sync` and `Unpin`, and
//! `OwnedBuf` is `'static`. A regression fails to compile this file.

use std::marker::PhantomData;

use arenapool::{
    BuildError, CapacityError, Exhausted, OwnedBuf, Pool, PoolBuf, PoolBuilder, Stats,
};

const fn assert_send<T: Send + ?Sized>() {}
const fn assert_sync<T: Sync + ?Sized>() {}
const fn assert_unpin<T: Unpin + ?Sized>() {}
const fn assert_static<T: 'static + ?Sized>() {}

/// All of `Send + Sync + Unpin` at once.
const fn assert_all<T: Send + Sync + Unpin + ?Sized>() {
    assert_send::<T>();
    assert_sync::<T>();
    assert_unpin::<T>();
}

/// `Buf` for every lifetime, not only `'static`.
const fn borrowed_handle<'pool>(_: PhantomData<&'pool ()>) {
    assert_all::<PoolBuf<'pool>>();
}

// Evaluated at compile time: the bounds are checked when this is type-checked.
const _: () = {
    assert_all::<Pool>();
    assert_all::<PoolBuilder>();
    assert_all::<Stats>();
    assert_all::<BuildError>();
    assert_all::<CapacityError>();
    assert_all::<Exhausted>();
    assert_all::<OwnedBuf>();
    borrowed_handle(PhantomData);
    assert_static::<OwnedBuf>();
    assert_static::<Pool>();
    assert_static::<Pool>();
};

/// The futures can be held across `.await` in spawned tasks (`Send`), and
/// the owned one is `'static` (`tokio::spawn` needs both).
#[cfg(feature = "async")]
const _: () = {
    const fn acquire<'pool>(_: PhantomData<&'pool ()>) {
        assert_all::<arenapool::Acquire<'pool>>();
    }
    acquire(PhantomData);
    assert_all::<arenapool::AcquireOwned>();
    assert_static::<arenapool::AcquireOwned>();
};

/// Sending the real values (not only naming the types) works too.
fn send_value<T: Send>(t: T) -> T {
    t
}

#[test]
fn auto_traits_hold() {
    assert_send::<Pool>();
    assert_sync::<Pool>();
    assert_unpin::<Pool>();
    assert_all::<PoolBuilder>();
    assert_all::<Stats>();
    assert_all::<BuildError>();
    assert_all::<CapacityError>();
    assert_all::<Exhausted>();
    assert_all::<OwnedBuf>();
    assert_static::<OwnedBuf>();
    borrowed_handle(PhantomData);

    // And at run time: an OwnedBuf crosses a `'static` thread boundary, a Buf
    // a scoped one, and `&Buf` is shared between threads.
    let pool = Pool::new(8, 2).unwrap();
    let mut owned = pool.try_acquire_owned().unwrap();
    owned.extend_from_slice(b"owned").unwrap();
    let owned = std::thread::spawn(move || send_value(owned))
        .join()
        .unwrap();
    assert_eq!(&owned[..], b"owned");

    let mut buf = pool.try_acquire().unwrap();
    buf.extend_from_slice(b"shared").unwrap();
    let shared = &buf;
    std::thread::scope(|s| {
        let h1 = s.spawn(move || shared.len());
        let h2 = s.spawn(move || shared.to_vec());
        assert_eq!(h1.join().unwrap(), 6);
        assert_eq!(h2.join().unwrap(), b"shared");
    });
    let buf = std::thread::scope(|s| s.spawn(move || send_value(buf)).join().unwrap());
    assert_eq!(&buf[..], b"shared");
    drop((buf, owned));
    assert_eq!(pool.stats().in_use, 0);
}
