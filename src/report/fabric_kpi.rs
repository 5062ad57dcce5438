//! The multi-rank tests' KPIs as flat records for the CSV export:
//! [`PairsRow`] per (file, N pairs) of test 5.3, [`IncastRow`] per (file,
//! senders, arrival window) of 8.1/8.2, and [`CounterRow`] per (file, point,
//! trial, node, device) with the counter KPIs of docs/counters.md. Column
//! names carry units; an absent value (no CI with one trial, no JFI with
//! one pair, a counter the NIC lacks) is an empty cell, never 0. The p2p
//! rows are kpi.rs's; the raw per-counter deltas stay in the JSON.

use serde::Serialize;

use crate::results::{NodeCounters, RunReport};
use crate::stats::TrialInterval;

/// One N of a concurrent-pairs sweep, across its trials.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PairsRow {
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
    /// Concurrent pairs N.
    pub pairs: u32,
    /// Message size, bytes.
    pub msg_bytes: u64,
    /// QPs per pair.
    pub qps_per_pair: u32,
    /// Bytes per work request.
    pub wr_bytes: u64,
    /// Trials completed.
    pub trials: u32,
    /// Mean aggregate GB/s across trials.
    pub aggregate_gbytes_per_s_mean: Option<f64>,
    /// Its 95 % CI half width.
    pub aggregate_gbytes_per_s_ci95_half_width: Option<f64>,
    /// Mean per-pair GB/s across trials.
    pub per_pair_gbytes_per_s_mean: Option<f64>,
    /// Its 95 % CI half width.
    pub per_pair_gbytes_per_s_ci95_half_width: Option<f64>,
    /// Median pair's P50 latency, mean across trials, ns.
    pub latency_p50_ns_mean: Option<f64>,
    /// Its 95 % CI half width, ns.
    pub latency_p50_ns_ci95_half_width: Option<f64>,
    /// Worst pair's P99 latency, mean across trials, ns.
    pub latency_p99_ns_mean: Option<f64>,
    /// Its 95 % CI half width, ns.
    pub latency_p99_ns_ci95_half_width: Option<f64>,
    /// Jain index across pairs, mean across trials.
    pub jain_index_mean: Option<f64>,
    /// Its 95 % CI half width.
    pub jain_index_ci95_half_width: Option<f64>,
    /// Largest / smallest pair GB/s, mean across trials.
    pub max_min_ratio_mean: Option<f64>,
    /// Message completion latencies, all pairs and trials merged.
    pub latency_samples: u64,
    /// Merged P50, ns.
    pub latency_merged_p50_ns: u64,
    /// Merged P99, ns.
    pub latency_merged_p99_ns: u64,
    /// Merged maximum, ns.
    pub latency_merged_max_ns: u64,
}

/// One (senders, arrival window) point of an incast sweep, across trials.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IncastRow {
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
    /// Senders M.
    pub senders: u32,
    /// Transfers per sender per trial.
    pub bursts_per_sender: u32,
    /// Bytes per transfer.
    pub msg_bytes: u64,
    /// Arrival window T_arrival, ns.
    pub arrival_window_ns: u64,
    /// Seed of the start times.
    pub seed: u64,
    /// Receiving rank.
    pub receiver_rank: u32,
    /// Trials completed.
    pub trials: u32,
    /// Transfers, all trials.
    pub transfers: u64,
    /// FCT P50 per trial, mean across trials, ns.
    pub fct_p50_ns_mean: Option<f64>,
    /// Its 95 % CI half width, ns.
    pub fct_p50_ns_ci95_half_width: Option<f64>,
    /// FCT P99 per trial, mean across trials, ns.
    pub fct_p99_ns_mean: Option<f64>,
    /// Its 95 % CI half width, ns.
    pub fct_p99_ns_ci95_half_width: Option<f64>,
    /// Common start → last byte, mean across trials, ns.
    pub last_byte_ns_mean: Option<f64>,
    /// Its 95 % CI half width, ns.
    pub last_byte_ns_ci95_half_width: Option<f64>,
    /// Receive GB/s, mean across trials.
    pub aggregate_rx_gbytes_per_s_mean: Option<f64>,
    /// Its 95 % CI half width.
    pub aggregate_rx_gbytes_per_s_ci95_half_width: Option<f64>,
    /// Jain index across senders, mean across trials.
    pub jain_index_mean: Option<f64>,
    /// Its 95 % CI half width.
    pub jain_index_ci95_half_width: Option<f64>,
    /// Smallest FCT of all trials, ns.
    pub fct_min_ns: u64,
    /// P50 of all trials' FCTs, ns.
    pub fct_merged_p50_ns: u64,
    /// P99 of all trials' FCTs, ns.
    pub fct_merged_p99_ns: u64,
    /// Largest FCT, ns.
    pub fct_max_ns: u64,
}

