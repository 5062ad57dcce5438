//! Trends over a long run (IETF 13.1–13.3): the least-squares slope of a
//! series against time with its two-sided 95 % confidence interval, and the
//! coefficient of variation of a series.
//!
//! A soak flags a metric as growing when the whole 95 % interval of its
//! slope lies above zero *and* the growth it implies over the run is not
//! negligible (see `suite::soak`). A perfectly flat series (a resource
//! count that never moves) has a zero-width interval at zero and is never
//! flagged; a series that rises by one every sample has a zero-width
//! interval above zero and always is.

use super::interval::student_t_975;
use super::mean::{mean, sample_stdev};

/// An ordinary least-squares line `y = intercept + slope · x`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearTrend {
    /// Points the line was fitted to.
    pub n: usize,
    /// Change of y per unit of x.
    pub slope: f64,
    /// y at x = 0.
    pub intercept: f64,
    /// Lower bound of the slope's two-sided 95 % interval (Student's t, n − 2 df).
    pub ci95_low: f64,
    /// Upper bound of the slope's 95 % interval.
    pub ci95_high: f64,
}

impl LinearTrend {
    /// Whether the slope is positive with 95 % confidence.
    pub fn rising(&self) -> bool {
        self.ci95_low > 0.0
    }
}

/// Fits `ys` against `xs` by least squares; `None` with fewer than three
/// points (no spread left to bound the slope), unequal lengths, a
/// non-finite value, or all `xs` equal.
pub fn linear_trend(xs: &[f64], ys: &[f64]) -> Option<LinearTrend> {
    let n = xs.len();
    if n < 3 || ys.len() != n || xs.iter().chain(ys).any(|v| !v.is_finite()) {
        return None;
    }
    let mx = mean(xs)?;
    let my = mean(ys)?;
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let sse: f64 = xs
        .iter()
        .zip(ys)
        .map(|(x, y)| {
            let r = y - (intercept + slope * x);
            r * r
        })
        .sum();
    let se = (sse / (n - 2) as f64 / sxx).sqrt();
    let half = student_t_975(n - 2) * se;
    Some(LinearTrend {
        n,
        slope,
        intercept,
        ci95_low: slope - half,
        ci95_high: slope + half,
    })
}

/// Coefficient of variation (sample stdev / mean) in percent; `None` with
/// fewer than two values or a zero mean.
pub fn cv_percent(values: &[f64]) -> Option<f64> {
    let m = mean(values)?;
    let s = sample_stdev(values)?;
    (m != 0.0).then(|| 100.0 * s / m.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exact_line_has_a_zero_width_interval() {
        let xs: Vec<f64> = (0..10).map(f64::from).collect();
        let ys: Vec<f64> = xs.iter().map(|x| 3.0 + 2.0 * x).collect();
        let t = linear_trend(&xs, &ys).unwrap();
        assert!((t.slope - 2.0).abs() < 1e-12);
        assert!((t.intercept - 3.0).abs() < 1e-12);
        assert!((t.ci95_low - 2.0).abs() < 1e-9 && (t.ci95_high - 2.0).abs() < 1e-9);
        assert!(t.rising());
    }

    #[test]
    fn a_flat_series_is_not_rising() {
        let xs: Vec<f64> = (0..60).map(f64::from).collect();
        let ys = vec![42.0; 60];
        let t = linear_trend(&xs, &ys).unwrap();
        assert_eq!(t.slope, 0.0);
        assert!(!t.rising());
    }

    #[test]
    fn the_interval_matches_the_textbook_formula() {
        // x = 1..5, y = 2, 4, 5, 4, 5: slope 0.6, s_e = sqrt(2.4/3/10),
        // t(3) = 3.182
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0];
        let ys = [2.0, 4.0, 5.0, 4.0, 5.0];
        let t = linear_trend(&xs, &ys).unwrap();
        assert!((t.slope - 0.6).abs() < 1e-12);
        let half = 3.182 * (2.4f64 / 3.0 / 10.0).sqrt();
        assert!((t.ci95_low - (0.6 - half)).abs() < 1e-9);
        assert!((t.ci95_high - (0.6 + half)).abs() < 1e-9);
        assert!(!t.rising(), "five noisy points do not prove growth");
    }

    #[test]
    fn noise_around_a_level_is_not_rising_but_a_small_drift_is() {
        let mut rng = fastrand::Rng::with_seed(7);
        let xs: Vec<f64> = (0..200).map(f64::from).collect();
        let noise: Vec<f64> = xs.iter().map(|_| rng.f64() - 0.5).collect();
        let flat: Vec<f64> = noise.iter().map(|e| 100.0 + e).collect();
        let t = linear_trend(&xs, &flat).unwrap();
        assert!(t.ci95_low < 0.0 && t.ci95_high > 0.0, "{t:?}");
        let drift: Vec<f64> = xs
            .iter()
            .zip(&noise)
            .map(|(x, e)| 100.0 + 0.01 * x + e)
            .collect();
        assert!(linear_trend(&xs, &drift).unwrap().rising());
    }

    #[test]
    fn too_few_or_degenerate_points_give_none() {
        assert!(linear_trend(&[1.0, 2.0], &[1.0, 2.0]).is_none());
        assert!(linear_trend(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_none());
        assert!(linear_trend(&[1.0, 2.0, 3.0], &[1.0, f64::NAN, 3.0]).is_none());
        assert!(linear_trend(&[1.0, 2.0, 3.0], &[1.0, 2.0]).is_none());
    }

    #[test]
    fn cv_is_stdev_over_mean() {
        let cv = cv_percent(&[9.0, 10.0, 11.0]).unwrap();
        assert!((cv - 10.0).abs() < 1e-9);
        assert!(cv_percent(&[5.0]).is_none());
    }
}
