//! CPU time of a thread, to show beside wall time who was busy: the
//! server's workers or the load generator.

use std::time::Duration;

/// The calling thread's CPU time so far, user and system; `None` where
/// the platform does not say (only Linux is asked).
pub(crate) fn thread_cpu() -> Option<Duration> {
    // Through glibc, not rustix's own vDSO reader: under valgrind there is
    // no real vDSO, and rustix's parse of the one valgrind reports read
    // unmapped memory (SIGSEGV in the demo's valgrind run).
    #[cfg(target_os = "linux")]
    {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a live, writable timespec for the duration of the
        // call; the clock id is a constant the kernel knows.
        let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        if r != 0 {
            return None;
        }
        Some(Duration::new(
            u64::try_from(t.tv_sec).ok()?,
            u32::try_from(t.tv_nsec).ok()?,
        ))
    }
    #[cfg(not(target_os = "linux"))]
    None
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn spinning_takes_cpu_time_and_sleeping_does_not() {
        let t0 = super::thread_cpu().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let t1 = super::thread_cpu().unwrap();
        let mut x = 0u64;
        let until = std::time::Instant::now() + std::time::Duration::from_millis(50);
        while std::time::Instant::now() < until {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let t2 = super::thread_cpu().unwrap();
        assert!(
            t1 - t0 < std::time::Duration::from_millis(25),
            "{:?}",
            t1 - t0
        );
        assert!(
            t2 - t1 >= std::time::Duration::from_millis(25),
            "{:?}",
            t2 - t1
        );
    }
}
