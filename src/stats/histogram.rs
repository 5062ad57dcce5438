//! Latency histogram: nanosecond samples in an HdrHistogram.
//!
//! [`LatencyHistogram`] owns the recording side of latency measurement. It
//! keeps 3 significant digits (every reported value within 0.1 % of a real
//! sample) at a fixed, small memory cost no matter how many samples arrive,
//! and histograms from several threads, QPs or hosts merge exactly, which a
//! list of percentiles cannot do. It resizes itself, so a stray multi-hour
//! stall is recorded rather than rejected, and recording never panics or
//! fails: the hot loop must not branch on an error it cannot handle.

use std::fmt;

use hdrhistogram::Histogram;

use super::cdf::{downsample, CdfPoint};
use super::summary::{LatencySummary, P999_MIN_SAMPLES};

/// Significant decimal digits kept: 3 gives 0.1 % resolution (unit
/// resolution up to 2047 ns) for ~100 KiB of counters covering ns to hours.
const SIGNIFICANT_DIGITS: u8 = 3;

/// Largest latency recorded as itself; larger values are clamped to it.
/// HdrHistogram's auto-resize tops out at `i64::MAX / 2`, so this is ~146
/// years; only a garbage timestamp (e.g. a wrapped subtraction) gets here.
pub const MAX_RECORDABLE_NS: u64 = (i64::MAX / 2) as u64;

/// An auto-resizing histogram of latencies in nanoseconds, 3 significant
/// digits, lowest discernible value 1 ns.
#[derive(Clone)]
pub struct LatencyHistogram {
    hist: Histogram<u64>,
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        let hist = Histogram::new(SIGNIFICANT_DIGITS)
            .expect("3 significant digits is a valid HdrHistogram configuration");
        LatencyHistogram { hist }
    }

    /// Record one latency sample in nanoseconds. Never panics.
    ///
    /// - 0 ns is recorded as 0: HdrHistogram keeps an exact bucket for zero,
    ///   and a zero is worth seeing (it means the clock is too coarse for
    ///   the operation), so it is not rounded up to 1 ns.
    /// - Values above [`MAX_RECORDABLE_NS`] are clamped to it.
    pub fn record(&mut self, latency_ns: u64) {
        self.record_n(latency_ns, 1);
    }

    /// Record `count` samples of the same latency, as [`record`](Self::record)
    /// would one at a time. Never panics; counts saturate at `u64::MAX`.
    pub fn record_n(&mut self, latency_ns: u64, count: u64) {
        let value = latency_ns.min(MAX_RECORDABLE_NS);
        if self.hist.record_n(value, count).is_err() {
            // Only if growing the counts array failed (it cannot on 64-bit
            // targets below MAX_RECORDABLE_NS): keep the sample, clamped to
            // the current range, rather than lose it.
            self.hist.saturating_record_n(value, count);
        }
    }

    /// Add all samples of `other` into `self`, exactly (same bucket layout).
    pub fn merge(&mut self, other: &LatencyHistogram) {
        if self.hist.add(&other.hist).is_err() {
            // Same unreachable-in-practice resize failure as in `record_n`;
            // fall back to re-recording bucket by bucket.
            for bucket in other.hist.iter_recorded() {
                self.record_n(bucket.value_iterated_to(), bucket.count_at_value());
            }
        }
    }

    /// Number of samples recorded.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    /// True when no sample has been recorded.
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// Latency at quantile `q` in nanoseconds: the smallest bucket upper
    /// edge with at least a fraction `q` of samples at or below it.
    ///
    /// `q` is clamped to [0, 1] (NaN counts as 0); `q = 0` gives the
    /// minimum. 0 for an empty histogram.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.is_empty() {
            return 0;
        }
        // `clamp` passes NaN through, so map it to 0 explicitly.
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        self.hist.value_at_quantile(q)
    }

    /// Count, min, mean, stdev, P50/P95/P99/P99.9, max and the derived tail
    /// metrics; see [`LatencySummary`]. All zeros when empty.
    pub fn summary(&self) -> LatencySummary {
        if self.is_empty() {
            return LatencySummary::empty();
        }
        let count = self.len();
        let p50_ns = self.quantile_ns(0.50);
        let p99_ns = self.quantile_ns(0.99);
        LatencySummary {
            count,
            min_ns: self.hist.min(),
            mean_ns: self.hist.mean(),
            stdev_ns: self.hist.stdev(),
            p50_ns,
            p95_ns: self.quantile_ns(0.95),
            p99_ns,
            p999_ns: self.quantile_ns(0.999),
            max_ns: self.hist.max(),
            p99_minus_p50_ns: p99_ns.saturating_sub(p50_ns),
            p999_reliable: count >= P999_MIN_SAMPLES,
        }
    }

    /// Points of the empirical CDF for plotting, at most `max_points`,
    /// sorted by latency with non-decreasing fraction, the last one being
    /// (max, 1.0). Each point is an exact step of the histogram's CDF,
    /// `fraction = samples at or below latency_ns / len()`, so it agrees with
    /// [`quantile_ns`](Self::quantile_ns) up to the rounding of `fraction`
    /// to an `f64`. When there are more
    /// distinct buckets than `max_points`, they are thinned to show both the
    /// body and the tail; see [`downsample`]. Empty for an empty histogram.
    pub fn cdf_points(&self, max_points: usize) -> Vec<CdfPoint> {
        let total = self.len();
        if total == 0 || max_points == 0 {
            return Vec::new();
        }
        let mut cumulative: u64 = 0;
        let steps: Vec<CdfPoint> = self
            .hist
            .iter_recorded()
            .map(|bucket| {
                cumulative = cumulative.saturating_add(bucket.count_at_value());
                CdfPoint {
                    latency_ns: bucket.value_iterated_to(),
                    fraction: cumulative as f64 / total as f64,
                }
            })
            .collect();
        downsample(&steps, max_points)
    }

    /// The underlying HdrHistogram, for serialising it (e.g. the V2 format)
    /// or for statistics this wrapper does not offer.
    pub fn as_hdr(&self) -> &Histogram<u64> {
        &self.hist
    }
}

