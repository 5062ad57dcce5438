//! Concurrent KV-cache transfer scaling, IETF 5.3: N prefill→decode pairs
//! stream 16 MB PUTs at once for the trial; N is swept. Reports aggregate
//! and per-pair GB/s, per-pair median and P99 message completion latency,
//! JFI and max/min ratio across pairs, with CIs across trials.

use std::time::Duration;

use crate::cluster::{Flow, RankInfo, TrialWork};
use crate::patterns::pairs::pair_flows;
use crate::results::{PairResult, PairSummary, PairsPoint, PairsSummary, PairsTrial, RunReport};
use crate::stats::{across_trials, jain_index, max_min_ratio, LatencyHistogram, Throughput};

use super::fabric::{trials_deviation, FabricOptions, FabricTest, PointShape, TrialOutcome};
use super::soak::SampleMetrics;

/// The 5.3 sweep.
#[derive(Debug)]
pub struct PairsTest {
    /// Pair counts to sweep.
    pub pairs: Vec<u32>,
    /// Trial length.
    pub duration: Duration,
    merged: LatencyHistogram,
    per_pair: Vec<LatencyHistogram>,
}

impl PairsTest {
    /// A sweep over `pairs` with trials of `duration`.
    pub fn new(pairs: Vec<u32>, duration: Duration) -> PairsTest {
        PairsTest {
            pairs,
            duration,
            merged: LatencyHistogram::new(),
            per_pair: Vec::new(),
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

impl FabricTest for PairsTest {
    fn test_id(&self) -> &'static str {
        "5.3"
    }

    fn test_name(&self) -> &'static str {
        "Concurrent KV Cache Transfer Scaling"
    }

    fn deviations(&self, options: &FabricOptions) -> Vec<String> {
        let mut out: Vec<String> = trials_deviation(options, "pair count")
            .into_iter()
            .collect();
        if options.msg_bytes != 16 << 20 {
            out.push(format!(
                "{} B messages; the draft's procedure uses 16 MB",
                options.msg_bytes
            ));
        }
        out
    }

    fn duration_s(&self) -> Option<f64> {
        Some(self.duration.as_secs_f64())
    }

    fn points(&self) -> usize {
        self.pairs.len()
    }

    fn flows(&self, point: usize, ranks: &[RankInfo], qps: u32) -> Result<Vec<Flow>, String> {
        pair_flows(ranks, self.pairs[point], qps)
    }

    fn work(&self, _point: usize, _flows: &[Flow], trial: u32) -> TrialWork {
        let duration = if trial == u32::MAX {
            self.duration.min(Duration::from_millis(500))
        } else {
            self.duration
        };
        TrialWork::Stream {
            duration_ns: duration.as_nanos() as u64,
            rate_bytes_per_s: None,
        }
    }

    fn trial_time(&self, _point: usize) -> Duration {
        self.duration
    }

    fn begin_point(
        &mut self,
        point: usize,
        flows: &[Flow],
        shape: PointShape,
        report: &mut RunReport,
    ) {
        self.merged = LatencyHistogram::new();
        self.per_pair = vec![LatencyHistogram::new(); flows.len()];
        report.pairs.push(PairsPoint {
            pairs: self.pairs[point],
            msg_bytes: report.parameters.sizes_bytes[0],
            qps_per_pair: flows.first().map(|f| f.qps).unwrap_or(1),
            wr_bytes: shape.wr_bytes,
            tx_depth: shape.tx_depth,
            trials: Vec::new(),
            summary: summarize(&[], &LatencyHistogram::new(), &[]),
        });
    }

    fn add_trial(&mut self, ranks: &[RankInfo], outcome: &TrialOutcome, report: &mut RunReport) {
        let mut trial_hist = LatencyHistogram::new();
        let mut per_pair = Vec::with_capacity(outcome.flows.len());
        let mut cpu_s = 0.0;
        for (i, f) in outcome.flows.iter().enumerate() {
            let hist = LatencyHistogram::decode(&f.tally.latency).unwrap_or_default();
            trial_hist.merge(&hist);
            if let Some(h) = self.per_pair.get_mut(i) {
                h.merge(&hist);
            }
            cpu_s += f.tally.cpu_s;
            let seconds = f.tally.end_ns.saturating_sub(f.tally.start_ns) as f64 / 1e9;
            per_pair.push(PairResult {
                pair: f.flow.id,
                sender_rank: f.flow.sender,
                receiver_rank: f.flow.receiver,
                sender_node: ranks.get(f.flow.sender as usize).map_or(0, |r| r.node),
                receiver_node: ranks.get(f.flow.receiver as usize).map_or(0, |r| r.node),
                messages: f.tally.messages,
                bytes: f.tally.bytes,
                seconds,
                gbytes_per_s: if seconds > 0.0 {
                    f.tally.bytes as f64 / seconds / 1e9
                } else {
                    0.0
                },
                latency: hist.summary(),
            });
        }
        self.merged.merge(&trial_hist);
        let start = outcome
            .flows
            .iter()
            .map(|f| f.tally.start_ns)
            .min()
            .unwrap_or(0);
        let end = outcome
            .flows
            .iter()
            .map(|f| f.tally.end_ns)
            .max()
            .unwrap_or(0);
        let seconds = end.saturating_sub(start) as f64 / 1e9;
        let rates: Vec<f64> = per_pair.iter().map(|p| p.gbytes_per_s).collect();
        let trial = PairsTrial {
            trial: outcome.trial,
            aggregate: Throughput::from_counts(
                per_pair.iter().map(|p| p.bytes).sum(),
                per_pair.iter().map(|p| p.messages).sum(),
                seconds,
            ),
            jain_index: jain_index(&rates).filter(|_| rates.len() > 1),
            max_min_ratio: max_min_ratio(&rates).filter(|_| rates.len() > 1),
            per_pair,
            latency: trial_hist.summary(),
            sender_cpu_percent: if seconds > 0.0 {
                cpu_s / seconds * 100.0
            } else {
                0.0
            },
            counters: outcome.counters.clone(),
        };
        let point = report
            .pairs
            .last_mut()
            .expect("begin_point added the point");
        point.trials.push(trial);
        point.summary = summarize(&point.trials, &self.merged, &self.per_pair);
    }

    fn progress(&self, report: &RunReport) -> String {
        let Some(point) = report.pairs.last() else {
            return String::new();
        };
        let gbps = point
            .summary
            .aggregate_gbytes_per_s
            .as_ref()
            .map_or(0.0, |g| g.mean);
        let jfi = point.summary.jain_index.as_ref().map_or(1.0, |j| j.mean);
        format!(
            "{} pairs: {} trials, {} aggregate, JFI {jfi:.3}",
            point.pairs,
            point.summary.trials,
            crate::report::human_rate(gbps)
        )
    }

    fn soak_metrics(&self, report: &RunReport) -> Option<SampleMetrics> {
        let trial = report.pairs.last()?.trials.last()?;
        Some(SampleMetrics {
            throughput_gbytes_per_s: trial.aggregate.gbytes_per_s,
            latency_p50_ns: Some(trial.latency.p50_ns as f64),
            latency_p99_ns: Some(trial.latency.p99_ns as f64),
            ..SampleMetrics::default()
        })
    }
}

fn summarize(
    trials: &[PairsTrial],
    merged: &LatencyHistogram,
    per_pair: &[LatencyHistogram],
) -> PairsSummary {
    let pick = |f: &dyn Fn(&PairsTrial) -> Option<f64>| {
        across_trials(&trials.iter().filter_map(f).collect::<Vec<_>>())
    };
    PairsSummary {
        trials: trials.len() as u32,
        aggregate_gbytes_per_s: pick(&|t| Some(t.aggregate.gbytes_per_s)),
        per_pair_gbytes_per_s: pick(&|t| {
            let n = t.per_pair.len();
            (n > 0).then(|| t.per_pair.iter().map(|p| p.gbytes_per_s).sum::<f64>() / n as f64)
        }),
        p50_ns: pick(&|t| {
            (!t.per_pair.is_empty())
                .then(|| median(t.per_pair.iter().map(|p| p.latency.p50_ns as f64).collect()))
        }),
        p99_ns: pick(&|t| {
            t.per_pair
                .iter()
                .map(|p| p.latency.p99_ns as f64)
                .reduce(f64::max)
        }),
        jain_index: pick(&|t| t.jain_index),
        max_min_ratio: pick(&|t| t.max_min_ratio),
        latency: merged.summary(),
        per_pair: per_pair
            .iter()
            .enumerate()
            .map(|(i, hist)| PairSummary {
                pair: i as u32,
                gbytes_per_s: across_trials(
                    &trials
                        .iter()
                        .filter_map(|t| t.per_pair.get(i).map(|p| p.gbytes_per_s))
                        .collect::<Vec<_>>(),
                ),
                latency: hist.summary(),
            })
            .collect(),
    }
}
