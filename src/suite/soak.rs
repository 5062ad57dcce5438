//! Soak mode (IETF 13.1–13.3): a configuration run as back-to-back trials
//! of `--sample-interval` for `--soak`, one sample per trial, each with
//! every process's footprint; the samples go into the results file as they
//! come (the trial's atomic rewrite), so a crash keeps them. At every
//! sample the analysis is redone: least-squares trends of each footprint
//! metric (13.2 leak detection), the throughput CV and the P99 variation
//! across samples (13.1/13.3), and the QP error and retransmission totals.

use std::time::{Duration, Instant};

use crate::engine::InjectedLeak;
use crate::results::{
    NodeCounters, ProcessResources, ProcessSample, SoakReport, SoakSample, SoakTrend,
};
use crate::stats::{cv_percent, linear_trend};
use crate::verbs::RdmaDevice;

use super::SuiteError;

/// Fewest samples a soak takes: a trend needs three points to have an
/// interval at all.
pub const MIN_SOAK_SAMPLES: u32 = 3;

/// The soak a run was asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SoakOptions {
    /// Total length (`--soak`).
    pub duration: Duration,
    /// One sample (trial) per interval (`--sample-interval`).
    pub interval: Duration,
    /// Test only: register and keep 1 MiB more each sample, so the trend
    /// test has a leak to find.
    pub inject_leak: bool,
}

impl SoakOptions {
    /// Validates the pair: at least [`MIN_SOAK_SAMPLES`] intervals, each
    /// at least 100 ms.
    pub fn new(
        duration: Duration,
        interval: Duration,
        inject_leak: bool,
    ) -> Result<SoakOptions, String> {
        if interval < Duration::from_millis(100) {
            return Err(format!(
                "--sample-interval {interval:?} is below 100 ms: each sample is a trial of that length"
            ));
        }
        let options = SoakOptions {
            duration,
            interval,
            inject_leak,
        };
        if options.samples() < MIN_SOAK_SAMPLES {
            return Err(format!(
                "--soak {} holds {} samples of --sample-interval {}; a trend needs at least {MIN_SOAK_SAMPLES}",
                humantime::format_duration(duration),
                options.samples(),
                humantime::format_duration(interval)
            ));
        }
        Ok(options)
    }

    /// Samples (trials) the soak takes: ⌊duration / interval⌋.
    pub fn samples(&self) -> u32 {
        let n = self.duration.as_secs_f64() / self.interval.as_secs_f64();
        n.floor().min(f64::from(u32::MAX)) as u32
    }
}

/// Where a soak departs from the draft's 13.1 (24 h, samples every 15 min).
pub fn soak_deviations(options: &SoakOptions) -> Vec<String> {
    let mut out = Vec::new();
    if options.duration < Duration::from_secs(24 * 3600) {
        out.push(format!(
            "soak of {}; the draft's 13.1 asks for 24 h",
            humantime::format_duration(options.duration)
        ));
    }
    if options.interval != Duration::from_secs(15 * 60) {
        out.push(format!(
            "soak samples every {}; the draft samples every 15 min",
            humantime::format_duration(options.interval)
        ));
    }
    if options.inject_leak {
        out.push(
            "--soak-inject-leak: a deliberate leak of 1 MiB registered per sample (test only)"
                .into(),
        );
    }
    out
}

/// One trial's numbers, as the test measured them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SampleMetrics {
    /// GB/s.
    pub throughput_gbytes_per_s: f64,
    /// P50 latency, ns.
    pub latency_p50_ns: Option<f64>,
    /// P99 latency, ns.
    pub latency_p99_ns: Option<f64>,
    /// Retransmissions over every device's counters.
    pub retransmissions: Option<u64>,
    /// QP errors over every device's counters.
    pub qp_errors: Option<u64>,
}

impl SampleMetrics {
    /// Fills the counter totals from a trial's counter deltas (`None` when
    /// no device exposes the counter).
    pub fn with_counters(mut self, counters: &[NodeCounters]) -> SampleMetrics {
        let sum = |f: fn(&crate::results::CounterKpis) -> Option<i64>| -> Option<u64> {
            let values: Vec<i64> = counters.iter().filter_map(|c| f(&c.deltas.kpis)).collect();
            (!values.is_empty()).then(|| values.iter().map(|v| (*v).max(0) as u64).sum())
        };
        self.retransmissions = sum(|k| k.retransmissions);
        self.qp_errors = sum(|k| k.qp_errors);
        self
    }
}