/// The counter KPIs of one device of one node over one trial of one point.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CounterRow {
    /// The results file as given.
    pub file: String,
    /// IETF test id.
    pub test_id: String,
    /// Pairs N of the point (5.3; empty otherwise).
    pub pairs: Option<u32>,
    /// Senders M of the point (8.1/8.2; empty otherwise).
    pub senders: Option<u32>,
    /// Arrival window of the point, ns (8.1/8.2).
    pub arrival_window_ns: Option<u64>,
    /// Trial number.
    pub trial: u32,
    /// Node rank.
    pub node: u32,
    /// RDMA device.
    pub device: String,
    /// Port number.
    pub port: u8,
    /// Netdev whose ethtool counters were read.
    pub netdev: Option<String>,
    /// Time between the snapshots, ns.
    pub elapsed_ns: u64,
    /// ECN-CE marked packets received.
    pub ecn_marked_packets: Option<i64>,
    /// CNPs sent.
    pub cnp_sent: Option<i64>,
    /// CNPs handled.
    pub cnp_handled: Option<i64>,
    /// PFC PAUSE frames received.
    pub pfc_rx_pause_frames: Option<i64>,
    /// PFC PAUSE frames sent.
    pub pfc_tx_pause_frames: Option<i64>,
    /// Retransmission events.
    pub retransmissions: Option<i64>,
    /// Out-of-sequence requests.
    pub out_of_sequence: Option<i64>,
    /// Sequence-error NAKs.
    pub packet_seq_errors: Option<i64>,
    /// Port errors.
    pub port_errors: Option<i64>,
    /// QP errors (the "NIC QP State" indicator).
    pub qp_errors: Option<i64>,
}

fn mean(iv: Option<&TrialInterval>) -> Option<f64> {
    iv.map(|iv| iv.mean)
}

fn half(iv: Option<&TrialInterval>) -> Option<f64> {
    iv.and_then(|iv| iv.ci95_half_width)
}

/// One [`PairsRow`] per N of `report` (none for other tests).
pub fn pairs_rows(file: &str, report: &RunReport) -> Vec<PairsRow> {
    report
        .pairs
        .iter()
        .map(|p| {
            let s = &p.summary;
            PairsRow {
                file: file.into(),
                test_id: report.test_id.clone(),
                dut_id: report.dut_id.clone(),
                status: report.status.clone(),
                op: report.parameters.op.clone(),
                pairs: p.pairs,
                msg_bytes: p.msg_bytes,
                qps_per_pair: p.qps_per_pair,
                wr_bytes: p.wr_bytes,
                trials: s.trials,
                aggregate_gbytes_per_s_mean: mean(s.aggregate_gbytes_per_s.as_ref()),
                aggregate_gbytes_per_s_ci95_half_width: half(s.aggregate_gbytes_per_s.as_ref()),
                per_pair_gbytes_per_s_mean: mean(s.per_pair_gbytes_per_s.as_ref()),
                per_pair_gbytes_per_s_ci95_half_width: half(s.per_pair_gbytes_per_s.as_ref()),
                latency_p50_ns_mean: mean(s.p50_ns.as_ref()),
                latency_p50_ns_ci95_half_width: half(s.p50_ns.as_ref()),
                latency_p99_ns_mean: mean(s.p99_ns.as_ref()),
                latency_p99_ns_ci95_half_width: half(s.p99_ns.as_ref()),
                jain_index_mean: mean(s.jain_index.as_ref()),
                jain_index_ci95_half_width: half(s.jain_index.as_ref()),
                max_min_ratio_mean: mean(s.max_min_ratio.as_ref()),
                latency_samples: s.latency.count,
                latency_merged_p50_ns: s.latency.p50_ns,
                latency_merged_p99_ns: s.latency.p99_ns,
                latency_merged_max_ns: s.latency.max_ns,
            }
        })
        .collect()
}

