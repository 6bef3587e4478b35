// Dropping a handle returns its buffer to the pool; the handle is gone.

use std::sync::Arc;

use arenapool::Pool;

fn main() {
    let pool = Pool::new(64, 2).unwrap();
    let mut buf = pool.try_acquire().unwrap();
    buf.extend_from_slice(b"data").unwrap();
    drop(buf);
    println!("{}", buf.len());

    let pool = Arc::new(Pool::new(64, 2).unwrap());
    let mut owned = pool.try_acquire_owned().unwrap();
    drop(owned);
    owned.as_full_mut()[0] = 1;
}
