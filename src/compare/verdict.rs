//! The A/B judgement: for every configuration both files hold and every
//! KPI, the delta of the means with its Welch 95 % interval, the p-value of
//! the test that fits the KPI (Welch's t for means, Mann-Whitney U for
//! per-trial percentiles), and a verdict against `--min-effect`.

use serde::Serialize;

use super::samples::{configurations, Better, Statistic};
use crate::results::RunReport;
use crate::stats::{mann_whitney, mean, welch};

/// The significance level of every test.
pub const ALPHA: f64 = 0.05;

/// Fewest trials a side needs for a test to mean anything.
pub const MIN_TRIALS: usize = 3;

/// What a KPI did from BASE to NEW.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Significantly better by at least the minimum effect.
    Better,
    /// Significantly worse by at least the minimum effect.
    Worse,
    /// Not significant, or smaller than the minimum effect.
    NoSignificantChange,
    /// Too few trials on a side to test.
    NotTestable,
}

impl Verdict {
    /// "better", "worse", "no significant change", "not testable".
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::NoSignificantChange => "no significant change",
            Verdict::NotTestable => "not testable",
        }
    }
}

/// One KPI of one configuration, compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KpiComparison {
    /// The configuration's key.
    pub config: String,
    /// The KPI.
    pub kpi: String,
    /// Unit of means and deltas (base units).
    pub unit: &'static str,
    /// Which way is better.
    pub better: Better,
    /// The test used.
    pub statistic: Statistic,
    /// Trials in BASE.
    pub base_n: usize,
    /// Trials in NEW.
    pub new_n: usize,
    /// Mean of BASE's trials.
    pub base_mean: Option<f64>,
    /// Mean of NEW's trials.
    pub new_mean: Option<f64>,
    /// new_mean − base_mean.
    pub delta: Option<f64>,
    /// The delta in percent of base_mean.
    pub delta_percent: Option<f64>,
    /// Welch 95 % interval of the delta.
    pub delta_ci95: Option<(f64, f64)>,
    /// Two-sided p-value of the test.
    pub p_value: Option<f64>,
    /// The judgement.
    pub verdict: Verdict,
    /// BASE's per-trial values, in trial order (what the test read).
    pub base_values: Vec<f64>,
    /// NEW's per-trial values, in trial order.
    pub new_values: Vec<f64>,
}

/// BASE against one NEW file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// BASE's path.
    pub base: String,
    /// NEW's path.
    pub new: String,
    /// The test id both files are of.
    pub test_id: String,
    /// The smallest relative change that counts, percent.
    pub min_effect_percent: f64,
    /// The significance level.
    pub alpha: f64,
    /// Every compared KPI.
    pub rows: Vec<KpiComparison>,
    /// Configurations only one side has.
    pub unmatched: Vec<String>,
    /// Caveats (few trials, differing parameters).
    pub notes: Vec<String>,
}

impl Comparison {
    /// Whether any KPI is significantly worse.
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|r| r.verdict == Verdict::Worse)
    }
}

/// Why two files cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// Different tests.
    #[error("{base} is test {base_test} and {new} is test {new_test}: compare files of one test")]
    DifferentTests {
        /// BASE path.
        base: String,
        /// Its test id.
        base_test: String,
        /// NEW path.
        new: String,
        /// Its test id.
        new_test: String,
    },
    /// Nothing in common.
    #[error("{base} and {new} share no configuration ({base} has {base_keys}; {new} has {new_keys}); run NEW with BASE's sizes, QPs or points")]
    NothingInCommon {
        /// BASE path.
        base: String,
        /// Its configurations.
        base_keys: String,
        /// NEW path.
        new: String,
        /// Its configurations.
        new_keys: String,
    },
    /// A schema from another major version.
    #[error("{path} has schema {version}; this infab reads 1.x files only")]
    Schema {
        /// The file.
        path: String,
        /// Its version.
        version: String,
    },
}

