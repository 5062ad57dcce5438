//! Every KPI of a results file as flat records: one [`KpiRow`] per
//! (configuration, latency clock) and one [`TrialRow`] per (configuration,
//! trial, latency clock). The CSV export serialises them as they are, and
//! the KPI summary table of the rendered report reads them. Column names
//! carry units like the results file; the formulas are in docs/metrics.md.
//!
//! A configuration measured under several latency clocks (5.2 with
//! `initiator`, `target`, `pingpong`) gives one row per clock, the
//! throughput columns repeated; a configuration without latency gives one
//! row with empty latency columns. Filter on `latency_clock` before summing
//! throughput.

use serde::Serialize;

use super::blocks::Table;
use super::units::{human_bytes, human_ns, mean_ci, optional, rate_ci, si_ci};
use crate::results::{ClockLatency, ConfigResult, PerClock, RunReport};
use crate::stats::{mean, TrialInterval};

/// One configuration under one latency clock, across its trials.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KpiRow {
    /// The results file as given.
    pub file: String,
    /// IETF test id.
    pub test_id: String,
    /// DUT label.
    pub dut_id: String,
    /// Run status of the file.
    pub status: String,
    /// Verbs operation.
    pub op: String,
    /// "bandwidth" or "latency".
    pub mode: String,
    /// Message size, bytes.
    pub msg_bytes: u64,
    /// QP count.
    pub qps: u32,
    /// Bytes per work request.
    pub wr_bytes: u64,
    /// Trials completed.
    pub trials: u32,
    /// Mean GB/s (10⁹ bytes/s) across trials.
    pub gbytes_per_s_mean: Option<f64>,
    /// 95 % CI half width of GB/s (empty with one trial).
    pub gbytes_per_s_ci95_half_width: Option<f64>,
    /// Lower 95 % CI bound of GB/s.
    pub gbytes_per_s_ci95_low: Option<f64>,
    /// Upper 95 % CI bound of GB/s.
    pub gbytes_per_s_ci95_high: Option<f64>,
    /// Mean Gb/s (10⁹ bit/s).
    pub gbits_per_s_mean: Option<f64>,
    /// 95 % CI half width of Gb/s.
    pub gbits_per_s_ci95_half_width: Option<f64>,
    /// Mean messages per second.
    pub msgs_per_s_mean: Option<f64>,
    /// 95 % CI half width of messages per second.
    pub msgs_per_s_ci95_half_width: Option<f64>,
    /// Mean Jain fairness index across QPs (empty with one QP).
    pub jain_index_mean: Option<f64>,
    /// 95 % CI half width of the Jain index.
    pub jain_index_ci95_half_width: Option<f64>,
    /// Worst (largest) per-trial max/min per-QP bytes ratio.
    pub max_min_ratio_worst: Option<f64>,
    /// Mean initiator CPU use, percent of one core.
    pub cpu_initiator_percent_mean: Option<f64>,
    /// Mean target CPU use, percent of one core.
    pub cpu_target_percent_mean: Option<f64>,
    /// Total payload mismatches (empty without --verify).
    pub verify_mismatches: Option<u64>,
    /// The latency clock of the latency columns (empty: none measured).
    pub latency_clock: Option<String>,
    /// Latency samples, all trials merged.
    pub latency_samples: Option<u64>,
    /// Smallest latency, ns.
    pub latency_min_ns: Option<u64>,
    /// Mean latency, ns.
    pub latency_mean_ns: Option<f64>,
    /// P50 of the merged samples, ns.
    pub latency_p50_ns: Option<u64>,
    /// P95, ns.
    pub latency_p95_ns: Option<u64>,
    /// P99, ns.
    pub latency_p99_ns: Option<u64>,
    /// P99.9, ns (check `latency_p999_reliable`).
    pub latency_p999_ns: Option<u64>,
    /// False when fewer than 1000 samples back P99.9.
    pub latency_p999_reliable: Option<bool>,
    /// Largest latency, ns.
    pub latency_max_ns: Option<u64>,
    /// Tail spread P99 − P50, ns.
    pub latency_p99_minus_p50_ns: Option<u64>,
    /// Mean of the per-trial P50s, ns.
    pub latency_p50_ns_trials_mean: Option<f64>,
    /// 95 % CI half width of the per-trial P50s, ns.
    pub latency_p50_ns_trials_ci95_half_width: Option<f64>,
    /// Mean of the per-trial P99s, ns.
    pub latency_p99_ns_trials_mean: Option<f64>,
    /// 95 % CI half width of the per-trial P99s, ns.
    pub latency_p99_ns_trials_ci95_half_width: Option<f64>,
}

