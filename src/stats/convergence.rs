//! Convergence of a rate series after a change (IETF 8.3): how long a
//! traffic class takes to settle within a tolerance of its steady-state
//! rate once another class joins.
//!
//! Definitions (the single place they are made):
//!
//! - The **window** is bins `[from, to)`: from the join time t0 to the end
//!   of the time both classes ran.
//! - The **steady state** is the last [`STEADY_FRACTION`] (a third) of the
//!   window; the steady rate is the mean of its bins.
//! - Each bin is **smoothed** by the mean of the `smooth_bins` bins centred
//!   on it (shifted inward at the window's edges, so every mean has the
//!   full width), so one bin's burst (a periodic dispatch
//!   landing in one bin and not the next) is not read as instability.
//! - The class has **converged** at the first bin after which every smoothed
//!   bin up to the window's end lies within `tolerance` (5 %) of the steady
//!   rate; the convergence time is that bin's start minus t0. A class that
//!   is not settled before the steady state begins (its last excursion lies
//!   inside the steady third) has **not converged**: `None`, never a number.

/// The tolerance band, a fraction of the steady rate (the draft: 5 %).
pub const CONVERGENCE_TOLERANCE: f64 = 0.05;

/// The steady state: this last fraction of the window.
pub const STEADY_FRACTION: f64 = 1.0 / 3.0;

/// How convergence is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConvergenceRule {
    /// Band around the steady rate, fraction (0.05).
    pub tolerance: f64,
    /// Centred moving-mean window, bins (1: no smoothing).
    pub smooth_bins: usize,
}

/// What [`convergence`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Convergence {
    /// Mean rate over the steady state (None: an empty window).
    pub steady_rate: Option<f64>,
    /// First bin of the steady state (absolute).
    pub steady_from_bin: usize,
    /// Bins from `from` until the class settled for good (None: not
    /// converged).
    pub converged_after_bins: Option<usize>,
}

/// Judges `rates` (one value per bin) over `[from, to)`.
pub fn convergence(rates: &[f64], from: usize, to: usize, rule: ConvergenceRule) -> Convergence {
    let to = to.min(rates.len());
    if from >= to {
        return Convergence {
            steady_rate: None,
            steady_from_bin: to,
            converged_after_bins: None,
        };
    }
    let len = to - from;
    let steady_len = ((len as f64 * STEADY_FRACTION).ceil() as usize).clamp(1, len);
    let steady_from = to - steady_len;
    let steady = rates[steady_from..to].iter().sum::<f64>() / steady_len as f64;
    if !steady.is_finite() {
        return Convergence {
            steady_rate: None,
            steady_from_bin: steady_from,
            converged_after_bins: None,
        };
    }
    let band = rule.tolerance.abs() * steady.abs();
    let width = rule.smooth_bins.clamp(1, len);
    let half = width / 2;
    // prefix sums for the centred means
    let mut prefix = Vec::with_capacity(len + 1);
    prefix.push(0.0);
    for &r in &rates[from..to] {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + r);
    }
    let smoothed = |i: usize| {
        let lo = i.saturating_sub(half).min(len - width);
        let hi = lo + width;
        (prefix[hi] - prefix[lo]) / (hi - lo) as f64
    };
    let last_out = (0..len)
        .rev()
        .find(|&i| (smoothed(i) - steady).abs() > band);
    let settled = last_out.map_or(0, |i| i + 1);
    Convergence {
        steady_rate: Some(steady),
        steady_from_bin: steady_from,
        converged_after_bins: (from + settled <= steady_from).then_some(settled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: ConvergenceRule = ConvergenceRule {
        tolerance: CONVERGENCE_TOLERANCE,
        smooth_bins: 1,
    };

    #[test]
    fn a_step_converges_at_the_step() {
        // t0 at bin 10; the class runs at 50 until bin 30, then 100
        let mut rates = vec![0.0; 10];
        rates.extend(std::iter::repeat_n(50.0, 20));
        rates.extend(std::iter::repeat_n(100.0, 60));
        let c = convergence(&rates, 10, 90, RULE);
        assert_eq!(c.steady_rate, Some(100.0));
        assert_eq!(c.converged_after_bins, Some(20));
        assert_eq!(c.steady_from_bin, 90 - 27);
    }

    #[test]
    fn already_steady_converges_at_once() {
        let rates = vec![80.0; 30];
        let c = convergence(&rates, 0, 30, RULE);
        assert_eq!(c.converged_after_bins, Some(0));
    }

    #[test]
    fn an_overshoot_converges_when_it_decays_into_the_band() {
        // a drop to 40 at t0, overshoot to 130, decay to 100
        let mut rates = vec![40.0, 130.0, 120.0, 110.0, 106.0, 104.0, 98.0];
        rates.extend(std::iter::repeat_n(100.0, 40));
        let c = convergence(&rates, 0, rates.len(), RULE);
        assert_eq!(c.steady_rate, Some(100.0));
        // 106 is outside 5 %, 104 inside
        assert_eq!(c.converged_after_bins, Some(5));
    }

    #[test]
    fn an_oscillation_never_converges() {
        let rates: Vec<f64> = (0..90)
            .map(|i| if i % 2 == 0 { 60.0 } else { 140.0 })
            .collect();
        let c = convergence(&rates, 0, 90, RULE);
        assert_eq!(c.converged_after_bins, None);
        // smoothing over the two-bin cycle sees a flat 100 only where whole
        // cycles fit; an odd window of 3 still swings by a third: not converged
        let smooth = ConvergenceRule {
            smooth_bins: 3,
            ..RULE
        };
        assert_eq!(
            convergence(&rates, 0, 90, smooth).converged_after_bins,
            None
        );
    }

    #[test]
    fn a_ramp_never_converges() {
        let rates: Vec<f64> = (0..90).map(f64::from).collect();
        let c = convergence(&rates, 0, 90, RULE);
        assert_eq!(c.converged_after_bins, None);
    }

    #[test]
    fn smoothing_hides_single_bin_bursts() {
        // a periodic dispatch: 300 every third bin, 0 between; mean 100
        let rates: Vec<f64> = (0..99)
            .map(|i| if i % 3 == 0 { 300.0 } else { 0.0 })
            .collect();
        assert_eq!(convergence(&rates, 0, 99, RULE).converged_after_bins, None);
        let smooth = ConvergenceRule {
            smooth_bins: 3,
            ..RULE
        };
        let c = convergence(&rates, 0, 99, smooth);
        assert_eq!(c.steady_rate, Some(100.0));
        // every full-width mean is 100
        assert_eq!(c.converged_after_bins, Some(0));
    }

    #[test]
    fn an_empty_window_has_no_steady_state() {
        let c = convergence(&[1.0, 2.0], 2, 2, RULE);
        assert_eq!(c.steady_rate, None);
        assert_eq!(c.converged_after_bins, None);
        let c = convergence(&[], 0, 10, RULE);
        assert_eq!(c.steady_rate, None);
    }

    #[test]
    fn a_starved_class_converges_to_zero() {
        let mut rates = vec![50.0; 5];
        rates.extend(std::iter::repeat_n(0.0, 30));
        let c = convergence(&rates, 0, rates.len(), RULE);
        assert_eq!(c.steady_rate, Some(0.0));
        assert_eq!(c.converged_after_bins, Some(5));
    }
}