impl LatencyHistogram {
    /// Encodes the histogram (HdrHistogram V2 format) so it can travel
    /// between hosts and merge exactly there.
    pub fn encode(&self) -> Vec<u8> {
        use hdrhistogram::serialization::Serializer;
        let mut out = Vec::new();
        hdrhistogram::serialization::V2Serializer::new()
            .serialize(&self.hist, &mut out)
            .expect("serializing into a Vec cannot fail");
        out
    }

    /// Decodes what [`encode`](Self::encode) wrote.
    pub fn decode(bytes: &[u8]) -> Result<LatencyHistogram, String> {
        let hist: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut &bytes[..])
            .map_err(|err| format!("not an encoded latency histogram: {err:?}"))?;
        let mut out = LatencyHistogram::new();
        out.hist
            .add(&hist)
            .map_err(|err| format!("cannot merge a decoded histogram: {err:?}"))?;
        Ok(out)
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

/// Prints the headline numbers, not the ~100 KiB of bucket counters that the
/// derived `Debug` of the inner histogram would dump.
impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.summary();
        f.debug_struct("LatencyHistogram")
            .field("count", &s.count)
            .field("min_ns", &s.min_ns)
            .field("p50_ns", &s.p50_ns)
            .field("p99_ns", &s.p99_ns)
            .field("max_ns", &s.max_ns)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist_of(values: impl IntoIterator<Item = u64>) -> LatencyHistogram {
        let mut h = LatencyHistogram::new();
        for v in values {
            h.record(v);
        }
        h
    }

    #[test]
    fn empty_histogram() {
        let h = LatencyHistogram::default();
        assert!(h.is_empty());
        assert_eq!(h.len(), 0);
        assert_eq!(h.summary(), LatencySummary::empty());
        assert_eq!(h.quantile_ns(0.5), 0);
        assert!(h.cdf_points(100).is_empty());
    }

    #[test]
    fn summary_of_1_to_100_hand_computed() {
        // Below 2048 ns every bucket is one ns wide, so results are exact.
        let s = hist_of(1..=100).summary();
        assert_eq!(s.count, 100);
        assert_eq!(s.min_ns, 1);
        assert_eq!(s.max_ns, 100);
        assert_eq!(s.mean_ns, 50.5);
        // Population stdev of 1..=n is sqrt((n² − 1) / 12) = sqrt(833.25).
        assert!(
            (s.stdev_ns - 833.25_f64.sqrt()).abs() < 1e-9,
            "{}",
            s.stdev_ns
        );
        // Pq = ceil(q·100)-th smallest sample.
        assert_eq!(s.p50_ns, 50);
        assert_eq!(s.p95_ns, 95);
        assert_eq!(s.p99_ns, 99);
        assert_eq!(s.p999_ns, 100);
        assert_eq!(s.p99_minus_p50_ns, 49);
        assert!(!s.p999_reliable);
    }

    #[test]
    fn p999_reliable_from_1000_samples() {
        let s = hist_of(1..=999).summary();
        assert!(!s.p999_reliable);
        let s = hist_of(1..=1000).summary();
        assert!(s.p999_reliable);
        assert_eq!(s.p999_ns, 999);
        assert_eq!(s.p99_ns, 990);
        assert_eq!(s.p50_ns, 500);
    }

    #[test]
    fn skewed_distribution_tail_spread() {
        // 990 fast samples at 2 µs-ish, 10 slow at 50 µs: P50 in the body,
        // P99 still in the body (990th sample), P99.9 in the tail.
        let mut h = LatencyHistogram::new();
        h.record_n(1_500, 990);
        h.record_n(50_000, 10);
        let s = h.summary();
        assert_eq!(s.p50_ns, 1_500);
        assert_eq!(s.p99_ns, 1_500);
        assert_eq!(s.p99_minus_p50_ns, 0);
        // 50_000 lies in a 32-ns-wide bucket [49_984, 50_015].
        assert!(
            s.p999_ns >= 50_000 && s.p999_ns <= 50_000 + 50,
            "{}",
            s.p999_ns
        );
        assert_eq!(s.max_ns, s.p999_ns);
    }

