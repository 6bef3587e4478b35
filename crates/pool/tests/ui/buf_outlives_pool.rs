// A `Buf` borrows its pool: it can neither be returned from the function
// that owns the pool nor be used after the pool is dropped.

use arenapool::{PoolBuf, Pool};

fn make() -> PoolBuf<'static> {
    let pool = Pool::new(64, 1).unwrap();
    pool.try_acquire().unwrap()
}

fn main() {
    drop(make());

    let pool = Pool::new(64, 1).unwrap();
    let buf = pool.try_acquire().unwrap();
    drop(pool);
    println!("{}", buf.len());
}
