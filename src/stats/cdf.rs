//! Points of an empirical latency CDF, and thinning them for plotting.
//!
//! A histogram with millions of samples can have tens of thousands of
//! distinct buckets; a plot needs a few hundred points. Thinning evenly in
//! the fraction axis would throw away the tail, which is the part latency
//! plots exist to show, so [`downsample`] spends half its budget evenly in
//! fraction (the body) and half evenly in "nines" (`-log10(1 − fraction)`,
//! the tail). Every kept point is an exact step of the original CDF, never an
//! interpolated one.

use serde::{Deserialize, Serialize};

/// Nearest-rank percentile of sorted values: the smallest value with at
/// least `q` of the samples at or below it; `None` for no values.
pub fn nearest_rank(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// One step of an empirical CDF: `fraction` of all samples are at or below
/// `latency_ns`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct CdfPoint {
    /// Latency in nanoseconds (the upper edge of a histogram bucket).
    pub latency_ns: u64,
    /// Fraction of samples at or below `latency_ns`, in (0, 1].
    pub fraction: f64,
}

/// Keep at most `max_points` of the CDF `steps`, chosen to show both the
/// body and the tail.
///
/// `steps` must be sorted by latency with non-decreasing fraction (as
/// [`LatencyHistogram::cdf_points`](super::LatencyHistogram::cdf_points)
/// produces them). When `steps.len() <= max_points` they are returned
/// unchanged. Otherwise the first (minimum) and last (maximum, fraction 1)
/// steps are always kept, and the rest of the budget goes to target
/// fractions: half evenly spaced in (0, 1), half evenly spaced in nines from
/// the first step up to the deepest nine the data resolves. Each target keeps
/// the first step whose fraction reaches it (the same rule percentiles use),
/// and targets landing on the same step are merged, so the result can hold
/// fewer than `max_points` points. The result stays sorted and monotonic.
pub fn downsample(steps: &[CdfPoint], max_points: usize) -> Vec<CdfPoint> {
    if steps.len() <= max_points {
        return steps.to_vec();
    }
    // Here steps.len() > max_points >= 0, so steps is non-empty.
    let last = steps.len() - 1;
    if max_points == 0 {
        return Vec::new();
    }
    if max_points == 1 {
        // The one point worth keeping is the maximum.
        return vec![steps[last]];
    }

    let interior = max_points - 2;
    let n_tail = interior / 2;
    let n_body = interior - n_tail;

    let mut targets: Vec<f64> = Vec::with_capacity(interior);
    // Body: k/(n_body+1), k = 1..=n_body.
    targets.extend((1..=n_body).map(|k| k as f64 / (n_body + 1) as f64));
    // Tail: the deepest nine resolved is that of the last step below 1.0
    // (e.g. fraction 0.9999 → 4 nines); spread n_tail targets up to it.
    // steps.len() > max_points >= 2, so index last - 1 exists.
    let deepest_nines = -(1.0 - steps[last - 1].fraction).log10();
    if deepest_nines.is_finite() && deepest_nines > 0.0 {
        targets.extend((1..n_tail).map(|j| {
            let nines = deepest_nines * j as f64 / n_tail as f64;
            1.0 - 10f64.powf(-nines)
        }));
        // The deepest target is that step itself; taken exactly because the
        // log/pow round trip can land an ulp above it and skip to the max.
        if n_tail > 0 {
            targets.push(steps[last - 1].fraction);
        }
    }

    let mut keep: Vec<usize> = Vec::with_capacity(max_points);
    keep.push(0);
    keep.push(last);
    keep.extend(
        targets
            .iter()
            .map(|&t| steps.partition_point(|p| p.fraction < t).min(last)),
    );
    keep.sort_unstable();
    keep.dedup();
    keep.into_iter().map(|i| steps[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CDF of the samples 1, 2, …, n ns, one each.
    fn uniform_steps(n: u64) -> Vec<CdfPoint> {
        (1..=n)
            .map(|i| CdfPoint {
                latency_ns: i,
                fraction: i as f64 / n as f64,
            })
            .collect()
    }

    fn assert_monotonic(points: &[CdfPoint]) {
        for w in points.windows(2) {
            assert!(w[0].latency_ns < w[1].latency_ns, "{w:?}");
            assert!(w[0].fraction <= w[1].fraction, "{w:?}");
        }
    }

    #[test]
    fn short_input_is_returned_unchanged() {
        let steps = uniform_steps(5);
        assert_eq!(downsample(&steps, 5), steps);
        assert_eq!(downsample(&steps, 100), steps);
        assert!(downsample(&[], 10).is_empty());
    }

    #[test]
    fn tiny_budgets() {
        let steps = uniform_steps(10);
        assert!(downsample(&steps, 0).is_empty());
        assert_eq!(downsample(&steps, 1), vec![steps[9]]);
        assert_eq!(downsample(&steps, 2), vec![steps[0], steps[9]]);
    }

    #[test]
    fn body_targets_hand_computed() {
        // max 5 → 3 interior: 2 body targets at 1/3 and 2/3, 1 tail target at
        // the deepest nine (last-but-one step 0.9 → 1 nine → 0.9).
        // Over 1..=10: 1/3 → first fraction ≥ 0.333 is 0.4 (4 ns),
        // 2/3 → 0.7 (7 ns), 0.9 → 9 ns. Plus 1 ns and 10 ns.
        let got: Vec<u64> = downsample(&uniform_steps(10), 5)
            .iter()
            .map(|p| p.latency_ns)
            .collect();
        assert_eq!(got, vec![1, 4, 7, 9, 10]);
    }

    #[test]
    fn tail_is_resolved_in_nines() {
        let steps = uniform_steps(100_000);
        let pts = downsample(&steps, 40);
        assert!(pts.len() <= 40);
        assert_monotonic(&pts);
        assert_eq!(pts.first().unwrap().latency_ns, 1);
        assert_eq!(pts.last().unwrap().fraction, 1.0);
        // Even spacing alone would put ~0 points above P99; the nines half
        // puts several in each decade of the tail.
        let above = |f: f64| pts.iter().filter(|p| p.fraction > f).count();
        assert!(above(0.99) >= 7, "{pts:?}");
        assert!(above(0.999) >= 5, "{pts:?}");
        assert!(above(0.9999) >= 3, "{pts:?}");
        // Every kept point is an original step.
        for p in &pts {
            assert_eq!(steps[(p.latency_ns - 1) as usize], *p);
        }
    }
}