/// One trial of one configuration under one latency clock.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrialRow {
    /// The results file as given.
    pub file: String,
    /// IETF test id.
    pub test_id: String,
    /// DUT label.
    pub dut_id: String,
    /// Verbs operation.
    pub op: String,
    /// "bandwidth" or "latency".
    pub mode: String,
    /// Message size, bytes.
    pub msg_bytes: u64,
    /// QP count.
    pub qps: u32,
    /// Trial number (0-based).
    pub trial: u32,
    /// Trial length, seconds.
    pub seconds: f64,
    /// Bytes completed over all QPs.
    pub bytes: u64,
    /// Messages completed over all QPs.
    pub messages: u64,
    /// GB/s (10⁹ bytes/s).
    pub gbytes_per_s: f64,
    /// Gb/s (10⁹ bit/s).
    pub gbits_per_s: f64,
    /// Messages per second.
    pub msgs_per_s: f64,
    /// Jain fairness index across QPs (empty with one QP).
    pub jain_index: Option<f64>,
    /// Max/min per-QP bytes.
    pub max_min_ratio: Option<f64>,
    /// Initiator CPU, percent of one core.
    pub cpu_initiator_percent: f64,
    /// Target CPU, percent of one core.
    pub cpu_target_percent: f64,
    /// Receive completions at the target.
    pub target_receives: u64,
    /// Payload mismatches (empty without --verify).
    pub verify_mismatches: Option<u64>,
    /// The latency clock of the latency columns (empty: none measured).
    pub latency_clock: Option<String>,
    /// Latency samples in this trial.
    pub latency_samples: Option<u64>,
    /// Smallest latency, ns.
    pub latency_min_ns: Option<u64>,
    /// Mean latency, ns.
    pub latency_mean_ns: Option<f64>,
    /// P50, ns.
    pub latency_p50_ns: Option<u64>,
    /// P95, ns.
    pub latency_p95_ns: Option<u64>,
    /// P99, ns.
    pub latency_p99_ns: Option<u64>,
    /// P99.9, ns.
    pub latency_p999_ns: Option<u64>,
    /// False when fewer than 1000 samples back P99.9.
    pub latency_p999_reliable: Option<bool>,
    /// Largest latency, ns.
    pub latency_max_ns: Option<u64>,
}

fn per_clock(clock: &str, intervals: &PerClock<TrialInterval>) -> Option<TrialInterval> {
    intervals.get(clock).cloned()
}

/// `[None]` when nothing was measured, so every configuration gets a row.
fn clocks(latency: &[ClockLatency]) -> Vec<Option<&ClockLatency>> {
    if latency.is_empty() {
        vec![None]
    } else {
        latency.iter().map(Some).collect()
    }
}

