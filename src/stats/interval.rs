//! Confidence intervals across repeated trials (Student's t, two-sided 95 %).
//!
//! A benchmark point is usually run 3–10 times; each trial yields one number
//! (a P99, a Gb/s). This module turns those numbers into a mean with an
//! honest 95 % interval. Student's t is used instead of the normal 1.96
//! because with so few trials the sample stdev is itself uncertain, and the
//! normal quantile would understate the interval by up to 6.5× at n = 2.

use serde::{Deserialize, Serialize};

use super::mean::{mean, sample_stdev};

/// Mean of per-trial results with its two-sided 95 % confidence interval.
///
/// The spread fields are `None` when `n < 2`: one trial says nothing about
/// run-to-run variation, and reporting a zero-width interval would claim a
/// certainty that was never measured (and JSON cannot carry NaN).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TrialInterval {
    /// Number of trials the interval was computed from.
    pub n: usize,
    /// Arithmetic mean of the trial results.
    pub mean: f64,
    /// Sample standard deviation (divides by `n − 1`); `None` when `n < 2`.
    pub stdev: Option<f64>,
    /// Half width `t₀.₉₇₅(n−1) · stdev / √n`; `None` when `n < 2`.
    pub ci95_half_width: Option<f64>,
    /// Lower bound `mean − ci95_half_width`; `None` when `n < 2`.
    pub ci95_low: Option<f64>,
    /// Upper bound `mean + ci95_half_width`; `None` when `n < 2`.
    pub ci95_high: Option<f64>,
}

/// Summarise per-trial results as mean ± 95 % Student-t confidence interval.
///
/// Returns `None` for an empty slice or when any value is NaN/infinite (a
/// failed trial must be handled by the caller, not averaged in). With one
/// value the mean is that value and all spread fields are `None`.
pub fn across_trials(values: &[f64]) -> Option<TrialInterval> {
    let mean = mean(values)?;
    let n = values.len();
    let stdev = sample_stdev(values);
    let ci95_half_width = stdev.map(|s| student_t_975(n - 1) * s / (n as f64).sqrt());
    Some(TrialInterval {
        n,
        mean,
        stdev,
        ci95_half_width,
        ci95_low: ci95_half_width.map(|h| mean - h),
        ci95_high: ci95_half_width.map(|h| mean + h),
    })
}

/// Exact two-sided 95 % Student-t critical values `t₀.₉₇₅(df)` for df = 1..=30
/// (index 0 is df = 1), to the three decimals of the standard tables.
const T_975_DF_1_TO_30: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, //
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, //
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/// Table anchors above df = 30, as `(df, t₀.₉₇₅)`. Beyond the last anchor the
/// curve runs to the normal quantile 1.960 at df = ∞.
const T_975_ANCHORS: [(usize, f64); 4] = [(30, 2.042), (40, 2.021), (60, 2.000), (120, 1.980)];

/// The normal 97.5 % quantile, the limit of `t₀.₉₇₅(df)` as df → ∞.
const Z_975: f64 = 1.960;

