//! Turns engine tallies into trial results and trials into summaries.

use std::collections::BTreeMap;

use crate::results::{ClockLatency, ConfigSummary, PerClock, QpResult, TrialResult};
use crate::stats::{across_trials, LatencyHistogram};

/// Per-QP rates over the trial's wall time.
pub(crate) fn per_qp_results(bytes_messages: &[(u64, u64)], seconds: f64) -> Vec<QpResult> {
    bytes_messages
        .iter()
        .enumerate()
        .map(|(i, &(bytes, messages))| QpResult {
            qp: i as u32,
            messages,
            bytes,
            gbytes_per_s: if seconds > 0.0 {
                bytes as f64 / seconds / 1e9
            } else {
                0.0
            },
        })
        .collect()
}

/// Summaries across trials; `merged` holds each clock's histogram over all trials.
pub(crate) fn summarize(
    trials: &[TrialResult],
    merged: &BTreeMap<String, LatencyHistogram>,
) -> ConfigSummary {
    let pick =
        |f: &dyn Fn(&TrialResult) -> f64| across_trials(&trials.iter().map(f).collect::<Vec<_>>());
    let mut p50 = PerClock::new();
    let mut p99 = PerClock::new();
    for clock in merged.keys() {
        let values = |f: &dyn Fn(&ClockLatency) -> u64| {
            trials
                .iter()
                .filter_map(|t| t.latency.iter().find(|c| &c.clock == clock).map(f))
                .map(|v| v as f64)
                .collect::<Vec<_>>()
        };
        if let Some(iv) = across_trials(&values(&|c| c.summary.p50_ns)) {
            p50.insert(clock.clone(), iv);
        }
        if let Some(iv) = across_trials(&values(&|c| c.summary.p99_ns)) {
            p99.insert(clock.clone(), iv);
        }
    }
    let jfi: Vec<f64> = trials.iter().filter_map(|t| t.jain_index).collect();
    let mismatches: Vec<u64> = trials.iter().filter_map(|t| t.verify_mismatches).collect();
    ConfigSummary {
        trials: trials.len() as u32,
        gbytes_per_s: pick(&|t| t.throughput.gbytes_per_s),
        gbits_per_s: pick(&|t| t.throughput.gbits_per_s),
        msgs_per_s: pick(&|t| t.throughput.msgs_per_s),
        latency: merged
            .iter()
            .map(|(clock, h)| ClockLatency {
                clock: clock.clone(),
                summary: h.summary(),
            })
            .collect(),
        p50_ns: p50,
        p99_ns: p99,
        jain_index: across_trials(&jfi),
        verify_mismatches: (!mismatches.is_empty()).then(|| mismatches.iter().sum()),
    }
}
