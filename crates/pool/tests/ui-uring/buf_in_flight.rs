// Submitting an operation moves the buffer into the ring: while the kernel
// may write it, safe code has no handle to touch, drop or reuse it.

use std::sync::Arc;

use arenapool::Pool;
use arenapool::uring::Ring;

fn main() {
    let pool = Arc::new(Pool::new(64, 2).unwrap());
    let mut ring = Ring::new(Arc::clone(&pool), 8).unwrap();
    let file = std::fs::File::open("/dev/zero").unwrap();
    let mut buf = pool.try_acquire_owned().unwrap();
    let _id = ring.read_fixed(&file, buf, 0).unwrap();
    buf.as_full_mut()[0] = 1; // the kernel may be writing it
    drop(buf); // or give it back to the pool while the kernel writes
}
