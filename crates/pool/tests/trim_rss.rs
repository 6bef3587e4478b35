//! `Pool::trim` gives memory back to the system: the process's resident
//! set, read from `/proc/self/statm`, before and after. One test in its own
//! binary, so that no other test allocates meanwhile.

#![cfg(all(target_os = "linux", not(miri)))]

use arenapool::{Backing, Pool};

const MIB: usize = 1 << 20;

/// Resident bytes of this process.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: `sysconf` has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
}

/// A pool of 16 MiB grown to 256 MiB, every buffer written, then emptied:
/// after a trim the process holds at most 10% more than the configured
/// 16 MiB above where it started, with the heap (the arenas are freed) and
/// with mapped arenas (which also hand the free pages of the first one
/// back). Held buffers keep their bytes throughout.
#[test]
fn trim_brings_rss_back_to_the_configured_capacity() {
    let (configured, grown) = (16 * MIB, 256 * MIB);
    for backing in [Backing::Heap, Backing::Mmap] {
        let pool = Pool::builder()
            .buffer_size(4096)
            .alignment(4096)
            .capacity(configured / 4096)
            .grow_to(grown / 4096)
            .cache_size(0)
            .backing(backing)
            .build()
            .unwrap();
        let mut held = Vec::with_capacity(grown / 4096);
        let base = rss();
        for i in 0..grown / 4096 {
            let mut b = pool.try_acquire().unwrap();
            b.as_full_mut().fill(i as u8 | 1);
            held.push(b);
        }
        let full = rss();
        assert!(
            full >= base + grown * 9 / 10,
            "{backing:?}: grew to {full} from {base}"
        );
        // Keep one buffer of the first segment: it must survive the trim.
        let keep = held.swap_remove(0);
        let keep_byte = keep.as_full()[0];
        drop(held);
        let t = pool.trim();
        let after = rss();
        println!("{backing:?}: {base} -> {full} -> {after} bytes resident; {t}");
        assert_eq!(
            t.segments_freed, 4,
            "{backing:?}: 16 -> 256 MiB is four doublings"
        );
        assert_eq!(t.bytes_unreserved, grown - configured);
        assert!(
            after <= base + configured * 11 / 10,
            "{backing:?}: {after} resident after the trim, from {base} before ({t})"
        );
        assert!(keep.as_full().iter().all(|&b| b == keep_byte));
        let s = pool.stats();
        assert_eq!(
            (s.capacity, s.reserved_bytes),
            (configured / 4096, configured)
        );
        match backing {
            // The first arena's free pages went back too.
            Backing::Mmap => assert!(s.resident_bytes <= 2 * 4096, "{s}"),
            _ => assert!(s.resident_bytes >= configured - 2 * 4096, "{s}"),
        }
        drop(keep);
    }
}