fn config_rows(file: &str, report: &RunReport, config: &ConfigResult) -> Vec<KpiRow> {
    let s = &config.summary;
    let cpu_init: Vec<f64> = config
        .trials
        .iter()
        .map(|t| t.cpu.initiator_percent)
        .collect();
    let cpu_target: Vec<f64> = config.trials.iter().map(|t| t.cpu.target_percent).collect();
    let max_min = config
        .trials
        .iter()
        .filter_map(|t| t.max_min_ratio)
        .reduce(f64::max);
    clocks(&s.latency)
        .into_iter()
        .map(|clock| {
            let lat = clock.map(|c| &c.summary);
            let p50 = clock.and_then(|c| per_clock(&c.clock, &s.p50_ns));
            let p99 = clock.and_then(|c| per_clock(&c.clock, &s.p99_ns));
            KpiRow {
                file: file.into(),
                test_id: report.test_id.clone(),
                dut_id: report.dut_id.clone(),
                status: report.status.clone(),
                op: report.parameters.op.clone(),
                mode: report.parameters.mode.clone(),
                msg_bytes: config.msg_bytes,
                qps: config.qps,
                wr_bytes: config.wr_bytes,
                trials: s.trials,
                gbytes_per_s_mean: s.gbytes_per_s.as_ref().map(|i| i.mean),
                gbytes_per_s_ci95_half_width: s
                    .gbytes_per_s
                    .as_ref()
                    .and_then(|i| i.ci95_half_width),
                gbytes_per_s_ci95_low: s.gbytes_per_s.as_ref().and_then(|i| i.ci95_low),
                gbytes_per_s_ci95_high: s.gbytes_per_s.as_ref().and_then(|i| i.ci95_high),
                gbits_per_s_mean: s.gbits_per_s.as_ref().map(|i| i.mean),
                gbits_per_s_ci95_half_width: s.gbits_per_s.as_ref().and_then(|i| i.ci95_half_width),
                msgs_per_s_mean: s.msgs_per_s.as_ref().map(|i| i.mean),
                msgs_per_s_ci95_half_width: s.msgs_per_s.as_ref().and_then(|i| i.ci95_half_width),
                jain_index_mean: s.jain_index.as_ref().map(|i| i.mean),
                jain_index_ci95_half_width: s.jain_index.as_ref().and_then(|i| i.ci95_half_width),
                max_min_ratio_worst: max_min,
                cpu_initiator_percent_mean: mean(&cpu_init),
                cpu_target_percent_mean: mean(&cpu_target),
                verify_mismatches: s.verify_mismatches,
                latency_clock: clock.map(|c| c.clock.clone()),
                latency_samples: lat.map(|l| l.count),
                latency_min_ns: lat.map(|l| l.min_ns),
                latency_mean_ns: lat.map(|l| l.mean_ns),
                latency_p50_ns: lat.map(|l| l.p50_ns),
                latency_p95_ns: lat.map(|l| l.p95_ns),
                latency_p99_ns: lat.map(|l| l.p99_ns),
                latency_p999_ns: lat.map(|l| l.p999_ns),
                latency_p999_reliable: lat.map(|l| l.p999_reliable),
                latency_max_ns: lat.map(|l| l.max_ns),
                latency_p99_minus_p50_ns: lat.map(|l| l.p99_minus_p50_ns),
                latency_p50_ns_trials_mean: p50.as_ref().map(|i| i.mean),
                latency_p50_ns_trials_ci95_half_width: p50.as_ref().and_then(|i| i.ci95_half_width),
                latency_p99_ns_trials_mean: p99.as_ref().map(|i| i.mean),
                latency_p99_ns_trials_ci95_half_width: p99.as_ref().and_then(|i| i.ci95_half_width),
            }
        })
        .collect()
}

/// The KPI rows of one file (`file` is how the rows name it).
pub fn kpi_rows(file: &str, report: &RunReport) -> Vec<KpiRow> {
    report
        .results
        .iter()
        .flat_map(|config| config_rows(file, report, config))
        .collect()
}