/// A soak in progress.
#[derive(Debug)]
pub struct Soak {
    options: SoakOptions,
    started: Instant,
    samples: Vec<SoakSample>,
    /// The deliberate leak (`--soak-inject-leak`): never freed until the run ends.
    leak: InjectedLeak,
}

impl Soak {
    /// Starts the soak's clock.
    pub fn new(options: SoakOptions) -> Soak {
        Soak {
            options,
            started: Instant::now(),
            samples: Vec::new(),
            leak: InjectedLeak::default(),
        }
    }

    /// Adds the sample of `trial`.
    pub fn record(&mut self, trial: u32, metrics: SampleMetrics, processes: Vec<ProcessSample>) {
        self.samples.push(SoakSample {
            index: self.samples.len() as u32,
            trial,
            t_s: self.started.elapsed().as_secs_f64(),
            throughput_gbytes_per_s: metrics.throughput_gbytes_per_s,
            latency_p50_ns: metrics.latency_p50_ns,
            latency_p99_ns: metrics.latency_p99_ns,
            retransmissions: metrics.retransmissions,
            qp_errors: metrics.qp_errors,
            processes,
        });
    }

    /// With `--soak-inject-leak`: registers 1 MiB more on `device` and keeps it.
    pub fn maybe_leak(&mut self, device: &RdmaDevice) -> Result<(), SuiteError> {
        if self.options.inject_leak {
            self.leak.grow(device)?;
        }
        Ok(())
    }

    /// The analysis of every sample so far.
    pub fn report(&self) -> SoakReport {
        analyse(
            self.options,
            self.started.elapsed().as_secs_f64(),
            self.samples.clone(),
        )
    }
}

/// This host's process as a soak sample entry.
pub fn this_process(name: &str) -> ProcessSample {
    ProcessSample {
        process: name.to_string(),
        resources: crate::sysinfo::sample_process(true),
    }
}

/// The footprint metrics a trend is fitted to, with their growth
/// tolerance (growth over the run at or below it is never a leak).
const METRICS: [(&str, Tolerance); 7] = [
    ("rss_bytes", Tolerance::Bytes),
    ("pinned_bytes", Tolerance::Bytes),
    ("rdma_mrs", Tolerance::Count),
    ("rdma_mr_bytes", Tolerance::Bytes),
    ("rdma_qps", Tolerance::Count),
    ("rdma_cqs", Tolerance::Count),
    ("rdma_pds", Tolerance::Count),
];

#[derive(Debug, Clone, Copy)]
enum Tolerance {
    /// Objects: growth of one or more is real.
    Count,
    /// Bytes: growth must exceed 1 MiB and 1 % of the first value
    /// (allocator arenas and page caches move by less).
    Bytes,
}

impl Tolerance {
    fn exceeded(self, growth: f64, first: f64) -> bool {
        match self {
            Tolerance::Count => growth >= 1.0,
            Tolerance::Bytes => growth > (1u64 << 20) as f64 && growth > 0.01 * first.abs(),
        }
    }
}

fn metric(resources: &ProcessResources, name: &str) -> Option<f64> {
    let rdma = resources.rdma.as_ref();
    let value = match name {
        "rss_bytes" => resources.rss_bytes,
        "pinned_bytes" => resources.pinned_bytes,
        "rdma_mrs" => rdma.map(|r| r.mrs),
        "rdma_mr_bytes" => rdma.map(|r| r.mr_bytes),
        "rdma_qps" => rdma.map(|r| r.qps),
        "rdma_cqs" => rdma.map(|r| r.cqs),
        "rdma_pds" => rdma.map(|r| r.pds),
        _ => None,
    };
    value.map(|v| v as f64)
}

/// Samples left out of the trend fits: the first 10 % (at least one once
/// there are ten), while allocators and caches settle.
pub fn warmup_samples(n: usize) -> usize {
    if n >= 10 {
        (n / 10).max(1)
    } else {
        0
    }
}

