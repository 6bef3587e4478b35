use crate::Pool;
use crate::sync::{model, thread};

fn pool(capacity: usize, grow_to: usize, cache_size: usize) -> Pool {
    Pool::builder()
        .buffer_size(8)
        .capacity(capacity)
        .grow_to(grow_to)
        .cache_size(cache_size)
        .build()
        .unwrap()
}

/// A thread grows the pool, writes its new buffer, reads it back and
/// releases it, while another trims: the acquire never fails (a trim
/// holding the free list makes it wait, not fail), the held buffer's
/// bytes are never touched, and afterwards a trim takes the pool back to
/// its configured capacity.
#[test]
fn trim_races_growth_acquire_and_release() {
    model(|| {
        let p = pool(1, 2, 0);
        let a = p.try_acquire().unwrap();
        let t = {
            let p = p.clone();
            thread::spawn(move || {
                let mut b = p.try_acquire().expect("the pool may grow to 2");
                b.as_full_mut().fill(7);
                thread::yield_now();
                assert!(b.as_full().iter().all(|&x| x == 7), "a held buffer changed");
                let idx = b.index();
                drop(b);
                idx
            })
        };
        let trimmed = p.trim();
        assert!(trimmed.segments_freed <= 1);
        assert_eq!(t.join().unwrap(), 1);
        drop(a);
        p.trim();
        let s = p.stats();
        assert_eq!((s.capacity, s.segments, s.in_use), (1, 1, 0), "{s:?}");
        // And it grows again.
        let both: Vec<_> = (0..2).map(|_| p.try_acquire().unwrap()).collect();
        assert_ne!(both[0].index(), both[1].index());
    });
}

/// A thread releases into its cache and takes the buffer back while
/// another thread trims (flushing the caches with the steal handshake)
/// and then acquires: no buffer is handed out twice or lost, and no
/// acquire fails while one is free.
#[test]
fn trim_races_cached_ops_and_steal() {
    model(|| {
        let p = pool(2, 2, 1);
        let t = {
            let p = p.clone();
            thread::spawn(move || {
                drop(p.try_acquire().expect("two buffers, two threads")); // into this thread's cache
                p.try_acquire().expect("two buffers, two threads").index()
            })
        };
        p.trim();
        let mine = p
            .try_acquire()
            .unwrap_or_else(|| panic!("two buffers, two threads: {:?}", p.stats()));
        // The other thread released its buffer before it exited.
        assert!(t.join().unwrap() < 2);
        let other = p.try_acquire().expect("the other buffer is back");
        assert_ne!(mine.index(), other.index());
    });
}
