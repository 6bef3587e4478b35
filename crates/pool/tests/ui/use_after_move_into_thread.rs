// A handle moved into a thread or a consuming function takes its bytes
// along: no view of them may stay with the code that gave it away.

use arenapool::{PoolBuf, Pool};

fn consume(buf: PoolBuf<'_>) -> usize {
    buf.len()
}

fn main() {
    let pool = Pool::new(64, 2).unwrap();
    let mut owned = pool.try_acquire_owned().unwrap();
    let full = owned.as_full_mut();
    let t = std::thread::spawn(move || {
        owned.extend_from_slice(b"in the thread").unwrap();
    });
    full[0] = 1; // while the thread writes the same bytes
    t.join().unwrap();

    let buf = pool.try_acquire().unwrap();
    let bytes: &[u8] = &buf;
    consume(buf);
    println!("{bytes:?}");
}
