//! CPU time of a thread, to show beside wall time who was busy: the
//! server's workers or the load generator.

use std::time::Duration;

/// The calling thread's CPU time so far, user and system; `None` where
/// the platform does not say (only Linux is asked).
pub(crate) fn thread_cpu() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
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
