//! A/B significance over per-trial values (`infab compare`): Welch's t-test
//! for a difference of means with its 95 % interval, and the Mann-Whitney
//! U test (exact for small untied samples, normal approximation with tie
//! correction otherwise) for per-trial percentiles, whose distribution is
//! not normal. The distributions come from `statrs`.

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

use super::mean::{mean, sample_stdev};

/// Welch's unequal-variance t-test of `new − base`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Welch {
    /// mean(new) − mean(base).
    pub delta: f64,
    /// Lower bound of the delta's two-sided 95 % interval.
    pub ci95_low: f64,
    /// Upper bound of the delta's 95 % interval.
    pub ci95_high: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// Welch's test; `None` unless both sides have at least two finite values.
/// Two constant samples give p = 0 when their means differ (a zero-width
/// interval) and p = 1 when they are equal.
pub fn welch(base: &[f64], new: &[f64]) -> Option<Welch> {
    if base.len() < 2 || new.len() < 2 || base.iter().chain(new).any(|v| !v.is_finite()) {
        return None;
    }
    let (m1, m2) = (mean(base)?, mean(new)?);
    let (s1, s2) = (sample_stdev(base)?, sample_stdev(new)?);
    let (n1, n2) = (base.len() as f64, new.len() as f64);
    let (v1, v2) = (s1 * s1 / n1, s2 * s2 / n2);
    let se = (v1 + v2).sqrt();
    let delta = m2 - m1;
    if se == 0.0 {
        let p = if delta == 0.0 { 1.0 } else { 0.0 };
        return Some(Welch {
            delta,
            ci95_low: delta,
            ci95_high: delta,
            df: n1 + n2 - 2.0,
            p,
        });
    }
    let df = (v1 + v2).powi(2) / (v1 * v1 / (n1 - 1.0) + v2 * v2 / (n2 - 1.0));
    let t_dist = StudentsT::new(0.0, 1.0, df).ok()?;
    let t = delta / se;
    let p = (2.0 * (1.0 - t_dist.cdf(t.abs()))).clamp(0.0, 1.0);
    let half = t_dist.inverse_cdf(0.975) * se;
    Some(Welch {
        delta,
        ci95_low: delta - half,
        ci95_high: delta + half,
        df,
        p,
    })
}

/// The Mann-Whitney U test of `base` against `new`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of `new` (pairs where new > base, ties counting ½).
    pub u: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// Whether `p` is exact (small samples without ties) or the normal
    /// approximation with tie correction.
    pub exact: bool,
}

/// Largest side for the exact distribution (its table has n1·n2 + 1 entries
/// per step; 30 × 30 is instant).
const EXACT_MAX: usize = 30;

/// The two-sided Mann-Whitney U test; `None` when either side is empty or
/// holds a non-finite value.
pub fn mann_whitney(base: &[f64], new: &[f64]) -> Option<MannWhitney> {
    let (n1, n2) = (base.len(), new.len());
    if n1 == 0 || n2 == 0 || base.iter().chain(new).any(|v| !v.is_finite()) {
        return None;
    }
    let mut u = 0.0;
    let mut ties = false;
    for &b in base {
        for &x in new {
            if x > b {
                u += 1.0;
            } else if x == b {
                u += 0.5;
                ties = true;
            }
        }
    }
    let mut pooled: Vec<f64> = base.iter().chain(new).copied().collect();
    pooled.sort_by(f64::total_cmp);
    ties |= pooled.windows(2).any(|w| w[0] == w[1]);
    if !ties && n1 <= EXACT_MAX && n2 <= EXACT_MAX {
        let p = exact_two_sided(n1, n2, u);
        return Some(MannWhitney { u, p, exact: true });
    }
    // normal approximation with the tie-corrected variance
    let n = (n1 + n2) as f64;
    let mu = (n1 * n2) as f64 / 2.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < pooled.len() {
        let j = pooled[i..].iter().take_while(|v| **v == pooled[i]).count();
        let t = j as f64;
        tie_term += t * t * t - t;
        i += j;
    }
    let var = (n1 * n2) as f64 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if var <= 0.0 {
        return Some(MannWhitney {
            u,
            p: 1.0,
            exact: false,
        });
    }
    // continuity correction
    let z = ((u - mu).abs() - 0.5).max(0.0) / var.sqrt();
    let normal = Normal::new(0.0, 1.0).ok()?;
    let p = (2.0 * (1.0 - normal.cdf(z))).clamp(0.0, 1.0);
    Some(MannWhitney { u, p, exact: false })
}

