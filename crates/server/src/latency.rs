//! Round-trip times: an HDR histogram and its summary.
//!
//! Times are recorded in nanoseconds with three significant digits, from
//! 1 ns to 60 s; longer ones saturate at the top (and a reply that late has
//! long been counted as lost anyway).

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest value the histograms track, in nanoseconds.
pub const MAX_NS: u64 = 60_000_000_000;

/// An empty round-trip histogram.
///
/// ```
/// let mut h = arenapool_server::latency::histogram();
/// h.saturating_record(1500);
/// assert_eq!(h.len(), 1);
/// ```
pub fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts: 1 <= low,
    // 2 * low <= high, 0 <= sigfig <= 5.
    Histogram::new_with_bounds(1, MAX_NS, 3).unwrap_or_else(|_| unreachable!())
}

/// The figures of a round-trip histogram, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Round trips recorded.
    pub count: u64,
    /// Fastest.
    pub min_ns: u64,
    /// Mean.
    pub mean_ns: f64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Slowest.
    pub max_ns: u64,
    /// The distribution, as `(quantile, ns)` points from 0 to 1, dense in
    /// the tail (0.9, 0.99, ... 0.99999): enough to draw the CDF.
    pub cdf: Vec<(f64, u64)>,
}

impl LatencySummary {
    /// Summarises `h`; all zeros if it is empty.
    ///
    /// ```
    /// let mut h = arenapool_server::latency::histogram();
    /// for ns in 1..=1000 {
    ///     h.saturating_record(ns * 1000);
    /// }
    /// let s = arenapool_server::latency::LatencySummary::from_histogram(&h);
    /// assert_eq!(s.count, 1000);
    /// assert!((499_000..=501_000).contains(&s.p50_ns));
    /// assert!(s.p99_ns <= s.p999_ns && s.p999_ns <= s.max_ns);
    /// ```
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let mut cdf: Vec<(f64, u64)> = (0..90)
            .map(|i| f64::from(i) / 100.0)
            .chain((10..=50).map(|k| 1.0 - 10f64.powf(-f64::from(k) / 10.0)))
            .map(|q| (q, h.value_at_quantile(q)))
            .collect();
        cdf.push((1.0, h.max()));
        Self {
            count: h.len(),
            min_ns: h.min(),
            mean_ns: h.mean(),
            p50_ns: h.value_at_quantile(0.5),
            p90_ns: h.value_at_quantile(0.9),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            max_ns: h.max(),
            cdf,
        }
    }
}

/// Nanoseconds as microseconds, for tables.
pub fn micros(ns: u64) -> f64 {
    ns as f64 / 1000.0
}