/// One [`IncastRow`] per point of `report` (none for other tests).
pub fn incast_rows(file: &str, report: &RunReport) -> Vec<IncastRow> {
    report
        .incast
        .iter()
        .map(|p| {
            let s = &p.summary;
            IncastRow {
                file: file.into(),
                test_id: report.test_id.clone(),
                dut_id: report.dut_id.clone(),
                status: report.status.clone(),
                op: report.parameters.op.clone(),
                senders: p.senders,
                bursts_per_sender: p.bursts_per_sender,
                msg_bytes: p.msg_bytes,
                arrival_window_ns: p.arrival_window_ns,
                seed: p.seed,
                receiver_rank: p.receiver_rank,
                trials: s.trials,
                transfers: s.fct.count,
                fct_p50_ns_mean: mean(s.fct_p50_ns.as_ref()),
                fct_p50_ns_ci95_half_width: half(s.fct_p50_ns.as_ref()),
                fct_p99_ns_mean: mean(s.fct_p99_ns.as_ref()),
                fct_p99_ns_ci95_half_width: half(s.fct_p99_ns.as_ref()),
                last_byte_ns_mean: mean(s.last_byte_ns.as_ref()),
                last_byte_ns_ci95_half_width: half(s.last_byte_ns.as_ref()),
                aggregate_rx_gbytes_per_s_mean: mean(s.aggregate_rx_gbytes_per_s.as_ref()),
                aggregate_rx_gbytes_per_s_ci95_half_width: half(
                    s.aggregate_rx_gbytes_per_s.as_ref(),
                ),
                jain_index_mean: mean(s.jain_index.as_ref()),
                jain_index_ci95_half_width: half(s.jain_index.as_ref()),
                fct_min_ns: s.fct.min_ns,
                fct_merged_p50_ns: s.fct.p50_ns,
                fct_merged_p99_ns: s.fct.p99_ns,
                fct_max_ns: s.fct.max_ns,
            }
        })
        .collect()
}

fn counter_row(base: &CounterRow, trial: u32, c: &NodeCounters) -> CounterRow {
    let d = &c.deltas;
    let k = &d.kpis;
    CounterRow {
        trial,
        node: c.node,
        device: d.device.clone(),
        port: d.port,
        netdev: d.netdev.clone(),
        elapsed_ns: d.elapsed_ns,
        ecn_marked_packets: k.ecn_marked_packets,
        cnp_sent: k.cnp_sent,
        cnp_handled: k.cnp_handled,
        pfc_rx_pause_frames: k.pfc_rx_pause,
        pfc_tx_pause_frames: k.pfc_tx_pause,
        retransmissions: k.retransmissions,
        out_of_sequence: k.out_of_sequence,
        packet_seq_errors: k.packet_seq_errors,
        port_errors: k.port_errors,
        qp_errors: k.qp_errors,
        ..base.clone()
    }
}

/// One [`CounterRow`] per (point, trial, node, device) of `report`.
pub fn counter_rows(file: &str, report: &RunReport) -> Vec<CounterRow> {
    let base = CounterRow {
        file: file.into(),
        test_id: report.test_id.clone(),
        ..CounterRow::default()
    };
    let mut rows = Vec::new();
    for p in &report.pairs {
        let point = CounterRow {
            pairs: Some(p.pairs),
            ..base.clone()
        };
        for t in &p.trials {
            rows.extend(t.counters.iter().map(|c| counter_row(&point, t.trial, c)));
        }
    }
    for p in &report.incast {
        let point = CounterRow {
            senders: Some(p.senders),
            arrival_window_ns: Some(p.arrival_window_ns),
            ..base.clone()
        };
        for t in &p.trials {
            rows.extend(t.counters.iter().map(|c| counter_row(&point, t.trial, c)));
        }
    }
    for p in report.kv.iter().flat_map(|k| &k.points) {
        // a KV point is a prompt length; the trial number identifies the row
        for t in &p.trials {
            rows.extend(t.counters.iter().map(|c| counter_row(&base, t.trial, c)));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(text: &str) -> RunReport {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn one_row_per_point_and_per_trial_device() {
        let pairs = fixture(include_str!("../../tests/fixtures/results/pairs-5.3.json"));
        let rows = pairs_rows("p.json", &pairs);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].pairs, 1);
        assert_eq!(rows[0].jain_index_mean, None, "one pair: no JFI");
        assert!(rows[2].jain_index_mean.is_some());
        let counters = counter_rows("p.json", &pairs);
        assert_eq!(counters.len(), 3 * 3 * 2, "3 N × 3 trials × 2 devices");
        assert_eq!(counters[0].pairs, Some(1));
        assert_eq!(counters[0].ecn_marked_packets, None, "rxe: no ECN counter");
        assert_eq!(counters[0].qp_errors, Some(0));

        let incast = fixture(include_str!("../../tests/fixtures/results/incast-8.2.json"));
        let rows = incast_rows("i.json", &incast);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].senders, 3);
        assert_eq!(rows[1].transfers, 18);
        assert!(pairs_rows("i.json", &incast).is_empty());
        assert_eq!(counter_rows("i.json", &incast)[0].senders, Some(2));
    }
}
