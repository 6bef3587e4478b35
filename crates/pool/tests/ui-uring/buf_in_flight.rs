// Submitting an operation moves the buffer into the ring: while the kernel
// may write it, no view of its bytes survives in safe code.

use arenapool::Pool;
use arenapool::uring::Ring;

fn main() {
    let pool = Pool::new(64, 2).unwrap();
    let mut ring = Ring::new(pool.clone(), 8).unwrap();
    let file = std::fs::File::open("/dev/zero").unwrap();
    let mut buf = pool.try_acquire_owned().unwrap();
    let full = buf.as_full_mut();
    let _id = ring.read_fixed(&file, buf, 0).unwrap();
    full[0] = 1; // the kernel may be writing it
}