    #[test]
    fn large_values_within_three_digits() {
        // One hour in ns, and a value past the auto-resize limit.
        let hour_ns = 3_600_000_000_000_u64;
        let h = hist_of([1, hour_ns]);
        let max = h.summary().max_ns;
        assert!(max >= hour_ns && (max - hour_ns) as f64 <= hour_ns as f64 * 1e-3);
        let mut h = LatencyHistogram::new();
        h.record(u64::MAX);
        h.record(0);
        assert_eq!(h.len(), 2);
        let max = h.summary().max_ns;
        assert!(max >= MAX_RECORDABLE_NS, "{max}");
    }

    #[test]
    fn zero_is_recorded_as_zero() {
        let h = hist_of([0, 0, 10]);
        let s = h.summary();
        assert_eq!(s.count, 3);
        assert_eq!(s.min_ns, 0);
        assert_eq!(s.p50_ns, 0);
        assert_eq!(s.max_ns, 10);
    }

    #[test]
    fn quantile_clamps_and_handles_nan() {
        let h = hist_of([10, 20, 30]);
        assert_eq!(h.quantile_ns(0.0), 10);
        assert_eq!(h.quantile_ns(-1.0), 10);
        assert_eq!(h.quantile_ns(f64::NAN), 10);
        assert_eq!(h.quantile_ns(0.5), 20);
        assert_eq!(h.quantile_ns(1.0), 30);
        assert_eq!(h.quantile_ns(7.0), 30);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let a_vals = [5_u64, 100, 2_000, 7_000_000];
        let b_vals = [1_u64, 42, 99_999, 123_456_789];
        let mut a = hist_of(a_vals);
        let b = hist_of(b_vals);
        a.merge(&b);
        let both = hist_of(a_vals.into_iter().chain(b_vals));
        assert_eq!(a.summary(), both.summary());
        assert_eq!(a.cdf_points(100), both.cdf_points(100));
        // Merging an empty one changes nothing; merging into an empty one copies.
        let before = a.summary();
        a.merge(&LatencyHistogram::new());
        assert_eq!(a.summary(), before);
        let mut empty = LatencyHistogram::new();
        empty.merge(&a);
        assert_eq!(empty.summary(), before);
    }

    #[test]
    fn cdf_points_hand_computed() {
        let h = hist_of([10, 10, 20, 30]);
        let pts = h.cdf_points(100);
        assert_eq!(
            pts,
            vec![
                CdfPoint {
                    latency_ns: 10,
                    fraction: 0.5
                },
                CdfPoint {
                    latency_ns: 20,
                    fraction: 0.75
                },
                CdfPoint {
                    latency_ns: 30,
                    fraction: 1.0
                },
            ]
        );
        assert!(h.cdf_points(0).is_empty());
        assert_eq!(
            h.cdf_points(1),
            vec![CdfPoint {
                latency_ns: 30,
                fraction: 1.0
            }]
        );
    }

    #[test]
    fn cdf_points_agree_with_quantiles_and_are_bounded() {
        // 200_000 samples spread over ~3 decades → thousands of buckets.
        let mut rng = fastrand::Rng::with_seed(7);
        let h = hist_of((0..200_000).map(|_| 500 + rng.u64(0..2_000_000)));
        let pts = h.cdf_points(200);
        assert!(pts.len() <= 200 && pts.len() > 150, "{}", pts.len());
        for w in pts.windows(2) {
            assert!(w[0].latency_ns < w[1].latency_ns);
            assert!(w[0].fraction <= w[1].fraction);
        }
        assert_eq!(pts.last().unwrap().fraction, 1.0);
        assert_eq!(pts.last().unwrap().latency_ns, h.summary().max_ns);
        assert_eq!(pts.first().unwrap().latency_ns, h.quantile_ns(0.0));
        // fraction = c/N exactly up to f64 rounding; quantile_ns takes the
        // ceil(q·N)-th sample, so nudge q down by far less than 1/N to land
        // on sample c rather than risk c·(1 + ε) rounding up to c + 1.
        for p in &pts {
            assert_eq!(h.quantile_ns(p.fraction - 1e-12), p.latency_ns, "{p:?}");
        }
    }

    #[test]
    fn debug_is_short() {
        let text = format!("{:?}", hist_of(1..=100));
        assert!(text.contains("count: 100"), "{text}");
        assert!(text.len() < 200, "{text}");
    }

    #[test]
    fn encode_decode_round_trips() {
        let h = hist_of([5, 10, 1000, 123_456, 9_999_999]);
        let back = LatencyHistogram::decode(&h.encode()).unwrap();
        assert_eq!(back.len(), 5);
        assert_eq!(back.quantile_ns(0.5), h.quantile_ns(0.5));
        assert_eq!(back.summary().max_ns, h.summary().max_ns);
        assert!(LatencyHistogram::decode(&[1, 2, 3]).is_err());
    }
}