/// Compares `new` against `base` (`min_effect_percent`: e.g. 2.0).
pub fn compare(
    base_path: &str,
    base: &RunReport,
    new_path: &str,
    new: &RunReport,
    min_effect_percent: f64,
) -> Result<Comparison, CompareError> {
    for (path, report) in [(base_path, base), (new_path, new)] {
        if !report.schema_version.starts_with("1.") {
            return Err(CompareError::Schema {
                path: path.into(),
                version: report.schema_version.clone(),
            });
        }
    }
    if base.test_id != new.test_id {
        return Err(CompareError::DifferentTests {
            base: base_path.into(),
            base_test: base.test_id.clone(),
            new: new_path.into(),
            new_test: new.test_id.clone(),
        });
    }
    let base_configs = configurations(base);
    let new_configs = configurations(new);
    let mut rows = Vec::new();
    let mut unmatched = Vec::new();
    let mut few = Vec::new();
    let mut notes = Vec::new();
    // one configuration a side, differing in a knob (e.g. --qps 1 against
    // --qps 8): that knob is the A/B question, so the two are paired
    let single_pair = match (base_configs.as_slice(), new_configs.as_slice()) {
        ([b], [n]) if b.key != n.key => {
            notes.push(format!(
                "one configuration a side: BASE's {} is compared with NEW's {} (the knob that differs is what is being compared)",
                b.key, n.key
            ));
            true
        }
        _ => false,
    };
    for b in &base_configs {
        let matched = if single_pair {
            new_configs.first()
        } else {
            new_configs.iter().find(|n| n.key == b.key)
        };
        let Some(n) = matched else {
            unmatched.push(format!("{} (only in BASE)", b.key));
            continue;
        };
        for bk in &b.kpis {
            let Some(nk) = n.kpis.iter().find(|k| k.kpi == bk.kpi) else {
                continue;
            };
            let row = judge(&b.key, bk, &nk.values, min_effect_percent);
            if row.verdict == Verdict::NotTestable && !few.contains(&b.key) {
                few.push(b.key.clone());
            }
            rows.push(row);
        }
    }
    for n in new_configs.iter().filter(|_| !single_pair) {
        if !base_configs.iter().any(|b| b.key == n.key) {
            unmatched.push(format!("{} (only in NEW)", n.key));
        }
    }
    if rows.is_empty() {
        let keys = |c: &[super::samples::ConfigSamples]| {
            let list: Vec<&str> = c.iter().map(|c| c.key.as_str()).collect();
            if list.is_empty() {
                "no completed configuration".to_string()
            } else {
                list.join("; ")
            }
        };
        return Err(CompareError::NothingInCommon {
            base: base_path.into(),
            base_keys: keys(&base_configs),
            new: new_path.into(),
            new_keys: keys(&new_configs),
        });
    }
    if !few.is_empty() {
        notes.push(format!(
            "fewer than {MIN_TRIALS} trials on a side for {}: no test can tell a change from noise there; rerun with --trials 10 or more",
            few.join("; ")
        ));
    }
    let (bp, np) = (&base.parameters, &new.parameters);
    if bp.op != np.op {
        notes.push(format!(
            "BASE ran op {} and NEW op {}: the comparison mixes operations",
            bp.op, np.op
        ));
    }
    if base.dut_id != new.dut_id {
        notes.push(format!(
            "DUT: BASE \"{}\", NEW \"{}\"",
            base.dut_id, new.dut_id
        ));
    }
    if base.status != "complete" || new.status != "complete" {
        notes.push(format!(
            "status: BASE {}, NEW {} (only completed trials are compared)",
            base.status, new.status
        ));
    }
    Ok(Comparison {
        base: base_path.into(),
        new: new_path.into(),
        test_id: base.test_id.clone(),
        min_effect_percent,
        alpha: ALPHA,
        rows,
        unmatched,
        notes,
    })
}

