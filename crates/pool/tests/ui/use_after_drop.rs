// Dropping a handle returns its buffer to the pool: no view of its bytes
// may outlive it (the bytes are the handle's borrow, not the pool's).

use arenapool::Pool;

fn main() {
    let pool = Pool::new(64, 2).unwrap();
    let mut buf = pool.try_acquire().unwrap();
    buf.extend_from_slice(b"data").unwrap();
    let bytes: &[u8] = &buf;
    drop(buf);
    println!("{bytes:?}");

    let pool = Pool::new(64, 2).unwrap();
    let mut owned = pool.try_acquire_owned().unwrap();
    let full = owned.as_full_mut();
    drop(owned);
    full[0] = 1;
}