/// P(|U − μ| ≥ |u − μ|) under H0 for untied samples: the number of ways
/// each U arises, by the recurrence f(n1, n2, u) = f(n1 − 1, n2, u − n2) +
/// f(n1, n2 − 1, u).
fn exact_two_sided(n1: usize, n2: usize, u: f64) -> f64 {
    let max_u = n1 * n2;
    // counts[a][b][k]: arrangements of a and b values with U = k; built
    // over a with a rolling table per b
    let mut prev: Vec<Vec<f64>> = (0..=n2).map(|_| vec![1.0]).collect(); // a = 0: U = 0 once
    for a in 1..=n1 {
        let mut cur: Vec<Vec<f64>> = Vec::with_capacity(n2 + 1);
        cur.push(vec![1.0]); // b = 0
        for b in 1..=n2 {
            let mut row = vec![0.0; a * b + 1];
            // the largest value belongs to side a: it beats all b values
            for (k, c) in prev[b].iter().enumerate() {
                row[k + b] += c;
            }
            // the largest value belongs to side b: U unchanged
            for (k, c) in cur[b - 1].iter().enumerate() {
                row[k] += c;
            }
            cur.push(row);
        }
        prev = cur;
    }
    let counts = &prev[n2];
    let total: f64 = counts.iter().sum();
    let mu = max_u as f64 / 2.0;
    let dist = (u - mu).abs();
    let extreme: f64 = counts
        .iter()
        .enumerate()
        .filter(|(k, _)| (*k as f64 - mu).abs() >= dist - 1e-9)
        .map(|(_, c)| c)
        .sum();
    (extreme / total).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welch_matches_a_textbook_example() {
        // R: t.test(b, a) gives t = 2, df = 8, p = 0.08052 (se = 1)
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [3.0, 4.0, 5.0, 6.0, 7.0];
        let w = welch(&a, &b).unwrap();
        assert!((w.delta - 2.0).abs() < 1e-12);
        assert!((w.df - 8.0).abs() < 1e-9);
        assert!((w.p - 0.08052).abs() < 1e-4, "{}", w.p);
        // CI: 2 ± t(0.975, 8) · se
        assert!((w.ci95_low - (2.0 - 2.306)).abs() < 1e-3);
        assert!((w.ci95_high - (2.0 + 2.306)).abs() < 1e-3);
    }

    #[test]
    fn welch_needs_two_values_a_side() {
        assert!(welch(&[1.0], &[1.0, 2.0]).is_none());
        let same = welch(&[2.0, 2.0], &[2.0, 2.0]).unwrap();
        assert_eq!(same.p, 1.0);
        assert_eq!(welch(&[2.0, 2.0], &[3.0, 3.0]).unwrap().p, 0.0);
    }

    #[test]
    fn exact_u_matches_the_tables() {
        // 3 vs 3 fully separated: U = 9 is 1 of 20 arrangements, two-sided p = 0.1
        let m = mann_whitney(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]).unwrap();
        assert!(m.exact);
        assert_eq!(m.u, 9.0);
        assert!((m.p - 0.1).abs() < 1e-12);
        // 5 vs 5 separated: 2 / 252
        let m = mann_whitney(&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0, 7.0, 8.0, 9.0, 10.0]).unwrap();
        assert!((m.p - 2.0 / 252.0).abs() < 1e-12);
        // interleaved: no evidence
        let m = mann_whitney(&[1.0, 3.0, 5.0], &[2.0, 4.0, 6.0]).unwrap();
        assert!(m.p > 0.5);
    }

    #[test]
    fn ties_use_the_corrected_normal_approximation() {
        let m = mann_whitney(&[1.0, 1.0, 2.0, 2.0], &[2.0, 3.0, 3.0, 3.0]).unwrap();
        assert!(!m.exact);
        assert!(m.p > 0.0 && m.p < 0.2, "{}", m.p);
        let all_same = mann_whitney(&[1.0, 1.0], &[1.0, 1.0]).unwrap();
        assert_eq!(all_same.p, 1.0);
    }
}
