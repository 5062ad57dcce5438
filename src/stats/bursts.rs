//! Fabric bursts from transfer intervals (draft 6.4): transfers that
//! overlap in time form one burst (the union of their intervals); a burst's
//! size is the bytes of its transfers, its duration the union's length,
//! and the gap the silence before the next burst. A time-binned rate series
//! (each transfer's bytes spread evenly over its interval) gives the peak
//! and average fabric bandwidth.

use serde::{Deserialize, Serialize};

/// One transfer on the fabric: `[start_ns, end_ns]` and its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferSpan {
    /// First WR posted.
    pub start_ns: u64,
    /// Last byte landed.
    pub end_ns: u64,
    /// Bytes moved.
    pub bytes: u64,
}

/// One burst: overlapping transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Burst {
    /// Start of the first transfer.
    pub start_ns: u64,
    /// End of the last transfer.
    pub end_ns: u64,
    /// Bytes of its transfers.
    pub bytes: u64,
    /// Transfers in it.
    pub transfers: u32,
}

/// Merges overlapping (or touching) spans into bursts, in time order.
pub fn bursts(spans: &[TransferSpan]) -> Vec<Burst> {
    let mut sorted: Vec<TransferSpan> = spans.to_vec();
    sorted.sort_by_key(|s| (s.start_ns, s.end_ns));
    let mut out: Vec<Burst> = Vec::new();
    for s in sorted {
        match out.last_mut() {
            Some(b) if s.start_ns <= b.end_ns => {
                b.end_ns = b.end_ns.max(s.end_ns);
                b.bytes += s.bytes;
                b.transfers += 1;
            }
            _ => out.push(Burst {
                start_ns: s.start_ns,
                end_ns: s.end_ns.max(s.start_ns),
                bytes: s.bytes,
                transfers: 1,
            }),
        }
    }
    out
}

/// Silences between consecutive bursts, ns.
pub fn gaps_ns(bursts: &[Burst]) -> Vec<u64> {
    bursts
        .windows(2)
        .map(|w| w[1].start_ns.saturating_sub(w[0].end_ns))
        .collect()
}

/// Bytes per `bin_ns` bin from `origin_ns` on, each span's bytes spread
/// evenly over its interval (a zero-length span lands in its bin). The sum
/// of the bins is the sum of the spans' bytes (up to rounding of one byte
/// per span and bin).
pub fn binned_bytes(spans: &[TransferSpan], origin_ns: u64, bin_ns: u64) -> Vec<f64> {
    let bin = bin_ns.max(1);
    let end = spans.iter().map(|s| s.end_ns).max().unwrap_or(origin_ns);
    let mut bins = vec![0.0f64; (end.saturating_sub(origin_ns) / bin + 1) as usize];
    for s in spans {
        let (a, b) = (
            s.start_ns.max(origin_ns),
            s.end_ns.max(s.start_ns).max(origin_ns),
        );
        if b == a {
            bins[((a - origin_ns) / bin) as usize] += s.bytes as f64;
            continue;
        }
        let per_ns = s.bytes as f64 / (b - a) as f64;
        let mut t = a;
        while t < b {
            let i = (t - origin_ns) / bin;
            let bin_end = origin_ns + (i + 1) * bin;
            let upto = bin_end.min(b);
            bins[i as usize] += per_ns * (upto - t) as f64;
            t = upto;
        }
    }
    bins
}

/// Peak and average GB/s of a binned series (average over the bins from
/// the first to the last non-empty one).
pub fn peak_and_mean_gbytes_per_s(bins: &[f64], bin_ns: u64) -> (f64, f64) {
    let first = bins.iter().position(|b| *b > 0.0);
    let last = bins.iter().rposition(|b| *b > 0.0);
    let (Some(first), Some(last)) = (first, last) else {
        return (0.0, 0.0);
    };
    let gbs = |bytes: f64| bytes / bin_ns.max(1) as f64;
    let peak = bins.iter().copied().fold(0.0, f64::max);
    let total: f64 = bins[first..=last].iter().sum();
    (gbs(peak), gbs(total / (last - first + 1) as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start_ns: u64, end_ns: u64, bytes: u64) -> TransferSpan {
        TransferSpan {
            start_ns,
            end_ns,
            bytes,
        }
    }

    #[test]
    fn overlapping_transfers_are_one_burst() {
        let b = bursts(&[
            span(50, 60, 5),
            span(0, 10, 1),
            span(5, 20, 2),
            span(20, 30, 3),
        ]);
        assert_eq!(
            b,
            [
                Burst {
                    start_ns: 0,
                    end_ns: 30,
                    bytes: 6,
                    transfers: 3
                },
                Burst {
                    start_ns: 50,
                    end_ns: 60,
                    bytes: 5,
                    transfers: 1
                }
            ]
        );
        assert_eq!(gaps_ns(&b), [20]);
        assert!(bursts(&[]).is_empty());
    }

    #[test]
    fn binning_conserves_bytes_and_finds_the_peak() {
        let spans = [
            span(0, 1000, 1000),
            span(500, 1500, 3000),
            span(2500, 2500, 7),
        ];
        let bins = binned_bytes(&spans, 0, 500);
        assert_eq!(bins.len(), 6);
        let total: f64 = bins.iter().sum();
        assert!((total - 4007.0).abs() < 1e-6, "{total}");
        // 500..1000: 500 B of the first + 1500 B of the second
        assert!((bins[1] - 2000.0).abs() < 1e-6, "{bins:?}");
        let (peak, mean) = peak_and_mean_gbytes_per_s(&bins, 500);
        assert!((peak - 4.0).abs() < 1e-9, "peak {peak}");
        assert!((mean - 4007.0 / 6.0 / 500.0).abs() < 1e-9, "mean {mean}");
    }
}