/// Two-sided 95 % Student-t critical value `t₀.₉₇₅(df)`.
///
/// Exact (to three decimals) for df 1..=30, 40, 60 and 120. Between anchors,
/// and from 120 towards the limit 1.960, it interpolates linearly in `1/df`:
/// t is very nearly linear in `1/df` for large df, which is why printed
/// tables list 40, 60, 120, ∞ and tell readers to interpolate this way. The
/// error is below 0.001 everywhere (e.g. df 50 gives 2.0084 vs 2.0086).
///
/// df = 0 has no t distribution; it returns `f64::INFINITY` (the limit as
/// df → 0), which [`across_trials`] never asks for because it needs n ≥ 2.
pub fn student_t_975(df: usize) -> f64 {
    match df {
        0 => f64::INFINITY,
        1..=30 => T_975_DF_1_TO_30[df - 1],
        _ => {
            let inv = 1.0 / df as f64;
            for pair in T_975_ANCHORS.windows(2) {
                let ((df_lo, t_lo), (df_hi, t_hi)) = (pair[0], pair[1]);
                if df <= df_hi {
                    let (inv_lo, inv_hi) = (1.0 / df_lo as f64, 1.0 / df_hi as f64);
                    return t_lo + (t_hi - t_lo) * (inv_lo - inv) / (inv_lo - inv_hi);
                }
            }
            // df > 120: interpolate between (1/120, 1.980) and (0, 1.960).
            let (df_last, t_last) = T_975_ANCHORS[T_975_ANCHORS.len() - 1];
            Z_975 + (t_last - Z_975) * inv * df_last as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn t_table_exact_entries() {
        assert_eq!(student_t_975(1), 12.706);
        assert_eq!(student_t_975(2), 4.303);
        assert_eq!(student_t_975(9), 2.262);
        assert_eq!(student_t_975(30), 2.042);
        assert!(close(student_t_975(40), 2.021, 1e-12));
        assert!(close(student_t_975(60), 2.000, 1e-12));
        assert!(close(student_t_975(120), 1.980, 1e-12));
    }

    #[test]
    fn t_interpolated_entries_match_true_quantiles() {
        // True values from the t distribution (scipy.stats.t.ppf(0.975, df)).
        assert!(close(student_t_975(35), 2.0301, 0.001));
        assert!(close(student_t_975(50), 2.0086, 0.001));
        assert!(close(student_t_975(80), 1.9901, 0.001));
        assert!(close(student_t_975(1000), 1.9623, 0.001));
        // Hand check at df 50: 1/50 lies 60 % of the way from 1/40 to 1/60,
        // so t = 2.021 − 0.6·0.021 = 2.0084.
        assert!(close(student_t_975(50), 2.0084, 1e-12));
        // df 240: halfway in 1/df from 1/120 to 0 → (1.980 + 1.960) / 2.
        assert!(close(student_t_975(240), 1.970, 1e-12));
    }

    #[test]
    fn t_is_monotonic_and_tends_to_normal() {
        let mut prev = student_t_975(1);
        for df in 2..=5000 {
            let t = student_t_975(df);
            assert!(t < prev, "t({df}) = {t} not below t({}) = {prev}", df - 1);
            assert!(t > Z_975);
            prev = t;
        }
        assert!(close(student_t_975(usize::MAX), Z_975, 1e-12));
        assert_eq!(student_t_975(0), f64::INFINITY);
    }

    #[test]
    fn across_trials_hand_computed() {
        // mean 12, s = 2, half width 4.303 · 2 / √3 = 4.968676…
        let ci = across_trials(&[10.0, 12.0, 14.0]).unwrap();
        assert_eq!(ci.n, 3);
        assert_eq!(ci.mean, 12.0);
        assert_eq!(ci.stdev, Some(2.0));
        let h = ci.ci95_half_width.unwrap();
        assert!(close(h, 4.303 * 2.0 / 3.0_f64.sqrt(), 1e-12));
        assert!(close(h, 4.968_7, 1e-4));
        assert!(close(ci.ci95_low.unwrap(), 12.0 - h, 1e-12));
        assert!(close(ci.ci95_high.unwrap(), 12.0 + h, 1e-12));
    }

    #[test]
    fn across_trials_two_values() {
        // [1, 3]: mean 2, s = √2, half width 12.706 · √2 / √2 = 12.706.
        let ci = across_trials(&[1.0, 3.0]).unwrap();
        assert_eq!(ci.mean, 2.0);
        assert!(close(ci.stdev.unwrap(), 2.0_f64.sqrt(), 1e-12));
        assert!(close(ci.ci95_half_width.unwrap(), 12.706, 1e-12));
    }

    #[test]
    fn across_trials_identical_values_have_zero_width() {
        let ci = across_trials(&[5.0, 5.0, 5.0, 5.0]).unwrap();
        assert_eq!(ci.stdev, Some(0.0));
        assert_eq!(ci.ci95_half_width, Some(0.0));
        assert_eq!(ci.ci95_low, Some(5.0));
        assert_eq!(ci.ci95_high, Some(5.0));
    }

    #[test]
    fn across_trials_single_value_has_no_interval() {
        let ci = across_trials(&[7.5]).unwrap();
        assert_eq!(
            ci,
            TrialInterval {
                n: 1,
                mean: 7.5,
                stdev: None,
                ci95_half_width: None,
                ci95_low: None,
                ci95_high: None,
            }
        );
        // None serialises as JSON null, never NaN, and round-trips.
        let json = serde_json::to_string(&ci).unwrap();
        assert!(json.contains("\"stdev\":null"), "{json}");
        let back: TrialInterval = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ci);
    }

    #[test]
    fn across_trials_undefined_cases() {
        assert_eq!(across_trials(&[]), None);
        assert_eq!(across_trials(&[1.0, f64::NAN]), None);
        assert_eq!(across_trials(&[1.0, f64::NEG_INFINITY]), None);
    }
}
