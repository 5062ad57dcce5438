//! The inflection point of a latency-versus-load curve (draft §10.4:
//! "identify the inflection point at which latency begins to degrade
//! significantly") and the degradation factor at each load.
//!
//! Definitions (docs/metrics.md repeats them):
//! - **Degradation factor** at load `L`: `P99(L) / P99(0)`, the tail latency
//!   under load over the unloaded tail latency.
//! - **Inflection point**: the lowest load level whose degradation factor
//!   exceeds [`INFLECTION_FACTOR`] (P99 more than twice the unloaded P99).
//!   A threshold rather than a knee by second differences, because a 5 %
//!   step sweep with 20 trials is noisy and a second difference amplifies
//!   noise; the threshold reads the same on every fabric and is easy to
//!   check by eye in the JSON. `None` when no level degrades that far, or
//!   when the curve has no unloaded (0 %) point to compare with.
//!
//! This module takes plain `(level, P99)` pairs and knows nothing of reports.

/// A load "degrades significantly" when its P99 exceeds this many times the
/// unloaded P99.
pub const INFLECTION_FACTOR: f64 = 2.0;

/// `p99_ns / unloaded_p99_ns`; `None` when the unloaded P99 is 0 (no samples).
pub fn degradation_factor(p99_ns: u64, unloaded_p99_ns: u64) -> Option<f64> {
    (unloaded_p99_ns > 0).then(|| p99_ns as f64 / unloaded_p99_ns as f64)
}

/// The lowest `level_percent` of `points` (`(level_percent, p99_ns)`, any
/// order) whose P99 exceeds `factor` × the P99 at level 0; `None` without a
/// level-0 point with samples, or when no level exceeds it.
pub fn inflection_level(points: &[(u32, u64)], factor: f64) -> Option<u32> {
    let unloaded = points
        .iter()
        .filter(|(level, _)| *level == 0)
        .map(|&(_, p99)| p99)
        .min()?;
    points
        .iter()
        .filter(|&&(level, p99)| {
            level > 0 && degradation_factor(p99, unloaded).is_some_and(|d| d > factor)
        })
        .map(|&(level, _)| level)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_level_above_twice_the_unloaded_p99() {
        // P99 10 µs unloaded, flat to 50 %, 21 µs at 60 %, 40 µs at 80 %.
        let curve = [
            (0, 10_000),
            (20, 11_000),
            (40, 12_000),
            (50, 20_000), // exactly 2×: not above
            (60, 21_000),
            (80, 40_000),
        ];
        assert_eq!(inflection_level(&curve, INFLECTION_FACTOR), Some(60));
        // order does not matter
        let mut reversed = curve;
        reversed.reverse();
        assert_eq!(inflection_level(&reversed, INFLECTION_FACTOR), Some(60));
        // a stricter factor moves it up
        assert_eq!(inflection_level(&curve, 3.0), Some(80));
    }

    #[test]
    fn no_inflection_without_baseline_or_degradation() {
        assert_eq!(inflection_level(&[(0, 10_000), (95, 19_999)], 2.0), None);
        assert_eq!(inflection_level(&[(25, 10_000), (95, 90_000)], 2.0), None);
        assert_eq!(inflection_level(&[(0, 0), (95, 90_000)], 2.0), None);
        assert_eq!(inflection_level(&[], 2.0), None);
    }

    #[test]
    fn degradation_factor_is_the_p99_ratio() {
        assert_eq!(degradation_factor(30_000, 10_000), Some(3.0));
        assert_eq!(degradation_factor(5_000, 10_000), Some(0.5));
        assert_eq!(degradation_factor(5_000, 0), None);
    }
}