/// Analyses `samples` of a soak that ran `elapsed_s`.
pub fn analyse(options: SoakOptions, elapsed_s: f64, samples: Vec<SoakSample>) -> SoakReport {
    let warmup = warmup_samples(samples.len());
    let fitted = &samples[warmup..];
    let mut processes: Vec<String> = Vec::new();
    for sample in &samples {
        for p in &sample.processes {
            if !processes.contains(&p.process) {
                processes.push(p.process.clone());
            }
        }
    }
    let mut trends = Vec::new();
    for process in &processes {
        for (name, tolerance) in METRICS {
            let points: Vec<(f64, f64)> = fitted
                .iter()
                .filter_map(|s| {
                    let p = s.processes.iter().find(|p| &p.process == process)?;
                    Some((s.t_s, metric(&p.resources, name)?))
                })
                .collect();
            let all: Vec<f64> = samples
                .iter()
                .filter_map(|s| {
                    let p = s.processes.iter().find(|p| &p.process == process)?;
                    metric(&p.resources, name)
                })
                .collect();
            let (xs, ys): (Vec<f64>, Vec<f64>) = points.iter().copied().unzip();
            let Some(fit) = linear_trend(&xs, &ys) else {
                continue;
            };
            let span_s = xs.last().unwrap_or(&0.0) - xs.first().unwrap_or(&0.0);
            let first = ys[0];
            let growth = fit.slope * span_s;
            let per_hour = 3600.0;
            trends.push(SoakTrend {
                process: process.clone(),
                metric: name.to_string(),
                n: fit.n,
                slope_per_hour: fit.slope * per_hour,
                ci95_low_per_hour: fit.ci95_low * per_hour,
                ci95_high_per_hour: fit.ci95_high * per_hour,
                first,
                last: *all.last().unwrap_or(&first),
                max: all.iter().copied().fold(f64::MIN, f64::max),
                leak_suspected: fit.rising() && tolerance.exceeded(growth, first),
            });
        }
    }
    let throughputs: Vec<f64> = samples.iter().map(|s| s.throughput_gbytes_per_s).collect();
    let p99s: Vec<f64> = samples.iter().filter_map(|s| s.latency_p99_ns).collect();
    let qp_errors = samples.iter().filter_map(|s| s.qp_errors).sum();
    let retransmissions = samples.iter().filter_map(|s| s.retransmissions).sum();
    let mut report = SoakReport {
        duration_s: options.duration.as_secs_f64(),
        sample_interval_s: options.interval.as_secs_f64(),
        elapsed_s,
        warmup_samples: warmup,
        leak_suspected: trends.iter().any(|t| t.leak_suspected),
        trends,
        throughput_cv_percent: cv_percent(&throughputs),
        latency_p99_variation_percent: variation_percent(&p99s),
        qp_errors,
        retransmissions,
        injected_leak: options.inject_leak,
        findings: Vec::new(),
        samples,
    };
    report.findings = findings(&report);
    report
}

/// (max − min) / median, percent; `None` with fewer than two values or a
/// zero median.
fn variation_percent(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    (median > 0.0).then(|| 100.0 * (sorted[sorted.len() - 1] - sorted[0]) / median)
}

