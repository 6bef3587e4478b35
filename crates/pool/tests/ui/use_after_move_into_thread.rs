// A handle moved into a thread or a consuming function cannot be used by the
// code that gave it away.

use std::sync::Arc;

use arenapool::{Buf, Pool};

fn consume(buf: Buf<'_>) -> usize {
    buf.len()
}

fn main() {
    let pool = Arc::new(Pool::new(64, 2).unwrap());
    let mut owned = pool.try_acquire_owned().unwrap();
    let t = std::thread::spawn(move || {
        owned.extend_from_slice(b"in the thread").unwrap();
    });
    owned.extend_from_slice(b"still mine?").unwrap();
    t.join().unwrap();

    let buf = pool.try_acquire().unwrap();
    consume(buf);
    println!("{}", buf.len());
}
