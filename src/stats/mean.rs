//! Plain arithmetic mean and sample standard deviation of `f64` slices.
//!
//! These are the building blocks of the across-trial interval
//! ([`super::interval`]). They return `None` instead of NaN for undefined
//! cases (empty input, a single value for the stdev, non-finite input), so a
//! caller cannot accidentally write a NaN into a JSON report.

/// Arithmetic mean `Σx / n`.
///
/// `None` for an empty slice, or when any value is NaN/infinite, or when the
/// sum overflows `f64` (the mean would not be a finite number).
pub fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let sum: f64 = values.iter().sum();
    let mean = sum / values.len() as f64;
    mean.is_finite().then_some(mean)
}

/// Sample standard deviation `sqrt(Σ(x − x̄)² / (n − 1))` (Bessel-corrected).
///
/// Uses `n − 1` because trials are a sample of what the fabric could do, and
/// the Student-t interval built on it assumes the sample estimator. Two-pass
/// (mean first, then squared deviations) rather than the one-pass `Σx² − n·x̄²`
/// formula, which cancels catastrophically when the spread is tiny compared
/// with the mean (e.g. 400.001 vs 400.002 Gb/s).
///
/// `None` when fewer than two values are given (one value has no spread to
/// estimate) or when [`mean`] is `None`.
pub fn sample_stdev(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let m = mean(values)?;
    let sum_sq_dev: f64 = values.iter().map(|v| (v - m) * (v - m)).sum();
    let stdev = (sum_sq_dev / (values.len() - 1) as f64).sqrt();
    stdev.is_finite().then_some(stdev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn mean_of_hand_values() {
        assert_eq!(mean(&[10.0, 12.0, 14.0]), Some(12.0));
        assert_eq!(mean(&[5.0]), Some(5.0));
        assert_eq!(mean(&[-1.0, 1.0]), Some(0.0));
    }

    #[test]
    fn mean_undefined_cases() {
        assert_eq!(mean(&[]), None);
        assert_eq!(mean(&[1.0, f64::NAN]), None);
        assert_eq!(mean(&[1.0, f64::INFINITY]), None);
        // Finite values whose sum overflows.
        assert_eq!(mean(&[f64::MAX, f64::MAX]), None);
    }

    #[test]
    fn sample_stdev_of_hand_values() {
        // Deviations -2, 0, 2 → Σ = 8, / (3 − 1) = 4, sqrt = 2.
        assert_eq!(sample_stdev(&[10.0, 12.0, 14.0]), Some(2.0));
        // Classic textbook set: mean 5, Σdev² = 32, / 7 → sqrt(32/7).
        let s = sample_stdev(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert!(close(s, (32.0_f64 / 7.0).sqrt()));
        assert_eq!(sample_stdev(&[3.0, 3.0, 3.0]), Some(0.0));
    }

    #[test]
    fn sample_stdev_undefined_cases() {
        assert_eq!(sample_stdev(&[]), None);
        assert_eq!(sample_stdev(&[1.0]), None);
        assert_eq!(sample_stdev(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn sample_stdev_is_stable_for_tiny_spread() {
        // One-pass Σx² − n·x̄² would lose these digits entirely.
        let s = sample_stdev(&[1e9 + 1.0, 1e9 + 2.0, 1e9 + 3.0]).unwrap();
        assert!(close(s, 1.0), "got {s}");
    }
}