fn judge(
    config: &str,
    base: &super::samples::KpiSamples,
    new: &[f64],
    min_effect_percent: f64,
) -> KpiComparison {
    let b = &base.values;
    let base_mean = mean(b);
    let new_mean = mean(new);
    let delta = base_mean.zip(new_mean).map(|(m1, m2)| m2 - m1);
    let delta_percent = delta
        .zip(base_mean)
        .and_then(|(d, m)| (m != 0.0).then(|| 100.0 * d / m.abs()));
    let w = welch(b, new);
    let testable = b.len() >= MIN_TRIALS && new.len() >= MIN_TRIALS;
    let p_value = if !testable {
        None
    } else {
        match base.statistic {
            Statistic::Mean => w.map(|w| w.p),
            Statistic::Percentile => mann_whitney(b, new).map(|m| m.p),
        }
    };
    let verdict = match (p_value, delta_percent) {
        (None, _) => Verdict::NotTestable,
        (Some(p), Some(pct)) if p < ALPHA && pct.abs() >= min_effect_percent => {
            let up = pct > 0.0;
            match (base.better, up) {
                (Better::Higher, true) | (Better::Lower, false) => Verdict::Better,
                _ => Verdict::Worse,
            }
        }
        _ => Verdict::NoSignificantChange,
    };
    KpiComparison {
        config: config.to_string(),
        kpi: base.kpi.clone(),
        unit: base.unit,
        better: base.better,
        statistic: base.statistic,
        base_n: b.len(),
        new_n: new.len(),
        base_mean,
        new_mean,
        delta,
        delta_percent,
        delta_ci95: w.map(|w| (w.ci95_low, w.ci95_high)),
        p_value,
        verdict,
        base_values: b.clone(),
        new_values: new.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> RunReport {
        serde_json::from_str(include_str!("../../tests/fixtures/results/bw-write.json")).unwrap()
    }

    /// `report` with `n` trials per configuration drawn around `level`
    /// GB/s (±1 % uniform noise, seeded).
    fn synthetic(n: usize, level: f64, seed: u64) -> RunReport {
        let mut report = fixture();
        report.results.truncate(1);
        let mut rng = fastrand::Rng::with_seed(seed);
        let template = report.results[0].trials[0].clone();
        report.results[0].trials = (0..n)
            .map(|i| {
                let mut t = template.clone();
                t.trial = i as u32;
                t.throughput.gbytes_per_s = level * (1.0 + 0.02 * (rng.f64() - 0.5));
                for l in &mut t.latency {
                    let scale = 1.0 / level;
                    l.summary.p50_ns = (10_000.0 * scale * (1.0 + 0.02 * (rng.f64() - 0.5))) as u64;
                    l.summary.p99_ns = (20_000.0 * scale * (1.0 + 0.02 * (rng.f64() - 0.5))) as u64;
                }
                t
            })
            .collect();
        report
    }

    fn throughput(c: &Comparison) -> &KpiComparison {
        c.rows.iter().find(|r| r.kpi == "throughput").unwrap()
    }

    #[test]
    fn a_five_percent_drop_is_worse_with_p_below_five_percent() {
        let base = synthetic(10, 1.0, 1);
        let new = synthetic(10, 0.95, 2);
        let c = compare("a.json", &base, "b.json", &new, 2.0).unwrap();
        let t = throughput(&c);
        assert_eq!(t.verdict, Verdict::Worse, "{t:?}");
        assert!(t.p_value.unwrap() < 0.05);
        assert!((t.delta_percent.unwrap() + 5.0).abs() < 1.0);
        let (lo, hi) = t.delta_ci95.unwrap();
        assert!(lo < t.delta.unwrap() && t.delta.unwrap() < hi && hi < 0.0);
        // latency rose by ~5 %: the percentiles are worse too (Mann-Whitney)
        let p99 = c.rows.iter().find(|r| r.kpi.starts_with("P99")).unwrap();
        assert_eq!(p99.statistic, Statistic::Percentile);
        assert_eq!(p99.verdict, Verdict::Worse, "{p99:?}");
        assert!(c.regressed());
        // and the other way round it is better
        let back = compare("b.json", &new, "a.json", &base, 2.0).unwrap();
        assert_eq!(throughput(&back).verdict, Verdict::Better);
        assert!(!back.regressed());
    }

    #[test]
    fn one_distribution_twice_is_no_significant_change() {
        let base = synthetic(10, 1.0, 3);
        let new = synthetic(10, 1.0, 4);
        let c = compare("a.json", &base, "b.json", &new, 2.0).unwrap();
        assert!(
            c.rows
                .iter()
                .all(|r| r.verdict == Verdict::NoSignificantChange),
            "{:?}",
            c.rows
        );
        assert!(!c.regressed());
    }

    #[test]
    fn a_significant_change_below_the_minimum_effect_does_not_count() {
        let base = synthetic(20, 1.0, 5);
        let new = synthetic(20, 0.99, 6);
        let c = compare("a.json", &base, "b.json", &new, 2.0).unwrap();
        let t = throughput(&c);
        assert!(t.p_value.unwrap() < 0.05, "{t:?}");
        assert_eq!(t.verdict, Verdict::NoSignificantChange);
    }

    #[test]
    fn too_few_trials_are_not_testable_and_said() {
        let c = compare(
            "a.json",
            &synthetic(2, 1.0, 1),
            "b.json",
            &synthetic(2, 0.5, 2),
            2.0,
        )
        .unwrap();
        assert!(c.rows.iter().all(|r| r.verdict == Verdict::NotTestable));
        assert!(c.notes[0].contains("fewer than 3 trials"), "{:?}", c.notes);
    }

    #[test]
    fn different_tests_and_disjoint_configurations_are_refused() {
        let base = synthetic(5, 1.0, 1);
        let mut other = base.clone();
        other.test_id = "5.3".into();
        let err = compare("a.json", &base, "b.json", &other, 2.0).unwrap_err();
        assert!(
            err.to_string().contains("test 5.1 and b.json is test 5.3"),
            "{err}"
        );
        // one configuration a side: paired, whatever differs, and said
        let mut eight = base.clone();
        eight.results[0].qps = 8;
        let c = compare("a.json", &base, "b.json", &eight, 2.0).unwrap();
        assert!(!c.rows.is_empty());
        assert!(
            c.notes[0].contains("is compared with NEW's"),
            "{:?}",
            c.notes
        );
        // several a side and none in common: refused
        let mut two = base.clone();
        two.results.push(two.results[0].clone());
        two.results[1].msg_bytes *= 2;
        let mut disjoint = two.clone();
        disjoint.results[0].qps = 77;
        disjoint.results[1].qps = 77;
        let err = compare("a.json", &two, "b.json", &disjoint, 2.0).unwrap_err();
        assert!(err.to_string().contains("share no configuration"), "{err}");
    }
}
