//! Resident memory of this process, from `/proc/self/status` (Linux).
//!
//! `VmHWM` is the peak resident set since the process started; it never
//! goes down. To give each server mode its own figure, run each in a fresh
//! process (the `arenapool demo` does: it re-runs itself with a hidden
//! subcommand per mode).

/// A `kB` field of `/proc/self/status`, e.g. `VmHWM` or `VmRSS`; `None`
/// where there is no such file (not Linux) or no such field.
pub fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kib(&status, field)
}

/// The peak resident set of this process so far, in KiB.
pub fn peak_kib() -> Option<u64> {
    status_kib("VmHWM")
}

/// The resident set of this process now, in KiB.
pub fn current_kib() -> Option<u64> {
    status_kib("VmRSS")
}

/// Reads `field` (in kB) out of the text of a `/proc/<pid>/status` file.
///
/// ```
/// use arenapool_server::rss::parse_status_kib;
/// let status = "Name:\tx\nVmHWM:\t   12345 kB\nVmRSS:\t 2048 kB\n";
/// assert_eq!(parse_status_kib(status, "VmHWM"), Some(12345));
/// assert_eq!(parse_status_kib(status, "VmPeak"), None);
/// ```
pub fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn reads_own_figures() {
        let now = super::current_kib().unwrap();
        let peak = super::peak_kib().unwrap();
        assert!(now > 0 && now <= peak);
    }
}
