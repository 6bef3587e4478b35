// `Buf` borrows a local pool, so it is not `'static` and cannot move into
// `std::thread::spawn` (scoped threads or `OwnedBuf` are the way to do it).

use arenapool::Pool;

fn main() {
    let pool = Pool::new(64, 1).unwrap();
    let mut buf = pool.try_acquire().unwrap();
    std::thread::spawn(move || {
        buf.extend_from_slice(b"from another thread").unwrap();
    })
    .join()
    .unwrap();
}