/// The per-trial rows of one file (`file` is how the rows name it).
pub fn trial_rows(file: &str, report: &RunReport) -> Vec<TrialRow> {
    let mut rows = Vec::new();
    for config in &report.results {
        for t in &config.trials {
            for clock in clocks(&t.latency) {
                let lat = clock.map(|c| &c.summary);
                rows.push(TrialRow {
                    file: file.into(),
                    test_id: report.test_id.clone(),
                    dut_id: report.dut_id.clone(),
                    op: report.parameters.op.clone(),
                    mode: report.parameters.mode.clone(),
                    msg_bytes: config.msg_bytes,
                    qps: config.qps,
                    trial: t.trial,
                    seconds: t.throughput.seconds,
                    bytes: t.throughput.bytes,
                    messages: t.throughput.messages,
                    gbytes_per_s: t.throughput.gbytes_per_s,
                    gbits_per_s: t.throughput.gbits_per_s,
                    msgs_per_s: t.throughput.msgs_per_s,
                    jain_index: t.jain_index,
                    max_min_ratio: t.max_min_ratio,
                    cpu_initiator_percent: t.cpu.initiator_percent,
                    cpu_target_percent: t.cpu.target_percent,
                    target_receives: t.target_receives,
                    verify_mismatches: t.verify_mismatches,
                    latency_clock: clock.map(|c| c.clock.clone()),
                    latency_samples: lat.map(|l| l.count),
                    latency_min_ns: lat.map(|l| l.min_ns),
                    latency_mean_ns: lat.map(|l| l.mean_ns),
                    latency_p50_ns: lat.map(|l| l.p50_ns),
                    latency_p95_ns: lat.map(|l| l.p95_ns),
                    latency_p99_ns: lat.map(|l| l.p99_ns),
                    latency_p999_ns: lat.map(|l| l.p999_ns),
                    latency_p999_reliable: lat.map(|l| l.p999_reliable),
                    latency_max_ns: lat.map(|l| l.max_ns),
                });
            }
        }
    }
    rows
}

/// The KPI summary table of one file (draft §14: all KPIs with their
/// confidence intervals): one row per configuration, latency from its
/// first clock (the per-clock detail is in the test's own section).
pub(crate) fn summary_table(report: &RunReport) -> Table {
    let columns = [
        "size",
        "QPs",
        "trials",
        "throughput (mean ± CI95)",
        "bit rate (mean ± CI95)",
        "message rate (mean ± CI95)",
        "JFI",
        "max/min",
        "CPU init %",
        "CPU target %",
        "clock",
        "P50",
        "P99",
        "verify mismatches",
    ];
    let rows = report
        .results
        .iter()
        .map(|config| {
            let s = &config.summary;
            let row = config_rows("", report, config).swap_remove(0);
            let lat = s.latency.first();
            vec![
                human_bytes(config.msg_bytes),
                config.qps.to_string(),
                s.trials.to_string(),
                rate_ci(s.gbytes_per_s.as_ref()),
                si_ci(s.gbits_per_s.as_ref(), 1e9, "b/s"),
                si_ci(s.msgs_per_s.as_ref(), 1.0, "msg/s"),
                mean_ci(s.jain_index.as_ref(), 1.0, 4),
                optional(row.max_min_ratio_worst, 2),
                optional(row.cpu_initiator_percent_mean, 0),
                optional(row.cpu_target_percent_mean, 0),
                lat.map_or("-".into(), |c| c.clock.clone()),
                lat.map_or("-".into(), |c| human_ns(c.summary.p50_ns as f64)),
                lat.map_or("-".into(), |c| human_ns(c.summary.p99_ns as f64)),
                s.verify_mismatches.map_or("-".into(), |n| n.to_string()),
            ]
        })
        .collect();
    let mut notes = vec![
        "CI95: two-sided 95 % Student-t interval across trials (none with one trial). GB = 10⁹ bytes. JFI: Jain fairness index across QPs; max/min: worst trial's largest over smallest per-QP bytes.".to_string(),
    ];
    if report.results.is_empty() {
        notes.push("No configuration completed.".into());
    }
    Table {
        title: "KPI summary (per configuration)".into(),
        columns: columns.map(String::from).to_vec(),
        rows,
        notes,
    }
}
