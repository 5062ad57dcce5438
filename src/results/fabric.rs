//! Result types of the multi-rank tests: the nodes and ranks of a run,
//! concurrent pairs (IETF 5.3) and incast (8.1, 8.2). Every per-pair and
//! per-sender value the summaries use is in the file, so fairness can be
//! recomputed from it.

use serde::{Deserialize, Serialize};

use crate::stats::{LatencySummary, Throughput, TrialInterval};

use super::{CounterDeltas, DeviceFacts, SystemConfig};

/// What the report says about the device under test (from the topology file).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DutReport {
    /// What is being tested.
    pub description: String,
    /// Fabric topology.
    pub topology: String,
    /// Link speeds.
    pub link_speed: String,
    /// Switch ASIC and software.
    pub switch: String,
    /// Other notes.
    pub notes: String,
}

/// One node of a multi-rank run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    /// Node rank.
    pub node: u32,
    /// Its name.
    pub name: String,
    /// Its host name.
    pub hostname: String,
    /// Roles and devices.
    pub devices: Vec<RoleDevice>,
    /// Node clock − node 0 clock, ns.
    pub clock_offset_ns: i64,
    /// ± bound on the offset, ns.
    pub clock_error_bound_ns: u64,
    /// "same-host" or "estimated".
    pub clock_method: String,
    /// The node's system configuration (draft section 14).
    pub system: SystemConfig,
}

/// A role of a node and the device its ranks use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleDevice {
    /// "prefill", "decode" or "ep".
    pub role: String,
    /// Ranks of this role on the node.
    pub ranks: u32,
    /// The device.
    pub device: DeviceFacts,
}

/// One rank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankReport {
    /// Global rank.
    pub rank: u32,
    /// Node rank.
    pub node: u32,
    /// Index among the node's ranks of its role.
    pub local: u32,
    /// Its role.
    pub role: String,
    /// Its device.
    pub device: String,
}

/// The nodes and ranks of a multi-rank run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterReport {
    /// Where the node identity came from (flags, torchrun-style env, Slurm, Open MPI).
    pub launcher: String,
    /// The rendezvous address.
    pub rendezvous: String,
    /// The topology file, when one was given.
    pub topology_file: Option<String>,
    /// The DUT description.
    pub dut: DutReport,
    /// Every node.
    pub nodes: Vec<NodeReport>,
    /// Every rank.
    pub ranks: Vec<RankReport>,
}

/// One pair in one trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairResult {
    /// Pair number.
    pub pair: u32,
    /// Sending rank.
    pub sender_rank: u32,
    /// Receiving rank.
    pub receiver_rank: u32,
    /// Sender's node.
    pub sender_node: u32,
    /// Receiver's node.
    pub receiver_node: u32,
    /// Messages completed.
    pub messages: u64,
    /// Bytes completed.
    pub bytes: u64,
    /// First post to last completion, s.
    pub seconds: f64,
    /// bytes / seconds, GB/s (the value JFI uses).
    pub gbytes_per_s: f64,
    /// Message completion latency (post → completion).
    pub latency: LatencySummary,
}

/// One trial of a pairs point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairsTrial {
    /// Trial number (0-based).
    pub trial: u32,
    /// All pairs: bytes over first post → last completion of any pair.
    pub aggregate: Throughput,
    /// Every pair.
    pub per_pair: Vec<PairResult>,
    /// Jain index over `per_pair[].gbytes_per_s`; null for one pair.
    pub jain_index: Option<f64>,
    /// Largest / smallest pair GB/s.
    pub max_min_ratio: Option<f64>,
    /// Message completion latency, all pairs merged.
    pub latency: LatencySummary,
    /// Sender CPU, percent of one core, summed over pairs.
    pub sender_cpu_percent: f64,
    /// Counter deltas of every device of the run.
    pub counters: Vec<NodeCounters>,
}

/// One pair across trials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairSummary {
    /// Pair number.
    pub pair: u32,
    /// GB/s across trials.
    pub gbytes_per_s: Option<TrialInterval>,
    /// All trials' message completion latencies merged.
    pub latency: LatencySummary,
}