fn findings(report: &SoakReport) -> Vec<String> {
    let mut out = Vec::new();
    for t in report.trends.iter().filter(|t| t.leak_suspected) {
        // bytes read in MiB, counts as they are
        let (scale, unit) = if t.metric.ends_with("bytes") {
            (f64::from(1u32 << 20), " MiB")
        } else {
            (1.0, "")
        };
        out.push(format!(
            "potential leak: {} {} grows {:+.1}{unit}/h (95 % CI {:+.1} .. {:+.1}), {:.1}{unit} at the first fitted sample, {:.1}{unit} at the end{}",
            t.process,
            t.metric,
            t.slope_per_hour / scale,
            t.ci95_low_per_hour / scale,
            t.ci95_high_per_hour / scale,
            t.first / scale,
            t.last / scale,
            if report.injected_leak {
                " (deliberate: --soak-inject-leak)"
            } else {
                ""
            }
        ));
    }
    if report.qp_errors > 0 {
        out.push(format!(
            "{} QP errors during the soak (13.1: there should be none)",
            report.qp_errors
        ));
    }
    if let Some(v) = report.latency_p99_variation_percent {
        if v >= 1.0 {
            out.push(format!(
                "P99 latency varied {v:.1} % across samples (13.1 asks < 1 %)"
            ));
        }
    }
    if report.samples.len() >= MIN_SOAK_SAMPLES as usize && !report.leak_suspected {
        out.push(format!(
            "no footprint metric grew over {} samples (95 % slope intervals include zero or growth within tolerance)",
            report.samples.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::RdmaResources;

    fn sample(i: u32, rss: u64, mrs: u64) -> SoakSample {
        SoakSample {
            index: i,
            trial: i,
            t_s: 10.0 * f64::from(i + 1),
            throughput_gbytes_per_s: 1.0 + 0.01 * f64::from(i % 3),
            latency_p50_ns: Some(1000.0),
            latency_p99_ns: Some(2000.0 + f64::from(i % 2)),
            retransmissions: Some(0),
            qp_errors: Some(0),
            processes: vec![ProcessSample {
                process: "initiator".into(),
                resources: ProcessResources {
                    rss_bytes: Some(rss),
                    pinned_bytes: Some(1 << 20),
                    locked_bytes: Some(0),
                    rdma: Some(RdmaResources {
                        pds: 1,
                        cqs: 1,
                        qps: 2,
                        qps_in_error: 0,
                        mrs,
                        mr_bytes: mrs << 20,
                    }),
                    unavailable: Vec::new(),
                },
            }],
        }
    }

    fn options(inject_leak: bool) -> SoakOptions {
        SoakOptions::new(
            Duration::from_secs(600),
            Duration::from_secs(10),
            inject_leak,
        )
        .unwrap()
    }

    #[test]
    fn samples_are_whole_intervals_and_too_few_are_refused() {
        assert_eq!(options(false).samples(), 60);
        assert!(SoakOptions::new(Duration::from_secs(20), Duration::from_secs(10), false).is_err());
        assert!(
            SoakOptions::new(Duration::from_secs(20), Duration::from_millis(10), false).is_err()
        );
    }

    #[test]
    fn a_steady_footprint_is_not_a_leak() {
        // RSS wobbles by a few pages around 50 MiB; MRs constant
        let samples = (0..60)
            .map(|i| sample(i, (50 << 20) + 4096 * u64::from(i % 5), 1))
            .collect();
        let r = analyse(options(false), 600.0, samples);
        assert_eq!(r.warmup_samples, 6);
        assert!(!r.leak_suspected, "{:?}", r.findings);
        let mrs = r.trends.iter().find(|t| t.metric == "rdma_mrs").unwrap();
        assert_eq!(mrs.slope_per_hour, 0.0);
        assert!(r.throughput_cv_percent.unwrap() < 1.0);
    }

    #[test]
    fn one_mr_and_one_mib_per_sample_is_flagged() {
        let samples = (0..60)
            .map(|i| sample(i, (50 << 20) + (u64::from(i) << 20), 1 + u64::from(i)))
            .collect();
        let r = analyse(options(true), 600.0, samples);
        assert!(r.leak_suspected);
        let flagged: Vec<&str> = r
            .trends
            .iter()
            .filter(|t| t.leak_suspected)
            .map(|t| t.metric.as_str())
            .collect();
        assert!(
            flagged.contains(&"rdma_mrs") && flagged.contains(&"rss_bytes"),
            "{flagged:?}"
        );
        let mrs = r.trends.iter().find(|t| t.metric == "rdma_mrs").unwrap();
        // one MR per 10 s sample = 360 per hour
        assert!((mrs.slope_per_hour - 360.0).abs() < 1e-6);
        assert_eq!(mrs.last, 60.0);
        assert!(r.findings[0].contains("deliberate"));
    }

    #[test]
    fn growth_inside_the_byte_tolerance_is_not_flagged() {
        // RSS creeps by 4 KiB a sample: 240 KiB over the run, under 1 MiB
        let samples = (0..60)
            .map(|i| sample(i, (50 << 20) + 4096 * u64::from(i), 1))
            .collect();
        let r = analyse(options(false), 600.0, samples);
        let rss = r.trends.iter().find(|t| t.metric == "rss_bytes").unwrap();
        assert!(rss.ci95_low_per_hour > 0.0 && !rss.leak_suspected);
    }

    #[test]
    fn p99_variation_and_qp_errors_are_findings() {
        let mut samples: Vec<SoakSample> = (0..10).map(|i| sample(i, 50 << 20, 1)).collect();
        samples[4].latency_p99_ns = Some(3000.0);
        samples[5].qp_errors = Some(2);
        let r = analyse(options(false), 100.0, samples);
        assert_eq!(r.qp_errors, 2);
        assert!((r.latency_p99_variation_percent.unwrap() - 50.0).abs() < 0.1);
        assert!(r.findings.iter().any(|f| f.contains("QP errors")));
        assert!(r.findings.iter().any(|f| f.contains("P99 latency varied")));
    }
}
