//! Incast, IETF 8.1 (ECN marking under incast) and 8.2 (PFC under bursty
//! KV transfers): M prefill ranks send N_burst transfers each into one
//! decode port, start times inside the arrival window T_arrival on the
//! common clock. Reports per-transfer completion time (FCT), time until the
//! last byte landed, aggregate receive throughput, JFI across senders and
//! the receiver's counter deltas.
//!
//! "Landed" is the sender's completion of the transfer's last WRITE: on RC
//! the completion follows the responder's ACK, which it sends once the
//! data is placed.

use std::time::Duration;

use crate::cluster::{Flow, RankInfo, SeriesRequest, TrialWork};
use crate::patterns::incast::{burst_offsets, incast_flows};
use crate::report::{human_ns, human_rate};
use crate::results::{
    marking_onset, IncastPoint, IncastSender, IncastSummary, IncastTrial, RunReport, TransferResult,
};
use crate::stats::{across_trials, jain_index, max_min_ratio, LatencyHistogram};

use super::fabric::{trials_deviation, FabricOptions, FabricTest, PointShape, TrialOutcome};

/// The 8.1 / 8.2 sweep: every sender count × every arrival window.
#[derive(Debug)]
pub struct IncastTest {
    /// "8.1" or "8.2".
    pub test_id: &'static str,
    /// Sender counts (M).
    pub senders: Vec<u32>,
    /// Transfers per sender per trial (N_burst).
    pub bursts: u32,
    /// Arrival windows, ns.
    pub windows_ns: Vec<u64>,
    /// Seed of the start times.
    pub seed: u64,
    /// Sample the counters every this many ns during each trial (None: the
    /// trial's deltas only).
    pub counter_interval_ns: Option<u64>,
    merged: LatencyHistogram,
}

impl IncastTest {
    /// A sweep of `senders` × `windows_ns`.
    pub fn new(
        test_id: &'static str,
        senders: Vec<u32>,
        bursts: u32,
        windows_ns: Vec<u64>,
        seed: u64,
    ) -> IncastTest {
        IncastTest {
            test_id,
            senders,
            bursts,
            windows_ns,
            seed,
            counter_interval_ns: None,
            merged: LatencyHistogram::new(),
        }
    }

    /// Samples the counters every `interval` during each trial, so the
    /// marking onset has a time.
    pub fn with_counter_interval(mut self, interval: Option<Duration>) -> IncastTest {
        self.counter_interval_ns = interval.map(|i| i.as_nanos() as u64);
        self
    }

    fn point(&self, point: usize) -> (u32, u64) {
        let w = self.windows_ns.len();
        (self.senders[point / w], self.windows_ns[point % w])
    }
}