/// A pairs point across trials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairsSummary {
    /// Trials completed.
    pub trials: u32,
    /// Aggregate GB/s across trials.
    pub aggregate_gbytes_per_s: Option<TrialInterval>,
    /// Mean per-pair GB/s across trials.
    pub per_pair_gbytes_per_s: Option<TrialInterval>,
    /// Median of the pairs' P50 latency, across trials (ns).
    pub p50_ns: Option<TrialInterval>,
    /// Worst pair's P99 latency, across trials (ns).
    pub p99_ns: Option<TrialInterval>,
    /// JFI across trials.
    pub jain_index: Option<TrialInterval>,
    /// Max/min ratio across trials.
    pub max_min_ratio: Option<TrialInterval>,
    /// All latencies of all trials merged.
    pub latency: LatencySummary,
    /// Per pair.
    pub per_pair: Vec<PairSummary>,
}

/// One N of the concurrent-pairs sweep (test 5.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairsPoint {
    /// Number of pairs.
    pub pairs: u32,
    /// Message size.
    pub msg_bytes: u64,
    /// QPs per pair.
    pub qps_per_pair: u32,
    /// Bytes per work request.
    pub wr_bytes: u64,
    /// Outstanding WRs per QP.
    pub tx_depth: u32,
    /// Every trial.
    pub trials: Vec<PairsTrial>,
    /// Across trials.
    pub summary: PairsSummary,
}

/// One transfer of an incast trial; times from the trial's common start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferResult {
    /// When it was due, ns after the start.
    pub scheduled_ns: u64,
    /// First WR posted, ns after the start.
    pub post_ns: u64,
    /// Last byte acknowledged, ns after the start.
    pub done_ns: u64,
    /// Flow completion time: done − scheduled, ns.
    pub fct_ns: u64,
}

/// One sender in one incast trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncastSender {
    /// Sender number.
    pub sender: u32,
    /// Its rank.
    pub rank: u32,
    /// Its node.
    pub node: u32,
    /// Bytes completed.
    pub bytes: u64,
    /// bytes / (last done − first scheduled), GB/s (the value JFI uses).
    pub gbytes_per_s: f64,
    /// Its transfers.
    pub transfers: Vec<TransferResult>,
}

/// Counter deltas of one device of one node over one trial (docs/counters.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeCounters {
    /// Node rank.
    pub node: u32,
    /// The deltas, raw and mapped to the draft's KPIs.
    pub deltas: CounterDeltas,
}

/// One incast trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncastTrial {
    /// Trial number.
    pub trial: u32,
    /// FCT of every transfer.
    pub fct: LatencySummary,
    /// From the common start to the last byte acknowledged, ns.
    pub last_byte_ns: u64,
    /// All bytes / (last done − first post), GB/s, as the receiver port saw them.
    pub aggregate_rx_gbytes_per_s: f64,
    /// Jain index over `per_sender[].gbytes_per_s`.
    pub jain_index: Option<f64>,
    /// Largest / smallest sender GB/s.
    pub max_min_ratio: Option<f64>,
    /// Every sender.
    pub per_sender: Vec<IncastSender>,
    /// Counter deltas of every device of the run.
    pub counters: Vec<NodeCounters>,
    /// When ECN marks, CNPs and pauses began, relative to the burst start
    /// (`--counter-interval` runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onset: Option<super::MarkingOnset>,
    /// The counters of every device sampled during the trial
    /// (`--counter-interval` runs only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counter_series: Vec<super::CounterSeries>,
}

/// An incast point across trials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncastSummary {
    /// Trials completed.
    pub trials: u32,
    /// FCT P50 across trials (ns).
    pub fct_p50_ns: Option<TrialInterval>,
    /// FCT P99 across trials (ns).
    pub fct_p99_ns: Option<TrialInterval>,
    /// Last byte time across trials (ns).
    pub last_byte_ns: Option<TrialInterval>,
    /// Aggregate receive GB/s across trials.
    pub aggregate_rx_gbytes_per_s: Option<TrialInterval>,
    /// JFI across trials.
    pub jain_index: Option<TrialInterval>,
    /// All FCTs of all trials.
    pub fct: LatencySummary,
}

/// One (senders, arrival window) point of the incast sweep (8.1, 8.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncastPoint {
    /// Senders (M).
    pub senders: u32,
    /// Transfers per sender per trial (N_burst).
    pub bursts_per_sender: u32,
    /// Bytes per transfer.
    pub msg_bytes: u64,
    /// Arrival window T_arrival, ns.
    pub arrival_window_ns: u64,
    /// Seed of the start times.
    pub seed: u64,
    /// Receiving rank.
    pub receiver_rank: u32,
    /// Every trial.
    pub trials: Vec<IncastTrial>,
    /// Across trials.
    pub summary: IncastSummary,
}
