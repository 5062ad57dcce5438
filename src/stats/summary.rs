//! The fixed set of latency numbers every report carries for one histogram.
//!
//! [`LatencySummary`] is plain data (built by
//! [`LatencyHistogram::summary`](super::LatencyHistogram::summary)) so the
//! report layer can serialise it without knowing about HdrHistogram.

use serde::{Deserialize, Serialize};

/// Samples needed before P99.9 is trusted: with fewer than 1000 samples the
/// 99.9th percentile is the maximum, or close to it, not a percentile.
pub const P999_MIN_SAMPLES: u64 = 1000;

/// Summary statistics of a latency distribution, all times in nanoseconds.
///
/// Percentiles and `max_ns` are HdrHistogram bucket upper edges and `min_ns`
/// a bucket lower edge, all within 0.1 % of a recorded sample (3 significant
/// digits; exact below 2048 ns). An empty histogram gives `count` 0, every
/// other number 0 and `p999_reliable` false.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LatencySummary {
    /// Number of samples recorded.
    pub count: u64,
    /// Smallest sample.
    pub min_ns: u64,
    /// Mean over bucket midpoints.
    pub mean_ns: f64,
    /// Population standard deviation over bucket midpoints.
    pub stdev_ns: f64,
    /// Median (50th percentile).
    pub p50_ns: u64,
    /// 95th percentile.
    pub p95_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile; check `p999_reliable` before quoting it.
    pub p999_ns: u64,
    /// Largest sample.
    pub max_ns: u64,
    /// Tail spread `p99_ns − p50_ns` (draft §5.2 derived metric): how far the
    /// tail sits from the body, independent of the base latency.
    pub p99_minus_p50_ns: u64,
    /// False when `count < 1000`: P99.9 from fewer than 1000 samples is
    /// flagged as unreliable.
    pub p999_reliable: bool,
}

impl LatencySummary {
    /// The summary of no samples: count 0, all numbers 0, P99.9 unreliable.
    pub fn empty() -> Self {
        LatencySummary {
            count: 0,
            min_ns: 0,
            mean_ns: 0.0,
            stdev_ns: 0.0,
            p50_ns: 0,
            p95_ns: 0,
            p99_ns: 0,
            p999_ns: 0,
            max_ns: 0,
            p99_minus_p50_ns: 0,
            p999_reliable: false,
        }
    }
}

impl Default for LatencySummary {
    fn default() -> Self {
        Self::empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_all_zero_and_unreliable() {
        let s = LatencySummary::default();
        assert_eq!(s, LatencySummary::empty());
        assert_eq!(s.count, 0);
        assert_eq!(s.mean_ns, 0.0);
        assert!(!s.p999_reliable);
    }

    #[test]
    fn json_field_names_carry_units() {
        let json = serde_json::to_value(LatencySummary::empty()).unwrap();
        for key in [
            "count",
            "min_ns",
            "mean_ns",
            "stdev_ns",
            "p50_ns",
            "p95_ns",
            "p99_ns",
            "p999_ns",
            "max_ns",
            "p99_minus_p50_ns",
            "p999_reliable",
        ] {
            assert!(json.get(key).is_some(), "missing {key} in {json}");
        }
        let back: LatencySummary = serde_json::from_value(json).unwrap();
        assert_eq!(back, LatencySummary::empty());
    }
}
