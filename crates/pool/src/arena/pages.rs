//! What of an arena is in memory, and handing the pages of free slots back
//! to the kernel (`trim.rs`).
//!
//! Both work on whole pages that lie inside the byte range asked about: a
//! page shared with a neighbouring slot (or, for a heap arena, with other
//! heap data) is neither counted nor discarded.

use std::ptr::NonNull;

use super::Arena;
#[cfg(target_os = "linux")]
use super::Memory;
#[cfg(target_os = "linux")]
use crate::backing::Pages;

/// The base page size, in which the kernel reports residency.
fn base_page() -> usize {
    #[cfg(unix)]
    {
        // SAFETY: `sysconf` has no preconditions.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if n > 0 {
            return n as usize;
        }
    }
    4096
}

/// The whole `page`-sized pages inside `base + from .. base + to`, as
/// offsets from `base`; `None` if there are none.
fn inner(base: NonNull<u8>, from: usize, to: usize, page: usize) -> Option<(usize, usize)> {
    let addr = base.as_ptr() as usize;
    let start = (addr + from).next_multiple_of(page);
    let end = (addr + to) / page * page;
    (start < end).then(|| (start - addr, end - addr))
}

impl Arena {
    /// Bytes of `from .. to` (offsets into the block) that are in memory
    /// now, as the kernel reports with `mincore`, counting the whole pages
    /// inside the range. Where the kernel cannot be asked (Miri, other
    /// systems, an error), all of those pages count.
    pub(crate) fn resident(&self, from: usize, to: usize) -> usize {
        let page = base_page();
        let Some((start, end)) = inner(self.base, from, to, page) else {
            return 0;
        };
        #[cfg(all(target_os = "linux", not(miri)))]
        {
            let mut vec = [0u8; 4096];
            let mut resident = 0;
            let mut at = start;
            while at < end {
                let len = (end - at).min(vec.len() * page);
                // SAFETY: `at .. at + len` lies inside the block, which is
                // mapped for the arena's whole life; `mincore` only reads
                // the page tables and writes one byte per page into `vec`,
                // which holds `len / page <= vec.len()` of them. The
                // address is derived from the allocation's pointer.
                let ok = unsafe {
                    libc::mincore(self.base.as_ptr().add(at).cast(), len, vec.as_mut_ptr())
                } == 0;
                resident += if ok {
                    vec[..len / page].iter().filter(|&&b| b & 1 != 0).count() * page
                } else {
                    len
                };
                at += len;
            }
            resident
        }
        #[cfg(not(all(target_os = "linux", not(miri))))]
        {
            end - start
        }
    }

    /// Hands the pages inside `from .. to` back to the kernel with
    /// `madvise(MADV_DONTNEED)`, if the arena is a private anonymous
    /// mapping that is not locked (heap arenas and `mlock`ed ones keep
    /// theirs). Returns the bytes of those pages that were resident.
    ///
    /// # Safety
    ///
    /// The caller owns every slot that overlaps `from .. to`: no one reads
    /// or writes those bytes while this runs, and no pointer into them is
    /// left, in this process or held by the kernel (io_uring fixed
    /// buffers; `Segments::pinned`).
    pub(crate) unsafe fn discard(&self, from: usize, to: usize) -> usize {
        #[cfg(target_os = "linux")]
        if let Memory::Mapped { locked: false, .. } = self.mem {
            // `MAP_HUGETLB` mappings can only drop whole huge pages.
            let page = match self.outcome.pages {
                Pages::Huge => super::HUGE_PAGE,
                _ => base_page(),
            };
            let Some((start, end)) = inner(self.base, from, to, page) else {
                return 0;
            };
            let resident = self.resident(start, end);
            // SAFETY: `start .. end` lies inside this arena's private
            // anonymous mapping (derived from its base pointer), and the
            // caller owns every byte of it. After `MADV_DONTNEED` the next
            // touch of such a page maps a fresh page filled with zeros, so
            // every byte of the slot stays initialised (zero), which is
            // the arena's invariant; the bytes the slots held are free
            // slots' leftovers, which nobody may rely on.
            let advised = unsafe {
                rustix::mm::madvise(
                    self.base.as_ptr().add(start).cast(),
                    end - start,
                    rustix::mm::Advice::LinuxDontNeed,
                )
            };
            return if advised.is_ok() { resident } else { 0 };
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (from, to);
        0
    }
}

#[cfg(all(test, not(loom), not(miri), target_os = "linux"))]
mod tests {
    use crate::arena::Arena;
    use crate::backing::{Backing, Request};

    /// A mapped arena is resident only where it was written, and a
    /// discard takes exactly the pages inside the range back, reading
    /// zeros afterwards.
    #[test]
    fn discard_gives_written_pages_back_and_they_read_zero() {
        let page = super::base_page();
        let req = Request {
            backing: Backing::Mmap,
            ..Request::default()
        };
        let a = Arena::new(16, page, 64, req).unwrap();
        assert_eq!(
            a.resident(0, a.len()),
            0,
            "fresh anonymous pages are not resident"
        );
        // SAFETY: the test owns the whole arena; the pointer comes from it.
        unsafe { std::ptr::write_bytes(a.base().as_ptr(), 0xAB, 4 * page) };
        assert_eq!(a.resident(0, a.len()), 4 * page);
        // A range that covers pages 1 and 2 and half of 0 and 3.
        // SAFETY: as above.
        let released = unsafe { a.discard(page / 2, 3 * page + page / 2) };
        assert_eq!(released, 2 * page);
        assert_eq!(a.resident(0, a.len()), 2 * page);
        // SAFETY: as above; every byte is initialised.
        let bytes = unsafe { std::slice::from_raw_parts(a.base().as_ptr(), 4 * page) };
        assert!(bytes[..page].iter().all(|&b| b == 0xAB));
        assert!(bytes[page..3 * page].iter().all(|&b| b == 0));
        assert!(bytes[3 * page..].iter().all(|&b| b == 0xAB));
    }

    /// Heap arenas keep their pages: a discard does nothing there.
    #[test]
    fn heap_arenas_are_not_discarded() {
        let page = super::base_page();
        let a = Arena::new(8, page, 64, Request::default()).unwrap();
        // SAFETY: the test owns the whole arena.
        unsafe { std::ptr::write_bytes(a.base().as_ptr(), 1, a.len()) };
        // SAFETY: as above.
        assert_eq!(unsafe { a.discard(0, a.len()) }, 0);
        assert!(a.resident(0, a.len()) >= a.len() - 2 * page);
    }
}