impl FabricTest for IncastTest {
    fn test_id(&self) -> &'static str {
        self.test_id
    }

    fn test_name(&self) -> &'static str {
        if self.test_id == "8.2" {
            "PFC Behavior Under Bursty KV Cache Transfers"
        } else {
            "ECN Marking Under Inference Incast"
        }
    }

    fn deviations(&self, options: &FabricOptions) -> Vec<String> {
        let mut out: Vec<String> = trials_deviation(options, "configuration")
            .into_iter()
            .collect();
        if options.msg_bytes != 16 << 20 {
            out.push(format!(
                "{} B transfers; the draft's procedure uses 16 MB",
                options.msg_bytes
            ));
        }
        out.push(
            "switch ECN/PFC thresholds are not set by infab: record them in the topology's [dut]"
                .into(),
        );
        out
    }

    fn duration_s(&self) -> Option<f64> {
        None
    }

    fn points(&self) -> usize {
        self.senders.len() * self.windows_ns.len()
    }

    fn flows(&self, point: usize, ranks: &[RankInfo], qps: u32) -> Result<Vec<Flow>, String> {
        incast_flows(ranks, self.point(point).0, qps)
    }

    fn work(&self, point: usize, flows: &[Flow], trial: u32) -> TrialWork {
        let (_, window_ns) = self.point(point);
        let bursts = if trial == u32::MAX { 1 } else { self.bursts };
        TrialWork::Bursts {
            offsets_ns: burst_offsets(flows, bursts, window_ns, self.seed, trial)
                .into_iter()
                .collect(),
        }
    }

    fn series(&self, point: usize) -> Option<SeriesRequest> {
        self.counter_interval_ns.map(|interval| SeriesRequest {
            bin_ns: None,
            counter_interval_ns: Some(interval),
            span_ns: self.trial_time(point).as_nanos() as u64,
        })
    }

    fn trial_time(&self, point: usize) -> Duration {
        Duration::from_nanos(self.point(point).1) + Duration::from_secs(5)
    }

    fn begin_point(
        &mut self,
        point: usize,
        flows: &[Flow],
        _shape: PointShape,
        report: &mut RunReport,
    ) {
        let (senders, window_ns) = self.point(point);
        self.merged = LatencyHistogram::new();
        report.incast.push(IncastPoint {
            senders,
            bursts_per_sender: self.bursts,
            msg_bytes: report.parameters.sizes_bytes[0],
            arrival_window_ns: window_ns,
            seed: self.seed,
            receiver_rank: flows.first().map_or(0, |f| f.receiver),
            trials: Vec::new(),
            summary: summarize(&[], &LatencyHistogram::new()),
        });
    }

    fn add_trial(&mut self, ranks: &[RankInfo], outcome: &TrialOutcome, report: &mut RunReport) {
        let start = outcome.start_ns;
        let rel = |t: u64| t.saturating_sub(start);
        let mut fct = LatencyHistogram::new();
        let mut per_sender = Vec::with_capacity(outcome.flows.len());
        let mut first_post = u64::MAX;
        let mut last_done = 0u64;
        for f in &outcome.flows {
            let transfers: Vec<TransferResult> = f
                .tally
                .transfers
                .iter()
                .map(|t| TransferResult {
                    scheduled_ns: rel(t.scheduled_ns),
                    post_ns: rel(t.post_ns),
                    done_ns: rel(t.done_ns),
                    fct_ns: t.done_ns.saturating_sub(t.scheduled_ns),
                })
                .collect();
            for t in &transfers {
                fct.record(t.fct_ns);
                first_post = first_post.min(t.post_ns);
                last_done = last_done.max(t.done_ns);
            }
            let span_ns = transfers
                .iter()
                .map(|t| t.done_ns)
                .max()
                .unwrap_or(0)
                .saturating_sub(transfers.iter().map(|t| t.scheduled_ns).min().unwrap_or(0));
            per_sender.push(IncastSender {
                sender: f.flow.id,
                rank: f.flow.sender,
                node: ranks.get(f.flow.sender as usize).map_or(0, |r| r.node),
                bytes: f.tally.bytes,
                gbytes_per_s: if span_ns > 0 {
                    f.tally.bytes as f64 / span_ns as f64
                } else {
                    0.0
                },
                transfers,
            });
        }
        self.merged.merge(&fct);
        let bytes: u64 = per_sender.iter().map(|s| s.bytes).sum();
        let rx_span = last_done.saturating_sub(first_post.min(last_done));
        let rates: Vec<f64> = per_sender.iter().map(|s| s.gbytes_per_s).collect();
        let trial = IncastTrial {
            trial: outcome.trial,
            fct: fct.summary(),
            last_byte_ns: last_done,
            aggregate_rx_gbytes_per_s: if rx_span > 0 {
                bytes as f64 / rx_span as f64
            } else {
                0.0
            },
            jain_index: jain_index(&rates).filter(|_| rates.len() > 1),
            max_min_ratio: max_min_ratio(&rates).filter(|_| rates.len() > 1),
            onset: self.counter_interval_ns.map(|_| {
                // the burst starts with the earliest scheduled transfer
                let burst_start = per_sender
                    .iter()
                    .flat_map(|s| s.transfers.iter().map(|t| t.scheduled_ns))
                    .min()
                    .unwrap_or(0);
                marking_onset(&outcome.counter_series, burst_start)
            }),
            counter_series: outcome.counter_series.clone(),
            per_sender,
            counters: outcome.counters.clone(),
        };
        let point = report
            .incast
            .last_mut()
            .expect("begin_point added the point");
        point.trials.push(trial);
        point.summary = summarize(&point.trials, &self.merged);
    }

    fn progress(&self, report: &RunReport) -> String {
        let Some(point) = report.incast.last() else {
            return String::new();
        };
        let p99 = point.summary.fct_p99_ns.as_ref().map_or(0.0, |v| v.mean);
        let gbps = point
            .summary
            .aggregate_rx_gbytes_per_s
            .as_ref()
            .map_or(0.0, |v| v.mean);
        format!(
            "{} senders, window {}: {} trials, FCT P99 {}, {} into the receiver",
            point.senders,
            human_ns(point.arrival_window_ns as f64),
            point.summary.trials,
            human_ns(p99),
            human_rate(gbps)
        )
    }
}

fn summarize(trials: &[IncastTrial], merged: &LatencyHistogram) -> IncastSummary {
    let pick = |f: &dyn Fn(&IncastTrial) -> Option<f64>| {
        across_trials(&trials.iter().filter_map(f).collect::<Vec<_>>())
    };
    IncastSummary {
        trials: trials.len() as u32,
        fct_p50_ns: pick(&|t| Some(t.fct.p50_ns as f64)),
        fct_p99_ns: pick(&|t| Some(t.fct.p99_ns as f64)),
        last_byte_ns: pick(&|t| Some(t.last_byte_ns as f64)),
        aggregate_rx_gbytes_per_s: pick(&|t| Some(t.aggregate_rx_gbytes_per_s)),
        jain_index: pick(&|t| t.jain_index),
        fct: merged.summary(),
    }
}
