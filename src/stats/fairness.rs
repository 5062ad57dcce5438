//! Fairness of a rate split between flows: Jain's fairness index and the
//! max/min ratio.
//!
//! Input is one non-negative number per flow (typically Gb/s each sender got
//! during an incast or AllToAll phase). Both metrics are scale-free, so the
//! unit does not matter as long as all flows use the same one.

/// Jain's fairness index `J = (Σx)² / (n·Σx²)`.
///
/// `J` is 1.0 when every flow got the same rate and falls to `1/n` when a
/// single flow got everything; `k/n` when `k` flows share equally and the
/// rest starve.
///
/// Returns `None` when the index is undefined or the input is not a rate
/// vector:
/// - an empty slice (no flows),
/// - all values zero: the formula is 0/0, and "nobody got anything" is a
///   failed run, not a perfectly fair one, so we refuse to call it 1.0,
/// - any value negative or non-finite (rates cannot be negative; NaN would
///   poison the result).
pub fn jain_index(values: &[f64]) -> Option<f64> {
    let max = checked_max(values)?;
    if max == 0.0 {
        return None;
    }
    // J is invariant under scaling, so divide by the maximum first: this keeps
    // Σx² from overflowing for huge inputs (e.g. rates in bit/s squared).
    let (sum, sum_sq) = values.iter().fold((0.0_f64, 0.0_f64), |(s, sq), v| {
        let x = v / max;
        (s + x, sq + x * x)
    });
    let n = values.len() as f64;
    // Floating-point rounding can push (Σx)² a hair above n·Σx² for equal
    // values; the index is bounded by 1 by Cauchy–Schwarz, so clamp.
    Some((sum * sum / (n * sum_sq)).min(1.0))
}

/// Ratio of the largest to the smallest value, `max(x) / min(x)`.
///
/// 1.0 means perfectly even; 2.0 means the luckiest flow got twice what the
/// unluckiest did. Returns `None` for an empty slice, when the minimum is zero
/// (a starved flow makes the ratio infinite; report starvation separately),
/// or when any value is negative or non-finite.
pub fn max_min_ratio(values: &[f64]) -> Option<f64> {
    let max = checked_max(values)?;
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    if min == 0.0 {
        return None;
    }
    let ratio = max / min;
    // A tiny subnormal minimum can still overflow the division.
    ratio.is_finite().then_some(ratio)
}

/// The maximum of a non-empty slice of finite, non-negative values; `None`
/// otherwise. Shared validation for both fairness metrics.
fn checked_max(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite() || *v < 0.0) {
        return None;
    }
    Some(values.iter().copied().fold(0.0, f64::max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12
    }

    #[test]
    fn jain_equal_shares_is_one() {
        assert_eq!(jain_index(&[1.0, 1.0, 1.0, 1.0]), Some(1.0));
        assert_eq!(jain_index(&[25.0; 8]), Some(1.0));
        // Awkward value that does not divide evenly in binary.
        assert_eq!(jain_index(&[0.1; 7]), Some(1.0));
    }

    #[test]
    fn jain_one_flow_takes_all_is_one_over_n() {
        assert_eq!(jain_index(&[1.0, 0.0, 0.0, 0.0]), Some(0.25));
        // Two of four share equally: (2)² / (4·2) = 0.5.
        assert_eq!(jain_index(&[3.0, 3.0, 0.0, 0.0]), Some(0.5));
    }

    #[test]
    fn jain_hand_computed() {
        // (1+2+3)² / (3·(1+4+9)) = 36/42 = 6/7.
        let j = jain_index(&[1.0, 2.0, 3.0]).unwrap();
        assert!(close(j, 36.0 / 42.0), "got {j}");
        assert!(close(j, 0.857_142_857_142_857));
        // Single flow is trivially fair.
        assert_eq!(jain_index(&[42.0]), Some(1.0));
    }

    #[test]
    fn jain_is_scale_free_and_does_not_overflow() {
        let small = jain_index(&[1.0, 2.0, 3.0]).unwrap();
        let huge = jain_index(&[1e200, 2e200, 3e200]).unwrap();
        assert!(close(small, huge));
    }

    #[test]
    fn jain_undefined_cases() {
        assert_eq!(jain_index(&[]), None);
        assert_eq!(jain_index(&[0.0, 0.0, 0.0]), None);
        assert_eq!(jain_index(&[1.0, -1.0]), None);
        assert_eq!(jain_index(&[1.0, f64::NAN]), None);
        assert_eq!(jain_index(&[1.0, f64::INFINITY]), None);
    }

    #[test]
    fn max_min_ratio_hand_values() {
        assert_eq!(max_min_ratio(&[2.0, 4.0, 3.0]), Some(2.0));
        assert_eq!(max_min_ratio(&[5.0, 5.0]), Some(1.0));
        assert_eq!(max_min_ratio(&[7.0]), Some(1.0));
    }

    #[test]
    fn max_min_ratio_undefined_cases() {
        assert_eq!(max_min_ratio(&[]), None);
        assert_eq!(max_min_ratio(&[1.0, 0.0]), None);
        assert_eq!(max_min_ratio(&[0.0, 0.0]), None);
        assert_eq!(max_min_ratio(&[1.0, -2.0]), None);
        assert_eq!(max_min_ratio(&[1.0, f64::NAN]), None);
        assert_eq!(max_min_ratio(&[f64::MAX, f64::MIN_POSITIVE / 4.0]), None);
    }
}
